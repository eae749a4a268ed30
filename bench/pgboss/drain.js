// The pg-boss anchor of the pipeline benchmark: how fast pg-boss 10 (the old stack's queue)
// drains no-op jobs on this machine's PostgreSQL, under several worker settings.
//
// For each setting `WORKERSxBATCH` it fills a fresh queue with JOBS jobs, starts WORKERS
// workers that fetch BATCH jobs at a time and do nothing with them, and times the drain from
// the workers' start until every job is `completed` in the database. pg-boss completes a batch
// without awaiting it, so the handlers finishing is not the end: the rows are.
//
// Usage: node drain.js   (settings from the environment)
//   DATABASE_URL   the database to use (pg-boss creates its `pgboss` schema there)
//   JOBS           jobs per setting (default 50000)
//   SETTINGS       comma-separated WORKERSxBATCH (default "4x100,8x250,8x500,16x500")
//   POOL           pg-boss's connection pool size (default 16, Botfleet's default pool)
// Prints one JSON object per line: {"workers","batch","jobs","seconds","jobs_per_sec"}.

'use strict'

const { PgBoss } = loadPgBoss()
const pg = require('pg')

function loadPgBoss () {
  const mod = require('pg-boss')
  // pg-boss 10 exports the class itself; later majors export { PgBoss }.
  return { PgBoss: mod.PgBoss || mod }
}

const DATABASE_URL = required('DATABASE_URL')
const JOBS = Number(process.env.JOBS || 50000)
const POOL = Number(process.env.POOL || 16)
const SETTINGS = (process.env.SETTINGS || '4x100,8x250,8x500,16x500')
  .split(',')
  .map((s) => s.trim().split('x').map(Number))

function required (name) {
  const value = process.env[name]
  if (!value) {
    console.error(`${name} is required`)
    process.exit(2)
  }
  return value
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const boss = new PgBoss({
    connectionString: DATABASE_URL,
    max: POOL,
    // Its best settings for a drain: no cron scheduling, no maintenance in the way, and the
    // shortest polling interval it allows (500 ms).
    schedule: false,
    supervise: false
  })
  boss.on('error', (error) => console.error('pg-boss error:', error.message))
  await boss.start()

  // A separate connection watches the job table, so the watching does not take a slot of
  // pg-boss's own pool.
  const watcher = new pg.Client({ connectionString: DATABASE_URL })
  await watcher.connect()

  for (const [workers, batch] of SETTINGS) {
    const queue = `noop_${workers}x${batch}_${Date.now()}`
    await boss.createQueue(queue)
    await fill(boss, queue, JOBS)

    let handled = 0
    let allHandled
    const handledAll = new Promise((resolve) => { allHandled = resolve })
    const handler = async (jobs) => {
      handled += jobs.length
      if (handled >= JOBS) allHandled()
    }

    const started = process.hrtime.bigint()
    for (let i = 0; i < workers; i++) {
      await boss.work(queue, { batchSize: batch, pollingIntervalSeconds: 0.5 }, handler)
    }
    await handledAll
    // Completions are in flight: the drain ends when the last one is committed.
    for (;;) {
      const { rows } = await watcher.query(
        "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'",
        [queue]
      )
      if (rows[0].n >= JOBS) break
      await sleep(5)
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    await boss.offWork(queue)
    console.log(JSON.stringify({ workers, batch, jobs: JOBS, seconds, jobs_per_sec: JOBS / seconds }))
  }

  await watcher.end()
  await boss.stop({ graceful: false, wait: true, timeout: 2000 })
}

// Inserts in chunks: one statement per chunk, like a producer that batches its sends.
async function fill (boss, queue, n) {
  const chunk = 5000
  for (let done = 0; done < n; done += chunk) {
    const jobs = []
    for (let i = done; i < Math.min(n, done + chunk); i++) jobs.push({ name: queue, data: { i } })
    await boss.insert(jobs)
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
