//! Keeping each bot reachable, and telling admins when one is not.
//!
//! - [`supervisor`]: webhooks set and deleted, pollers started and stopped, as the bots'
//!   events say.
//! - [`alerts`]: admin notifications of final errors, deduplicated per bot and kind.
//! - [`llm_readiness`]: a missing OPENAI_API_KEY shown on every bot before anyone writes.

pub mod alerts;
pub mod llm_readiness;
pub mod supervisor;
