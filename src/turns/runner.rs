//! Claims chats with due turns and works them, many chats at once, one turn at a time per
//! chat.
//!
//! The runner takes a chat that this process's intake just recorded a turn for straight
//! away (the fast path, [`crate::runtime::fresh_work`]). Otherwise it claims from the
//! `chat_work` table, which the append keeps: when a turn appended by another process (or a
//! scheduled retry, or an admin's message) is announced, when a retry falls due, or after
//! work failed. Several processes on one database share the work: a chat is worked only
//! under its lease. While due chats are leased by others (or by this process, after a
//! failure), it looks again every half second at most: a holder that dies is found out at the
//! next look ([`crate::runtime::liveness`]). With no open turn anywhere it sends the database
//! nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::worker::{heartbeat_interval, TurnWorker};
use crate::runtime::backoff::{Backoff, Retrying};
use crate::runtime::fresh_work::FreshWorkReceiver;
use crate::runtime::leases::{chat_resource, Leases};
use crate::runtime::liveness::Identity;
use crate::subscriptions::EventWakeups;

/// Pauses after a failed claim (the database away): 0.1 s doubling to 5 s.
const CLAIM_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// How soon a runner looks again while due chats are leased by another process: a holder
/// that died is found out at that look (its liveness lock is gone), so this bounds how long
/// its chats wait for a survivor. One claim statement per look, and only while work is in
/// flight elsewhere.
const LOOK_AGAIN_WHILE_HELD: Duration = Duration::from_millis(500);

/// How long shutdown waits for turns in flight before abandoning them to their leases.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub struct ChatRunner {
    pub worker: Arc<TurnWorker>,
    pub leases: Leases,
    /// Chats worked at once by this process.
    pub concurrency: usize,
    pub wakeups: EventWakeups,
    pub poll_interval: Duration,
    /// Chats this process's intake just gave a turn (the fast path; see [`FreshWork`]).
    pub fresh_work: Option<FreshWorkReceiver>,
}

