//! The one way commands reach an aggregate.
//!
//! cqrs-es's `CqrsFramework` neither tells where the events landed nor retries on a
//! concurrent write; this gateway does both, over the same postgres-es event store. Reads are
//! served by durable projections, so no cqrs-es `Query` is involved here.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventStore};
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
}

/// An aggregate loaded once and kept up to date by the commands its holder executes on it,
/// so that a worker doing several steps in a row reads the stream once, not once per step.
pub struct LoadedAggregate<A: Aggregate> {
    context: EventStoreAggregateContext<A>,
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
    A: Aggregate + 'static,
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
        }
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
        for attempt in 1..=MAX_ATTEMPTS {
            let mut context = self
                .store
                .load_aggregate(aggregate_id)
                .await
                .map_err(CommandError::from_aggregate)?;
            let sink = EventSink::default();
            context
                .aggregate()
                .handle(command.clone(), &self.services, &sink)
                .await
                .map_err(CommandError::Rejected)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Committed {
                    appended: 0,
                    sequence: self.current_sequence(aggregate_id).await?,
                });
            }
            match self.store.commit(events, context, metadata.to_map()).await {
                Ok(envelopes) => {
                    return Ok(Committed {
                        appended: envelopes.len(),
                        sequence: envelopes.last().map(|e| e.sequence).unwrap_or_default(),
                    });
                }
                Err(AggregateError::AggregateConflict) => {
                    tracing::debug!(
                        aggregate = A::TYPE,
                        aggregate_id,
                        attempt,
                        "concurrent append, deciding again"
                    );
                }
                Err(e) => return Err(CommandError::from_aggregate(e)),
            }
        }
        Err(CommandError::Conflict)
    }

    /// Loads the aggregate for a holder that will execute several commands on it in a row
    /// ([`Self::execute_on`]).
    pub async fn load_for_commands(
        &self,
        aggregate_id: &str,
    ) -> Result<LoadedAggregate<A>, CommandError<A::Error>> {
        let context = self
            .store
            .load_aggregate(aggregate_id)
            .await
            .map_err(CommandError::from_aggregate)?;
        Ok(LoadedAggregate { context })
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
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: Clone,
    {
        let aggregate_id = loaded.context.aggregate_id.clone();
        let turn = self.turns.lock_for(&aggregate_id);
        let _turn = turn.lock().await;
        for attempt in 1..=MAX_ATTEMPTS {
            let sink = EventSink::default();
            loaded
                .context
                .aggregate
                .handle(command.clone(), &self.services, &sink)
                .await
                .map_err(CommandError::Rejected)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Committed {
                    appended: 0,
                    sequence: loaded.context.current_sequence,
                });
            }
            let context = EventStoreAggregateContext {
                aggregate_id: aggregate_id.clone(),
                aggregate: loaded.context.aggregate.clone(),
                current_sequence: loaded.context.current_sequence,
                current_snapshot: loaded.context.current_snapshot,
            };
            let snapshot_taken = self.snapshot_taken(context.current_sequence, events.len());
            match self
                .store
                .commit(events.clone(), context, metadata.to_map())
                .await
            {
                Ok(envelopes) => {
                    let appended = envelopes.len();
                    for event in events {
                        loaded.context.aggregate.apply(event);
                    }
                    loaded.context.current_sequence += appended;
                    if snapshot_taken {
                        loaded.context.current_snapshot =
                            Some(loaded.context.current_snapshot.map_or(1, |s| s + 1));
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
                    loaded.context = self
                        .store
                        .load_aggregate(&aggregate_id)
                        .await
                        .map_err(CommandError::from_aggregate)?;
                }
                Err(e) => return Err(CommandError::from_aggregate(e)),
            }
        }
        Err(CommandError::Conflict)
    }

    /// Whether appending `count` events after `sequence` makes the store write a snapshot
    /// (cqrs-es's rule: a snapshot each time the stream crosses a multiple of `every`).
    fn snapshot_taken(&self, sequence: usize, count: usize) -> bool {
        self.snapshot_every
            .is_some_and(|every| count >= every - (sequence % every))
    }

    /// The aggregate's state from its events, for reads that need the authoritative state.
    pub async fn load(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>> {
        let mut context = self
            .store
            .load_aggregate(aggregate_id)
            .await
            .map_err(CommandError::from_aggregate)?;
        Ok(std::mem::take(context.aggregate()))
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
