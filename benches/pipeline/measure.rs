//! Reading the meters: latency percentiles, a process's CPU time and memory from /proc, and
//! PostgreSQL's own counters.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;

/// Percentiles of a set of durations, by nearest rank.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |q: f64| {
            let index = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[index - 1]
        };
        Some(Self {
            p50: rank(0.50),
            p99: rank(0.99),
            p999: rank(0.999),
            max: samples[samples.len() - 1],
        })
    }
}

/// Milliseconds, for tables.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The kernel's clock ticks per second, the unit of /proc's CPU times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds (its threads included).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    Some(cpu_times(pid)?.0)
}

/// CPU seconds so far of each PostgreSQL backend serving Botfleet on `database` (its
/// connections name themselves `botfleet` in `pg_stat_activity`), by pid: the server's work
/// for Botfleet alone, whatever else the machine runs.
pub async fn botfleet_backends_cpu(
    admin: &PgPool,
    database: &str,
) -> sqlx::Result<HashMap<u32, f64>> {
    let mut conn = admin.acquire().await?;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'botfleet'",
    )
    .bind(database)
    .fetch_all(&mut *conn)
    .await?;
    Ok(pids
        .into_iter()
        .filter_map(|pid| {
            let pid = u32::try_from(pid).ok()?;
            Some((pid, cpu_seconds(pid)?))
        })
        .collect())
}

/// The CPU Botfleet's backends used between two readings: each backend's growth, a backend
/// that connected in between counting from zero. A backend gone by the second reading is not
/// seen (Botfleet keeps its pool's connections open, so this misses little); never negative.
pub fn backends_cpu_between(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, now)| (now - before.get(pid).copied().unwrap_or(0.0)).max(0.0))
        .sum()
}

/// A process's own CPU seconds (utime + stime), and those of its children that ended and
/// were waited for (cutime + cstime).
fn cpu_times(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space-separated, and
    // utime, stime, cutime and cstime are fields 14 to 17 of the whole line.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<f64> = after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let ticks = clock_ticks();
    Some((
        (*fields.first()? + *fields.get(1)?) / ticks,
        (*fields.get(2)? + *fields.get(3)?) / ticks,
    ))
}

/// CPU seconds of every process named `postgres` (the server and all its backends), and of
/// the backends that ended: the server takes over their time as it reaps them, so a client
/// that disconnects within a measured window (the seed anchor's Node process) still counts.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(cpu_times)
        .map(|(own, ended_children)| own + ended_children)
        .sum()
}

/// Resident memory now and at its peak (VmRSS, VmHWM), in bytes.
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// PostgreSQL's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCounters {
    /// Committed transactions in the bench database.
    pub commits: i64,
    /// WAL written by the whole cluster (pg_stat_wal has no per-database split).
    pub wal_bytes: i64,
}

/// Reads the counters. PostgreSQL 15 backends report their counts at most once a second,
/// and an idle backend up to 10 s later: call this after enough quiet (see `settle`).
pub async fn server_counters(admin: &PgPool, database: &str) -> sqlx::Result<ServerCounters> {
    let mut conn = admin.acquire().await?;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let (commits, wal_bytes): (i64, i64) = sqlx::query_as(
        "SELECT coalesce((SELECT xact_commit FROM pg_stat_database WHERE datname = $1), 0),
                (SELECT wal_bytes FROM pg_stat_wal)::bigint",
    )
    .bind(database)
    .fetch_one(&mut *conn)
    .await?;
    Ok(ServerCounters { commits, wal_bytes })
}

/// Committed transactions per database, to tell how busy the rest of the server was.
pub async fn commits_by_database(admin: &PgPool) -> sqlx::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT datname::text, xact_commit FROM pg_stat_database WHERE datname IS NOT NULL",
    )
    .fetch_all(admin)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What the other databases did between two [`commits_by_database`]: commits in those that
/// lasted, and how many came or went (a test suite creates and drops its own).
pub fn other_activity(
    before: &HashMap<String, i64>,
    after: &HashMap<String, i64>,
    ours: &str,
) -> (i64, usize) {
    let commits = after
        .iter()
        .filter(|(name, _)| name.as_str() != ours)
        .filter_map(|(name, n)| Some(n - before.get(name)?))
        .sum();
    let churn = after.keys().filter(|k| !before.contains_key(*k)).count()
        + before.keys().filter(|k| !after.contains_key(*k)).count();
    (commits, churn)
}

/// How long after the last activity PostgreSQL 15's cumulative statistics are complete: an
/// idle backend flushes what it still holds after PGSTAT_IDLE_INTERVAL (10 s).
pub const STATS_SETTLE: Duration = Duration::from_millis(11_000);

/// A cut of every counter at one moment.
#[derive(Debug, Clone)]
pub struct Meters {
    pub at: std::time::Instant,
    pub server: ServerCounters,
    /// Botfleet's CPU seconds so far.
    pub botfleet_cpu: f64,
    /// CPU seconds so far of each PostgreSQL backend serving Botfleet ([`botfleet_backends_cpu`]).
    pub backends_cpu: HashMap<u32, f64>,
    /// CPU seconds so far of every PostgreSQL process, ended backends included
    /// ([`postgres_cpu_seconds`]): measured as the seed stack's is, for the ratio to it.
    pub postgres_cpu: f64,
}
