//! Turning a voice message into text: `POST {OPENAI_BASE_URL}/audio/transcriptions`
//! (multipart), one attempt per call on the same single-attempt transport as the model
//! (see [`super::transport`]), failures classified like any model call.
//!
//! Telegram's voice notes are OGG/Opus, which the endpoint takes as they are (its formats
//! are flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav and webm; 25 MB at most): nothing is
//! converted. It tells the format by the file name, and Telegram names voice files `.oga`,
//! so the name sent says `.ogg` ([`upload_name`]).
//!
//! The answer is read leniently: `text`, and `usage` when the server reports it (tokens for
//! the gpt-4o transcribe models, seconds for whisper-1); a compatible server that reports
//! none is priced by the message's duration.

use async_openai::types::audio::{AudioInput, CreateTranscriptionRequest};
use serde::Deserialize;

use super::errors::{ErrorClass, LlmError};
use super::transport::OpenAiClient;

/// One recording to transcribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptionRequest {
    /// The transcription model (`gpt-4o-mini-transcribe`, `whisper-1`…).
    pub model: String,
    /// The recording's MIME type as Telegram gave it (it chooses the file name sent).
    pub mime_type: Option<String>,
    pub audio: Vec<u8>,
}

/// What the model heard, and what it reports having used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    pub usage: TranscriptionUsage,
}

/// Usage as the server reported it (zeros and `None` when it did not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TranscriptionUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The audio's length as billed by duration (whisper-1), rounded up to a second.
    pub seconds: Option<u32>,
}

/// A speech-to-text model; one HTTP request per call, never retried here.
#[async_trait::async_trait]
pub trait Transcriber: Send + Sync {
    async fn transcribe(&self, request: TranscriptionRequest) -> Result<Transcript, LlmError>;
}

pub(crate) struct OpenAiTranscriber {
    client: OpenAiClient,
}

impl OpenAiTranscriber {
    pub(crate) fn new(client: OpenAiClient) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl Transcriber for OpenAiTranscriber {
    async fn transcribe(&self, request: TranscriptionRequest) -> Result<Transcript, LlmError> {
        let name = upload_name(request.mime_type.as_deref());
        let body = CreateTranscriptionRequest {
            file: AudioInput::from_vec_u8(name.to_owned(), request.audio),
            model: request.model,
            ..CreateTranscriptionRequest::default()
        };
        let bytes = self
            .client
            .audio()
            .transcription()
            .create_raw(body)
            .await
            .map_err(LlmError::from_openai)?;
        read_transcript(&bytes)
    }
}

/// The file name the recording is uploaded as: its extension is how the endpoint tells the
/// format. Telegram's voice notes are `audio/ogg` (files named `.oga`).
pub fn upload_name(mime_type: Option<&str>) -> &'static str {
    match mime_type.unwrap_or("audio/ogg") {
        "audio/mpeg" | "audio/mp3" => "audio.mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/aac" => "audio.m4a",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "audio.wav",
        "audio/flac" | "audio/x-flac" => "audio.flac",
        "audio/webm" => "audio.webm",
        // Telegram's voice notes, and anything unnamed: OGG is what Telegram records.
        _ => "voice.ogg",
    }
}

#[derive(Deserialize)]
struct Body {
    text: String,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Usage {
    Tokens {
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
    },
    Duration {
        seconds: f64,
    },
}

/// The transcript in the endpoint's JSON answer.
fn read_transcript(bytes: &[u8]) -> Result<Transcript, LlmError> {
    let body: Body = serde_json::from_slice(bytes).map_err(|e| {
        LlmError::new(
            ErrorClass::Fatal,
            "invalid_response",
            format!("the transcription answer is not readable: {e}"),
        )
    })?;
    let usage = match body.usage {
        Some(Usage::Tokens {
            input_tokens,
            output_tokens,
        }) => TranscriptionUsage {
            input_tokens,
            output_tokens,
            seconds: None,
        },
        Some(Usage::Duration { seconds }) => TranscriptionUsage {
            seconds: Some(seconds.max(0.0).ceil() as u32),
            ..TranscriptionUsage::default()
        },
        None => TranscriptionUsage::default(),
    };
    Ok(Transcript {
        text: body.text.trim().to_owned(),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_notes_go_up_as_ogg_and_other_audio_keeps_its_format() {
        assert_eq!(upload_name(Some("audio/ogg")), "voice.ogg");
        assert_eq!(upload_name(None), "voice.ogg");
        assert_eq!(upload_name(Some("audio/mpeg")), "audio.mp3");
        assert_eq!(upload_name(Some("audio/x-m4a")), "audio.m4a");
    }

    #[test]
    fn usage_is_read_as_tokens_or_seconds_or_not_at_all() {
        let tokens = read_transcript(
            br#"{"text": " hello ", "usage": {"type": "tokens", "input_tokens": 14, "output_tokens": 45, "total_tokens": 59}}"#,
        )
        .unwrap();
        assert_eq!(tokens.text, "hello");
        assert_eq!(
            tokens.usage,
            TranscriptionUsage {
                input_tokens: 14,
                output_tokens: 45,
                seconds: None
            }
        );
        let seconds =
            read_transcript(br#"{"text": "hi", "usage": {"type": "duration", "seconds": 7.2}}"#)
                .unwrap();
        assert_eq!(seconds.usage.seconds, Some(8));
        let bare = read_transcript(br#"{"text": "hi"}"#).unwrap();
        assert_eq!(bare.usage, TranscriptionUsage::default());
        assert!(read_transcript(b"not json").is_err());
    }
}
