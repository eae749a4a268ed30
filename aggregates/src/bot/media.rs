//! A bot's own settings for voice messages and images.

use serde::{Deserialize, Serialize};

/// What a bot does with voice messages and images; each unset value follows the platform
/// (`TRANSCRIPTION_MODEL`, and the model table's word on images).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BotMediaSettings {
    /// The model that transcribes voice messages (`gpt-4o-mini-transcribe`, `whisper-1`…).
    pub transcription_model: Option<String>,
    /// Whether the bot's model takes images, overriding the model table (say, for a model
    /// of a compatible server the table does not know).
    pub images: Option<bool>,
}

/// The longest transcription model name accepted.
pub const MAX_MODEL_NAME: usize = 100;

impl BotMediaSettings {
    /// Refuses a transcription model that cannot be a model's name.
    pub fn validate(&self) -> Result<(), crate::text::InvalidField> {
        if let Some(model) = &self.transcription_model {
            if model.is_empty()
                || model.chars().count() > MAX_MODEL_NAME
                || model.contains(char::is_whitespace)
            {
                return Err(crate::text::InvalidField::new(
                    "transcription_model",
                    "must be a model name of 1 to 100 characters without spaces",
                ));
            }
        }
        Ok(())
    }
}
