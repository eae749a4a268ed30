//! One running Botfleet: the pool, the subscriptions, and the HTTP server, built from a
//! [`Config`]. `botfleet serve` runs it; tests build it the same way on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotServices};
use aggregates::chat::{Chat, ChatServices};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Server;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bots::supervisor::BotSupervisor;
use crate::config::Config;
use crate::event_store::CommandGateway;
use crate::http::{self, AppState};
use crate::intake::Intake;
use crate::runtime::leases::Leases;
use crate::runtime::liveness::LivenessKeeper;
use crate::secrets::{KeyRing, TokenCipher};
use crate::subscriptions::{EventWakeups, ProjectionRunner, SubscriptionProgress};
use crate::telegram::TelegramClients;
use crate::turns::runner::ChatRunner;
use crate::turns::worker::TurnWorker;

/// A chat is snapshotted every this many events: loading one replays at most as many.
pub const CHAT_SNAPSHOT_EVERY: usize = 50;

/// Chats whose latest state is kept in memory, so that a message to an active chat, and the
/// turn it starts, skip reading the chat's stream (a few kB each).
pub const RECENT_CHATS: usize = 4096;

/// How long in-flight HTTP requests get to finish at shutdown.
const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(10);

pub struct Application {
    addr: SocketAddr,
    /// The one-time link that creates the first admin, while none exists.
    setup_link: Option<String>,
    pool: PgPool,
    state: AppState,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    /// This process's liveness session, released after the workers have stopped.
    liveness: LivenessKeeper,
}

/// The state the API works with, over a pool that may or may not be connected yet.
pub fn app_state(pool: PgPool, ring: &KeyRing, config: &Config) -> AppState {
    let cipher = Arc::new(TokenCipher::from_ring(ring));
    let chats = Arc::new(
        CommandGateway::<Chat>::with_snapshots(pool.clone(), ChatServices, CHAT_SNAPSHOT_EVERY)
            .with_recent(RECENT_CHATS),
    );
    let vault = Arc::new(crate::personal_data::PersonalDataVault::new(
        pool.clone(),
        ring,
    ));
    AppState {
        bots: Arc::new(CommandGateway::<Bot>::new(
            pool.clone(),
            BotServices::new(cipher.clone()),
        )),
        intake: Intake::new(chats.clone(), vault.clone(), pool.clone()),
        vault,
        chats,
        progress: SubscriptionProgress::new(pool.clone()),
        read_model_wait: config.read_model_wait,
        auth: crate::auth::Auth::new(pool.clone(), &config.auth),
        cookie_key: http::session_cookie::cookie_key(config.auth.cookie_secret.expose().as_bytes()),
        secure_cookies: config.secure_cookies,
        limits: Arc::new(http::limits::Limits::new(config.limits)),
        health: config.health,
        clock: Default::default(),
        bot_rows: Default::default(),
        prices: Arc::new(config.prices.clone()),
        cipher,
        pool,
    }
}

impl Application {
    /// Connects, migrates, starts the subscriptions and binds the server. Returns once the
    /// server accepts connections.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::runtime::tls::install_crypto_provider();
        // The address first: a taken port is the quickest failure to report.
        let acceptor = TcpListener::bind(config.bind_addr)
            .into_acceptor()
            .await
            .map_err(|e| bind_error(config.bind_addr, &e))?;
        let pool = crate::db::connect_from(
            &config.database_url,
            &config.database_origin,
            config.database_max_connections,
        )
        .await?;
        crate::db::migrate(&pool).await?;
        crate::db::ensure_counter_ahead(&pool).await?;
        // Refuses a key that cannot open what is stored, before anything runs with it.
        let ring = crate::keyring::open(&pool, &config.token_key).await?;
        let setup_token = crate::auth::ensure_first_admin(&pool, &config.auth).await?;
        let state = app_state(pool.clone(), &ring, &config);
        let shutdown = CancellationToken::new();

        // An upgrade may ask for read models to be rebuilt before anything reads them.
        crate::subscriptions::rebuild::rebuild_where_required(&pool, &projections::all()).await?;
        let answer_stops = crate::runtime::answer_stops::AnswerStops::default();
        let wakeups = EventWakeups::spawn(
            pool.clone(),
            answer_stops.clone(),
            state.bot_rows.changes(),
            shutdown.clone(),
        );
        // The admin read models share one runner (one transaction per batch for all); the
        // effect runner's index, chat_work, is kept by the appends themselves.
        let mut workers: Vec<JoinHandle<()>> =
            vec![
                ProjectionRunner::group(pool.clone(), projections::all(), state.progress.clone())
                    .with_max_attempts(config.projection_max_attempts)
                    .spawn(wakeups.clone(), config.subscription_poll, shutdown.clone()),
            ];

