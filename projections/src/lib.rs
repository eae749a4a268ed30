//! Botfleet's read models and the projectors that build them.
//!
//! A [`Projector`] turns one stored event into writes on its own tables, inside the
//! transaction in which the subscription engine (in the `botfleet` crate) also advances the
//! projector's checkpoint: so each event lands exactly once, whatever crashes. Projectors read
//! only the event (never the clock or another table they do not own), so dropping their tables
//! and replaying from position zero rebuilds the same rows.
//!
//! - [`recorded`]: an event as the store holds it, with its global position.
//! - [`bots`]: the `bots` read model behind the admin API.
//! - [`chats`]: chats, Telegram users and messages, with usage and cost.
//! - [`chat_work`]: the effect runner's index of chats with unfinished turns (kept by the append
//!   itself, not a projector).
//! - [`alerts`]: final errors counted per bot and kind, for admin notifications.
//! - [`allowances`]: each person's use of each bot per day and month, and who was refused.
//! - [`usage`]: per bot and day, messages, turns, failures, tokens and cost.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod allowances;
pub mod bots;
pub mod chat_work;
pub mod chats;
pub mod decode;
pub mod recorded;
pub mod usage;

pub use recorded::{RecordedEvent, StreamPosition};

use sqlx::PgConnection;

/// Why a projector could not apply an event. The subscription stops at that event and
/// retries, rather than skip it and leave a read model silently wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("the {event_type} event at position {position} cannot be decoded")]
    Decode {
        event_type: String,
        position: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("the {aggregate_type} id {aggregate_id:?} is not valid")]
    BadAggregateId {
        aggregate_type: String,
        aggregate_id: String,
    },
    #[error("the read model could not be written")]
    Database(#[from] sqlx::Error),
}

/// What the subscription does with an event this projector keeps failing on (a *poison*
/// event), once its attempts are used up. Either way the event, its error and the attempts
/// are recorded for an operator to see and resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonPolicy {
    /// Stop before the event until an operator retries or skips it: for a read model that
    /// must never silently miss an event (the effect runner's work index, the bots that are
    /// served).
    Pause,
    /// Go on without the event: for a read model where one missing event costs one stale row
    /// rather than a wrong decision, and stopping would freeze every other row.
    Park,
}

/// Builds read models from the global event stream.
#[async_trait::async_trait]
pub trait Projector: Send + Sync {
    /// The stable name under which the projector's checkpoint is kept.
    fn name(&self) -> &'static str;

    /// What to do with an event this projector cannot apply (see [`PoisonPolicy`]).
    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::Pause
    }

    /// The tables this projector owns, in an order in which they can be emptied.
    fn tables(&self) -> &'static [&'static str];

    /// Whether events of `aggregate_type` can change this projector's rows: what follows the
    /// read model (the bot supervisor follows `bots`) is woken only by those, not by every
    /// batch. Every type by default.
    fn follows(&self, aggregate_type: &str) -> bool {
        let _ = aggregate_type;
        true
    }

    /// Applies one event. Events of aggregates the projector does not follow are ignored.
    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError>;
}

/// Every projector of the application, in the order they are run and rebuilt.
pub fn all() -> Vec<std::sync::Arc<dyn Projector>> {
    vec![
        std::sync::Arc::new(bots::BotProjector),
        std::sync::Arc::new(chats::ChatProjector),
        std::sync::Arc::new(allowances::AllowanceProjector),
        std::sync::Arc::new(usage::UsageProjector),
    ]
}
