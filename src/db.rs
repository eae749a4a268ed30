//! The one PostgreSQL pool, shared by the event store, the subscriptions and the API.
//!
//! A connection that fails says where it went and which setting sent it there, in one line:
//! an operator's first question is "which server, and where did that address come from?".

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// The SQL migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The `application_name` of Botfleet's connections, unless DATABASE_URL names another.
pub const APPLICATION_NAME: &str = "botfleet";

/// The session setting that tags each of a pool's connections ([`process_tag`]).
pub const PROCESS_SETTING: &str = "botfleet.process";

/// The tag of the pool `conn` came from, as its connection's session setting holds it.
pub async fn process_tag(conn: impl sqlx::PgExecutor<'_>) -> Result<String, sqlx::Error> {
    let tag: Option<String> = sqlx::query_scalar("SELECT current_setting($1, true)")
        .bind(PROCESS_SETTING)
        .fetch_one(conn)
        .await?;
    Ok(tag.unwrap_or_default())
}

/// Where a database URL came from, named in every error about it.
pub const FROM_SETTING: &str = "DATABASE_URL";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{origin} is not a valid PostgreSQL URL ({reason}), e.g. postgres://user@db.internal:5432/botfleet")]
    BadUrl { origin: String, reason: String },
    #[error("{origin} names no database: end it with one, e.g. postgres://user@db.internal:5432/botfleet")]
    NoDatabaseName { origin: String },
    #[error("the database {database} at {address} ({origin}) could not be created: {cause}")]
    Create {
        database: String,
        address: String,
        origin: String,
        cause: String,
    },
    #[error("cannot connect to the database at {address} ({origin}): {cause}")]
    Connect {
        address: String,
        origin: String,
        cause: String,
    },
    #[error("the migrations could not be applied")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connects to a URL from DATABASE_URL, creating the database first when it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    connect_from(url, FROM_SETTING, max_connections).await
}

/// Connects to `url`, which `origin` names in errors (a setting, or "the embedded database").
pub async fn connect_from(
    url: &str,
    origin: &str,
    max_connections: u32,
) -> Result<PgPool, DbError> {
    let mut options = PgConnectOptions::from_str(url).map_err(|e| DbError::BadUrl {
        origin: origin.to_owned(),
        reason: short_cause(&e),
    })?;
    // Named in pg_stat_activity, so that an operator (and the bench, which counts the CPU of
    // Botfleet's own backends) can tell its connections apart; a name in the URL is kept.
    if options.get_application_name().is_none() {
        options = options.application_name(APPLICATION_NAME);
    }
    // The pool's own tag, which the chat_work trigger puts in the announcements of the turns
    // this pool appends: the process that appended one ignores it (its intake hands the chat
    // to its runner directly), every other process claims on it.
    options = options.options([(PROCESS_SETTING, uuid::Uuid::new_v4().to_string())]);
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Err(DbError::NoDatabaseName {
            origin: origin.to_owned(),
        });
    };
    let address = address_of(&options);
    let connect_error = |e: sqlx::Error| DbError::Connect {
        address: address.clone(),
        origin: origin.to_owned(),
        cause: short_cause(&e),
    };
    if !Postgres::database_exists(url)
        .await
        .map_err(connect_error)?
    {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(%database, "created the database"),
            // Another process may have created it in between.
            Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(error = %e, "the database appeared meanwhile")
            }
            Err(e) => {
                return Err(DbError::Create {
                    database,
                    address,
                    origin: origin.to_owned(),
                    cause: short_cause(&e),
                })
            }
        }
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(connect_error)
}

/// `host:port`, or the socket's folder.
fn address_of(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("the socket in {}", socket.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// The part of a connection error an operator acts on, without sqlx's framing.
fn short_cause(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(e) => e.message().to_owned(),
        sqlx::Error::PoolTimedOut => "no answer within 10 s".to_owned(),
        sqlx::Error::Configuration(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// Applies every pending migration. sqlx takes an advisory lock, so several processes
/// starting at once apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether `error` (or one of its causes) says the database is out of reach or refusing for
/// a while (a lost or refused connection, a full pool, a server shutting down), rather than
/// that the request itself was wrong: the caller may answer "try again", not "broken".
pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(e) = error.downcast_ref::<sqlx::Error>() {
            return match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // 08: connection exception; 53: insufficient resources; 57: operator
                // intervention (shutdown, a database that does not allow connections).
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    ["08", "53", "57", "55000"]
                        .iter()
                        .any(|class| code.starts_with(class))
                }),
                _ => false,
            };
        }
        current = error.source();
    }
    false
}

