//! `POST /telegram/{bot_id}/webhook`: where Telegram pushes a bot's updates.
//!
//! The handler checks the secret token, appends the update, and answers at once; every slow
//! step happens in the effect runner. For an unknown, disabled or deleted bot it answers 200
//! and records nothing: a 2xx stops Telegram's redeliveries of updates nobody will answer.

use std::sync::Arc;

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::errors::{ApiError, ApiFailure};
use super::ApiTags;
use crate::intake::{Accepted, Intake};
use crate::secrets::TokenCipher;
use crate::telegram::updates::Update;

pub struct WebhookApi {
    pub pool: sqlx::PgPool,
    pub intake: Intake,
    pub cipher: Arc<TokenCipher>,
}

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
    ) -> Result<WebhookResponse, ApiFailure> {
        let expected = self.cipher.webhook_secret(bot_id.0);
        let given = secret.0.unwrap_or_default();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(ApiFailure::Unauthorized(Json(ApiError::new(
                "unauthorized",
                "the secret token does not match this bot's",
            ))));
        }
        let update: Update = serde_json::from_value(update.0).map_err(|e| {
            ApiFailure::BadRequest(Json(ApiError::new(
                "malformed_request",
                format!("not a Telegram update: {e}"),
            )))
        })?;
        let live: Option<bool> =
            sqlx::query_scalar("SELECT is_active AND deleted_at IS NULL FROM bots WHERE id = $1")
                .bind(bot_id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| ApiFailure::internal("reading the bot for a webhook failed", &e))?;
        if live != Some(true) {
            tracing::info!(bot_id = %bot_id.0, update_id = update.update_id, "update for a bot that is not live; dropped");
            return Ok(WebhookResponse::Ok);
        }
        match self.intake.accept(bot_id.0, &update).await {
            Ok(Accepted::Recorded | Accepted::Duplicate | Accepted::Unhandled(_)) => {
                Ok(WebhookResponse::Ok)
            }
            Err(e) => Err(ApiFailure::internal("recording an update failed", &e)),
        }
    }
}
