// The old-stack anchor of the pipeline benchmark: what the seed backend (NestJS + Prisma +
// pg-boss 10) does per incoming Telegram message, with pg-boss 10 and `pg`, against the
// bench's fake Telegram and fake OpenAI, so Botfleet's turns/s and cost per turn can be put
// next to the stack it replaces.
//
// A producer stands in for the old webhook: one pg-boss `send` per update. The worker is the
// seed's incoming-message worker (see the seed's refactoring notes): per job it
//   1. ensureIncomingMessageSaved: loads the bot, looks for the message (bot + update id),
//      upserts the Telegram user and the chat, inserts the user's message;
//   2. ensureResponseGenerated: looks for a saved answer; if there is none, calls the LLM
//      (Responses API, the chat's thread continued by previous_response_id), saves the new
//      thread id in the chat, and (ensureResponseSaved) inserts the answer with its token
//      usage and price;
//   3. ensureResponseSent: unless the answer is marked sent, sends it by sendMessage and
//      marks it sent;
// then pg-boss completes the job. Each statement commits on its own, as Prisma's
// single-record calls do (no transaction around a step), and each step looks before it
// writes, so a retried job neither asks the LLM again nor answers twice.
//
// Its tables live in the `seed` schema and pg-boss in `seed_pgboss`, so nothing collides with
// Botfleet's tables or with drain.js's `pgboss` schema in the same database.
//
// Usage: MODE=setup node seed_worker.js; MODE=drain node seed_worker.js (settings from the
// environment):
//   MODE              setup: drop and recreate both schemas, the queue and the bot, then
//                     exit (so that a caller can read PostgreSQL's counters after it);
//                     drain: create what is missing, enqueue UPDATES updates, then start
//                     the workers and time the drain until every job is completed
//   DATABASE_URL      the database to use
//   TELEGRAM_API_URL  the (fake) Bot API's base URL; TELEGRAM_TOKEN the bot's token
//   OPENAI_BASE_URL   the (fake) OpenAI base URL, ending in /v1; OPENAI_API_KEY (optional)
//   UPDATES           updates to enqueue and drain (default 10000)
//   FIRST_SEQ         the first update's number: its text is `question #SEQ` (default 1)
//   CHAT_BASE         update SEQ comes from a new private chat CHAT_BASE + SEQ (default 20000000)
//   WORKERS, BATCH    work() calls, and jobs each fetches at a time (default 16 x 50)
//   POOL              connections, shared by pg-boss and the worker's queries (default 16)
//   SENDERS           the producer's concurrent sends (default 32)
// drain prints one JSON line: jobs, completed, failed, answered, seconds, jobs_per_sec,
// enqueue_seconds, enqueue_per_sec, node_cpu_ms (enqueue and drain), max_rss_mb, and
// bench_queries: statements the script ran only to measure (to subtract from commit counts).

'use strict'

const { createHash } = require('node:crypto')
const pg = require('pg')
const mod = require('pg-boss')
// pg-boss 10 exports the class itself; later majors export { PgBoss }.
const PgBoss = mod.PgBoss || mod

const QUEUE = 'incoming-message'
const BOSS_SCHEMA = 'seed_pgboss'
const BOT_ID = '00000000-0000-4000-8000-00000000005e'
// gpt-5-mini's prices, USD per million tokens.
const PRICE = { input: 0.25, cachedInput: 0.025, output: 2.0 }

const env = (name, fallback) => process.env[name] ?? fallback
const MODE = env('MODE', 'drain')
const DATABASE_URL = required('DATABASE_URL')
const UPDATES = Number(env('UPDATES', 10000))
const FIRST_SEQ = Number(env('FIRST_SEQ', 1))
const CHAT_BASE = Number(env('CHAT_BASE', 20000000))
const WORKERS = Number(env('WORKERS', 16))
const BATCH = Number(env('BATCH', 50))
const POOL = Number(env('POOL', 16))
const SENDERS = Number(env('SENDERS', 32))

