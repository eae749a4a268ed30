//! A fake OpenAI API on 127.0.0.1: the Responses and Chat Completions endpoints, answering in
//! the shapes async-openai 0.43 reads, recording every call and failing on script.
//!
//! Replies echo the user's text (`echo: <text>`) unless a fixed reply is set; usage is always
//! 100 input tokens (20 cached) and 50 output tokens (10 of them reasoning).
//!
//! `/v1/audio/transcriptions` reads the multipart form: the call is recorded with a JSON body
//! of its text fields and, for the file, `{"file": {"name", "content_type", "bytes"}}`. It
//! answers [`TRANSCRIPT`] (or the one set) with usage of 1,000 input and 200 output tokens.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Response, Route, Server};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct RecordedLlmCall {
    /// `/v1/responses` or `/v1/chat/completions` (or whatever else was asked for).
    pub path: String,
    /// The JSON body (`null` when it was not JSON).
    pub body: Value,
    /// The `Authorization` header, when sent.
    pub authorization: Option<String>,
}

#[derive(Clone, Debug)]
struct ScriptedFailure {
    status: u16,
    body: Value,
    retry_after_secs: Option<u64>,
}

#[derive(Default)]
struct Script {
    calls: Vec<RecordedLlmCall>,
    failures: VecDeque<ScriptedFailure>,
    delay: Duration,
    reply: Option<String>,
    /// What every recording is heard as; `None`: [`TRANSCRIPT`].
    transcript: Option<String>,
    /// Streamed answers: the wait before each token.
    token_pace: Duration,
    /// Streamed answers still to break off midway (half the tokens, then the stream closes
    /// without saying it is complete).
    broken_streams: usize,
}

/// What the fake hears in any recording, unless told otherwise.
pub const TRANSCRIPT: &str = "what is the capital of France";

struct Shared {
    script: Mutex<Script>,
    /// The number of calls received so far, for [`FakeOpenAi::wait_for_requests`].
    arrived: watch::Sender<usize>,
    next_response: AtomicU64,
    next_completion: AtomicU64,
    /// Streams whose client hung up before the last event was sent.
    abandoned_streams: Arc<AtomicU64>,
}

impl Shared {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script
            .lock()
            .expect("the fake's state is not poisoned")
    }
}

pub struct FakeOpenAi {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(Script::default()),
            arrived: watch::channel(0).0,
            next_response: AtomicU64::new(1),
            next_completion: AtomicU64::new(1),
            abandoned_streams: Arc::default(),
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("the fake OpenAI binds a port");
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .expect("the fake OpenAI has a socket address");
        let routes = Route::new().at("/*path", serve).data(shared.clone());
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(routes).await;
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            shared,
            server,
        }
    }

    /// Every call so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedLlmCall> {
        self.shared.script().calls.clone()
    }

    /// Every reply (success or scripted failure) waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.script().delay = delay;
    }

    /// The next `times` calls answer `status` with `body` (and `Retry-After` when given),
    /// after any failures already scripted.
    pub fn fail_next(&self, times: usize, status: u16, body: Value, retry_after_secs: Option<u64>) {
        let failure = ScriptedFailure {
            status,
            body,
            retry_after_secs,
        };
        self.shared
            .script()
            .failures
            .extend(std::iter::repeat_n(failure, times));
    }

    /// A fixed reply text; `None` brings back the default `echo: <user text>`.
    pub fn set_reply(&self, text: Option<String>) {
        self.shared.script().reply = text;
    }

    /// What every recording is heard as; `None` brings back [`TRANSCRIPT`].
    pub fn set_transcript(&self, text: Option<String>) {
        self.shared.script().transcript = text;
    }

    /// How many streamed answers the client hung up on before their last event.
    pub fn abandoned_streams(&self) -> u64 {
        self.shared.abandoned_streams.load(Ordering::SeqCst)
    }

    /// Streamed answers wait this long before each token (a word or the space after it).
    pub fn set_token_pace(&self, pace: Duration) {
        self.shared.script().token_pace = pace;
    }

    /// The next `times` streamed answers stop halfway: the connection closes cleanly before
    /// the provider's "complete" (no `response.completed`, no `finish_reason`).
    pub fn break_next_streams(&self, times: usize) {
        self.shared.script().broken_streams += times;
    }

    /// Waits until at least `n` calls have arrived; panics after `timeout`.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) {
        let mut arrived = self.shared.arrived.subscribe();
        let waited = tokio::time::timeout(timeout, arrived.wait_for(|count| *count >= n)).await;
        match waited {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("the fake OpenAI stopped"),
            Err(_) => panic!(
                "expected {n} LLM calls within {timeout:?}, got {}: {:#?}",
                self.requests().len(),
                self.requests()
            ),
        }
    }
}

/// An error body in OpenAI's shape.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

