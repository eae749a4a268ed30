//! The `usage_daily` read model: per bot and UTC day, the people's messages received, the
//! turns answered and failed, the tokens and the cost. The admin console's charts and
//! `GET /usage` read it.
//!
//! The day is the UTC date of the event's `recorded_at`, so a rebuild lands every figure on
//! the same day. Responses carry no bot id, so the projector keeps its own chat → bot rows
//! (`usage_chats`) from each chat's first message, as the alert counter does.

use aggregates::chat::{Chat, ChatEvent, ResponseKind};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PoisonPolicy, ProjectionError, Projector, RecordedEvent};

/// The projection's name (its checkpoint's).
pub const NAME: &str = "usage";

pub struct UsageProjector;

/// What one event adds to its bot's day.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Increment {
    messages: i64,
    turns: i64,
    failed_turns: i64,
    input_tokens: i64,
    cached_input_tokens: i64,
    output_tokens: i64,
    reasoning_tokens: i64,
    cost_micro_usd: i64,
}

/// The increment an event makes, if any (pure: the rules of what counts).
fn increment(event: &ChatEvent) -> Option<Increment> {
    match event {
        ChatEvent::MessageReceived { .. } => Some(Increment {
            messages: 1,
            ..Increment::default()
        }),
        ChatEvent::ResponseGenerated { response, .. } => match &response.kind {
            // An admin's message is the admin's, not a turn of the bot; a refusal's notice
            // answers nothing (the allowances read model counts refusals).
            ResponseKind::Admin { .. } | ResponseKind::Refusal { .. } => None,
            ResponseKind::Llm {
                usage,
                cost_micro_usd,
                ..
            } => Some(Increment {
                turns: 1,
                input_tokens: usage.input_tokens as i64,
                cached_input_tokens: usage.cached_input_tokens as i64,
                output_tokens: usage.output_tokens as i64,
                reasoning_tokens: usage.reasoning_tokens as i64,
                cost_micro_usd: *cost_micro_usd,
                ..Increment::default()
            }),
            ResponseKind::Command { .. }
            | ResponseKind::ErrorMessage { .. }
            | ResponseKind::Notice => Some(Increment {
                turns: 1,
                ..Increment::default()
            }),
        },
        ChatEvent::TurnFailed { .. } => Some(Increment {
            failed_turns: 1,
            ..Increment::default()
        }),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Projector for UsageProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usage_daily", "usage_chats"]
    }

    /// One unreadable event costs one day's figure; stopping would freeze every chart.
    fn poison_policy(&self) -> PoisonPolicy {
        PoisonPolicy::Park
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != Chat::TYPE {
            return Ok(());
        }
        let chat_id = event.aggregate_uuid()?;
        let decoded = event.decode::<ChatEvent>()?;
        if let ChatEvent::MessageReceived { bot_id, .. }
        | ChatEvent::CallbackQueryReceived { bot_id, .. } = &decoded
        {
            sqlx::query(
                "INSERT INTO usage_chats (chat_id, bot_id) VALUES ($1, $2)
                 ON CONFLICT (chat_id) DO NOTHING",
            )
            .bind(chat_id)
            .bind(bot_id.0)
            .execute(&mut *tx)
            .await?;
        }
        let Some(add) = increment(&decoded) else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO usage_daily AS u (bot_id, day, messages, turns, failed_turns,
                input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_micro_usd)
             SELECT bot_id, $2, $3, $4, $5, $6, $7, $8, $9, $10
             FROM usage_chats WHERE chat_id = $1
             ON CONFLICT (bot_id, day) DO UPDATE SET
                messages = u.messages + EXCLUDED.messages,
                turns = u.turns + EXCLUDED.turns,
                failed_turns = u.failed_turns + EXCLUDED.failed_turns,
                input_tokens = u.input_tokens + EXCLUDED.input_tokens,
                cached_input_tokens = u.cached_input_tokens + EXCLUDED.cached_input_tokens,
                output_tokens = u.output_tokens + EXCLUDED.output_tokens,
                reasoning_tokens = u.reasoning_tokens + EXCLUDED.reasoning_tokens,
                cost_micro_usd = u.cost_micro_usd + EXCLUDED.cost_micro_usd",
        )
        .bind(chat_id)
        .bind(day_of(event.recorded_at))
        .bind(add.messages)
        .bind(add.turns)
        .bind(add.failed_turns)
        .bind(add.input_tokens)
        .bind(add.cached_input_tokens)
        .bind(add.output_tokens)
        .bind(add.reasoning_tokens)
        .bind(add.cost_micro_usd)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// The UTC day an instant falls on.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// One bot's day.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageDayRow {
    pub bot_id: Uuid,
    pub day: NaiveDate,
    pub messages: i64,
    pub turns: i64,
    pub failed_turns: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micro_usd: i64,
}

