//! The one way commands reach an aggregate.
//!
//! cqrs-es's `CqrsFramework` neither tells where the events landed nor retries on a
//! concurrent write; this gateway does both, over the same postgres-es event store. Reads are
//! served by durable projections, so no cqrs-es `Query` is involved here.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventStore};
use postgres_es::PostgresEventRepository;
use projections::StreamPosition;
use sqlx::PgPool;

use super::EventMetadata;

/// A concurrent append to the same aggregate (from another process: within this one,
/// commands to one aggregate take turns) makes ours fail on its expected version; the command
/// is then decided again on the fresh state. Past this many tries, the caller is told.
const MAX_ATTEMPTS: usize = 16;

/// What a command appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// How many events were appended; 0 when the command changed nothing.
    pub appended: usize,
    /// The aggregate's sequence after the command.
    pub sequence: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command: a domain rule, shown to the client.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept winning the race for this aggregate.
    #[error("the aggregate kept changing concurrently")]
    Conflict,
    /// The store failed; logged, never shown to the client.
    #[error("the event store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl<E: std::error::Error + 'static> CommandError<E> {
    fn from_aggregate(error: AggregateError<E>) -> Self {
        match error {
            AggregateError::UserError(e) => CommandError::Rejected(e),
            AggregateError::AggregateConflict => CommandError::Conflict,
            AggregateError::DatabaseConnectionError(e)
            | AggregateError::DeserializationError(e)
            | AggregateError::UnexpectedError(e) => CommandError::Store(e),
        }
    }
}

pub struct CommandGateway<A: Aggregate> {
    store: PersistedEventStore<PostgresEventRepository, A>,
    services: A::Services,
    pool: PgPool,
    /// Commands to one aggregate take turns in this process, so they do not race each other
    /// to the same version and fail; only appends from other processes can conflict.
    turns: AggregateTurns,
    /// Events between snapshots, when the store keeps them.
    snapshot_every: Option<usize>,
    /// The store's upcasters, for loading a snapshotted aggregate in one read.
    upcasters: Vec<Box<dyn cqrs_es::persist::EventUpcaster>>,
    /// The latest state of recently used aggregates, when enabled ([`Self::with_recent`]).
    recent: Option<RecentAggregates<A>>,
}

/// An aggregate loaded once and kept up to date by the commands its holder executes on it,
/// so that a worker doing several steps in a row reads the stream once, not once per step.
pub struct LoadedAggregate<A: Aggregate> {
    context: EventStoreAggregateContext<A>,
    /// Read from the store just now, rather than taken from memory: a refusal decided on a
    /// remembered state is decided again on a fresh one, as another process may have moved
    /// the aggregate on.
    fresh: bool,
}

impl<A: Aggregate> LoadedAggregate<A> {
    pub fn state(&self) -> &A {
        &self.context.aggregate
    }

    pub fn sequence(&self) -> usize {
        self.context.current_sequence
    }
}