impl ChatRunner {
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let mut slots = Slots {
            free: self.concurrency.max(1),
            working: HashMap::new(),
            again: HashSet::new(),
            in_flight: JoinSet::new(),
            abandon: CancellationToken::new(),
        };
        let (mut fresh, overflowed) = match self.fresh_work.take() {
            Some(FreshWorkReceiver { hints, overflowed }) => (Some(hints), Some(overflowed)),
            None => (None, None),
        };
        let mut work_announced = self.wakeups.subscribe_work();
        // A new liveness session (after a lost one) may claim again.
        let mut identity_changed = self.leases.liveness().subscribe();
        // Whether chat_work may show due chats this process has not claimed yet.
        let mut claim_due = true;
        let mut next_due: Option<tokio::time::Instant> = None;
        let mut finished = Vec::new();
        let mut hints: Vec<Hint> = Vec::new();
        let mut claim_failures = Retrying::new(CLAIM_BACKOFF);
        loop {
            // Finished chats first: their leases go back in one statement, their slots are
            // free again, and a chat that got a new turn while it was worked is claimed again.
            while let Some(done) = slots.in_flight.try_join_next_with_id() {
                finished.push(done);
            }
            let (again, failed) = self.finish(&mut slots, &mut finished).await;
            hints.extend(again);
            // A chat whose work failed keeps its lease as its backoff: a claim pass sets the
            // timer that takes it back when the lease expires.
            claim_due |= failed;
            if let Some(fresh) = fresh.as_mut() {
                while let Ok((bot, chat)) = fresh.try_recv() {
                    hints.push(Hint {
                        chat: chat.0,
                        bot: bot.0,
                    });
                }
            }
            if !hints.is_empty()
                && !self
                    .claim_hinted(&mut slots, std::mem::take(&mut hints))
                    .await
            {
                // More new work than free slots: let the fair claim choose among the bots.
                claim_due = true;
            }
            if claim_due && slots.free > 0 {
                match self.claim_due(&mut slots).await {
                    Ok((backlog, due_in)) => {
                        claim_failures.succeeded();
                        // With a backlog, the next free slot claims again; otherwise new work
                        // comes with the projection, an announcement, the next due retry, or
                        // the next look at chats leased elsewhere.
                        claim_due = backlog;
                        next_due = due_in.map(|due_in| tokio::time::Instant::now() + due_in);
                    }
                    Err(e) => {
                        let pause = claim_failures.failed(None);
                        tracing::warn!(error = %crate::runtime::error_chain::ErrorChain(&e), ?pause, "cannot claim chats; retrying");
                        next_due = Some(tokio::time::Instant::now() + pause);
                    }
                }
            }
            let fresh_hint = async {
                match fresh.as_mut() {
                    Some(fresh) => fresh.recv().await,
                    None => std::future::pending().await,
                }
            };
            let hints_overflowed = async {
                match overflowed.as_ref() {
                    Some(overflowed) => overflowed.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = work_announced.changed() => claim_due = true,
                Ok(()) = identity_changed.changed() => claim_due = true,
                Some(done) = slots.in_flight.join_next_with_id(), if !slots.in_flight.is_empty() => {
                    finished.push(done);
                }
                Some((bot, chat)) = fresh_hint => hints.push(Hint { chat: chat.0, bot: bot.0 }),
                // Hints that did not fit: their announcements were ignored, so look.
                _ = hints_overflowed => claim_due = true,
                // With no slot free, a due chat waits for one anyway.
                _ = sleep_until(next_due), if slots.free > 0 => claim_due = true,
            }
        }
        // Let turns in flight finish, so that no send is interrupted between Telegram's
        // answer and its record; past the grace period, their leases hand them over.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(done) = slots.in_flight.join_next_with_id().await {
                finished.push(done);
            }
        })
        .await;
        self.finish(&mut slots, &mut finished).await;
        if drained.is_err() {
            slots.abandon.cancel();
            slots.in_flight.abort_all();
        }
    }

    /// Gives back the leases of the chats whose work ended well, unless their last append
    /// ended the lease already (one whose work failed keeps its lease until it expires: that
    /// is its backoff), frees their slots, and returns those that got a new turn meanwhile,
    /// and whether any failed.
    async fn finish(
        &self,
        slots: &mut Slots,
        finished: &mut Vec<Result<(tokio::task::Id, Worked), tokio::task::JoinError>>,
    ) -> (Vec<Hint>, bool) {
        if finished.is_empty() {
            return (Vec::new(), false);
        }
        let mut release = Vec::new();
        let mut chats = Vec::new();
        let mut failed = false;
        for done in finished.drain(..) {
            let (task, worked) = match done {
                Ok((task, worked)) => (task, worked),
                Err(e) => (e.id(), Worked::Failed),
            };
            if let Some(hint) = slots.working.remove(&task) {
                slots.free += 1;
                match worked {
                    Worked::Released => release.push(chat_resource(hint.chat)),
                    Worked::Drained => {}
                    Worked::Failed => failed = true,
                }
                chats.push(hint);
            }
        }
        // Leases claimed under an identity since lost are dead to everyone already.
        if let (false, Some(identity)) = (release.is_empty(), self.leases.identity()) {
            if let Err(e) = self.leases.release_all(&identity, &release).await {
                tracing::warn!(error = ?e, chats = release.len(), "cannot give the leases back; they will expire");
            }
        }
        chats.retain(|hint| slots.again.remove(&hint.chat));
        (chats, failed)
    }

    /// Claims due chats from `chat_work` for the free slots, fairly between bots (each bot's
    /// chats ranked after those it already has in work here); returns whether more may be
    /// due than there were slots, and when to look again without being woken: when a chat
    /// waiting for a retry falls due, or soon while due chats it is not working are leased
    /// (their holder may die; see [`LOOK_AGAIN_WHILE_HELD`]), or never.
    async fn claim_due(&self, slots: &mut Slots) -> Result<(bool, Option<Duration>), sqlx::Error> {
        let Some(identity) = self.leases.identity() else {
            // No liveness session: the new one wakes the runner.
            return Ok((false, None));
        };
        let limit = slots.free;
        // Never claimed again while worked here (under a lost identity their leases look dead,
        // yet that work has not stopped), and no reason to look again: this process is alive.
        let working: Vec<Uuid> = slots.working.values().map(|hint| hint.chat).collect();
        let (held_bots, held_counts) = slots.held_by_bot();
        let (chats, waiting) = projections::chat_work::claim_due(
            self.leases.pool(),
            identity.owner,
            identity.key,
            self.leases.duration().as_millis() as i64,
            limit as i64,
            &working,
            &held_bots,
            &held_counts,
        )
        .await?;
        let backlog = chats.len() == limit;
        for claimed in chats {
            let hint = Hint {
                chat: claimed.chat_id,
                bot: claimed.bot_id,
            };
            self.start(slots, &identity, hint, claimed.sequence);
        }
        if backlog {
            return Ok((true, Some(Duration::ZERO)));
        }
        let due_in = match (waiting.retry_due_in, waiting.held) {
            (_, true) => Some(self.poll_interval.min(LOOK_AGAIN_WHILE_HELD)),
            (Some(due_in), false) => Some(due_in.min(self.poll_interval)),
            (None, false) => None,
        };
        Ok((false, due_in))
    }

    /// Claims chats that just got a turn, those this process is not working already (a chat
    /// it is working is claimed again when that work ends), when there are free slots for
    /// all of them. When there are not, it claims none: first come would be first served,
    /// and a bot flooding the intake would take every slot; the fair claim chooses instead.
    /// Returns whether the hints were taken: when not (or the claim failed), the fair claim
    /// must look, as this process ignores the announcements of the turns its intake hands over.
    async fn claim_hinted(&self, slots: &mut Slots, hints: Vec<Hint>) -> bool {
        let mut wanted: Vec<Hint> = Vec::new();
        for hint in hints {
            if slots.is_working(hint.chat) {
                slots.again.insert(hint.chat);
            } else if !wanted.iter().any(|w| w.chat == hint.chat) {
                wanted.push(hint);
            }
        }
        if wanted.is_empty() {
            return true;
        }
        if wanted.len() > slots.free {
            return false;
        }
        let Some(identity) = self.leases.identity() else {
            // The projection path brings the same work once a new session is open.
            return true;
        };
        let chats: Vec<Uuid> = wanted.iter().map(|w| w.chat).collect();
        match self.leases.claim_chats(&identity, &chats).await {
            Ok(claimed) => {
                for hint in wanted {
                    if let Some((_, sequence)) = claimed.iter().find(|(c, _)| *c == hint.chat) {
                        self.start(slots, &identity, hint, *sequence);
                    }
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot claim fresh chats");
                false
            }
        }
    }

    /// Starts working a claimed chat, from its sequence as the claim read it.
    fn start(&self, slots: &mut Slots, identity: &Identity, hint: Hint, claimed_at: Option<usize>) {
        if slots.is_working(hint.chat) {
            return;
        }
        slots.free -= 1;
        let (worker, leases, identity, abandon) = (
            self.worker.clone(),
            self.leases.clone(),
            identity.clone(),
            slots.abandon.clone(),
        );
        let chat_id = hint.chat;
        let task = slots.in_flight.spawn(async move {
            work_claimed_chat(worker, leases, identity, chat_id, claimed_at, abandon).await
        });
        slots.working.insert(task.id(), hint);
    }
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A chat with work, and its bot (whose share of the slots it counts against).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hint {
    chat: Uuid,
    bot: Uuid,
}

/// The chats this process works right now.
struct Slots {
    free: usize,
    /// Each chat (and its bot) by the task working it.
    working: HashMap<tokio::task::Id, Hint>,
    /// Chats that got a new turn while being worked: claimed again when their work ends.
    again: HashSet<Uuid>,
    in_flight: JoinSet<Worked>,
    /// Stops turns in flight, only after the shutdown's grace period.
    abandon: CancellationToken,
}

impl Slots {
    fn is_working(&self, chat_id: Uuid) -> bool {
        self.working.values().any(|w| w.chat == chat_id)
    }

    /// How many chats each bot has in work here, as two arrays for the fair claim.
    fn held_by_bot(&self) -> (Vec<Uuid>, Vec<i64>) {
        let mut held: HashMap<Uuid, i64> = HashMap::new();
        for hint in self.working.values() {
            *held.entry(hint.bot).or_default() += 1;
        }
        held.into_iter().unzip()
    }
}

/// How working a claimed chat ended.
enum Worked {
    /// The lease can be given back (the runner does that for many chats at once).
    Released,
    /// The chat's last open turn ended with an append of this claim, which ended the lease
    /// too (the `chat_work` trigger, migration 0062): nothing to give back.
    Drained,
    /// Keep the lease until it expires: that is the backoff.
    Failed,
}

/// Works one claimed chat while renewing its lease; stops when the lease is lost, or the
/// liveness session it was claimed under (others may have taken it over then).
async fn work_claimed_chat(
    worker: Arc<TurnWorker>,
    leases: Leases,
    identity: Identity,
    chat_id: Uuid,
    claimed_at: Option<usize>,
    abandon: CancellationToken,
) -> Worked {
    let resource = chat_resource(chat_id);
    let lost = abandon.child_token();
    let heartbeat = {
        let (leases, resource, lost) = (leases.clone(), resource.clone(), lost.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(heartbeat_interval(leases.duration()));
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = identity.lost.cancelled() => {
                        tracing::warn!(%resource, "liveness session lost; stopping work on the chat");
                        lost.cancel();
                        return;
                    }
                    _ = interval.tick() => {}
                }
                match leases.renew(&identity, &resource).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(%resource, "lease lost; stopping work on the chat");
                        lost.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(%resource, error = ?e, "cannot renew the lease"),
                }
            }
        })
    };
    let result = worker.work_chat(chat_id, claimed_at, &lost).await;
    heartbeat.abort();
    match result {
        // An append succeeds only at the version the worker's state was at, so a state with
        // no open turn after appending is the chat's: its last turn ended with that append.
        Ok(Some(sequence)) if claimed_at.is_some_and(|claimed| sequence > claimed) => {
            Worked::Drained
        }
        Ok(_) => Worked::Released,
        // Keeping the lease until it expires is the backoff: the chat is not retried in a
        // tight loop while, say, the database is away.
        Err(e) => {
            tracing::error!(%chat_id, error = %crate::runtime::error_chain::ErrorChain(&e), "working the chat failed; retrying when its lease expires");
            Worked::Failed
        }
    }
}
