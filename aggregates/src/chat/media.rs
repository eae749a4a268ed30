//! What a voice message, an audio file or an image carries, and what became of it: the file
//! Telegram holds (never the bytes), a transcript, an image's fingerprint.
//!
//! The bytes of a file never enter the event log: an image is recorded by its content hash,
//! size and Telegram file id (enough to fetch it again for a follow-up question and to prove
//! it was the same), and a voice message by its sealed transcript.

use serde::{Deserialize, Serialize};

use crate::personal::PersonalText;

/// The `media` of a voice message (an OGG/Opus note recorded in Telegram).
pub const VOICE: &str = "voice";
/// The `media` of an audio file sent as music.
pub const AUDIO: &str = "audio";
/// The `media` of a photo (Telegram sends several sizes of it).
pub const PHOTO: &str = "photo";
/// The `media` of a file sent as a document (an image sent uncompressed is one).
pub const DOCUMENT: &str = "document";

/// One file of a media message as Telegram describes it. A photo has one per size, smallest
/// first; a voice message, an audio file or a document has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFile {
    /// Telegram's id for fetching the file with this bot's token (`getFile`); stays valid.
    pub file_id: String,
    /// Size in bytes, when Telegram says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// Length of a voice message or audio file, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
    /// The MIME type the sender's app gave (voice: `audio/ogg`; documents: anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// A photo size's pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

impl MediaFile {
    /// Whether this is an image a model could look at (a photo size, or a document whose
    /// type says image).
    #[must_use]
    pub fn is_image(&self, media: &str) -> bool {
        media == PHOTO
            || (media == DOCUMENT
                && self
                    .mime_type
                    .as_deref()
                    .is_some_and(|m| IMAGE_TYPES.contains(&m)))
    }
}

/// The image types OpenAI's vision models take.
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp", "image/gif"];

/// A voice message turned into text, and what that cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcription {
    /// Sealed under the key of the person who spoke, like every text they write.
    pub text: PersonalText,
    /// The transcription model that listened.
    pub model: String,
    /// The audio's length, in seconds (what per-minute prices count).
    pub duration_secs: u32,
    /// Tokens, when the model reports them (the gpt-4o transcribe models do).
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// What it cost, in micro-USD (0 for a model without a known price); counted in the
    /// turn's cost when the answer is recorded.
    pub cost_micro_usd: i64,
}

/// An image a turn showed the model: its fingerprint, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Telegram's id to fetch it again (a follow-up question in Chat Completions mode).
    pub file_id: String,
    /// SHA-256 of the bytes the model saw, hex: a file fetched again must match it.
    pub sha256: String,
    pub bytes: u64,
    /// The type the bytes were sent to the model as (`image/jpeg`…).
    pub mime_type: String,
}

/// An image of the conversation, by the exchange it was part of (counted from the chat's
/// first exchange, so it stays put while older exchanges drop out of the window).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationImage {
    pub exchange: u64,
    pub image: ImageRef,
}
