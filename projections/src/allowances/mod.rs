//! The `person_usage` and `refusals` read models: what each person used of each bot per day
//! and month (with admins' grants), and who was refused. The effect runner's budget check
//! reads `person_usage`; admins read both.
//!
//! Counting comes from the events alone (an LLM answer's charge, `ExtraGranted`,
//! `TurnRefused`), bucketed by the UTC day of the event's `recorded_at`, so a rebuild gives
//! the same rows and every replica reads one budget.

pub mod person_usage;
pub mod refusals;

use aggregates::bot::{Bot, BotEvent};
use aggregates::chat::{Chat, ChatEvent, ResponseKind};
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::{ProjectionError, Projector, RecordedEvent};

/// The projection's name (its checkpoint's).
pub const NAME: &str = "allowances";

pub struct AllowanceProjector;

#[async_trait::async_trait]
impl Projector for AllowanceProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["person_usage", "refusals"]
    }

    /// Budgets are decided on these rows: an answer left uncounted would let a person spend
    /// past their limit unseen, so the projection stops rather than skip.
    fn poison_policy(&self) -> crate::PoisonPolicy {
        crate::PoisonPolicy::Pause
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type == Bot::TYPE {
            if event.event_type != "ExtraGranted" {
                return Ok(());
            }
            if let BotEvent::ExtraGranted(grant) = event.decode::<BotEvent>()? {
                let bot_id = event.aggregate_uuid()?;
                person_usage::grant(tx, bot_id, &grant).await?;
            }
            return Ok(());
        }
        if event.aggregate_type != Chat::TYPE {
            return Ok(());
        }
        // Most chat events count nothing: decode only the two that do.
        match event.event_type.as_str() {
            "ResponseGenerated" | "TurnRefused" => {}
            _ => return Ok(()),
        }
        match event.decode::<ChatEvent>()? {
            ChatEvent::ResponseGenerated { response, .. } => {
                if let ResponseKind::Llm {
                    cost_micro_usd,
                    charged_to: Some(charge),
                    ..
                } = response.kind
                {
                    person_usage::charge(tx, &charge, cost_micro_usd, event.recorded_at).await?;
                }
            }
            ChatEvent::TurnRefused {
                bot_id,
                person,
                telegram_chat_id,
                reason,
                ..
            } => {
                let refusal = refusals::Refusal {
                    bot_id: bot_id.0,
                    person: person.unwrap_or(0),
                    reason: reason.as_str(),
                    chat_id: event.aggregate_uuid()?,
                    telegram_chat_id,
                    at: event.recorded_at,
                };
                refusals::record(tx, &refusal).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
