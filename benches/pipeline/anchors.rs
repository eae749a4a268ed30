//! The anchors, measured on the same PostgreSQL in the same run: what the machine itself
//! allows (pgbench, one-row insert transactions), what the old stack's queue could ever do
//! per message (pg-boss 10 draining no-op jobs), and what the old stack did per message (the
//! seed's worker, bench/pgboss/seed_worker.js, against the bench's fakes).

use std::ops::Range;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::process::Command;

use crate::fakes::{FakeOpenAi, FakeTelegram, LlmMode};
use crate::measure::{postgres_cpu_seconds, server_counters};
use crate::timeline::Timeline;
use crate::Plan;

/// pgbench's committed transactions per second, each inserting one row into an ordinary
/// (logged, fsync'd) table, with `clients` connections for `seconds`.
pub async fn pgbench_single_insert(
    database_url: &str,
    bench_db: &PgPool,
    work_dir: &Path,
    clients: u32,
    seconds: u32,
) -> anyhow::Result<f64> {
    sqlx::query("CREATE TABLE IF NOT EXISTS pgbench_single_insert (v int)")
        .execute(bench_db)
        .await?;
    let script = work_dir.join("single_insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO pgbench_single_insert (v) VALUES (1);\n",
    )?;
    let threads = clients.min(available_cpus()).max(1);
    let output = Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=prepared", "--client"])
        .arg(clients.to_string())
        .arg("--jobs")
        .arg(threads.to_string())
        .arg("--time")
        .arg(seconds.to_string())
        .arg("--file")
        .arg(&script)
        .arg(database_url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running pgbench (apt-get install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // "tps = 1234.567890 (without initial connection time)"
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|tps| tps.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {stdout}"))
}

pub fn available_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// One pg-boss drain: `workers` workers fetching `batch` jobs at a time.
#[derive(Debug, Clone, Deserialize)]
pub struct PgBossDrain {
    pub workers: u32,
    pub batch: u32,
    pub jobs_per_sec: f64,
}

/// Installs pg-boss (pinned in bench/pgboss/package.json) on first use.
pub async fn ensure_pgboss(dir: &Path) -> anyhow::Result<()> {
    if dir.join("node_modules/pg-boss/package.json").exists() {
        return Ok(());
    }
    eprintln!("   installing pg-boss into {} (npm)", dir.display());
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("running npm (Node 20 and npm are needed for the pg-boss anchor)")?;
    if !status.success() {
        bail!("npm install failed in {}", dir.display());
    }
    Ok(())
}

/// Runs bench/pgboss/drain.js: for each `WORKERSxBATCH` setting, `jobs` no-op jobs drained.
pub async fn pgboss_drains(
    dir: &Path,
    database_url: &str,
    jobs: u64,
    settings: &str,
    pool: u32,
    timeout: Duration,
) -> anyhow::Result<Vec<PgBossDrain>> {
    let run = Command::new("node")
        .arg("drain.js")
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("JOBS", jobs.to_string())
        .env("SETTINGS", settings)
        .env("POOL", pool.to_string())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, run)
        .await
        .with_context(|| format!("pg-boss did not finish within {timeout:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let drains: Vec<PgBossDrain> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    if !output.status.success() || drains.is_empty() {
        bail!("the pg-boss drain failed: {stdout}");
    }
    Ok(drains)
}

/// pg-boss's installed version, for the report.
pub fn pgboss_version(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node_modules/pg-boss/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Telegram chat ids of the seed anchor's updates: a new private chat per update,
/// `SEED_CHATS + seq`.
const SEED_CHATS: i64 = 40_000_000;

/// What bench/pgboss/seed_worker.js prints after a drain.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedDrain {
    pub completed: u64,
    pub failed: u64,
    pub workers: u32,
    pub batch: u32,
    pub pool: u32,
    /// From the workers' start until every job was completed (or failed for good).
    pub seconds: f64,
    pub jobs_per_sec: f64,
    pub enqueue_per_sec: f64,
    pub node_cpu_ms_enqueue: f64,
    pub node_cpu_ms_drain: f64,
    pub max_rss_mb: f64,
    /// Statements the script ran only to watch the drain: not the stack's own commits.
    pub bench_queries: i64,
}

/// The seed stack's figures, the drain's plus what the bench measured around it.
#[derive(Debug, Clone)]
pub struct SeedFigures {
    pub pgboss_version: String,
    pub jobs: u64,
    pub drain: SeedDrain,
    /// Updates whose answer reached the fake Telegram, and those answered more than once.
    pub answered: usize,
    pub duplicates: usize,
    /// Per turn, enqueueing and draining: commits in the bench database, and CPU.
    pub commits: f64,
    pub node_cpu_ms: f64,
    pub postgres_cpu_ms: f64,
}

/// The seed stack over `seqs`, on the bench database with Botfleet stopped: the script sets
/// up its schemas, then (counters read) enqueues one job per update and drains them against
/// the bench's fake Telegram and instant fake LLM.
pub async fn seed_anchor(
    plan: &Plan,
    admin: &PgPool,
    dir: &Path,
    telegram: &FakeTelegram,
    llm: &FakeOpenAi,
    timeline: &Timeline,
    seqs: Range<usize>,
) -> anyhow::Result<SeedFigures> {
    let (workers, batch) = plan.seed_setting;
    ensure_pgboss(dir).await?;
    ensure_database(admin, &plan.database).await?;
    llm.set_mode(LlmMode::Delay(Duration::ZERO));
    let jobs = seqs.len() as u64;
    let seed_worker = |mode: &str| {
        let mut command = Command::new("node");
        command
            .arg("seed_worker.js")
            .current_dir(dir)
            .env("MODE", mode)
            .env("DATABASE_URL", plan.database_url())
            .env("TELEGRAM_API_URL", &telegram.base_url)
            .env("OPENAI_BASE_URL", &llm.base_url)
            .env("UPDATES", jobs.to_string())
            .env("FIRST_SEQ", seqs.start.to_string())
            .env("CHAT_BASE", SEED_CHATS.to_string())
            .env("WORKERS", workers.to_string())
            .env("BATCH", batch.to_string())
            .env("POOL", plan.pool.to_string())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command
    };
    let setup = seed_worker("setup").output().await?;
    if !setup.status.success() {
        bail!("the seed worker's setup failed");
    }
    // Its backends report their counters to PostgreSQL's statistics (and their CPU time to
    // the server) as they end.
    tokio::time::sleep(CLOSED_BACKENDS_REPORTED).await;
    let before = server_counters(admin, &plan.database).await?;
    let postgres_cpu = postgres_cpu_seconds();
    // The drain's own timeout, and as long again to enqueue.
    let timeout = plan.drain_timeout * 2;
    let output = tokio::time::timeout(timeout, seed_worker("drain").output())
        .await
        .with_context(|| format!("the seed worker did not finish within {timeout:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let drain: SeedDrain = match stdout.lines().find_map(|l| serde_json::from_str(l).ok()) {
        Some(drain) if output.status.success() => drain,
        _ => bail!("the seed worker's drain failed: {stdout}"),
    };
    tokio::time::sleep(CLOSED_BACKENDS_REPORTED).await;
    let after = server_counters(admin, &plan.database).await?;
    let postgres_cpu = postgres_cpu_seconds() - postgres_cpu;
    let turns = drain.completed.max(1) as f64;
    Ok(SeedFigures {
        pgboss_version: pgboss_version(dir),
        jobs,
        answered: seqs
            .clone()
            .filter(|&s| timeline.sent.get(s).is_some())
            .count(),
        duplicates: seqs.filter(|&s| timeline.sends_of(s) > 1).count(),
        commits: (after.commits - before.commits - drain.bench_queries) as f64 / turns,
        node_cpu_ms: (drain.node_cpu_ms_enqueue + drain.node_cpu_ms_drain) / turns,
        postgres_cpu_ms: 1000.0 * postgres_cpu / turns,
        drain,
    })
}

/// A backend flushes its statistics as it ends, a moment after its client disconnects (an
/// idle one that stays would take up to 10 s: see `STATS_SETTLE`).
const CLOSED_BACKENDS_REPORTED: Duration = Duration::from_secs(2);

/// Creates the bench database if no phase before made it (the seed anchor run alone).
async fn ensure_database(admin: &PgPool, name: &str) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(admin)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(admin)
            .await?;
    }
    Ok(())
}