/// One async mutex per aggregate id, kept only while someone holds or waits for it.
#[derive(Default)]
struct AggregateTurns {
    locks: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl AggregateTurns {
    fn lock_for(&self, aggregate_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("aggregate turns lock");
        if let Some(lock) = locks.get(aggregate_id).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget ids nobody waits for any more, so the map stays as small as the traffic.
        if locks.len() > 1024 {
            locks.retain(|_, lock| lock.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(aggregate_id.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

impl<A> CommandGateway<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone,
    A::Error: 'static,
{
    /// A gateway that loads aggregates by replaying all their events.
    pub fn new(pool: PgPool, services: A::Services) -> Self {
        let repository = PostgresEventRepository::new(pool.clone());
        Self::over(
            PersistedEventStore::new_event_store(repository),
            services,
            pool,
            None,
        )
    }

    /// A gateway that keeps a snapshot of each aggregate every `every` events and loads from
    /// it, so a command costs the same on a long stream as on a short one.
    pub fn with_snapshots(pool: PgPool, services: A::Services, every: usize) -> Self {
        let repository = PostgresEventRepository::new(pool.clone());
        Self::over(
            PersistedEventStore::new_snapshot_store(repository, every),
            services,
            pool,
            Some(every),
        )
    }

    fn over(
        store: PersistedEventStore<PostgresEventRepository, A>,
        services: A::Services,
        pool: PgPool,
        snapshot_every: Option<usize>,
    ) -> Self {
        Self {
            store: store.with_upcasters(aggregates::upcasting::all()),
            services,
            pool,
            turns: AggregateTurns::default(),
            snapshot_every,
            upcasters: aggregates::upcasting::all(),
            recent: None,
        }
    }

    /// Keeps the state of up to `capacity` recently used aggregates in memory, so that a
    /// command on one of them skips reading its stream. Safe with other writers: an append
    /// on a state that another process moved on fails on its expected version, and the
    /// aggregate is then read again.
    pub fn with_recent(mut self, capacity: usize) -> Self {
        self.recent = (capacity > 0).then(|| RecentAggregates::new(capacity));
        self
    }

    /// Decides `command` on the aggregate's current state and appends the resulting events
    /// with `metadata`, retrying on a concurrent append.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>> {
        let turn = self.turns.lock_for(aggregate_id);
        let _turn = turn.lock().await;
        let mut loaded = self.load_for_commands(aggregate_id).await?;
        self.execute_locked(&mut loaded, command, metadata).await
    }

    /// Loads the aggregate for a holder that will execute several commands on it in a row
    /// ([`Self::execute_on`]); from memory when it was used recently.
    pub async fn load_for_commands(
        &self,
        aggregate_id: &str,
    ) -> Result<LoadedAggregate<A>, CommandError<A::Error>> {
        if let Some(context) = self.recent.as_ref().and_then(|r| r.get(aggregate_id)) {
            return Ok(LoadedAggregate {
                context,
                fresh: false,
            });
        }
        self.load_fresh(aggregate_id).await
    }

    /// Loads the aggregate's current state, for a holder whose decisions have effects outside
    /// the store (a message sent to Telegram): a remembered state is used only when nobody
    /// appended since, as `known_sequence` says (read by the caller's own statement, e.g. a
    /// claim), or else as one indexed read says, which is still cheaper than the stream.
    pub async fn load_current(
        &self,
        aggregate_id: &str,
        known_sequence: Option<usize>,
    ) -> Result<LoadedAggregate<A>, CommandError<A::Error>> {
        if let Some(context) = self.recent.as_ref().and_then(|r| r.get(aggregate_id)) {
            let current = match known_sequence {
                Some(sequence) => sequence,
                None => self.current_sequence(aggregate_id).await?,
            };
            if current == context.current_sequence {
                return Ok(LoadedAggregate {
                    context,
                    fresh: true,
                });
            }
        }
        self.load_fresh(aggregate_id).await
    }

    async fn load_fresh(
        &self,
        aggregate_id: &str,
    ) -> Result<LoadedAggregate<A>, CommandError<A::Error>> {
        if self.snapshot_every.is_some() {
            let read =
                super::loading::load_with_snapshot::<A>(&self.pool, &self.upcasters, aggregate_id)
                    .await
                    .map_err(|e| CommandError::Store(Box::new(e)))?;
            if let Some(context) = read {
                return Ok(LoadedAggregate {
                    context,
                    fresh: true,
                });
            }
            // An unreadable snapshot: cqrs-es replays every event instead.
        }
        let context = self
            .store
            .load_aggregate(aggregate_id)
            .await
            .map_err(CommandError::from_aggregate)?;
        Ok(LoadedAggregate {
            context,
            fresh: true,
        })
    }

    /// Like [`Self::execute`], on an aggregate already loaded: decided on the state in memory,
    /// appended at the version it was loaded at, and applied to it on success. When another
    /// writer appended in between, the aggregate is loaded again and the command decided anew,
    /// so the state in memory is never behind what this command saw.
    pub async fn execute_on(
        &self,
        loaded: &mut LoadedAggregate<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>> {
        let turn = self.turns.lock_for(&loaded.context.aggregate_id);
        let _turn = turn.lock().await;
        self.execute_locked(loaded, command, metadata).await
    }

    /// Decides and appends; the caller holds the aggregate's turn.
    async fn execute_locked(
        &self,
        loaded: &mut LoadedAggregate<A>,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed, CommandError<A::Error>> {
        let aggregate_id = loaded.context.aggregate_id.clone();
        for attempt in 1..=MAX_ATTEMPTS {
            // cqrs-es aggregates apply their events as they emit them, so the command is
            // decided on a copy: the state it was loaded at stays as it was, for the commit
            // (whose snapshot applies the events itself) and for a refusal.
            let mut decided = loaded.context.aggregate.clone();
            let sink = EventSink::default();
            if let Err(refusal) = decided.handle(command.clone(), &self.services, &sink).await {
                if loaded.fresh {
                    return Err(CommandError::Rejected(refusal));
                }
                *loaded = self.load_fresh(&aggregate_id).await?;
                continue;
            }
            let events = sink.collect().await;
            if events.is_empty() {
                // Nothing to append: the caller may wait for the stream's latest position,
                // which a remembered state may not know.
                let sequence = if loaded.fresh {
                    loaded.context.current_sequence
                } else {
                    self.current_sequence(&aggregate_id).await?
                };
                return Ok(Committed {
                    appended: 0,
                    sequence,
                });
            }
            let snapshot_taken = self.snapshot_taken(loaded.context.current_sequence, events.len());
            let appending = if snapshot_taken {
                // cqrs-es writes the snapshot with the events, in its own transaction.
                let context = EventStoreAggregateContext {
                    aggregate_id: aggregate_id.clone(),
                    aggregate: loaded.context.aggregate.clone(),
                    current_sequence: loaded.context.current_sequence,
                    current_snapshot: loaded.context.current_snapshot,
                };
                self.store
                    .commit(events, context, metadata.to_map())
                    .await
                    .map(|envelopes| envelopes.len())
            } else {
                self.append(
                    &aggregate_id,
                    loaded.context.current_sequence,
                    &events,
                    metadata,
                )
                .await
            };
            match appending {
                Ok(appended) => {
                    loaded.context.aggregate = decided;
                    loaded.context.current_sequence += appended;
                    if snapshot_taken {
                        loaded.context.current_snapshot =
                            Some(loaded.context.current_snapshot.map_or(1, |s| s + 1));
                    }
                    if let Some(recent) = &self.recent {
                        recent.put(&loaded.context);
                    }
                    return Ok(Committed {
                        appended,
                        sequence: loaded.context.current_sequence,
                    });
                }
                Err(AggregateError::AggregateConflict) => {
                    tracing::debug!(
                        aggregate = A::TYPE,
                        %aggregate_id,
                        attempt,
                        "concurrent append, loading again"
                    );
                    *loaded = self.load_fresh(&aggregate_id).await?;
                }
                Err(e) => return Err(CommandError::from_aggregate(e)),
            }
        }
        Err(CommandError::Conflict)
    }

    /// Appends `events` after `sequence` in one statement (atomic on its own, so one round
    /// trip instead of postgres-es's begin, insert per event, commit), in the same rows
    /// postgres-es writes. Another writer's append at the same sequence is a conflict.
    async fn append(
        &self,
        aggregate_id: &str,
        sequence: usize,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<usize, AggregateError<A::Error>> {
        let sequences: Vec<i64> = (1..=events.len()).map(|n| (sequence + n) as i64).collect();
        let types: Vec<String> = events.iter().map(DomainEvent::event_type).collect();
        let versions: Vec<String> = events.iter().map(DomainEvent::event_version).collect();
        let payloads = events
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AggregateError::UnexpectedError(Box::new(e)))?;
        let metadata = serde_json::to_value(metadata.to_map())
            .map_err(|e| AggregateError::UnexpectedError(Box::new(e)))?;
        let inserted = sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                 payload, metadata)
             SELECT $1, $2, s, t, v, p, $7
             FROM unnest($3::bigint[], $4::text[], $5::text[], $6::jsonb[]) AS e(s, t, v, p)
             ORDER BY s",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(&sequences)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(done) => Ok(done.rows_affected() as usize),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                Err(AggregateError::AggregateConflict)
            }
            Err(e) => Err(AggregateError::DatabaseConnectionError(Box::new(e))),
        }
    }

    /// Whether appending `count` events after `sequence` makes the store write a snapshot
    /// (cqrs-es's rule: a snapshot each time the stream crosses a multiple of `every`).
    fn snapshot_taken(&self, sequence: usize, count: usize) -> bool {
        self.snapshot_every
            .is_some_and(|every| count >= every - (sequence % every))
    }

    /// The aggregate's state from its events, for reads that need the authoritative state
    /// (never from memory).
    pub async fn load(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>> {
        let mut loaded = self.load_fresh(aggregate_id).await?;
        Ok(std::mem::take(loaded.context.aggregate()))
    }

    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// Where the aggregate's event number `sequence` sits in the global order, for a caller
    /// that waits until a projection has handled it.
    pub async fn position_of(
        &self,
        aggregate_id: &str,
        sequence: usize,
    ) -> Result<StreamPosition, CommandError<A::Error>> {
        let (transaction_id, global_position): (String, i64) = sqlx::query_as(
            "SELECT transaction_id::text, global_position FROM events
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(sequence as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| CommandError::Store(Box::new(e)))?;
        Ok(StreamPosition {
            transaction_id: transaction_id
                .parse()
                .map_err(|e| CommandError::Store(Box::new(e)))?,
            global_position,
        })
    }

    async fn current_sequence(&self, aggregate_id: &str) -> Result<usize, CommandError<A::Error>> {
        let sequence: Option<i64> = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| CommandError::Store(Box::new(e)))?;
        Ok(sequence.unwrap_or_default() as usize)
    }
}

/// The latest known state of recently used aggregates, bounded in number.
struct RecentAggregates<A: Aggregate> {
    capacity: usize,
    entries: std::sync::Mutex<RecentEntries<A>>,
}

struct RecentEntries<A: Aggregate> {
    /// Each entry with the tick of its last use.
    by_id: HashMap<String, (u64, EventStoreAggregateContext<A>)>,
    tick: u64,
}

impl<A: Aggregate + Clone> RecentAggregates<A> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: std::sync::Mutex::new(RecentEntries {
                by_id: HashMap::new(),
                tick: 0,
            }),
        }
    }

    fn get(&self, aggregate_id: &str) -> Option<EventStoreAggregateContext<A>> {
        let mut entries = self.entries.lock().expect("recent aggregates lock");
        entries.tick += 1;
        let tick = entries.tick;
        let (used, context) = entries.by_id.get_mut(aggregate_id)?;
        *used = tick;
        Some(EventStoreAggregateContext {
            aggregate_id: context.aggregate_id.clone(),
            aggregate: context.aggregate.clone(),
            current_sequence: context.current_sequence,
            current_snapshot: context.current_snapshot,
        })
    }

    /// Remembers `context` unless a later state of the same aggregate is remembered already.
    fn put(&self, context: &EventStoreAggregateContext<A>) {
        let mut entries = self.entries.lock().expect("recent aggregates lock");
        entries.tick += 1;
        let tick = entries.tick;
        if let Some((_, known)) = entries.by_id.get(&context.aggregate_id) {
            if known.current_sequence > context.current_sequence {
                return;
            }
        }
        if entries.by_id.len() >= self.capacity
            && !entries.by_id.contains_key(&context.aggregate_id)
        {
            // Forget the least recently used half at once: O(n) now and then, not per use.
            let mut ticks: Vec<u64> = entries.by_id.values().map(|(t, _)| *t).collect();
            let (_, median, _) = ticks.select_nth_unstable(self.capacity / 2);
            let median = *median;
            entries.by_id.retain(|_, (t, _)| *t > median);
        }
        entries.by_id.insert(
            context.aggregate_id.clone(),
            (
                tick,
                EventStoreAggregateContext {
                    aggregate_id: context.aggregate_id.clone(),
                    aggregate: context.aggregate.clone(),
                    current_sequence: context.current_sequence,
                    current_snapshot: context.current_snapshot,
                },
            ),
        );
    }
}
