//! The `botfleet` command.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::{Config, DatabaseArgs, ServeArgs};
use crate::secrets::{TokenCipher, TokenKey};

#[derive(Debug, Parser)]
#[command(
    name = "botfleet",
    version,
    about = "A self-hosted platform for a fleet of LLM-answered Telegram bots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: the HTTP API, the subscriptions and the effect runner.
    Serve(Box<ServeArgs>),
    /// Create the database if needed and apply the migrations.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document (as committed in openapi.yaml).
    Openapi,
    /// Inspect or rebuild the read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Each projection's checkpoint and how many events it is behind.
    Status(DatabaseArgs),
    /// Empty read models and replay them from the first event.
    Rebuild {
        /// Only this projection (default: all).
        name: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Openapi => {
            print!("{}", openapi_yaml());
            Ok(())
        }
        Command::Projections { command } => match command {
            ProjectionsCommand::Status(args) => projections_status(args).await,
            ProjectionsCommand::Rebuild { name, database } => {
                projections_rebuild(name, database).await
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Config(e)) => {
            eprintln!("botfleet: {e}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(e)) => {
            eprintln!("botfleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum CliError {
    Config(crate::config::ConfigError),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Failed(e.into())
    }
}

/// The spec without a database: the API's shape does not depend on one.
pub fn openapi_yaml() -> String {
    let pool = sqlx::PgPool::connect_lazy(crate::config::DEFAULT_DATABASE_URL)
        .expect("the default database URL parses");
    let config = Config::from_args(
        <ServeArgs as clap::FromArgMatches>::from_arg_matches(
            &<ServeArgs as clap::Args>::augment_args(clap::Command::new("spec"))
                .get_matches_from(["spec", "--token-encryption-key", &"A".repeat(43)]),
        )
        .expect("default arguments parse"),
    )
    .expect("default settings are valid");
    let cipher = Arc::new(TokenCipher::new(&TokenKey::from_bytes([0; 32])));
    crate::api::spec_yaml(crate::app::app_state(pool, cipher, &config))
}

async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let config = Config::from_args(args).map_err(CliError::Config)?;
    let app = Application::build(config).await?;
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.cancel();
    });
    app.run_until_stopped().await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn migrate(args: DatabaseArgs) -> Result<(), CliError> {
    let pool = crate::db::connect(&args.database_url, 2).await?;
    crate::db::migrate(&pool).await?;
    println!("migrations applied");
    Ok(())
}

async fn projections_status(args: DatabaseArgs) -> Result<(), CliError> {
    let pool = crate::db::connect(&args.database_url, 2).await?;
    crate::db::migrate(&pool).await?;
    for projector in projections::all() {
        let mut conn = pool.acquire().await?;
        let position = crate::subscriptions::checkpoints::load(&mut conn, projector.name()).await?;
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
        )
        .bind(position.transaction_id.to_string())
        .bind(position.global_position)
        .fetch_one(&mut *conn)
        .await?;
        println!(
            "{:<16} checkpoint {:<24} behind {behind}",
            projector.name(),
            position.to_string()
        );
    }
    Ok(())
}

async fn projections_rebuild(name: Option<String>, args: DatabaseArgs) -> Result<(), CliError> {
    let pool = crate::db::connect(&args.database_url, 2).await?;
    crate::db::migrate(&pool).await?;
    let selected: Vec<_> = projections::all()
        .into_iter()
        .filter(|p| name.as_deref().is_none_or(|n| n == p.name()))
        .collect();
    if selected.is_empty() {
        return Err(CliError::Failed(anyhow::anyhow!(
            "no projection is named {:?}",
            name.unwrap_or_default()
        )));
    }
    for projector in selected {
        let replayed = crate::subscriptions::rebuild::rebuild(&pool, &projector, |n| {
            if n > 0 && n % 10_000 == 0 {
                eprintln!("{}: {n} events replayed", projector.name());
            }
        })
        .await?;
        println!("{}: rebuilt from {replayed} events", projector.name());
    }
    Ok(())
}
