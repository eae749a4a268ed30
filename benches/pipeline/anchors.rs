//! The anchors, measured on the same PostgreSQL in the same run: what the machine itself
//! allows (pgbench, one-row insert transactions), and what the old stack's queue could ever
//! do per message (pg-boss 10 draining no-op jobs).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::process::Command;

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
