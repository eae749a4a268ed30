//! The metadata every event carries: who caused it, and within which story.

use std::collections::HashMap;

use aggregates::ids::{BotId, TurnKey};
use uuid::Uuid;

/// Who an event is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An admin through the HTTP API. `None` until authentication identifies one.
    Admin(Option<Uuid>),
    /// A person writing to a bot on Telegram.
    TelegramUser(i64),
    /// Botfleet itself: the effect runner, the poller, a CLI command.
    System(&'static str),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Admin(Some(id)) => write!(f, "admin:{id}"),
            Actor::Admin(None) => f.write_str("admin"),
            Actor::TelegramUser(id) => write!(f, "telegram:{id}"),
            Actor::System(component) => write!(f, "system:{component}"),
        }
    }
}

/// Correlation, causation and actor of the events one command appends. The per-event id is
/// assigned by the database (see the `events_assign_id` trigger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMetadata {
    /// Shared by everything one Telegram update or one admin request caused.
    pub correlation_id: Uuid,
    /// The request or event that directly caused these events.
    pub causation_id: Uuid,
    pub actor: Actor,
}

impl EventMetadata {
    /// The start of a story: a new request, its own cause.
    pub fn new_request(actor: Actor) -> Self {
        let id = Uuid::now_v7();
        Self {
            correlation_id: id,
            causation_id: id,
            actor,
        }
    }

    /// A step caused by an earlier event of the same story.
    pub fn caused_by(correlation_id: Uuid, causing_event_id: Uuid, actor: Actor) -> Self {
        Self {
            correlation_id,
            causation_id: causing_event_id,
            actor,
        }
    }

    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            ("correlation_id".to_owned(), self.correlation_id.to_string()),
            ("causation_id".to_owned(), self.causation_id.to_string()),
            ("actor".to_owned(), self.actor.to_string()),
        ])
    }
}

/// The namespace of update correlation ids: UUIDv5 of `bot id:update id`.
const UPDATE_CORRELATION_NAMESPACE: Uuid =
    Uuid::from_u128(0x0b07_f1ee_7c0e_4a11_8d2e_0f5a_6e1a_7c3b);

/// The correlation id of everything one update causes. Derived, so a redelivery of the same
/// update, or the effect runner's later steps, share it without storing it anywhere.
pub fn update_correlation_id(bot_id: BotId, turn: TurnKey) -> Uuid {
    Uuid::new_v5(
        &UPDATE_CORRELATION_NAMESPACE,
        format!("{bot_id}:{}", turn.stored()).as_bytes(),
    )
}
