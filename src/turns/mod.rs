//! The effect runner's turns: claiming chats with due turns and working each chat's turns in
//! order, recording every outcome back as an event through the Chat aggregate.
//!
//! - [`runner`]: claims chats with due turns and works them, bounded in parallel.
//! - [`worker`]: one chat's turns, in order: generate the response, send it, record both.
//! - [`policy`]: what a step's outcome comes to (record what, retry when, or give up).

pub mod policy;
pub mod runner;
pub mod worker;