/// How far this server's transaction counter is behind the stored events, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterBehind {
    /// The highest transaction id among the stored events.
    pub stored: u64,
    /// The id this server gave the checking transaction.
    pub current: u64,
}

impl CounterBehind {
    /// A transaction-id epoch that puts the counter past every stored event (for
    /// `pg_resetwal -e` on a stopped server).
    pub fn epoch(&self) -> u32 {
        u32::try_from((self.stored >> 32) + 1).unwrap_or(u32::MAX)
    }
}

/// Whether this server's transaction counter is behind the stored events'.
///
/// Commit order is the writing transaction's id (`xid8`, see `event_store::stream`). A
/// backup restored onto a server that has used fewer transaction ids keeps the old ids, and
/// every new event would then sort before them: subscriptions past them would never see the
/// new events. So the counter must be moved past them first ([`advance_transaction_counter`],
/// or `pg_resetwal -e` on a stopped server).
pub async fn transaction_counter_behind(
    pool: &PgPool,
) -> Result<Option<CounterBehind>, sqlx::Error> {
    let (stored, current): (Option<String>, String) = sqlx::query_as(
        "SELECT (SELECT max(transaction_id)::text FROM events), pg_current_xact_id()::text",
    )
    .fetch_one(pool)
    .await?;
    let stored: Option<u64> = stored.and_then(|s| s.parse().ok());
    let current: u64 = current.parse().unwrap_or(0);
    Ok(stored
        .filter(|stored| *stored >= current)
        .map(|stored| CounterBehind { stored, current }))
}

/// Ids taken per round while advancing the counter (a round is one server-side loop).
const ADVANCE_ROUND: u64 = 1_000_000;

/// Moves this server's transaction counter past `behind.stored` by using up transaction ids:
/// one empty transaction each, committed without waiting for the disk (about 150,000 a second
/// on a small machine). For a server whose data folder is out of reach (a managed PostgreSQL);
/// the embedded database uses `pg_resetwal -e`, which is instant.
pub async fn advance_transaction_counter(
    pool: &PgPool,
    behind: CounterBehind,
) -> Result<(), sqlx::Error> {
    tracing::warn!(
        stored = behind.stored,
        current = behind.current,
        "the stored events carry transaction ids ahead of this server's (a backup restored onto another server): using up {} ids so that new events sort after them",
        behind.stored + 1 - behind.current
    );
    let mut conn = pool.acquire().await?;
    // Only for this connection, which is closed after: nothing here is worth a disk flush.
    sqlx::raw_sql("SET synchronous_commit = off")
        .execute(&mut *conn)
        .await?;
    let outcome = advance_on(&mut conn, behind.stored).await;
    // Not back into the pool with the setting changed.
    conn.detach();
    outcome
}

async fn advance_on(conn: &mut sqlx::PgConnection, past: u64) -> Result<(), sqlx::Error> {
    loop {
        let current: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(&mut *conn)
            .await?;
        let current: u64 = current.parse().unwrap_or(u64::MAX);
        if current > past {
            return Ok(());
        }
        let round = (past + 1 - current).min(ADVANCE_ROUND);
        // One server-side loop: each COMMIT ends a transaction that took one id. Alone in its
        // query string, or it would run inside one implicit transaction and could not commit.
        sqlx::raw_sql(&format!(
            "DO $$ BEGIN
               FOR i IN 1..{round} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP;
             END $$"
        ))
        .execute(&mut *conn)
        .await?;
        tracing::info!(
            remaining = past.saturating_sub(current + round),
            "advancing the transaction counter"
        );
    }
}

/// Makes sure new events will sort after the stored ones (see
/// [`transaction_counter_behind`]), advancing the counter when it is behind.
pub async fn ensure_counter_ahead(pool: &PgPool) -> Result<(), sqlx::Error> {
    if let Some(behind) = transaction_counter_behind(pool).await? {
        advance_transaction_counter(pool, behind).await?;
    }
    Ok(())
}
