//! `/failures`: turns that failed for good, and an admin's manual retry (seed P2 item 13).

use aggregates::chat::{ChatCommand, ChatError};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::errors::ApiFailure;
use super::guard::AdminSession;
use super::paging::ADMIN_PAGES;
use super::{ApiTags, AppState};
use crate::event_store::{CommandError, EventMetadata};

/// A turn that failed for good: its message got no answer.
#[derive(Debug, Clone, Object, sqlx::FromRow)]
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
}

#[derive(Debug, Clone, Object)]
pub struct FailurePage {
    pub items: Vec<FailureView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Object)]
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

pub struct FailuresApi {
    pub state: AppState,
}

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
    ) -> Result<FailureListResponse, ApiFailure> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let mut items: Vec<FailureView> = sqlx::query_as(
            "SELECT m.turn_id AS id, c.bot_id, m.chat_id, c.telegram_chat_id, m.update_id,
                    m.failure_class AS class, m.failure_step AS step, m.last_error,
                    m.attempts, m.failed_at
             FROM messages m JOIN chats c ON c.id = m.chat_id
             WHERE m.role = 'user' AND m.status = 'failed'
               AND ($1::uuid IS NULL OR c.bot_id = $1)
               AND ($2::timestamptz IS NULL OR m.failed_at < $2)
             ORDER BY m.failed_at DESC, m.turn_id
             LIMIT $3",
        )
        .bind(bot_id.0)
        .bind(before.0)
        .bind(limit + 1)
        .fetch_all(&self.state.pool)
        .await
        .map_err(|e| ApiFailure::internal("listing failures failed", &e))?;
        let next_before = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().and_then(|f| f.failed_at)
        } else {
            None
        };
        Ok(FailureListResponse::Ok(Json(FailurePage {
            items,
            next_before,
        })))
    }

    /// Retry a failed turn
    ///
    /// Queues the turn again (an event, attributed to the admin). 409 when the turn is not
    /// failed (it is being worked on, or was answered).
    #[oai(path = "/failures/:id/retry", method = "post")]
    async fn retry(&self, auth: AdminSession, id: Path<Uuid>) -> Result<RetryResponse, ApiFailure> {
        let turn: Option<(Uuid, i64)> = sqlx::query_as(
            "SELECT chat_id, update_id FROM messages WHERE turn_id = $1 AND role = 'user'",
        )
        .bind(id.0)
        .fetch_optional(&self.state.pool)
        .await
        .map_err(|e| ApiFailure::internal("finding a turn failed", &e))?;
        let Some((chat_id, update_id)) = turn else {
            return Err(ApiFailure::not_found("failed turn"));
        };
        let result = self
            .state
            .chats
            .execute(
                &chat_id.to_string(),
                ChatCommand::RetryTurn { update_id },
                &EventMetadata::new_request(auth.actor()),
            )
            .await;
        match result {
            Ok(_) => Ok(RetryResponse::Queued(Json(RetryQueued {
                id: id.0,
                status: "queued".to_owned(),
            }))),
            Err(CommandError::Rejected(ChatError::NotFailed(_))) => Err(ApiFailure::conflict(
                "this turn is not failed: it is being worked on or was answered",
            )),
            Err(CommandError::Rejected(e)) => Err(ApiFailure::conflict(e.to_string())),
            Err(e) => Err(ApiFailure::internal("retrying a turn failed", &e)),
        }
    }
}
