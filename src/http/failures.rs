//! `/failures`: turns that failed for good, and an admin's manual retry.

use std::sync::Arc;

use aggregates::chat::{Chat, ChatCommand, ChatError};
use aggregates::ids::TurnKey;
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use projections::chats::messages::{self as read_model, FailedTurnRow};

use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::paging::{checked_instant, ADMIN_PAGES};
use super::{ApiTags, Wired};
use crate::event_store::{Actor, CommandError, CommandGateway, EventMetadata};

/// A turn that failed for good: its message got no answer.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FailureView {
    /// The turn's id: pass it to `POST /failures/{id}/retry`.
    pub id: Uuid,
    pub bot_id: Uuid,
    pub chat_id: Uuid,
    pub telegram_chat_id: i64,
    pub update_id: i64,
    /// `fatal`, `retryable` or `terminal`.
    pub class: Option<String>,
    /// `generate` (the LLM) or `send` (Telegram).
    pub step: Option<String>,
    pub last_error: Option<String>,
    /// Failed attempts of the last step.
    pub attempts: i32,
    pub failed_at: Option<DateTime<Utc>>,
    /// What the user got: `error_message_sent` (the bot's error message, after the model
    /// failed for good), `error_message_pending`, or `nothing_sent` (Telegram refused, or
    /// nothing was left to answer).
    pub outcome: String,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FailurePage {
    pub items: Vec<FailureView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RetryQueued {
    pub id: Uuid,
    pub status: String,
}

#[derive(ApiResponse)]
pub enum FailureListResponse {
    #[oai(status = 200)]
    Ok(Json<FailurePage>),
}

#[derive(ApiResponse)]
pub enum RetryResponse {
    /// The turn is queued again; the effect runner works on it like a new one.
    #[oai(status = 202)]
    Queued(Json<RetryQueued>),
}

impl From<FailedTurnRow> for FailureView {
    fn from(row: FailedTurnRow) -> Self {
        Self {
            id: row.turn_id,
            bot_id: row.bot_id,
            chat_id: row.chat_id,
            telegram_chat_id: row.telegram_chat_id,
            update_id: row.update_id,
            class: row.failure_class,
            step: row.failure_step,
            last_error: row.last_error,
            attempts: row.attempts,
            failed_at: row.failed_at,
            outcome: row.outcome,
        }
    }
}

error_responses! {
    /// What `GET /failures` answers when it does not succeed.
    pub enum FailureListError { BadRequest, Unauthorized, Unprocessable, TooManyRequests, Internal }
}

error_responses! {
    /// What `POST /failures/{id}/retry` answers when it does not succeed.
    pub enum FailureRetryError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests, Internal,
    }
}

/// What the failures API uses.
pub struct FailuresDeps {
    pub pool: sqlx::PgPool,
    pub chats: Arc<CommandGateway<Chat>>,
}

pub struct FailuresApi(pub Wired<FailuresDeps>);

#[OpenApi(tag = "ApiTags::Failures")]
impl FailuresApi {
    /// List failed turns
    ///
    /// Newest first; filter by `bot_id`; page with `before` (the `next_before` of the last page).
    #[oai(path = "/failures", method = "get")]
    async fn list(
        &self,
        _auth: AdminSession,
        bot_id: Query<Option<Uuid>>,
        limit: Query<Option<u32>>,
        before: Query<Option<DateTime<Utc>>>,
    ) -> Result<FailureListResponse, FailureListError> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let before = before
            .0
            .map(|at| checked_instant("before", at))
            .transpose()?;
        let page = self.page(bot_id.0, before, limit).await?;
        Ok(FailureListResponse::Ok(Json(page)))
    }

    /// Retry a failed turn
    ///
    /// Queues the turn again (an event, attributed to the admin). 409 when the turn is not
    /// failed (it is being worked on, or was answered).
    #[oai(path = "/failures/:id/retry", method = "post")]
    async fn retry(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<RetryResponse, FailureRetryError> {
        self.retry_turn(auth.actor(), id.0).await?;
        Ok(RetryResponse::Queued(Json(RetryQueued {
            id: id.0,
            status: "queued".to_owned(),
        })))
    }
}

/// What the API does, for its operations and for the admin console alike.
impl FailuresApi {
    /// Failed turns, newest first, of one bot or all, failed before `before`.
    pub async fn page(
        &self,
        bot_id: Option<Uuid>,
        before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<FailurePage, ApiFailure> {
        let mut items: Vec<FailureView> =
            read_model::list_failed_turns(&self.0.pool, bot_id, before, limit + 1)
                .await
                .map_err(|e| ApiFailure::internal("listing failures failed", &e))?
                .into_iter()
                .map(FailureView::from)
                .collect();
        let next_before = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().and_then(|f| f.failed_at)
        } else {
            None
        };
        Ok(FailurePage { items, next_before })
    }

    /// Queues a failed turn again, as `actor`'s request.
    pub async fn retry_turn(&self, actor: Actor, turn_id: Uuid) -> Result<(), ApiFailure> {
        let turn = read_model::find_turn(&self.0.pool, turn_id)
            .await
            .map_err(|e| ApiFailure::internal("finding a turn failed", &e))?;
        let Some((chat_id, update_id)) = turn else {
            return Err(ApiFailure::not_found("failed turn"));
        };
        let result = self
            .0
            .chats
            .execute(
                &chat_id.to_string(),
                ChatCommand::RetryTurn {
                    update_id: TurnKey::from_stored(update_id),
                },
                &EventMetadata::new_request(actor),
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(ChatError::NotFailed(_))) => Err(ApiFailure::conflict(
                "this turn is not failed: it is being worked on or was answered",
            )),
            Err(CommandError::Rejected(e)) => Err(ApiFailure::conflict(e.to_string())),
            Err(e) => Err(ApiFailure::internal("retrying a turn failed", &e)),
        }
    }
}
