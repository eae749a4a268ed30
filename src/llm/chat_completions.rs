//! The Chat Completions adapter, for any OpenAI-compatible server: the server keeps no
//! conversation, so every request carries the instructions and a bounded history
//! (see [`super::prompt`]).
//!
//! Compatible servers vary in what usage they report: missing details count as 0. (A `usage`
//! object must still have `prompt_tokens`, `completion_tokens` and `total_tokens`, as
//! async-openai's type requires; servers that send `usage` do.)

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestMessageContentPartImage, ChatCompletionRequestMessageContentPartText,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
    CompletionUsage, CreateChatCompletionRequest, CreateChatCompletionResponse, ImageUrl,
};

use super::errors::{ErrorClass, LlmError};
use super::prompt::{chat_prompt_with_images, PromptMessage, Role};
use super::transport::OpenAiClient;
use super::{LanguageModel, LlmReply, LlmRequest, TokenUsage};

pub(crate) struct ChatCompletionsModel {
    client: OpenAiClient,
}

impl ChatCompletionsModel {
    pub(crate) fn new(client: OpenAiClient) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl LanguageModel for ChatCompletionsModel {
    async fn respond(&self, request: &LlmRequest) -> Result<LlmReply, LlmError> {
        let response = self
            .client
            .chat()
            .create(create_request(request))
            .await
            .map_err(LlmError::from_openai)?;
        reply(response)
    }

    async fn respond_streaming(
        &self,
        request: &LlmRequest,
        progress: &super::TextProgress,
    ) -> Result<LlmReply, LlmError> {
        super::streaming::respond_with_chat_completions(&self.client, request, progress).await
    }
}

pub(super) fn create_request(request: &LlmRequest) -> CreateChatCompletionRequest {
    let messages = chat_prompt_with_images(
        &request.instructions,
        &request.history,
        &request.user_text,
        &request.images,
    )
    .into_iter()
    .map(message)
    .collect();
    CreateChatCompletionRequest {
        model: request.model.clone(),
        messages,
        ..CreateChatCompletionRequest::default()
    }
}

fn message(message: PromptMessage) -> ChatCompletionRequestMessage {
    if !message.images.is_empty() {
        return user_with_images(message);
    }
    match message.role {
        Role::System => ChatCompletionRequestSystemMessage::from(message.content).into(),
        Role::User => ChatCompletionRequestUserMessage::from(message.content).into(),
        Role::Assistant => ChatCompletionRequestAssistantMessage::from(message.content).into(),
    }
}

/// A user message with images: its text (none for a photo without a caption), then an
/// `image_url` part per image (a data URL).
fn user_with_images(message: PromptMessage) -> ChatCompletionRequestMessage {
    let text = (!message.content.trim().is_empty()).then_some(
        ChatCompletionRequestUserMessageContentPart::Text(
            ChatCompletionRequestMessageContentPartText {
                text: message.content,
                prompt_cache_breakpoint: None,
            },
        ),
    );
    let images = message.images.into_iter().map(|url| {
        ChatCompletionRequestUserMessageContentPart::ImageUrl(
            ChatCompletionRequestMessageContentPartImage {
                image_url: ImageUrl { url, detail: None },
                prompt_cache_breakpoint: None,
            },
        )
    });
    ChatCompletionRequestUserMessage {
        content: ChatCompletionRequestUserMessageContent::Array(
            text.into_iter().chain(images).collect(),
        ),
        name: None,
    }
    .into()
}

fn reply(response: CreateChatCompletionResponse) -> Result<LlmReply, LlmError> {
    let Some(choice) = response.choices.into_iter().next() else {
        return Err(LlmError::new(
            ErrorClass::Fatal,
            "invalid_response",
            "the completion has no choices",
        ));
    };
    let usage = response.usage.map(token_usage).unwrap_or_default();
    Ok(LlmReply {
        text: choice.message.content.unwrap_or_default(),
        response_id: Some(response.id),
        model: response.model,
        usage,
    })
}

/// The tokens a compatible server reports; details it leaves out count as 0.
pub(super) fn token_usage(u: CompletionUsage) -> TokenUsage {
    TokenUsage {
        input_tokens: u.prompt_tokens.into(),
        cached_input_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
            .into(),
        output_tokens: u.completion_tokens.into(),
        reasoning_tokens: u
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::HistoryTurn;

    #[test]
    fn the_request_carries_the_prompt_in_order() {
        let request = LlmRequest {
            model: "llama3".into(),
            instructions: "Be brief.".into(),
            user_text: "and now?".into(),
            history: vec![HistoryTurn {
                user: "hi".into(),
                assistant: "hello".into(),
            }],
            ..LlmRequest::default()
        };
        let body = serde_json::to_value(create_request(&request)).unwrap();
        assert_eq!(body["model"], "llama3");
        assert_eq!(
            body["messages"],
            serde_json::json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "and now?"},
            ])
        );
    }

    #[test]
    fn usage_details_missing_on_a_compatible_server_count_as_zero() {
        let response: CreateChatCompletionResponse = serde_json::from_value(serde_json::json!({
            "id": "cmpl-1", "object": "chat.completion", "created": 1, "model": "llama3",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hey"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        }))
        .unwrap();
        let reply = reply(response).unwrap();
        assert_eq!(reply.text, "hey");
        assert_eq!(reply.response_id.as_deref(), Some("cmpl-1"));
        assert_eq!(
            reply.usage,
            TokenUsage {
                input_tokens: 12,
                cached_input_tokens: 0,
                output_tokens: 3,
                reasoning_tokens: 0
            }
        );
    }

    #[test]
    fn no_choices_is_an_invalid_response() {
        let response: CreateChatCompletionResponse = serde_json::from_value(serde_json::json!({
            "id": "cmpl-1", "object": "chat.completion", "created": 1, "model": "llama3",
            "choices": []
        }))
        .unwrap();
        let error = reply(response).unwrap_err();
        assert_eq!(error.class, ErrorClass::Fatal);
        assert_eq!(error.code.as_deref(), Some("invalid_response"));
    }

    #[test]
    fn images_go_as_image_url_parts_beside_their_text() {
        use crate::llm::{ImageTurn, PromptImage};
        let request = LlmRequest {
            model: "gpt-4o".into(),
            user_text: String::new(),
            images: vec![PromptImage::new(ImageTurn::Current, "image/png", b"png")],
            ..LlmRequest::default()
        };
        let body = serde_json::to_value(create_request(&request)).unwrap();
        // No caption: the image alone.
        assert_eq!(
            body["messages"][0]["content"],
            serde_json::json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,cG5n"}}])
        );
        let request = LlmRequest {
            user_text: "what is it?".into(),
            ..request
        };
        let body = serde_json::to_value(create_request(&request)).unwrap();
        assert_eq!(body["messages"][0]["content"][0]["text"], "what is it?");
        assert_eq!(body["messages"][0]["content"][1]["type"], "image_url");
    }
}
