//! `/bots/{id}/media`: what a bot does with voice messages and images — the model that
//! transcribes them, and whether its chat model takes images (overriding the model table).
//!
//! Set as a whole through the Bot aggregate (one `MediaSettingsSet` event attributed to the
//! admin); read from the `bots` read model after waiting for the write to reach it. The
//! limits on length and size are the platform's (`MEDIA_MAX_*`), not a bot's.

use aggregates::bot::media::BotMediaSettings;
use aggregates::bot::BotCommand;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::allowances::AllowancesDeps;
use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::strict_json::Strict;
use super::{ApiTags, Wired};
use crate::event_store::EventMetadata;

/// A bot's media settings. A value left out or `null` follows the platform: the
/// `TRANSCRIPTION_MODEL` setting, and the model table's word on images.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct MediaDocument {
    /// The model that transcribes voice messages and audio files (e.g.
    /// `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`, `whisper-1`); 1 to 100 characters,
    /// no spaces.
    pub transcription_model: Option<String>,
    /// Whether the bot's model takes images: `true` shows photos to it, `false` answers them
    /// with the media notice; `null` asks the model table.
    pub images: Option<bool>,
}

impl From<&BotMediaSettings> for MediaDocument {
    fn from(settings: &BotMediaSettings) -> Self {
        Self {
            transcription_model: settings.transcription_model.clone(),
            images: settings.images,
        }
    }
}

#[derive(ApiResponse)]
pub enum MediaResponse {
    #[oai(status = 200)]
    Ok(Json<MediaDocument>),
}

error_responses! {
    /// What reading a bot's media settings answers when it does not succeed.
    pub enum MediaReadError {
        BadRequest, Unauthorized, NotFound, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What setting a bot's media settings answers when it does not succeed.
    pub enum MediaWriteError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, TooManyRequests, Internal, Unavailable,
    }
}

pub struct MediaApi(pub Wired<AllowancesDeps>);

#[OpenApi(tag = "ApiTags::Bots")]
impl MediaApi {
    /// Read a bot's voice and image settings
    #[oai(path = "/bots/:id/media", method = "get")]
    async fn media(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<MediaResponse, MediaReadError> {
        let bot = self.bot(id.0).await?;
        Ok(MediaResponse::Ok(Json(MediaDocument::from(&bot.media.0))))
    }

    /// Set a bot's voice and image settings
    ///
    /// Replaces both settings (one left out follows the platform), as one event attributed
    /// to the admin. Applies to every turn worked after the answer.
    #[oai(path = "/bots/:id/media", method = "put")]
    async fn set_media(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
        body: Json<Strict<MediaDocument>>,
    ) -> Result<MediaResponse, MediaWriteError> {
        let document = body.0 .0;
        let settings = BotMediaSettings {
            transcription_model: document.transcription_model.map(|m| m.trim().to_owned()),
            images: document.images,
        };
        let deps = &self.0;
        let committed = deps
            .bots
            .execute(
                &id.0.to_string(),
                BotCommand::SetMediaSettings(settings),
                &EventMetadata::new_request(auth.actor()),
            )
            .await
            .map_err(ApiFailure::from)?;
        if committed.appended > 0 {
            let position = deps
                .bots
                .position_of(&id.0.to_string(), committed.sequence)
                .await
                .map_err(ApiFailure::from)?;
            deps.read_your_writes
                .caught_up(projections::bots::NAME, position)
                .await?;
        }
        let bot = self.bot(id.0).await?;
        Ok(MediaResponse::Ok(Json(MediaDocument::from(&bot.media.0))))
    }
}

impl MediaApi {
    async fn bot(&self, id: Uuid) -> Result<projections::bots::BotRow, ApiFailure> {
        projections::bots::find_bot(&self.0.pool, id)
            .await
            .map_err(|e| ApiFailure::internal("reading a bot failed", &e))?
            .filter(|bot| bot.deleted_at.is_none())
            .ok_or_else(|| ApiFailure::not_found("bot"))
    }
}
