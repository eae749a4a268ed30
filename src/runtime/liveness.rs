//! Process liveness: how one process knows that another is dead without waiting for its
//! leases to expire.
//!
//! Each process holds a PostgreSQL session-level advisory lock on a random key of its own, on
//! a connection kept for nothing else. The lock lives exactly as long as that session: a
//! process that dies (kill -9, a lost machine) closes its socket, the server ends the session
//! and the lock is free. A lease records its holder's key, and a claimer may take a lease whose
//! holder's key nobody holds ([`HOLDER_IS_GONE`]), however long the lease still had to run.
//! `EFFECT_LEASE_MS` stays the fallback for what the lock cannot tell: a holder cut off from
//! the database by a network that drops packets silently keeps its session (and its lock) until
//! the server's TCP keepalive ends it, and its leases are then taken once they expire.
//!
//! When this process loses its own session (the database restarted, the connection was cut),
//! the others may already have taken its leases, so it must not go on working under them: the
//! identity of that session is declared *lost* at once ([`Identity::lost`] is cancelled, which
//! stops the turns and pollers working under it), and a new session is opened with a new key
//! and a new lease owner. The leases of the old identity are then dead to every process,
//! this one included, and are claimed again like any dead process's. Never re-taking the old
//! key is what makes this safe: a key once released is never held again, so a lease that
//! looked dead to a claimer cannot come back to life under its old holder.
//!
//! The session sends nothing while idle: the loss is seen when its socket closes.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runtime::backoff::{Backoff, Retrying};

/// SQL that is true when the holder of a lease row `leases` is known to be gone (kept beside
/// the effect runner's claim, which uses it too).
pub use projections::chat_work::HOLDER_IS_GONE;

/// Pauses between attempts to open a new session while the database is away.
const RECONNECT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// Who this process is as a lease holder, for as long as its liveness session lasts.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The owner recorded on leases.
    pub owner: Uuid,
    /// The advisory-lock key held by the session; recorded on leases beside the owner.
    pub key: i64,
    /// Cancelled when the session is lost: work under this identity must stop.
    pub lost: CancellationToken,
}

/// This process's liveness: the current identity, renewed after a lost session.
#[derive(Clone)]
pub struct Liveness {
    current: watch::Receiver<Option<Identity>>,
}

/// Ends the liveness session (releasing the lock) when stopped: only after the work done under
/// it has ended, or others would take it over while it still runs.
pub struct LivenessKeeper {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LivenessKeeper {
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl Liveness {
    /// Opens the first session (an error when the database cannot be reached), then keeps one
    /// open for the life of the process.
    pub async fn start(pool: &PgPool) -> Result<(Self, LivenessKeeper), sqlx::Error> {
        let options = (*pool.connect_options()).clone();
        let session = Session::open(&options).await?;
        let (sender, current) = watch::channel(Some(session.identity.clone()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep(options, session, sender, stop.clone()));
        Ok((Self { current }, LivenessKeeper { stop, task }))
    }

    /// The identity to claim under now; `None` while the session is being re-established.
    pub fn current(&self) -> Option<Identity> {
        self.current.borrow().clone()
    }

    /// A receiver that changes whenever the identity does.
    pub fn subscribe(&self) -> watch::Receiver<Option<Identity>> {
        self.current.clone()
    }
}

/// One liveness session: a connection of its own (a pool of one, so that it is never lent to
/// anyone else), holding the lock on `identity.key`.
struct Session {
    pool: PgPool,
    listener: PgListener,
    identity: Identity,
}

impl Session {
    async fn open(options: &PgConnectOptions) -> Result<Self, sqlx::Error> {
        // No pings, no idle or age limits: the connection is held for its whole life.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        // A listener, because it is the one way sqlx offers to wait on an idle connection
        // and learn when it closes; it listens to no channel.
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        loop {
            // A random key; another holder of the same key (one chance in 2^64) is skipped.
            let key: i64 = rand::random();
            let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut listener)
                .await?;
            if taken {
                let identity = Identity {
                    owner: Uuid::now_v7(),
                    key,
                    lost: CancellationToken::new(),
                };
                tracing::debug!(owner = %identity.owner, "liveness session open");
                return Ok(Self {
                    pool,
                    listener,
                    identity,
                });
            }
        }
    }

    /// Waits until the session ends; returns why, for the log.
    async fn wait_for_loss(&mut self) -> String {
        loop {
            match self.listener.try_recv().await {
                // No channel is listened to; a stray notification changes nothing.
                Ok(Some(_)) => continue,
                Ok(None) => return "the connection closed".to_owned(),
                Err(e) => return crate::runtime::error_chain::ErrorChain(&e).to_string(),
            }
        }
    }

    /// Ends the session, which releases the lock.
    async fn close(self) {
        drop(self.listener);
        self.pool.close().await;
    }
}

async fn keep(
    options: PgConnectOptions,
    mut session: Session,
    current: watch::Sender<Option<Identity>>,
    stop: CancellationToken,
) {
    let mut retrying = Retrying::new(RECONNECT_BACKOFF);
    loop {
        let why = tokio::select! {
            _ = stop.cancelled() => {
                session.identity.lost.cancel();
                session.close().await;
                return;
            }
            why = session.wait_for_loss() => why,
        };
        // Others may take this identity's leases from now on: stop working under it first.
        current.send_replace(None);
        session.identity.lost.cancel();
        tracing::warn!(owner = %session.identity.owner, reason = %why, "liveness session lost; work under it stops, and resumes under a new one");
        session.close().await;
        session = loop {
            match Session::open(&options).await {
                Ok(session) => break session,
                Err(e) => {
                    let pause = retrying.failed(None);
                    tracing::warn!(error = %crate::runtime::error_chain::ErrorChain(&e), ?pause, "cannot open a liveness session; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        };
        retrying.succeeded();
        tracing::info!(owner = %session.identity.owner, "liveness session open again");
        current.send_replace(Some(session.identity.clone()));
    }
}
