//! The ground floor: plumbing that every room above may use, and that names none of them.
//!
//! - [`backoff`]: when a failed attempt may be tried again (the turns, the pollers, the bot
//!   supervisor and the projection runner all pause with it).
//! - [`leases`]: which process works on which chat or bot right now.
//! - [`liveness`]: how a process knows another is dead (a session-long advisory lock).
//! - [`fresh_work`]: the hand-off from this process's intake to its effect runner.
//! - [`error_chain`]: an error and its causes on one line, for the logs.
//! - [`tls`]: the TLS provider the HTTP clients share.
//! - [`clock`]: the time budgets are judged by, which tests may move forward.
//! - [`answer_stops`]: the stop button on an answer's draft, carried to the process writing it.
//! - [`bot_changes`]: which bots changed, as announced to every process.

pub mod answer_stops;
pub mod backoff;
pub mod bot_changes;
pub mod clock;
pub mod error_chain;
pub mod fresh_work;
pub mod leases;
pub mod liveness;
pub mod tls;
