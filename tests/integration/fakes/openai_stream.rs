//! The fake OpenAI's streamed answers (`"stream": true`): server-sent events in the shapes
//! async-openai 0.43 reads, a token (a word, or the space after it) at a set pace, and on
//! script a stream that stops halfway without saying it is complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poem::{Body, Response};
use serde_json::{json, Value};

use super::openai::{chat_reply, responses_reply};

/// One streamed answer.
pub struct Stream {
    /// The response's (or completion's) number.
    pub n: u64,
    pub text: String,
    /// The wait before each token.
    pub pace: Duration,
    /// Stop after half the tokens, without the final event.
    pub broken: bool,
    /// Counts the streams dropped (the client hung up) before their last event.
    pub abandoned: Arc<AtomicU64>,
}

/// Counts its stream as abandoned when dropped before the last event went out.
struct Unfinished(Option<Arc<AtomicU64>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(counter) = self.0.take() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Stream {
    pub fn answer(self, path: &str, request: &Value) -> Response {
        let tokens = tokens(&self.text);
        let sent = if self.broken {
            tokens.len() / 2
        } else {
            tokens.len()
        };
        let mut events: Vec<String> = Vec::with_capacity(sent + 3);
        let responses = path == "/v1/responses";
        for (index, token) in tokens.iter().take(sent).enumerate() {
            events.push(if responses {
                sse(
                    "response.output_text.delta",
                    &json!({"type": "response.output_text.delta", "sequence_number": index + 1,
                            "item_id": format!("msg_{}", self.n), "output_index": 0,
                            "content_index": 0, "delta": token, "logprobs": []}),
                )
            } else {
                data(&self.chunk(
                    request,
                    json!({"role": "assistant", "content": token}),
                    None,
                ))
            });
        }
        if !self.broken {
            if responses {
                let response = responses_reply(self.n, request, &self.text);
                events.push(sse(
                    "response.completed",
                    &json!({"type": "response.completed", "sequence_number": sent + 1,
                            "response": response}),
                ));
            } else {
                events.push(data(&self.chunk(request, json!({}), Some("stop"))));
                let mut last = self.chunk(request, json!({}), None);
                last["choices"] = json!([]);
                last["usage"] = chat_reply(self.n, request, &self.text)["usage"].clone();
                events.push(data(&last));
                events.push("data: [DONE]\n\n".to_owned());
            }
        }
        let pace = self.pace;
        let token_events = sent;
        let last = events.len().saturating_sub(1);
        let unfinished = Unfinished(Some(self.abandoned));
        let body = futures::stream::unfold(
            (events.into_iter().enumerate(), pace, unfinished),
            move |(mut events, pace, mut unfinished)| async move {
                let (index, event) = events.next()?;
                if index < token_events && !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
                if index == last {
                    unfinished.0 = None;
                }
                Some((Ok::<_, std::io::Error>(event), (events, pace, unfinished)))
            },
        );
        Response::builder()
            .content_type("text/event-stream")
            .body(Body::from_bytes_stream(body))
    }

    fn chunk(&self, request: &Value, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": format!("chatcmpl_{}", self.n),
            "object": "chat.completion.chunk",
            "created": chrono::Utc::now().timestamp(),
            "model": request.get("model").cloned().unwrap_or_else(|| json!("gpt-5")),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        })
    }
}

/// Words and the whitespace after each, so that the tokens join back into the text.
pub fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_whitespace() && !current.is_empty() && !current.ends_with(char::is_whitespace) {
            tokens.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn sse(event: &str, value: &Value) -> String {
    format!("event: {event}\ndata: {value}\n\n")
}

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}