function required (name) {
  const value = process.env[name]
  if (!value) {
    console.error(`${name} is required`)
    process.exit(2)
  }
  return value
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const SCHEMA_SQL = `
  CREATE SCHEMA IF NOT EXISTS seed;
  CREATE TABLE IF NOT EXISTS seed.bots (
    id uuid PRIMARY KEY,
    token text NOT NULL,
    name text NOT NULL,
    model text NOT NULL,
    instructions text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS seed.tg_users (
    id bigint PRIMARY KEY,
    first_name text,
    last_name text,
    username text,
    language_code text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS seed.chats (
    id bigserial PRIMARY KEY,
    bot_id uuid NOT NULL REFERENCES seed.bots,
    telegram_chat_id bigint NOT NULL,
    tg_user_id bigint REFERENCES seed.tg_users,
    thread_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bot_id, telegram_chat_id)
  );
  CREATE TABLE IF NOT EXISTS seed.messages (
    id bigserial PRIMARY KEY,
    chat_id bigint NOT NULL REFERENCES seed.chats,
    bot_id uuid NOT NULL REFERENCES seed.bots,
    from_bot boolean NOT NULL,
    text text NOT NULL,
    -- The user's message: the update it came in (unique per bot: the idempotency check).
    telegram_update_id bigint,
    -- The bot's answer: the message it answers, its usage and price, and its sending.
    reply_to bigint UNIQUE REFERENCES seed.messages,
    input_tokens integer,
    output_tokens integer,
    price_usd numeric(14, 10),
    telegram_message_id bigint,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bot_id, telegram_update_id)
  );
  CREATE INDEX IF NOT EXISTS messages_by_chat ON seed.messages (chat_id, created_at);
`

// The worker's statements, named so that each connection prepares them once (Prisma's query
// engine caches its prepared statements too).
const SQL = {
  bot: 'SELECT token, model, instructions, is_active FROM seed.bots WHERE id = $1',
  incoming: 'SELECT id, chat_id FROM seed.messages WHERE bot_id = $1 AND telegram_update_id = $2',
  upsertUser: `INSERT INTO seed.tg_users (id, first_name, last_name, username, language_code)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO UPDATE SET first_name = $2, last_name = $3, username = $4,
      language_code = $5, updated_at = now()`,
  upsertChat: `INSERT INTO seed.chats (bot_id, telegram_chat_id, tg_user_id) VALUES ($1, $2, $3)
    ON CONFLICT (bot_id, telegram_chat_id) DO UPDATE SET tg_user_id = $3, updated_at = now()
    RETURNING id, thread_id`,
  insertIncoming: `INSERT INTO seed.messages (chat_id, bot_id, from_bot, text, telegram_update_id)
    VALUES ($1, $2, false, $3, $4)
    ON CONFLICT (bot_id, telegram_update_id) DO NOTHING RETURNING id`,
  chat: 'SELECT thread_id FROM seed.chats WHERE id = $1',
  answer: 'SELECT id, text, sent_at FROM seed.messages WHERE reply_to = $1',
  saveThread: 'UPDATE seed.chats SET thread_id = $2, updated_at = now() WHERE id = $1',
  insertAnswer: `INSERT INTO seed.messages
      (chat_id, bot_id, from_bot, text, reply_to, input_tokens, output_tokens, price_usd)
    VALUES ($1, $2, true, $3, $4, $5, $6, $7) RETURNING id`,
  markSent: `UPDATE seed.messages SET telegram_message_id = $2, sent_at = now()
    WHERE id = $1`
}

function query (pool, name, values) {
  return pool.query({ name, text: SQL[name], values })
}

// `what` names the call in errors: the URL would show the bot's token.
async function post (what, url, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body)
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${what}: ${response.status} ${text}`)
  return JSON.parse(text)
}

// One incoming update, from the job's data to the answer sent.
async function processBotUpdate (pool, data, services) {
  const { botId, update } = data
  const { rows: [bot] } = await query(pool, 'bot', [botId])
  if (!bot || !bot.is_active) return
  const incoming = await ensureIncomingMessageSaved(pool, botId, update)
  const answer = await ensureResponseGenerated(pool, bot, botId, incoming, services)
  await ensureResponseSent(pool, bot, update.message.chat.id, answer, services)
}

// The user's message, saved once: { id, chatId, threadId, text }.
async function ensureIncomingMessageSaved (pool, botId, update) {
  const message = update.message
  const { rows: [seen] } = await query(pool, 'incoming', [botId, update.update_id])
  if (seen) {
    const { rows: [chat] } = await query(pool, 'chat', [seen.chat_id])
    return { id: seen.id, chatId: seen.chat_id, threadId: chat.thread_id, text: message.text }
  }
  const from = message.from
  await query(pool, 'upsertUser',
    [from.id, from.first_name ?? null, from.last_name ?? null, from.username ?? null,
      from.language_code ?? null])
  const { rows: [chat] } = await query(pool, 'upsertChat', [botId, message.chat.id, from.id])
  const { rows: [saved] } = await query(pool, 'insertIncoming',
    [chat.id, botId, message.text, update.update_id])
  // Another delivery of the same update saved it first: carry on with that one.
  if (!saved) return ensureIncomingMessageSaved(pool, botId, update)
  return { id: saved.id, chatId: chat.id, threadId: chat.thread_id, text: message.text }
}

// Generates and saves the answer unless it is saved already (ensureResponseSaved included:
// the answer's row is how a retry knows the response was generated).
async function ensureResponseGenerated (pool, bot, botId, incoming, { openaiBaseUrl, openaiKey }) {
  const { rows: [existing] } = await query(pool, 'answer', [incoming.id])
  if (existing) return existing
  const response = await post('responses', `${openaiBaseUrl}/responses`, {
    model: bot.model,
    instructions: bot.instructions,
    // The plain-string form of `input`, as Botfleet sends it (and the bench's fake reads).
    input: incoming.text,
    ...(incoming.threadId ? { previous_response_id: incoming.threadId } : {})
  }, openaiKey ? { authorization: `Bearer ${openaiKey}` } : {})
  await query(pool, 'saveThread', [incoming.chatId, response.id])
  const text = outputText(response)
  const usage = response.usage ?? {}
  const { rows: [saved] } = await query(pool, 'insertAnswer', [
    incoming.chatId, botId, text, incoming.id,
    usage.input_tokens ?? 0, usage.output_tokens ?? 0, price(usage)
  ])
  return { id: saved.id, text, sent_at: null }
}

async function ensureResponseSent (pool, bot, telegramChatId, answer, { telegramApiUrl }) {
  if (answer.sent_at) return
  const sent = await post('sendMessage', `${telegramApiUrl}/bot${bot.token}/sendMessage`, {
    chat_id: telegramChatId,
    text: answer.text
  })
  await query(pool, 'markSent', [answer.id, sent.result?.message_id ?? null])
}

function outputText (response) {
  return (response.output ?? [])
    .filter((item) => item.type === 'message')
    .flatMap((item) => item.content ?? [])
    .filter((part) => part.type === 'output_text')
    .map((part) => part.text)
    .join('')
}

function price (usage) {
  const cached = usage.input_tokens_details?.cached_tokens ?? 0
  const input = (usage.input_tokens ?? 0) - cached
  return (input * PRICE.input + cached * PRICE.cachedInput +
    (usage.output_tokens ?? 0) * PRICE.output) / 1e6
}

// A deterministic uuid from the idempotency key `${botId}:${updateId}`: pg-boss inserts
// with ON CONFLICT DO NOTHING, so a redelivered webhook does not queue a second job.
function jobId (key) {
  const hex = createHash('sha256').update(key).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

function updateOf (seq) {
  const chat = CHAT_BASE + seq
  return {
    update_id: seq,
    message: {
      message_id: seq,
      date: 1764000000,
      chat: { id: chat, type: 'private', first_name: 'A' },
      from: { id: chat, is_bot: false, first_name: 'A', language_code: 'en' },
      text: `question #${seq}`
    }
  }
}