/// Figures added up over bots and days.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageTotals {
    pub messages: i64,
    pub turns: i64,
    pub failed_turns: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micro_usd: i64,
}

impl UsageTotals {
    /// Adds a day's figures.
    pub fn add(&mut self, day: &UsageDayRow) {
        self.messages += day.messages;
        self.turns += day.turns;
        self.failed_turns += day.failed_turns;
        self.input_tokens += day.input_tokens;
        self.cached_input_tokens += day.cached_input_tokens;
        self.output_tokens += day.output_tokens;
        self.reasoning_tokens += day.reasoning_tokens;
        self.cost_micro_usd += day.cost_micro_usd;
    }
}

/// Which days to read: one bot's or every bot's, `from` to `to` inclusive.
#[derive(Debug, Clone, Copy)]
pub struct UsageRange {
    pub bot_id: Option<Uuid>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The days with any activity in the range, by day then bot (days without any are absent).
pub async fn list_days(
    conn: impl sqlx::PgExecutor<'_>,
    range: UsageRange,
) -> Result<Vec<UsageDayRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT bot_id, day, messages, turns, failed_turns, input_tokens, cached_input_tokens,
                output_tokens, reasoning_tokens, cost_micro_usd
         FROM usage_daily
         WHERE day BETWEEN $2 AND $3 AND ($1::uuid IS NULL OR bot_id = $1)
         ORDER BY day, bot_id",
    )
    .bind(range.bot_id)
    .bind(range.from)
    .bind(range.to)
    .fetch_all(conn)
    .await
}

/// The range's figures added up, over every bot (or one).
pub async fn totals(
    conn: impl sqlx::PgExecutor<'_>,
    range: UsageRange,
) -> Result<UsageTotals, sqlx::Error> {
    sqlx::query_as(
        "SELECT coalesce(sum(messages), 0)::bigint AS messages,
                coalesce(sum(turns), 0)::bigint AS turns,
                coalesce(sum(failed_turns), 0)::bigint AS failed_turns,
                coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
                coalesce(sum(cached_input_tokens), 0)::bigint AS cached_input_tokens,
                coalesce(sum(output_tokens), 0)::bigint AS output_tokens,
                coalesce(sum(reasoning_tokens), 0)::bigint AS reasoning_tokens,
                coalesce(sum(cost_micro_usd), 0)::bigint AS cost_micro_usd
         FROM usage_daily
         WHERE day BETWEEN $2 AND $3 AND ($1::uuid IS NULL OR bot_id = $1)",
    )
    .bind(range.bot_id)
    .bind(range.from)
    .bind(range.to)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aggregates::chat::{FailureClass, GeneratedResponse, TokenUsage, TurnStep};
    use aggregates::ids::TurnKey;
    use aggregates::personal::PersonalText;

    fn response(kind: ResponseKind) -> ChatEvent {
        ChatEvent::ResponseGenerated {
            update_id: TurnKey::from_stored(1),
            response: GeneratedResponse {
                text: PersonalText::plain("hi"),
                kind,
            },
        }
    }

    #[test]
    fn an_llm_answer_is_a_turn_with_its_tokens_and_cost() {
        let add = increment(&response(ResponseKind::Llm {
            model: "gpt-5-mini".into(),
            response_id: None,
            usage: TokenUsage {
                input_tokens: 100,
                cached_input_tokens: 20,
                output_tokens: 50,
                reasoning_tokens: 10,
            },
            cost_micro_usd: 121,
            charged_to: None,
            context_turns: None,
            stopped: false,
        }))
        .unwrap();
        assert_eq!(
            add,
            Increment {
                turns: 1,
                input_tokens: 100,
                cached_input_tokens: 20,
                output_tokens: 50,
                reasoning_tokens: 10,
                cost_micro_usd: 121,
                ..Increment::default()
            }
        );
    }

    #[test]
    fn admin_messages_are_not_turns_and_failures_are_counted() {
        assert_eq!(
            increment(&response(ResponseKind::Admin {
                admin: "admin:x".into()
            })),
            None
        );
        assert_eq!(increment(&response(ResponseKind::Notice)).unwrap().turns, 1);
        let failed = ChatEvent::TurnFailed {
            update_id: TurnKey::from_stored(1),
            step: TurnStep::Send,
            class: FailureClass::Terminal,
            error: "blocked".into(),
        };
        assert_eq!(increment(&failed).unwrap().failed_turns, 1);
    }
}