        // This process's identity as a holder of leases on chats and bots, for as long as its
        // liveness session lasts; ended only after the workers, so that nobody takes over
        // work this process is still finishing.
        let (liveness, liveness_keeper) = crate::runtime::liveness::Liveness::start(&pool).await?;
        let telegram = Arc::new(TelegramClients::new(
            config.telegram_api_url.clone(),
            state.cipher.clone(),
            config.telegram_call_timeout,
        ));
        let llm = crate::llm::concurrency::limited(
            crate::llm::language_model(
                config.llm_api,
                &config.openai_base_url,
                config.openai_api_key.as_ref().map(|k| k.expose()),
                config.openai_timeout,
            ),
            config.llm_concurrency,
        );
        let chat_leases = Leases::new(pool.clone(), liveness.clone(), config.effect_lease);
        let runner = ChatRunner {
            worker: Arc::new(TurnWorker {
                pool: pool.clone(),
                chats: state.chats.clone(),
                bots: state.bots.clone(),
                telegram: telegram.clone(),
                llm,
                prices: state.prices.clone(),
                max_attempts: config.retry_limit + 1,
                backoff: config.retry_backoff,
                pacer: Arc::new(crate::telegram::pacing::SendPacer::default()),
                vault: state.vault.clone(),
                bot_rows: state.bot_rows.clone(),
                clock: state.clock.clone(),
                media: crate::turns::media::MediaTools {
                    settings: config.media.clone(),
                    transcriber: crate::llm::transcriber(
                        &config.openai_base_url,
                        config.openai_api_key.as_ref().map(|k| k.expose()),
                        config.openai_timeout,
                    ),
                },
                answer_stops,
            }),
            leases: chat_leases,
            concurrency: config.effect_concurrency,
            wakeups: wakeups.clone(),
            poll_interval: config.subscription_poll,
            fresh_work: state.intake.fresh_work().take_receiver(),
        };
        workers.push(runner.spawn(shutdown.clone()));
        // A poll lasts up to its timeout; the bot's lease must outlive it.
        let bot_lease = config
            .effect_lease
            .max(Duration::from_secs(u64::from(config.poll_timeout_secs) * 3));
        let telegram_for_alerts = telegram.clone();
        let supervisor = BotSupervisor {
            pool: pool.clone(),
            bots: state.bots.clone(),
            telegram,
            cipher: state.cipher.clone(),
            intake: state.intake.clone(),
            leases: Leases::new(pool.clone(), liveness, bot_lease),
            public_url: config.public_url.clone(),
            progress: state.progress.clone(),
            poll_timeout_secs: config.poll_timeout_secs,
            conflict_pause: config.poll_conflict_pause,
            webhook_max_connections: config.webhook_max_connections,
            call_timeout: config.telegram_call_timeout,
        };
        workers.push(supervisor.spawn(shutdown.clone()));
        if config.alerts.enabled() {
            let projector = Arc::new(projections::alerts::AlertProjector {
                timing: config.alerts.timing(),
            });
            workers.push(
                ProjectionRunner::new(pool.clone(), projector, state.progress.clone())
                    .with_max_attempts(config.projection_max_attempts)
                    .spawn(wakeups.clone(), config.subscription_poll, shutdown.clone()),
            );
            let sender = crate::bots::alerts::AlertSender {
                pool: pool.clone(),
                settings: config.alerts.clone(),
                telegram: telegram_for_alerts,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("the alert HTTP client builds"),
                progress: state.progress.clone(),
            };
            workers.push(sender.spawn(shutdown.clone()));
        }

        workers.push(
            crate::bots::llm_readiness::LlmReadiness {
                pool: pool.clone(),
                bots: state.bots.clone(),
                progress: state.progress.clone(),
                key_configured: config.openai_api_key.is_some(),
            }
            .spawn(shutdown.clone()),
        );

        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| anyhow::anyhow!("the listener has no socket address"))?;
        let routes = http::routes(state.clone(), crate::console::routes());
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    routes,
                    server_shutdown.cancelled_owned(),
                    Some(GRACEFUL_SHUTDOWN),
                )
                .await
        });
        tracing::info!(%addr, "botfleet is listening");
        let setup_link = setup_token.map(|token| {
            let base = match &config.public_url {
                Some(url) => url.as_str().trim_end_matches('/').to_owned(),
                None if addr.ip().is_unspecified() => format!("http://localhost:{}", addr.port()),
                None => format!("http://{addr}"),
            };
            format!("{base}/setup?token={}", token.expose())
        });
        Ok(Self {
            addr,
            setup_link,
            pool,
            state,
            shutdown,
            server,
            workers,
            liveness: liveness_keeper,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The one-time link that creates the first admin, when no admin exists. It is a
    /// secret: `botfleet serve` prints it on standard error, never in a log line.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that stops the application when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs until the shutdown token is cancelled, then waits for the server and workers.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        self.liveness.stop().await;
        self.pool.close().await;
        Ok(result??)
    }

    /// Stops everything and waits for it to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.run_until_stopped().await
    }
}

/// One line that names the address and the setting.
fn bind_error(addr: SocketAddr, error: &std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "BIND_ADDR {addr} is in use by another process: stop it, or set BIND_ADDR to another address"
        ),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "BIND_ADDR {addr}: no permission to listen there (ports below 1024 need privileges); choose another port"
        ),
        std::io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "BIND_ADDR {addr}: this machine has no such address"
        ),
        _ => anyhow::anyhow!("BIND_ADDR {addr}: cannot listen: {error}"),
    }
}
