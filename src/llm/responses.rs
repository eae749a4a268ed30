//! The OpenAI Responses API adapter: the provider keeps the conversation (`store: true`), and
//! each turn names the previous response, so only the new message is sent. A turn that starts
//! a new chain (the conversation's limits were reached) sends the exchanges it keeps as input
//! items instead.

use async_openai::types::responses::{
    CreateResponse, EasyInputContent, EasyInputMessage, InputContent, InputImageContent, InputItem,
    InputParam, InputTextContent, MessageType, OutputItem, OutputMessageContent, Response,
    ResponseErrorCode, Role, Status,
};

use super::errors::{ErrorClass, LlmError};
use super::transport::OpenAiClient;
use super::{ImageTurn, LanguageModel, LlmReply, LlmRequest, TokenUsage};

pub(crate) struct ResponsesModel {
    client: OpenAiClient,
}

impl ResponsesModel {
    pub(crate) fn new(client: OpenAiClient) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl LanguageModel for ResponsesModel {
    async fn respond(&self, request: &LlmRequest) -> Result<LlmReply, LlmError> {
        let response = self
            .client
            .responses()
            .create(create_response(request))
            .await
            .map_err(LlmError::from_openai)?;
        reply(response)
    }

    async fn respond_streaming(
        &self,
        request: &LlmRequest,
        progress: &super::TextProgress,
    ) -> Result<LlmReply, LlmError> {
        super::streaming::respond_with_responses(&self.client, request, progress).await
    }

    fn keeps_conversation(&self) -> bool {
        true
    }
}

pub(super) fn create_response(request: &LlmRequest) -> CreateResponse {
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
    let previous_response_id = request.previous_response_id.as_deref().and_then(non_empty);
    let input = if !request.images.is_empty() {
        input_with_images(request, previous_response_id.is_some())
    } else if previous_response_id.is_some() || request.history.is_empty() {
        InputParam::Text(request.user_text.clone())
    } else {
        let message = |role, text: &str| {
            InputItem::EasyMessage(EasyInputMessage {
                r#type: MessageType::Message,
                role,
                content: EasyInputContent::Text(text.to_owned()),
                phase: None,
            })
        };
        let mut items = Vec::with_capacity(request.history.len() * 2 + 1);
        for turn in &request.history {
            items.push(message(Role::User, &turn.user));
            items.push(message(Role::Assistant, &turn.assistant));
        }
        items.push(message(Role::User, &request.user_text));
        InputParam::Items(items)
    };
    CreateResponse {
        model: Some(request.model.clone()),
        input,
        instructions: non_empty(&request.instructions),
        previous_response_id,
        store: Some(true),
        ..CreateResponse::default()
    }
}

/// The input of a turn with images: its messages as items, each user message with its
/// images as `input_image` parts (data URLs). Continuing a chain, only the turn's own message
/// is sent: the provider keeps the earlier ones, images included.
fn input_with_images(request: &LlmRequest, continues_chain: bool) -> InputParam {
    let message = |role, text: &str, turn: Option<ImageTurn>| {
        let images: Vec<InputContent> = request
            .images
            .iter()
            .filter(|image| Some(image.turn) == turn)
            .map(|image| {
                InputContent::InputImage(InputImageContent {
                    image_url: Some(image.data_url.clone()),
                    ..InputImageContent::default()
                })
            })
            .collect();
        let content = if images.is_empty() {
            EasyInputContent::Text(text.to_owned())
        } else {
            // A photo without a caption is sent as the image alone.
            let text = (!text.trim().is_empty()).then(|| {
                InputContent::InputText(InputTextContent {
                    text: text.to_owned(),
                    prompt_cache_breakpoint: None,
                })
            });
            EasyInputContent::ContentList(text.into_iter().chain(images).collect())
        };
        InputItem::EasyMessage(EasyInputMessage {
            r#type: MessageType::Message,
            role,
            content,
            phase: None,
        })
    };
    let mut items = Vec::new();
    if !continues_chain {
        for (index, turn) in request.history.iter().enumerate() {
            let user = message(Role::User, &turn.user, Some(ImageTurn::History(index)));
            items.push(user);
            items.push(message(Role::Assistant, &turn.assistant, None));
        }
    }
    items.push(message(
        Role::User,
        &request.user_text,
        Some(ImageTurn::Current),
    ));
    InputParam::Items(items)
}

pub(super) fn reply(response: Response) -> Result<LlmReply, LlmError> {
    if response.status == Status::Failed {
        return Err(failed(&response));
    }
    let text = output_text(&response);
    if text.is_empty() && response.status != Status::Completed {
        let reason = response
            .incomplete_details
            .as_ref()
            .map_or("no reason given", |d| d.reason.as_str());
        return Err(LlmError::new(
            ErrorClass::Fatal,
            "response_incomplete",
            format!("the response ended without text: {reason}"),
        ));
    }
    let usage = response
        .usage
        .as_ref()
        .map(|u| TokenUsage {
            input_tokens: u.input_tokens.into(),
            cached_input_tokens: u.input_tokens_details.cached_tokens.into(),
            output_tokens: u.output_tokens.into(),
            reasoning_tokens: u.output_tokens_details.reasoning_tokens.into(),
        })
        .unwrap_or_default();
    Ok(LlmReply {
        text,
        response_id: Some(response.id),
        model: response.model,
        usage,
    })
}

/// Every `output_text` part of every message item, in order.
fn output_text(response: &Response) -> String {
    response
        .output
        .iter()
        .filter_map(|item| match item {
            OutputItem::Message(message) => Some(&message.content),
            _ => None,
        })
        .flatten()
        .filter_map(|content| match content {
            OutputMessageContent::OutputText(part) => Some(part.text.as_str()),
            _ => None,
        })
        .collect()
}

/// A response the provider accepted but could not complete (HTTP 200, `status: failed`).
fn failed(response: &Response) -> LlmError {
    let Some(error) = &response.error else {
        return LlmError::new(ErrorClass::Retryable, "response_failed", "no error given");
    };
    let class = match error.code {
        ResponseErrorCode::ServerError | ResponseErrorCode::RateLimitExceeded => {
            ErrorClass::Retryable
        }
        _ => ErrorClass::Fatal,
    };
    let code = serde_json::to_value(&error.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "response_failed".to_owned());
    LlmError::new(class, &code, error.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: serde_json::Value) -> Response {
        serde_json::from_value(value).expect("a Response")
    }

    fn response(status: &str, output: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-5-mini-2025-08-07",
            "status": status, "output": output,
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 20},
                      "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 10},
                      "total_tokens": 150}
        })
    }

    fn message(parts: &[&str]) -> serde_json::Value {
        let content: Vec<_> = parts
            .iter()
            .map(|t| serde_json::json!({"type": "output_text", "text": t, "annotations": []}))
            .collect();
        serde_json::json!({"type": "message", "id": "msg_1", "role": "assistant",
                           "status": "completed", "content": content})
    }

    #[test]
    fn the_request_sends_only_what_is_set() {
        let mut request = LlmRequest {
            model: "gpt-5-mini".into(),
            user_text: "hi".into(),
            ..LlmRequest::default()
        };
        let body = serde_json::to_value(create_response(&request)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "gpt-5-mini", "input": "hi", "store": true})
        );

        request.instructions = "Be brief.".into();
        request.previous_response_id = Some("resp_7".into());
        let body = serde_json::to_value(create_response(&request)).unwrap();
        assert_eq!(body["instructions"], "Be brief.");
        assert_eq!(body["previous_response_id"], "resp_7");
        // Continuing a chain, the history stays with the provider.
        request.history = vec![super::super::HistoryTurn {
            user: "q1".into(),
            assistant: "a1".into(),
        }];
        let body = serde_json::to_value(create_response(&request)).unwrap();
        assert_eq!(body["input"], "hi");
    }

    #[test]
    fn a_new_chain_starts_from_the_exchanges_it_keeps() {
        let request = LlmRequest {
            model: "gpt-5-mini".into(),
            user_text: "now".into(),
            history: vec![super::super::HistoryTurn {
                user: "q1".into(),
                assistant: "a1".into(),
            }],
            ..LlmRequest::default()
        };
        let body = serde_json::to_value(create_response(&request)).unwrap();
        assert_eq!(body.get("previous_response_id"), None);
        assert_eq!(
            body["input"],
            serde_json::json!([
                {"type": "message", "role": "user", "content": "q1"},
                {"type": "message", "role": "assistant", "content": "a1"},
                {"type": "message", "role": "user", "content": "now"},
            ])
        );
    }

    #[test]
    fn text_joins_output_text_parts_of_message_items() {
        let reasoning = serde_json::json!({"type": "reasoning", "id": "rs_1", "summary": []});
        let reply = reply(parse(response(
            "completed",
            serde_json::json!([reasoning, message(&["Hello", ", world"]), message(&["!"])]),
        )))
        .unwrap();
        assert_eq!(reply.text, "Hello, world!");
        assert_eq!(reply.response_id.as_deref(), Some("resp_1"));
        assert_eq!(reply.model, "gpt-5-mini-2025-08-07");
        assert_eq!(
            reply.usage,
            TokenUsage {
                input_tokens: 100,
                cached_input_tokens: 20,
                output_tokens: 50,
                reasoning_tokens: 10
            }
        );
    }

    #[test]
    fn a_failed_response_is_an_error_of_its_code() {
        let mut body = response("failed", serde_json::json!([]));
        body["error"] = serde_json::json!({"code": "server_error", "message": "boom"});
        let error = reply(parse(body.clone())).unwrap_err();
        assert_eq!(error.class, ErrorClass::Retryable);
        assert_eq!(error.code.as_deref(), Some("server_error"));
        assert_eq!(error.message, "boom");

        body["error"] = serde_json::json!({"code": "invalid_prompt", "message": "no"});
        let error = reply(parse(body)).unwrap_err();
        assert_eq!(error.class, ErrorClass::Fatal);
        assert_eq!(error.code.as_deref(), Some("invalid_prompt"));
    }

    #[test]
    fn an_incomplete_response_without_text_is_fatal() {
        let mut body = response("incomplete", serde_json::json!([]));
        body["incomplete_details"] = serde_json::json!({"reason": "max_output_tokens"});
        let error = reply(parse(body)).unwrap_err();
        assert_eq!(error.class, ErrorClass::Fatal);
        assert!(error.message.contains("max_output_tokens"));
    }

    #[test]
    fn images_go_as_input_image_parts_and_a_chain_sends_only_the_turns_own() {
        use crate::llm::{ImageTurn, PromptImage};
        let mut request = LlmRequest {
            model: "gpt-5-mini".into(),
            user_text: "and this?".into(),
            history: vec![super::super::HistoryTurn {
                user: "look".into(),
                assistant: "a cat".into(),
            }],
            images: vec![
                PromptImage::new(ImageTurn::History(0), "image/png", b"old"),
                PromptImage::new(ImageTurn::Current, "image/jpeg", b"new"),
            ],
            ..LlmRequest::default()
        };
        let body = serde_json::to_value(create_response(&request)).unwrap();
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 3);
        assert_eq!(input[0]["content"][1]["type"], "input_image");
        assert_eq!(
            input[0]["content"][1]["image_url"],
            "data:image/png;base64,b2xk"
        );
        assert_eq!(input[1]["content"], "a cat");
        assert_eq!(input[2]["content"][0]["text"], "and this?");
        assert_eq!(
            input[2]["content"][1]["image_url"],
            "data:image/jpeg;base64,bmV3"
        );

        request.previous_response_id = Some("resp_1".into());
        let body = serde_json::to_value(create_response(&request)).unwrap();
        let input = body["input"].as_array().unwrap();
        assert_eq!(input.len(), 1, "the chain keeps the earlier turns: {body}");
        assert_eq!(
            input[0]["content"][1]["image_url"],
            "data:image/jpeg;base64,bmV3"
        );
    }
}
