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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use cqrs_es::test::TestFramework;
    use cqrs_es::Aggregate;

    use super::*;
    use crate::chat::{
        Chat, ChatCommand, ChatEvent, ChatServices, GeneratedResponse, ResponseKind, TelegramChat,
        TokenUsage,
    };
    use crate::ids::{BotId, TurnKey, UpdateId};

    fn voice_received() -> ChatEvent {
        ChatEvent::MessageReceived {
            bot_id: BotId(uuid::Uuid::from_u128(1)),
            update_id: UpdateId(7),
            message_id: 70,
            chat: TelegramChat {
                id: 42,
                kind: "private".into(),
                title: None,
                username: None,
            },
            from: None,
            text: PersonalText::plain(""),
            sent_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            media: Some(VOICE.into()),
            files: vec![MediaFile {
                file_id: "voice-1".into(),
                duration_secs: Some(12),
                ..MediaFile::default()
            }],
        }
    }

    fn transcription() -> Transcription {
        Transcription {
            text: PersonalText::plain("what time is it"),
            model: "gpt-4o-mini-transcribe".into(),
            duration_secs: 12,
            input_tokens: 100,
            output_tokens: 10,
            cost_micro_usd: 350,
        }
    }

    fn image() -> ImageRef {
        ImageRef {
            file_id: "photo-1".into(),
            sha256: "ab".repeat(32),
            bytes: 2_000,
            mime_type: "image/jpeg".into(),
        }
    }

    fn turn() -> TurnKey {
        TurnKey::Update(UpdateId(7))
    }

    fn transcribed() -> ChatEvent {
        ChatEvent::MediaTranscribed {
            update_id: turn(),
            transcription: transcription(),
        }
    }

    #[test]
    fn a_transcript_is_recorded_once_per_turn() {
        TestFramework::<Chat>::with(ChatServices)
            .given(vec![voice_received()])
            .when(ChatCommand::RecordTranscription {
                update_id: turn(),
                transcription: transcription(),
            })
            .then_expect_events(vec![transcribed()]);
        // A runner that lost the race transcribed for nothing, and records nothing.
        TestFramework::<Chat>::with(ChatServices)
            .given(vec![voice_received(), transcribed()])
            .when(ChatCommand::RecordTranscription {
                update_id: turn(),
                transcription: transcription(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_transcript_becomes_the_turns_text_and_the_image_its_conversations() {
        let mut chat = Chat::default();
        chat.apply(voice_received());
        chat.apply(transcribed());
        chat.apply(ChatEvent::ImageAttached {
            update_id: turn(),
            image: image(),
        });
        let open = &chat.open_turns[0];
        assert_eq!(open.user_text, PersonalText::plain("what time is it"));
        assert_eq!(open.transcription.as_ref().unwrap().cost_micro_usd, 350);
        chat.apply(ChatEvent::ResponseGenerated {
            update_id: turn(),
            response: GeneratedResponse {
                text: PersonalText::plain("noon"),
                kind: ResponseKind::Llm {
                    model: "gpt-5-mini".into(),
                    response_id: None,
                    usage: TokenUsage::default(),
                    cost_micro_usd: 10,
                    charged_to: None,
                    context_turns: None,
                    stopped: false,
                },
            },
        });
        let conversation = &chat.conversation;
        assert_eq!(
            conversation.history[0].0,
            PersonalText::plain("what time is it")
        );
        assert_eq!(conversation.image_at(0), Some(&image()));
        assert_eq!(conversation.exchanges, 1);
    }

    #[test]
    fn an_image_attached_again_is_no_new_fact() {
        TestFramework::<Chat>::with(ChatServices)
            .given(vec![
                voice_received(),
                ChatEvent::ImageAttached {
                    update_id: turn(),
                    image: image(),
                },
            ])
            .when(ChatCommand::RecordImage {
                update_id: turn(),
                image: image(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn images_leave_with_their_exchanges() {
        let mut conversation = crate::chat::Conversation::default();
        for n in 0..25 {
            conversation.history.push_back((
                PersonalText::plain(format!("q{n}")),
                PersonalText::plain(format!("a{n}")),
            ));
            while conversation.history.len() > crate::chat::HISTORY_WINDOW {
                conversation.history.pop_front();
            }
            conversation.note_exchange((n == 2 || n == 24).then(image));
        }
        // Exchange 2 left the window of 20; exchange 24 is the newest, at index 19.
        assert_eq!(conversation.images.len(), 1);
        assert_eq!(conversation.image_at(19), Some(&image()));
        assert_eq!(conversation.image_at(18), None);
    }
}
