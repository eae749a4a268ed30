//! `POST /telegram/{bot_id}/webhook`: where Telegram pushes a bot's updates.
//!
//! The handler checks the secret token, appends the update, and answers at once; every slow
//! step happens in the effect runner. For an unknown, disabled or deleted bot it answers 200
//! and records nothing: a 2xx stops Telegram's redeliveries of updates nobody will answer.

use std::sync::Arc;
use std::time::Duration;

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::errors::{error_responses, ApiError, ApiFailure};
use super::limits::Limits;
use super::{ApiTags, Wired};
use crate::intake::{Accepted, Intake};
use crate::secrets::TokenCipher;
use crate::telegram::updates::{BotIdentity, Update};
use crate::turns::bot_rows::BotCache;
use aggregates::ids::{BotErrorKind, BotId};

/// The identity of `bot_id` if it is enabled, not deleted, and its token is not known to be
/// invalid (an invalid token stops the bot's intake until an admin sets a new one).
pub async fn live_bot_identity(
    bot_rows: &BotCache,
    pool: &sqlx::PgPool,
    bot_id: Uuid,
) -> Result<Option<BotIdentity>, sqlx::Error> {
    let row = bot_rows.get(pool, BotId(bot_id)).await?;
    Ok(row
        .filter(|row| {
            row.is_active
                && row.deleted_at.is_none()
                && row.last_error_kind.as_deref()
                    != Some(BotErrorKind::TelegramInvalidToken.as_str())
        })
        .map(|row| BotIdentity {
            bot_id: BotId(bot_id),
            telegram_id: crate::telegram::updates::telegram_id_from_hint(&row.token_hint),
            username: row.username,
        }))
}

error_responses! {
    /// What the webhook answers when it does not take an update.
    pub enum WebhookError {
        BadRequest, Unauthorized, PayloadTooLarge, UnsupportedMediaType, TooManyRequests, Internal,
        Unavailable,
    }
}

/// What the webhook uses.
pub struct WebhookDeps {
    pub pool: sqlx::PgPool,
    pub intake: Intake,
    pub cipher: Arc<TokenCipher>,
    /// Holds `per_bot`: one flooded bot is slowed down (Telegram redelivers after a 429)
    /// instead of crowding out every other bot's updates.
    pub limits: Arc<Limits>,
    /// The bots' rows as this process last read them (shared with the turns).
    pub bot_rows: Arc<BotCache>,
}

pub struct WebhookApi(pub Wired<WebhookDeps>);

#[derive(ApiResponse)]
pub enum WebhookResponse {
    /// The update was recorded, was seen before, or is not for a live bot.
    #[oai(status = 200)]
    Ok,
}

#[OpenApi(tag = "ApiTags::Telegram")]
impl WebhookApi {
    /// Receive a Telegram update
    ///
    /// Called by Telegram, authenticated by the bot's secret token.
    #[oai(path = "/telegram/:bot_id/webhook", method = "post")]
    async fn receive(
        &self,
        bot_id: Path<Uuid>,
        #[oai(name = "X-Telegram-Bot-Api-Secret-Token")] secret: Header<Option<String>>,
        update: Json<serde_json::Value>,
    ) -> Result<WebhookResponse, WebhookError> {
        let deps = &*self.0;
        let expected = deps.cipher.webhook_secret(bot_id.0);
        let given = secret.0.unwrap_or_default();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(ApiFailure::Unauthorized(Json(ApiError::new(
                "unauthorized",
                "the secret token does not match this bot's",
            )))
            .into());
        }
        let update = Update::parse(update.0).map_err(|e| {
            ApiFailure::BadRequest(Json(ApiError::new(
                "malformed_request",
                format!("not a Telegram update: {e}"),
            )))
        })?;
        // Telegram waits for the answer and redelivers on any error: with the database away, a
        // quick 503 beats a 500 after the pool's ten-second wait.
        tokio::time::timeout(DATABASE_PATIENCE, self.record(bot_id.0, update))
            .await
            .unwrap_or_else(|_| Err(database_unavailable()))
            .map_err(WebhookError::from)
    }
}

/// How long the webhook waits for the database before answering 503.
const DATABASE_PATIENCE: Duration = Duration::from_secs(3);

fn database_unavailable() -> ApiFailure {
    ApiFailure::Unavailable(Json(ApiError::new(
        "database_unavailable",
        "the database is not answering; deliver the update again later",
    )))
}

/// A database error as the webhook answers it: 503 when the database is away (Telegram
/// redelivers), 500 otherwise.
fn database_failure(context: &str, error: &(dyn std::error::Error + 'static)) -> ApiFailure {
    if crate::db::is_unavailable(error) {
        tracing::warn!(error = %crate::runtime::error_chain::ErrorChain(error), "{context}: the database is away");
        database_unavailable()
    } else {
        ApiFailure::internal(context, error)
    }
}

impl WebhookApi {
    /// Records an update for a live bot; the webhook's part that needs the database.
    async fn record(&self, bot_id: Uuid, update: Update) -> Result<WebhookResponse, ApiFailure> {
        let deps = &*self.0;
        let bot = live_bot_identity(&deps.bot_rows, &deps.pool, bot_id)
            .await
            .map_err(|e| database_failure("reading the bot for a webhook failed", &e))?;
        let Some(bot) = bot else {
            tracing::info!(%bot_id, update_id = %update.update_id, "update for a bot that is not live; dropped");
            return Ok(WebhookResponse::Ok);
        };
        if let Err(retry) = deps.limits.per_bot.check(bot_id) {
            tracing::warn!(%bot_id, update_id = %update.update_id, "intake rate limit reached for a bot; Telegram will redeliver");
            return Err(ApiFailure::too_many_requests(
                "too many updates for this bot; retry later",
                retry,
            ));
        }
        match deps.intake.accept(&bot, &update).await {
            Ok(
                Accepted::Recorded
                | Accepted::Duplicate
                | Accepted::Unhandled(_)
                | Accepted::StopAnnounced,
            ) => Ok(WebhookResponse::Ok),
            Err(e) => Err(database_failure("recording an update failed", &e)),
        }
    }
}
