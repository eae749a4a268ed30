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
    let options = PgConnectOptions::from_str(url).map_err(|e| DbError::BadUrl {
        origin: origin.to_owned(),
        reason: short_cause(&e),
    })?;
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