#[handler]
async fn serve(request: &Request, body: Vec<u8>, shared: Data<&Arc<Shared>>) -> Response {
    let content_type = request.content_type().unwrap_or_default().to_owned();
    let call = RecordedLlmCall {
        path: request.uri().path().to_owned(),
        body: match content_type.split("boundary=").nth(1) {
            Some(boundary) => multipart_fields(&body, boundary.trim_matches('"')),
            None => serde_json::from_slice(&body).unwrap_or(Value::Null),
        },
        authorization: request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let (delay, reply, transcript, pace) = {
        let mut script = shared.script();
        script.calls.push(call.clone());
        shared.arrived.send_replace(script.calls.len());
        let transcript = script.transcript.clone();
        (
            script.delay,
            script.reply.clone(),
            transcript,
            script.token_pace,
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let failure = shared.script().failures.pop_front();
    if let Some(failure) = failure {
        return failure_response(failure);
    }
    let streamed = call.body.get("stream").and_then(Value::as_bool) == Some(true);
    if streamed {
        let broken = {
            let mut script = shared.script();
            let broken = script.broken_streams > 0;
            script.broken_streams = script.broken_streams.saturating_sub(1);
            broken
        };
        let (n, text) = if call.path == "/v1/responses" {
            let n = shared.next_response.fetch_add(1, Ordering::SeqCst);
            (
                n,
                reply.unwrap_or_else(|| format!("echo: {}", responses_user_text(&call.body))),
            )
        } else {
            let n = shared.next_completion.fetch_add(1, Ordering::SeqCst);
            (
                n,
                reply.unwrap_or_else(|| format!("echo: {}", chat_user_text(&call.body))),
            )
        };
        let stream = super::openai_stream::Stream {
            n,
            text,
            pace,
            broken,
            abandoned: shared.abandoned_streams.clone(),
        };
        return stream.answer(&call.path, &call.body);
    }
    match call.path.as_str() {
        "/v1/responses" => {
            let n = shared.next_response.fetch_add(1, Ordering::SeqCst);
            let text =
                reply.unwrap_or_else(|| format!("echo: {}", responses_user_text(&call.body)));
            json_response(StatusCode::OK, responses_reply(n, &call.body, &text))
        }
        "/v1/chat/completions" => {
            let n = shared.next_completion.fetch_add(1, Ordering::SeqCst);
            let text = reply.unwrap_or_else(|| format!("echo: {}", chat_user_text(&call.body)));
            json_response(StatusCode::OK, chat_reply(n, &call.body, &text))
        }
        "/v1/audio/transcriptions" => json_response(
            StatusCode::OK,
            json!({
                "text": transcript.unwrap_or_else(|| TRANSCRIPT.to_owned()),
                "usage": {"type": "tokens", "input_tokens": 1000, "output_tokens": 200,
                          "total_tokens": 1200,
                          "input_token_details": {"text_tokens": 0, "audio_tokens": 1000}}
            }),
        ),
        other => json_response(
            StatusCode::NOT_FOUND,
            error_body(
                &format!("Unknown path {other}"),
                "invalid_request_error",
                Some("unknown_url"),
            ),
        ),
    }
}

/// A multipart form's fields as JSON: text fields as strings, a file as its name, type and
/// byte count.
fn multipart_fields(body: &[u8], boundary: &str) -> Value {
    let delimiter = format!("--{boundary}");
    let mut fields = serde_json::Map::new();
    for part in split_bytes(body, delimiter.as_bytes()) {
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let mut value = &part[split + 4..];
        if value.ends_with(b"\r\n") {
            value = &value[..value.len() - 2];
        }
        let attribute = |name: &str| {
            headers
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        };
        let Some(name) = attribute("name") else {
            continue;
        };
        let field = match attribute("filename") {
            Some(file_name) => json!({
                "name": file_name,
                "content_type": headers
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|t| t.trim().to_owned())),
                "bytes": value.len(),
            }),
            None => Value::String(String::from_utf8_lossy(value).into_owned()),
        };
        fields.insert(name, field);
    }
    Value::Object(fields)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut bytes: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = find(bytes, delimiter) {
        parts.push(&bytes[..at]);
        bytes = &bytes[at + delimiter.len()..];
    }
    parts.push(bytes);
    parts
}

fn failure_response(failure: ScriptedFailure) -> Response {
    let status = StatusCode::from_u16(failure.status).expect("a valid scripted status");
    let mut response = json_response(status, failure.body);
    if let Some(seconds) = failure.retry_after_secs {
        response.headers_mut().insert(
            "retry-after",
            seconds.to_string().parse().expect("a header value"),
        );
    }
    response
}

fn json_response(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn model_of(body: &Value) -> Value {
    body.get("model").cloned().unwrap_or_else(|| json!("gpt-5"))
}

/// The text of a content value: a string, or the `text` of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The Responses input: a string, or the content of the last item.
pub(super) fn responses_user_text(body: &Value) -> String {
    match body.get("input") {
        Some(Value::Array(items)) => items
            .last()
            .and_then(|item| item.get("content"))
            .map(content_text)
            .unwrap_or_default(),
        Some(input) => content_text(input),
        None => String::new(),
    }
}

/// The content of the last `user` message.
pub(super) fn chat_user_text(body: &Value) -> String {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default()
}

pub(super) fn responses_reply(n: u64, request: &Value, text: &str) -> Value {
    json!({
        "id": format!("resp_{n}"),
        "object": "response",
        "created_at": now(),
        "completed_at": now(),
        "status": "completed",
        "model": model_of(request),
        "previous_response_id": request.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "store": request.get("store").cloned().unwrap_or(json!(true)),
        "parallel_tool_calls": true,
        "tools": [],
        "output": [{
            "type": "message",
            "id": format!("msg_{n}"),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        }],
        "usage": {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 20},
            "output_tokens": 50,
            "output_tokens_details": {"reasoning_tokens": 10},
            "total_tokens": 150
        }
    })
}

pub(super) fn chat_reply(n: u64, request: &Value, text: &str) -> Value {
    json!({
        "id": format!("chatcmpl_{n}"),
        "object": "chat.completion",
        "created": now(),
        "model": model_of(request),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 20, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 10,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        }
    })
}