// What the old webhook did per update: one `send`, SENDERS at a time.
async function enqueue (boss) {
  let next = FIRST_SEQ
  const end = FIRST_SEQ + UPDATES
  const sender = async () => {
    while (next < end) {
      const seq = next++
      await boss.send(QUEUE, { botId: BOT_ID, update: updateOf(seq) },
        { id: jobId(`${BOT_ID}:${seq}`) })
    }
  }
  await Promise.all(Array.from({ length: SENDERS }, sender))
}

async function setUp (pool, boss, fresh) {
  if (fresh) {
    await pool.query(`DROP SCHEMA IF EXISTS seed CASCADE; DROP SCHEMA IF EXISTS ${BOSS_SCHEMA} CASCADE`)
  }
  await pool.query(SCHEMA_SQL)
  await pool.query(
    `INSERT INTO seed.bots (id, token, name, model, instructions) VALUES ($1, $2, 'bench', 'gpt-5-mini', 'Answer briefly.')
     ON CONFLICT (id) DO UPDATE SET token = $2`,
    [BOT_ID, env('TELEGRAM_TOKEN', '7000000:seed-anchor')])
  await boss.start() // creates or checks pg-boss's schema
  if (!(await boss.getQueue(QUEUE))) await boss.createQueue(QUEUE)
}

