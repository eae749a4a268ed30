//! The model's answer as it is written: the same request as [`super::responses`] and
//! [`super::chat_completions`] make, asked for as server-sent events, its text published as it
//! grows. The reply at the end is the one the whole answer would have been (text, usage, model,
//! response id), so pricing and the recorded `ResponseGenerated` do not depend on streaming.
//!
//! A stream is one HTTP request like any other call: a failure before the first byte keeps its
//! status and `Retry-After` ([`super::transport`]); a stream that breaks or ends before the
//! provider said it was complete is `Retryable` (trying again gets the whole answer again).
//! Nothing of a broken stream is kept: the answer is only ever what a complete stream gave.

use async_openai::error::OpenAIError;
use async_openai::types::chat::ChatCompletionStreamOptions;
use async_openai::types::responses::ResponseStreamEvent;
use futures::StreamExt;

use super::errors::{ErrorClass, LlmError};
use super::transport::OpenAiClient;
use super::{chat_completions, responses, LlmReply, LlmRequest, TokenUsage};

/// The answer's text so far, for whoever shows it while the model writes; every delta is
/// appended, so a watcher sees the latest text and never has to keep up with each token.
pub type TextProgress = tokio::sync::watch::Sender<String>;

/// A stream that ended (the connection closed cleanly) before the provider finished.
fn ended_early() -> LlmError {
    LlmError::new(
        ErrorClass::Retryable,
        "stream_ended",
        "the answer's stream ended before it was complete",
    )
}

/// Skips an event this version of async-openai cannot read (a new kind of event): only the
/// text deltas and the final response matter here.
fn unreadable(error: &OpenAIError) -> bool {
    matches!(error, OpenAIError::JSONDeserialize(..))
}

/// The Responses API, streamed: `response.output_text.delta` events grow the text;
/// `response.completed`, `response.incomplete` or `response.failed` carry the response itself,
/// read exactly as a non-streamed one.
pub(super) async fn respond_with_responses(
    client: &OpenAiClient,
    request: &LlmRequest,
    progress: &TextProgress,
) -> Result<LlmReply, LlmError> {
    let mut events = client
        .responses()
        .create_stream(responses::create_response(request))
        .await
        .map_err(LlmError::from_openai)?;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) if unreadable(&error) => {
                tracing::debug!(%error, "skipping a stream event that cannot be read");
                continue;
            }
            Err(error) => return Err(LlmError::from_openai(error)),
        };
        match event {
            ResponseStreamEvent::ResponseOutputTextDelta(delta) => {
                progress.send_modify(|text| text.push_str(&delta.delta));
            }
            ResponseStreamEvent::ResponseCompleted(done) => return responses::reply(done.response),
            ResponseStreamEvent::ResponseIncomplete(done) => {
                return responses::reply(done.response)
            }
            ResponseStreamEvent::ResponseFailed(done) => return responses::reply(done.response),
            ResponseStreamEvent::ResponseError(error) => {
                let code = error.code.as_deref().unwrap_or("stream_error");
                // The stream's own error event: overload and rate limits pass, the rest would
                // recur on the same request.
                let class = match code {
                    "server_error" | "rate_limit_exceeded" | "stream_error" => {
                        ErrorClass::Retryable
                    }
                    _ => ErrorClass::Fatal,
                };
                return Err(LlmError::new(class, code, error.message));
            }
            _ => {}
        }
    }
    Err(ended_early())
}

/// Chat Completions, streamed: each chunk's `delta.content` grows the text; the usage comes in
/// a last chunk without choices (`stream_options.include_usage`). A choice's `finish_reason`
/// says the answer is complete: a stream closed before it is a broken one.
pub(super) async fn respond_with_chat_completions(
    client: &OpenAiClient,
    request: &LlmRequest,
    progress: &TextProgress,
) -> Result<LlmReply, LlmError> {
    let mut body = chat_completions::create_request(request);
    body.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut chunks = client
        .chat()
        .create_stream(body)
        .await
        .map_err(LlmError::from_openai)?;
    let mut text = String::new();
    let mut finished = false;
    let mut usage = TokenUsage::default();
    let (mut id, mut model) = (None, String::new());
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) if unreadable(&error) => {
                tracing::debug!(%error, "skipping a stream chunk that cannot be read");
                continue;
            }
            Err(error) => return Err(LlmError::from_openai(error)),
        };
        id.get_or_insert(chunk.id);
        if model.is_empty() {
            model = chunk.model;
        }
        if let Some(reported) = chunk.usage {
            usage = chat_completions::token_usage(reported);
        }
        // Only the first choice is the answer, as without streaming.
        if let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) {
            if let Some(content) = choice.delta.content.filter(|c| !c.is_empty()) {
                text.push_str(&content);
                progress.send_modify(|shown| shown.push_str(&content));
            }
            finished |= choice.finish_reason.is_some();
        }
    }
    if !finished {
        return Err(ended_early());
    }
    Ok(LlmReply {
        text,
        response_id: id,
        model,
        usage,
    })
}
