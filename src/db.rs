//! The one PostgreSQL pool, shared by the event store, the subscriptions and the API.

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

/// The SQL migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    BadUrl(#[source] sqlx::Error),
    #[error("the database could not be created")]
    Create(#[source] sqlx::Error),
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    #[error("the migrations could not be applied")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connects, creating the database first when it does not exist yet.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(url).map_err(DbError::BadUrl)?;
    if !Postgres::database_exists(url)
        .await
        .map_err(DbError::Connect)?
    {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = options.get_database(), "created the database"),
            // Another process may have created it in between.
            Err(e) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(error = %e, "the database appeared meanwhile")
            }
            Err(e) => return Err(DbError::Create(e)),
        }
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(DbError::Connect)
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
