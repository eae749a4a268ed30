//! Catch-up subscriptions over the global event stream.
//!
//! The stream is read in `(transaction_id, global_position)` order, and only below the oldest
//! transaction still running that could append here (`SETTLED_HORIZON` in
//! [`crate::event_store::stream`]: other databases' transactions do not count): an event whose
//! transaction might still commit "behind" the reader is never skipped, it is waited for. A NOTIFY at every commit
//! wakes readers within milliseconds; a slow poll covers a lost notification.
//!
//! - [`wakeups`]: the LISTEN connection that wakes readers.
//! - [`checkpoints`]: where each subscription stands, stored and observable.
//! - [`projection_runner`]: runs a projector, its rows and checkpoint in one transaction.
//! - [`rebuild`]: empties read models and replays them from position zero.
//! - [`faults`]: poison events, paused before or parked, and what operators did about them.

pub mod checkpoints;
pub mod faults;
pub mod projection_runner;
pub mod rebuild;
pub mod wakeups;

pub use checkpoints::SubscriptionProgress;
pub use projection_runner::ProjectionRunner;
pub use wakeups::EventWakeups;
