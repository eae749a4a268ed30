//! Asking a language model for a bot's reply: one call, one HTTP request, one classified result.
//!
//! The effect runner codes against [`LanguageModel`] only. Two adapters implement it on
//! async-openai: [`LlmApi::Responses`] (OpenAI's Responses API, conversation state kept by the
//! provider through `previous_response_id`) and [`LlmApi::ChatCompletions`] (any
//! OpenAI-compatible server; the history travels in every request). Neither retries: the
//! runner owns retries and records every attempt, so an [`LlmError`] says only whether trying
//! again could help ([`ErrorClass`]) and how long the provider asked us to wait.
//!
//! Either can stream its answer ([`streaming`]): the same one request, its text published as it
//! grows, ending in the same reply.
//!
//! Money is counted in [`pricing`], in integer micro-USD.

mod chat_completions;
pub mod concurrency;
mod errors;
pub mod images;
pub mod pricing;
pub mod prompt;
mod responses;
pub mod streaming;
pub mod transcription;
mod transport;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use errors::{ErrorClass, LlmError};
pub use images::{ImageTurn, PromptImage};
pub use pricing::{ModelPrice, PriceTable, PricingError};
pub use streaming::TextProgress;
pub use transcription::{Transcriber, Transcript, TranscriptionRequest};

/// One turn to answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlmRequest {
    pub model: String,
    /// The bot's instructions; when empty, no system message or `instructions` is sent.
    pub instructions: String,
    /// This turn's input.
    pub user_text: String,
    /// Responses mode: the provider-side conversation state to continue from.
    pub previous_response_id: Option<String>,
    /// Earlier turns, oldest first: in Chat Completions mode the conversation (bounded by
    /// [`prompt`]); in Responses mode the exchanges a new chain starts from, sent only
    /// without `previous_response_id`.
    pub history: Vec<HistoryTurn>,
    /// Images for the model to look at: this turn's, and those of the `history` sent along
    /// (a chain kept by the provider keeps its own).
    pub images: Vec<PromptImage>,
}

/// One earlier exchange of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryTurn {
    pub user: String,
    pub assistant: String,
}

/// The model's answer to one [`LlmRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmReply {
    pub text: String,
    /// The response id (Responses) or the completion id (Chat Completions).
    pub response_id: Option<String>,
    /// The model the provider says answered (may be a dated snapshot of the requested one).
    pub model: String,
    pub usage: TokenUsage,
}

/// Tokens billed for one call. `reasoning_tokens` are part of `output_tokens` and
/// `cached_input_tokens` part of `input_tokens` (breakdowns, not additions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

/// A language model that answers one turn per call, making exactly one HTTP request.
#[async_trait::async_trait]
pub trait LanguageModel: Send + Sync {
    async fn respond(&self, request: &LlmRequest) -> Result<LlmReply, LlmError>;

    /// Answers as [`Self::respond`] does, with the same one request, publishing the text to
    /// `progress` as it is written ([`streaming`]). A model that cannot stream answers whole.
    async fn respond_streaming(
        &self,
        request: &LlmRequest,
        progress: &TextProgress,
    ) -> Result<LlmReply, LlmError> {
        let _ = progress;
        self.respond(request).await
    }

    /// Whether the provider keeps the conversation (Responses): then a turn sends only its
    /// message and names the previous response, and the context is the chain behind it.
    fn keeps_conversation(&self) -> bool {
        false
    }
}

/// Which OpenAI API the adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LlmApi {
    #[default]
    Responses,
    ChatCompletions,
}

impl FromStr for LlmApi {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "responses" => Ok(Self::Responses),
            "chat_completions" => Ok(Self::ChatCompletions),
            other => Err(format!(
                "unknown LLM API {other:?}: expected \"responses\" or \"chat_completions\""
            )),
        }
    }
}

impl std::fmt::Display for LlmApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Responses => "responses",
            Self::ChatCompletions => "chat_completions",
        })
    }
}

/// The adapter for `api` at `base_url` (which includes `/v1`), each request bounded by `timeout`.
pub fn language_model(
    api: LlmApi,
    base_url: &url::Url,
    api_key: Option<&str>,
    timeout: Duration,
) -> Arc<dyn LanguageModel> {
    let client = transport::client(base_url, api_key, timeout);
    match api {
        LlmApi::Responses => Arc::new(responses::ResponsesModel::new(client)),
        LlmApi::ChatCompletions => Arc::new(chat_completions::ChatCompletionsModel::new(client)),
    }
}

/// The transcription client for `base_url` (which includes `/v1`): the model's server and
/// key, one bounded attempt per call.
pub fn transcriber(
    base_url: &url::Url,
    api_key: Option<&str>,
    timeout: Duration,
) -> Arc<dyn Transcriber> {
    let client = transport::client(base_url, api_key, timeout);
    Arc::new(transcription::OpenAiTranscriber::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_parse_and_print() {
        assert_eq!("responses".parse::<LlmApi>(), Ok(LlmApi::Responses));
        assert_eq!(
            "chat_completions".parse::<LlmApi>(),
            Ok(LlmApi::ChatCompletions)
        );
        assert!("assistants".parse::<LlmApi>().is_err());
        assert_eq!(LlmApi::ChatCompletions.to_string(), "chat_completions");
        assert_eq!(LlmApi::default(), LlmApi::Responses);
    }
}
