//! The `botfleet` command.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sqlx::PgPool;

use crate::app::Application;
use crate::config::{Config, DatabaseArgs, ServeArgs};
use crate::installation::{Access, Database};

#[derive(Debug, Parser)]
#[command(
    name = "botfleet",
    version,
    about = "A self-hosted platform for a fleet of LLM-answered Telegram bots"
)]
struct Cli {
    /// What to do; `serve` when none is given.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default): the HTTP API, the subscriptions and the effect runner.
    /// Without DATABASE_URL it runs its own PostgreSQL in BOTFLEET_DATA_DIR.
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
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Read and check the event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Telegram users' personal data.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// The key that seals bot tokens (TOKEN_ENCRYPTION_KEY): which keys the store knows, and
    /// rotating to a new one.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write the whole database to a file (pg_dump's custom format), while the service runs
    /// or not. Keep the keys beside it: the backup cannot be read without them.
    Backup {
        /// The file to write.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Load a backup into an empty database: the embedded one of BOTFLEET_DATA_DIR (no botfleet
    /// may run on it) or DATABASE_URL's. Put the keys back first.
    Restore {
        /// The file `botfleet backup` wrote.
        input: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// The store's keys by id (current, retired, root) and whether TOKEN_ENCRYPTION_KEY is
    /// the current one.
    Status(KeyArgs),
    /// Make a new key the current one: it seals from now on, and every earlier key stays in
    /// the store, sealed under it, to open what it sealed. With the key in the data folder's
    /// file, the file is replaced; with the key in the environment, the new key is printed on
    /// standard output (put it in TOKEN_ENCRYPTION_KEY). Then restart every process.
    Rotate(KeyArgs),
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The current key; unset: the one in the data folder's keys/token-encryption.key.
    #[arg(long, env = "TOKEN_ENCRYPTION_KEY", hide_env_values = true)]
    token_encryption_key: Option<String>,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Make a person's names and message texts unreadable everywhere by destroying their key
    /// (crypto-shredding); every other fact stays. Takes effect in running services within
    /// 30 seconds.
    Forget {
        /// The person's Telegram user id.
        telegram_user_id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Write events as NDJSON (one JSON object per line) to standard output, in commit
    /// order, secrets redacted.
    Export {
        /// Only events recorded at or after this instant (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this aggregate type (`Bot`, `Chat`), or one aggregate as `TYPE:ID`.
        #[arg(long)]
        aggregate: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Check the store: no gap in any aggregate's sequence, every payload readable by the
    /// current code, no position used twice. Exits non-zero on a problem.
    Verify(DatabaseArgs),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin. The password is read from standard input (first line), never from
    /// the command line, where other users of the machine could see it.
    Create {
        /// The admin's email, their login name.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Each projection's checkpoint and how many events it is behind.
    Status(DatabaseArgs),
    /// Empty read models and replay them from the first event.
    Rebuild {
        /// Only this projection (default: every read model; `chat_work` only when named).
        name: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Resume a projection paused before a poison event: it tries the event again (fix the
    /// cause first; if it still fails, it pauses again).
    Retry {
        /// The projection (`projections status` lists them).
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Skip a poison event: a paused projection moves past it for good (its read model
    /// will never hold it); a parked one is acknowledged. Recorded with who did it.
    Skip {
        /// The event's position as `status` lists it (`transaction_id/global_position`).
        event: String,
        /// Only in this projection (default: every projection paused at or parked the event).
        #[arg(long)]
        projection: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let command = match cli.command {
        Some(command) => command,
        // `botfleet` alone serves, with every setting from the environment.
        None => match Cli::parse_from(["botfleet", "serve"]).command {
            Some(serve) => serve,
            None => unreachable!("`serve` parses as the serve command"),
        },
    };
    let result = match command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => {
            with_pool(&args, true, |_| async {
                println!("migrations applied");
                Ok(())
            })
            .await
        }
        Command::Openapi => {
            print!("{}", openapi_yaml());
            Ok(())
        }
        Command::Projections { command } => match command {
            ProjectionsCommand::Status(args) => with_pool(&args, true, projections_status).await,
            ProjectionsCommand::Rebuild { name, database } => {
                with_pool(&database, true, |pool| projections_rebuild(name, pool)).await
            }
            ProjectionsCommand::Retry { name, database } => {
                with_pool(&database, true, |pool| projections_retry(name, pool)).await
            }
            ProjectionsCommand::Skip {
                event,
                projection,
                database,
            } => {
                with_pool(&database, true, |pool| {
                    projections_skip(event, projection, pool)
                })
                .await
            }
        },
        Command::Admin {
            command: AdminCommand::Create { email, database },
        } => admin_create(email, database).await,
        Command::Events { command } => match command {
            EventsCommand::Export {
                since,
                aggregate,
                database,
            } => {
                with_pool(&database, false, |pool| {
                    events_export(since, aggregate, pool)
                })
                .await
            }
            EventsCommand::Verify(database) => with_pool(&database, false, events_verify).await,
        },
        Command::Users {
            command:
                UsersCommand::Forget {
                    telegram_user_id,
                    database,
                },
        } => with_pool(&database, true, |pool| users_forget(telegram_user_id, pool)).await,
        Command::Keys { command } => match command {
            KeysCommand::Status(args) => keys_status(args).await,
            KeysCommand::Rotate(args) => keys_rotate(args).await,
        },
        Command::Backup { output, database } => {
            crate::installation::backup::backup(&database, &output)
                .await
                .map_err(CliError::Failed)
        }
        Command::Restore { input, database } => restore(input, database).await,
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

/// Runs `work` on a pool over the command's database (DATABASE_URL, or the embedded one:
/// a running service's, or started for this command and stopped after it, whatever the
/// outcome). With `migrate`, the database is brought up to date first.
async fn with_pool<T, Fut>(
    args: &DatabaseArgs,
    migrate: bool,
    work: impl FnOnce(PgPool) -> Fut,
) -> Result<T, CliError>
where
    Fut: Future<Output = Result<T, CliError>>,
{
    let db = Database::open(args, Access::Command).await?;
    let outcome = async {
        let pool = db.pool(2).await?;
        if migrate {
            crate::db::migrate(&pool).await?;
        }
        let result = work(pool.clone()).await;
        pool.close().await;
        result
    }
    .await;
    db.close().await?;
    outcome
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

/// The OpenAPI document: built from the code alone (no configuration, database or key).
pub fn openapi_yaml() -> String {
    crate::http::spec_yaml()
}

async fn serve(mut args: ServeArgs) -> Result<(), CliError> {
    let key_origin = crate::installation::keys::fill_serve_keys(&mut args)?;
    // Every setting is checked before the embedded database starts: its URL is known ahead.
    let mut checked = args.clone();
    if checked.database.database_url.is_none() {
        let data_dir = crate::data_dir::DataDir::resolve(args.database.data_dir.as_deref());
        checked.database.database_url = Some(
            crate::installation::cluster_settings(&data_dir, &args.database)
                .url(crate::installation::EMBEDDED_DATABASE),
        );
        checked.database.origin = Some(crate::installation::EMBEDDED_ORIGIN.to_owned());
    }
    let config = Config::from_args(checked).map_err(CliError::Config)?;
    let db = Database::open(&args.database, Access::Serve).await?;
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            db.close().await?;
            return Err(CliError::Failed(with_key_hint(e, &key_origin)));
        }
    };
    if let Some(link) = app.setup_link() {
        // A secret, so on the terminal (standard error), not in a log line.
        eprintln!(
            "\nNo admin exists yet. Open this link to create the first one (it works once, \
             within an hour; a restart makes a new one):\n\n    {link}\n"
        );
    }
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.cancel();
    });
    let served = app.run_until_stopped().await;
    db.close().await?;
    served?;
    Ok(())
}

/// A key refused as retired, from a file, while a rotation's staged key waits beside it:
/// the rotation was interrupted after the store switched keys.
fn with_key_hint(
    error: anyhow::Error,
    origin: &crate::installation::keys::KeyOrigin,
) -> anyhow::Error {
    use crate::installation::keys::{staged_key_file, KeyOrigin};
    let retired = matches!(
        error.downcast_ref::<crate::keyring::KeyCheckError>(),
        Some(crate::keyring::KeyCheckError::Retired { .. })
    );
    match origin {
        KeyOrigin::File(path) if retired && staged_key_file(path).exists() => anyhow::anyhow!(
            "{error}; a rotation was interrupted: its new key is in {}, move it over {}",
            staged_key_file(path).display(),
            path.display()
        ),
        _ => error,
    }
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

async fn admin_create(email: String, args: DatabaseArgs) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal};

    let email = crate::auth::accounts::AdminEmail::parse(&email)
        .map_err(|reason| CliError::Failed(anyhow::anyhow!("--email {reason}")))?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // No echo suppression without a terminal library: say so rather than pretend.
        eprint!(
            "Password for {} (visible as you type; pipe it in to hide it): ",
            email.as_str()
        );
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = crate::secrets::Redacted::new(line.trim_end_matches(['\r', '\n']).to_owned());
    with_pool(&args, true, |pool| async move {
        let id = crate::auth::accounts::create(&pool, &email, password, false)
            .await
            .map_err(|e| CliError::Failed(e.into()))?
            .expect("an unconditional create returns the new id");
        println!("admin {} created with id {id}", email.as_str());
        Ok(())
    })
    .await
}

async fn projections_status(pool: PgPool) -> Result<(), CliError> {
    use crate::subscriptions::faults;
    let open = faults::list(&pool, None, true).await?;
    for projector in projections::all() {
        let name = projector.name();
        let mut conn = pool.acquire().await?;
        let position = crate::subscriptions::checkpoints::load(&mut conn, name).await?;
        let (behind, _) = crate::event_store::stream::pending_after(&mut conn, position).await?;
        let mine: Vec<_> = open.iter().filter(|f| f.subscription == name).collect();
        let paused = mine.iter().any(|f| f.status == faults::FaultStatus::Paused);
        let parked = mine.len() - usize::from(paused);
        println!(
            "{name:<16} checkpoint {:<24} behind {behind:<8} {}{}",
            position.to_string(),
            if paused { "PAUSED" } else { "running" },
            if parked > 0 {
                format!(", {parked} parked")
            } else {
                String::new()
            }
        );
        for fault in mine {
            println!(
                "  {} {} ({} {} #{}) after {} attempts: {}",
                fault.status,
                fault.position,
                fault.event_type,
                fault.aggregate_type,
                fault.sequence,
                fault.attempts,
                fault.error
            );
        }
    }
    Ok(())
}

/// Who ran a resolving command, as recorded with it.
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}")
}

fn known_projection(name: &str) -> Result<(), CliError> {
    if projections::all().iter().any(|p| p.name() == name) {
        Ok(())
    } else {
        Err(CliError::Failed(anyhow::anyhow!(
            "no projection is named {name:?}"
        )))
    }
}

async fn projections_retry(name: String, pool: PgPool) -> Result<(), CliError> {
    known_projection(&name)?;
    let fault = crate::subscriptions::faults::retry(&pool, &name, &cli_actor()).await?;
    println!(
        "{name}: retrying event {} ({}); if it fails again it pauses again",
        fault.position, fault.event_type
    );
    Ok(())
}

async fn projections_skip(
    event: String,
    projection: Option<String>,
    pool: PgPool,
) -> Result<(), CliError> {
    if let Some(name) = &projection {
        known_projection(name)?;
    }
    let resolved =
        crate::subscriptions::faults::skip(&pool, projection.as_deref(), &event, &cli_actor())
            .await?;
    for fault in resolved {
        println!(
            "{}: skipped event {} ({})",
            fault.subscription, fault.position, fault.event_type
        );
    }
    Ok(())
}

async fn projections_rebuild(name: Option<String>, pool: PgPool) -> Result<(), CliError> {
    let selected: Vec<_> = projections::all()
        .into_iter()
        .filter(|p| name.as_deref().is_none_or(|n| n == p.name()))
        .collect();
    // The runner's index is no projector (the appends keep it, so it cannot drift) but is
    // rebuilt like one when named: chat appends, the webhooks' too, wait while it is, so a
    // rebuild of every read model leaves it alone.
    let chat_work = name.as_deref() == Some(projections::chat_work::NAME);
    if chat_work {
        let replayed = projections::chat_work::rebuild(&pool).await?;
        println!(
            "{}: rebuilt from {replayed} events",
            projections::chat_work::NAME
        );
    }
    if selected.is_empty() && !chat_work {
        return Err(CliError::Failed(anyhow::anyhow!(
            "no projection is named {:?}",
            name.unwrap_or_default()
        )));
    }
    for projector in selected {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await?;
        let mut bar = ProgressBar::new(projector.name(), total as u64);
        let replayed =
            crate::subscriptions::rebuild::rebuild(&pool, &projector, |n| bar.show(n)).await?;
        bar.finish();
        println!("{}: rebuilt from {replayed} events", projector.name());
    }
    Ok(())
}

async fn events_export(
    since: Option<chrono::DateTime<chrono::Utc>>,
    aggregate: Option<String>,
    pool: PgPool,
) -> Result<(), CliError> {
    use std::io::Write;
    let (aggregate_type, aggregate_id) = match aggregate.as_deref().map(|a| a.split_once(':')) {
        Some(Some((kind, id))) => (Some(kind.to_owned()), Some(id.to_owned())),
        Some(None) => (aggregate, None),
        None => (None, None),
    };
    let mut filter = crate::event_store::history::HistoryFilter {
        aggregate_type,
        aggregate_id,
        since,
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut exported = 0u64;
    loop {
        let events = crate::event_store::history::read(&pool, &filter, 1000).await?;
        for event in &events {
            let view = crate::http::events::EventView::from(event.clone());
            let line = serde_json::json!({
                "position": view.position,
                "global_position": view.global_position,
                "transaction_id": view.transaction_id,
                "aggregate_type": view.aggregate_type,
                "aggregate_id": view.aggregate_id,
                "sequence": view.sequence,
                "event_type": view.event_type,
                "event_version": view.event_version,
                "recorded_at": view.recorded_at,
                "payload": view.payload,
                "metadata": view.metadata,
            });
            writeln!(out, "{line}")?;
        }
        exported += events.len() as u64;
        match events.last() {
            Some(last) if events.len() == 1000 => filter.after = Some(last.position),
            _ => break,
        }
    }
    out.flush()?;
    eprintln!("{exported} events exported");
    Ok(())
}

async fn events_verify(pool: PgPool) -> Result<(), CliError> {
    let report = crate::event_store::history::verify(&pool).await?;
    println!(
        "{} events in {} aggregates",
        report.events, report.aggregates
    );
    for gap in &report.sequence_gaps {
        println!("sequence gap: {gap}");
    }
    for problem in &report.undecodable {
        println!("unreadable: {problem}");
    }
    if report.unchecked {
        println!(
            "unchecked: a transaction stayed open for 30 s; the events after it were not read"
        );
    }
    if report.duplicate_positions > 0 {
        println!(
            "{} positions are used more than once",
            report.duplicate_positions
        );
    }
    if report.is_sound() {
        println!("the event store is sound");
        Ok(())
    } else {
        Err(CliError::Failed(anyhow::anyhow!(
            "the event store has problems (listed above)"
        )))
    }
}

/// A text progress bar on standard error, drawn only when it is a terminal and the run is
/// long enough to need one.
struct ProgressBar {
    name: &'static str,
    total: u64,
    enabled: bool,
}

impl ProgressBar {
    fn new(name: &'static str, total: u64) -> Self {
        use std::io::IsTerminal;
        Self {
            name,
            total,
            enabled: std::io::stderr().is_terminal() && total >= 10_000,
        }
    }

    fn show(&mut self, done: u64) {
        if !self.enabled || self.total == 0 {
            return;
        }
        let filled = (done * 30 / self.total).min(30) as usize;
        eprint!(
            "\r{:<12} [{}{}] {:>3}% {done}/{}",
            self.name,
            "#".repeat(filled),
            ".".repeat(30 - filled),
            done * 100 / self.total,
            self.total
        );
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

async fn users_forget(telegram_user_id: i64, pool: PgPool) -> Result<(), CliError> {
    let had_data = crate::personal_data::forget_person(
        None,
        &pool,
        telegram_user_id,
        crate::event_store::Actor::System("cli"),
    )
    .await?;
    if had_data {
        println!("telegram user {telegram_user_id}: personal data forgotten");
    } else {
        println!(
            "telegram user {telegram_user_id}: no personal data was held; the request is recorded"
        );
    }
    Ok(())
}

/// The current key, from the environment or the data folder's file (never generated here).
fn configured_token_key(
    args: &KeyArgs,
) -> Result<
    (
        crate::secrets::TokenKey,
        crate::installation::keys::KeyOrigin,
    ),
    CliError,
> {
    use crate::installation::keys::{key_file, load, KeyOrigin, TOKEN_ENCRYPTION_KEY};
    let (raw, origin) = match args.token_encryption_key.clone().filter(|k| !k.is_empty()) {
        Some(raw) => (raw, KeyOrigin::Environment),
        None => load(&args.database, &TOKEN_ENCRYPTION_KEY)?.ok_or_else(|| {
            CliError::Failed(anyhow::anyhow!(
                "TOKEN_ENCRYPTION_KEY is not set and {} does not exist: there is no key yet \
                 (the first `botfleet serve` makes one)",
                key_file(&args.database, &TOKEN_ENCRYPTION_KEY).display()
            ))
        })?,
    };
    let key = crate::secrets::TokenKey::from_base64(&raw).map_err(|reason| {
        CliError::Config(crate::config::ConfigError {
            setting: "TOKEN_ENCRYPTION_KEY",
            reason,
        })
    })?;
    Ok((key, origin))
}

async fn keys_status(args: KeyArgs) -> Result<(), CliError> {
    let (key, origin) = configured_token_key(&args)?;
    with_pool(&args.database, true, |pool| async move {
        let rows = crate::keyring::rows(&pool).await?;
        println!("TOKEN_ENCRYPTION_KEY: key id {} (from {origin})", key.id());
        if rows.is_empty() {
            println!("the store has no key yet: the next start records this one");
        }
        for row in &rows {
            let matches = row.check_value == key.check_value();
            println!(
                "{:<10} {:<8}{} since {}{}{}",
                row.key_id,
                row.state,
                if row.is_root { " root" } else { "     " },
                row.created_at.format("%Y-%m-%d %H:%M UTC"),
                row.retired_at
                    .map(|at| format!(", retired {}", at.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default(),
                if matches {
                    "  <- TOKEN_ENCRYPTION_KEY"
                } else {
                    ""
                }
            );
        }
        Ok(())
    })
    .await
}

async fn keys_rotate(args: KeyArgs) -> Result<(), CliError> {
    use crate::installation::keys::{new_token_key, staged_key_file, KeyOrigin};
    use std::io::Write;
    let (current, origin) = configured_token_key(&args)?;
    let new_raw = new_token_key();
    let new = crate::secrets::TokenKey::from_base64(&new_raw)
        .expect("a generated key is 32 bytes of base64");
    // The new key is kept somewhere before the store switches to it, so that no crash can
    // leave a store sealed under a key nobody has.
    let staged = match &origin {
        KeyOrigin::File(path) | KeyOrigin::Generated(path) => {
            let staged = staged_key_file(path);
            let _ = std::fs::remove_file(&staged);
            crate::data_dir::write_private(&staged, &format!("{new_raw}\n"))?;
            Some((staged, path.clone()))
        }
        KeyOrigin::Environment => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{new_raw}")?;
            stdout.flush()?;
            None
        }
    };
    let rotated = with_pool(&args.database, true, |pool| async move {
        crate::keyring::rotate(&pool, &current, &new)
            .await
            .map_err(|e| CliError::Failed(e.into()))
    })
    .await;
    let rotated = match rotated {
        Ok(rotated) => rotated,
        Err(e) => {
            if let Some((staged, _)) = &staged {
                let _ = std::fs::remove_file(staged);
            } else {
                eprintln!("botfleet: nothing changed: the key printed above is not in use");
            }
            return Err(e);
        }
    };
    eprintln!(
        "key {} retired (kept in the store to open what it sealed); key {} seals from now on",
        rotated.retired, rotated.current
    );
    match staged {
        Some((staged, path)) => {
            std::fs::rename(&staged, &path)?;
            eprintln!(
                "{} holds the new key. Restart every botfleet process (until then they seal with \
                 the retired key, which stays readable); back the file up again.",
                path.display()
            );
        }
        None => eprintln!(
            "Put the key printed above in TOKEN_ENCRYPTION_KEY wherever botfleet runs, then \
             restart every process: a start with the old key is refused from now on."
        ),
    }
    Ok(())
}

async fn restore(input: PathBuf, database: DatabaseArgs) -> Result<(), CliError> {
    crate::installation::backup::restore(&database, &input).await?;
    println!(
        "restored {}; start botfleet with the keys that were kept with the backup",
        input.display()
    );
    Ok(())
}
