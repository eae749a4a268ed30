//! `botfleet backup` and `botfleet restore`: the database with PostgreSQL's own tools
//! (`pg_dump` in its custom format, `pg_restore`), for the embedded database and an external
//! one alike. The keys are not in the dump: they are copied beside it (README, Backups).
//!
//! A restore onto another server has one trap: events are ordered by the writing
//! transaction's id, and a server that has used fewer ids than the old one would give new
//! events ids below the restored ones (see `db::transaction_counter_behind`). The embedded
//! database is moved past them with `pg_resetwal -e` (instant); an external server, whose
//! files are out of reach, by using up ids (`db::advance_transaction_counter`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{Access, Database};
use crate::config::DatabaseArgs;

/// Writes the whole database to `output` (`pg_dump --format=custom`). Works while the
/// service runs: the dump is one consistent snapshot.
pub async fn backup(args: &DatabaseArgs, output: &Path) -> anyhow::Result<()> {
    let db = Database::open(args, Access::Command).await?;
    // Make sure the database exists (and is current), so that a first backup is not an error.
    let pool = db.pool(2).await?;
    crate::db::migrate(&pool).await?;
    pool.close().await;
    let program = client_program(args, &db, "pg_dump");
    // Made first, so that the dump is never readable by others, not even while it is written.
    let prepared = private_file(output);
    if let Err(e) = prepared {
        db.close().await?;
        anyhow::bail!("cannot write {}: {e}", output.display());
    }
    let result = run_with_url(
        tokio::process::Command::new(&program)
            .arg("--format=custom")
            .arg("--file")
            .arg(output),
        &db.url,
        "pg_dump",
    )
    .await;
    db.close().await?;
    result
}

/// Loads a backup into an empty database: the embedded one of `args`' data folder (which no
/// process may be running), or DATABASE_URL's.
pub async fn restore(args: &DatabaseArgs, input: &Path) -> anyhow::Result<()> {
    if !input.is_file() {
        anyhow::bail!("{} is not a backup file", input.display());
    }
    let mut db = Database::open(args, Access::Exclusive).await?;
    let outcome = restore_into(args, &mut db, input).await;
    db.close().await?;
    outcome
}

async fn restore_into(args: &DatabaseArgs, db: &mut Database, input: &Path) -> anyhow::Result<()> {
    let pool = db.pool(2).await?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    if tables > 0 {
        anyhow::bail!(
            "the database ({}) already holds {tables} tables: restore into an empty one (a new \
             BOTFLEET_DATA_DIR, or a new database in DATABASE_URL)",
            db.origin
        );
    }
    let program = client_program(args, db, "pg_restore");
    run_with_url(
        tokio::process::Command::new(&program)
            .args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--single-transaction",
            ])
            .arg(input),
        &db.url,
        "pg_restore",
    )
    .await?;

    let pool = db.pool(2).await?;
    let behind = crate::db::transaction_counter_behind(&pool).await?;
    let Some(behind) = behind else {
        pool.close().await;
        return Ok(());
    };
    // The embedded database is moved forward at once, from its own files.
    if matches!(db.embedded, super::Embedded::Owned { .. }) {
        pool.close().await;
        let super::Embedded::Owned { cluster, _lock } =
            std::mem::replace(&mut db.embedded, super::Embedded::No)
        else {
            unreachable!("matched just above");
        };
        tracing::info!(
            epoch = behind.epoch(),
            "moving the embedded database's transaction counter past the restored events"
        );
        let cluster = cluster.advance_epoch(behind.epoch()).await?;
        db.embedded = super::Embedded::Owned { cluster, _lock };
        let pool = db.pool(2).await?;
        let still = crate::db::transaction_counter_behind(&pool).await?;
        pool.close().await;
        anyhow::ensure!(
            still.is_none(),
            "the transaction counter did not move: {still:?}"
        );
        return Ok(());
    }
    crate::db::advance_transaction_counter(&pool, behind).await?;
    pool.close().await;
    Ok(())
}

/// An empty file at `path` that only its owner may read.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// `name` (pg_dump, pg_restore) from POSTGRES_BIN_DIR, else the embedded cluster's own
/// programs, else the PATH.
fn client_program(args: &DatabaseArgs, db: &Database, name: &str) -> PathBuf {
    if let Some(dir) = args.postgres_bin_dir.as_deref() {
        return dir.join(name);
    }
    match db.cluster() {
        Some(cluster) => cluster.binaries().program(name),
        None => PathBuf::from(name),
    }
}

/// Runs a libpq program on `url`; its password, if any, goes in PGPASSWORD rather than on the
/// command line, where other users of the machine could read it.
async fn run_with_url(
    command: &mut tokio::process::Command,
    url: &str,
    what: &str,
) -> anyhow::Result<()> {
    let mut parsed = url::Url::parse(url)?;
    if let Some(password) = parsed.password().map(str::to_owned) {
        command.env("PGPASSWORD", percent_decode(&password));
        let _ = parsed.set_password(None);
    }
    let output = command
        .arg("--dbname")
        .arg(parsed.as_str())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run {what}: {e} (set POSTGRES_BIN_DIR to the folder of PostgreSQL's programs)"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        anyhow::bail!(
            "{what} failed: {}",
            last[last.len().saturating_sub(3)..].join(" / ")
        );
    }
    Ok(())
}

/// A URL's percent-encoded part as it was meant (`%40` is `@`; a `+` stays a plus).
fn percent_decode(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_percent_decoded_and_pluses_kept() {
        assert_eq!(super::percent_decode("p%40ss+w%2Fd"), "p@ss+w/d");
        assert_eq!(super::percent_decode("100%"), "100%");
    }
}