// Waits until every job is completed or failed for good. pg-boss completes a batch without
// awaiting it, so the handlers finishing is not the end: the rows are. Until the handlers
// are all done it looks once a second (a job may fail for good), then every 5 ms.
async function waitForJobs (watcher, progress) {
  let queries = 0
  for (;;) {
    await (progress.succeeded >= UPDATES ? sleep(5) : Promise.race([progress.allDone, sleep(1000)]))
    queries++
    const { rows: [n] } = await watcher.query(
      `SELECT count(*) FILTER (WHERE state = 'completed')::int AS completed,
              count(*) FILTER (WHERE state = 'failed')::int AS failed
       FROM ${BOSS_SCHEMA}.job WHERE name = $1`, [QUEUE])
    if (n.completed + n.failed >= UPDATES) return { ...n, queries }
  }
}

async function drain (pool, boss) {
  const services = {
    telegramApiUrl: required('TELEGRAM_API_URL'),
    openaiBaseUrl: required('OPENAI_BASE_URL'),
    openaiKey: env('OPENAI_API_KEY', '')
  }
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await enqueue(boss)
  const enqueueSeconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu1 = process.cpuUsage()

  // A separate connection watches the job table, so watching takes no slot of the pool.
  const watcher = new pg.Client({ connectionString: DATABASE_URL })
  await watcher.connect()
  const progress = { succeeded: 0 }
  progress.allDone = new Promise((resolve) => { progress.done = resolve })
  const handler = async (jobs) => {
    // The batch's jobs run side by side; one failure fails (and retries) the whole batch,
    // but only after all have settled, so a retry never overlaps the first attempt.
    const results = await Promise.allSettled(jobs.map((job) => processBotUpdate(pool, job.data, services)))
    const failure = results.find((r) => r.status === 'rejected')
    if (failure) {
      console.error('seed worker:', failure.reason.message)
      throw failure.reason
    }
    progress.succeeded += jobs.length
    if (progress.succeeded >= UPDATES) progress.done()
  }

  const t1 = process.hrtime.bigint()
  for (let i = 0; i < WORKERS; i++) {
    // 0.5 s is the shortest polling interval pg-boss allows; a worker that finds jobs still
    // waits out the rest of it before fetching again.
    await boss.work(QUEUE, { batchSize: BATCH, pollingIntervalSeconds: 0.5 }, handler)
  }
  const finished = await waitForJobs(watcher, progress)
  const seconds = Number(process.hrtime.bigint() - t1) / 1e9
  const cpu2 = process.cpuUsage()
  await boss.offWork(QUEUE)

  const { rows: [{ answered }] } = await watcher.query(
    'SELECT count(*)::int AS answered FROM seed.messages WHERE from_bot AND sent_at IS NOT NULL')
  await watcher.end()
  const ms = (a, b) => (b.user + b.system - a.user - a.system) / 1000
  return {
    jobs: UPDATES,
    completed: finished.completed,
    failed: finished.failed,
    answered,
    workers: WORKERS,
    batch: BATCH,
    pool: POOL,
    seconds,
    jobs_per_sec: finished.completed / seconds,
    enqueue_seconds: enqueueSeconds,
    enqueue_per_sec: UPDATES / enqueueSeconds,
    node_cpu_ms_enqueue: ms(cpu0, cpu1),
    node_cpu_ms_drain: ms(cpu1, cpu2),
    max_rss_mb: process.resourceUsage().maxRSS / 1024,
    bench_queries: finished.queries + 1
  }
}

async function main () {
  if (!['setup', 'drain'].includes(MODE)) throw new Error(`MODE must be setup or drain, not ${MODE}`)
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: POOL })
  const boss = new PgBoss({
    // pg-boss runs its statements on the worker's pool: the seed had two (Prisma's and
    // pg-boss's), one keeps the stack to as many connections as Botfleet is given.
    db: { executeSql: (text, values) => pool.query(text, values) },
    schema: BOSS_SCHEMA,
    // The old worker scheduled nothing; supervision (maintenance) stays on, as deployed.
    schedule: false
  })
  boss.on('error', (error) => console.error('pg-boss error:', error.message))
  await setUp(pool, boss, MODE === 'setup')
  const result = MODE === 'drain' ? await drain(pool, boss) : null
  await boss.stop({ graceful: true, wait: true, timeout: 5000 })
  await pool.end()
  if (result) console.log(JSON.stringify(result))
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
