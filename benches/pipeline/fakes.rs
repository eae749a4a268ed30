//! The outside world Botfleet talks to, faked on 127.0.0.1: Telegram's Bot API and OpenAI's
//! Responses API. Both are poem servers inside the bench process (cheap, many connections),
//! and both write what they see into the shared [`Timeline`].
//!
//! The LLM can be held (requests wait until released), which lets the bench queue turns
//! without working them, and can take a fixed time per answer, which stands for a real model.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Path};
use poem::{handler, post, EndpointExt, Response, Route, Server};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::timeline::{answer, seq_of, Timeline};

/// How the fake LLM answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmMode {
    /// Requests wait until the mode changes: turns queue up with their LLM call in flight.
    Hold,
    /// Every answer comes this long after its request (zero: at once).
    Delay(Duration),
}

/// Binds 127.0.0.1 on a free port and serves `routes` until the handle is aborted.
async fn serve(routes: impl poem::Endpoint + 'static) -> anyhow::Result<(u16, JoinHandle<()>)> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(|a| a.port()))
        .ok_or_else(|| anyhow::anyhow!("the fake has no socket address"))?;
    let task = tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(routes).await;
    });
    Ok((port, task))
}

fn json_response(body: &Value) -> Response {
    Response::builder()
        .content_type("application/json")
        .body(body.to_string())
}

/// A long answer written token by token (the first-text phase): `tokens` words, one per
/// `pace`, after the mode's delay (the model thinking). Streamed when asked to stream;
/// otherwise answered whole once the last token would have been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writing {
    pub pace: Duration,
    pub tokens: usize,
}

struct LlmState {
    timeline: Arc<Timeline>,
    mode: watch::Sender<LlmMode>,
    writing: Mutex<Option<Writing>>,
    calls: AtomicU64,
    next_id: AtomicU64,
}

pub struct FakeOpenAi {
    /// What OPENAI_BASE_URL is set to: `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    state: Arc<LlmState>,
    task: JoinHandle<()>,
}

impl FakeOpenAi {
    pub async fn start(timeline: Arc<Timeline>, mode: LlmMode) -> anyhow::Result<Self> {
        let state = Arc::new(LlmState {
            timeline,
            mode: watch::channel(mode).0,
            writing: Mutex::new(None),
            calls: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        });
        let routes = Route::new()
            .at("/v1/responses", post(responses))
            .data(state.clone());
        let (port, task) = serve(routes).await?;
        Ok(Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            state,
            task,
        })
    }

    /// Changes how answers are given; held requests are released by any other mode.
    pub fn set_mode(&self, mode: LlmMode) {
        self.state.mode.send_replace(mode);
    }

    /// Answers are long and written at a pace (`None`: short, at once, as in the other phases).
    pub fn set_writing(&self, writing: Option<Writing>) {
        if let Ok(mut current) = self.state.writing.lock() {
            *current = writing;
        }
    }

    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /v1/responses`, answered in the shape async-openai 0.43 reads (the same as the
/// integration tests' fake in tests/integration/fakes/openai.rs).
#[handler]
async fn responses(body: Vec<u8>, state: Data<&Arc<LlmState>>) -> Response {
    let arrived = state.timeline.now();
    state.calls.fetch_add(1, Ordering::Relaxed);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Botfleet sends the user's text as the plain-string form of `input`.
    let seq = request["input"].as_str().and_then(seq_of);
    if let Some(seq) = seq {
        state.timeline.llm_in.mark(seq, arrived);
    }
    let mut mode = state.mode.subscribe();
    let mode = match mode.wait_for(|m| *m != LlmMode::Hold).await {
        Ok(mode) => *mode,
        Err(_) => LlmMode::Delay(Duration::ZERO),
    };
    if let LlmMode::Delay(delay) = mode {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let writing = state.writing.lock().ok().and_then(|w| *w);
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    if let Some(writing) = writing {
        let streamed = request["stream"].as_bool() == Some(true);
        return crate::first_text::written_answer(
            &state.timeline,
            seq,
            n,
            &request,
            writing,
            streamed,
        )
        .await;
    }
    if let Some(seq) = seq {
        state.timeline.llm_out.mark(seq, state.timeline.now());
    }
    let text = seq.map_or_else(|| "answer".to_owned(), answer);
    json_response(&response_body(n, &request, &text))
}

/// A completed response in the shape async-openai 0.43 reads.
pub fn response_body(n: u64, request: &Value, text: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "id": format!("resp_{n}"),
        "object": "response",
        "created_at": now,
        "completed_at": now,
        "status": "completed",
        "model": request.get("model").cloned().unwrap_or_else(|| json!("gpt-5-mini")),
        "previous_response_id": request.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "store": true,
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

struct TelegramState {
    timeline: Arc<Timeline>,
    next_message_id: AtomicU64,
    /// Calls other than sendMessage, per method (rare: a mutex will do).
    other_calls: Mutex<BTreeMap<String, u64>>,
}

pub struct FakeTelegram {
    /// What TELEGRAM_API_URL is set to.
    pub base_url: String,
    state: Arc<TelegramState>,
    task: JoinHandle<()>,
}

impl FakeTelegram {
    pub async fn start(timeline: Arc<Timeline>) -> anyhow::Result<Self> {
        let state = Arc::new(TelegramState {
            timeline,
            next_message_id: AtomicU64::new(1),
            other_calls: Mutex::default(),
        });
        let routes = Route::new()
            .at("/:bot/:method", post(telegram_call))
            .data(state.clone());
        let (port, task) = serve(routes).await?;
        Ok(Self {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
            task,
        })
    }

    /// How many calls of `method` (lower case) came so far.
    pub fn calls_of(&self, method: &str) -> u64 {
        self.other_calls().get(method).copied().unwrap_or_default()
    }

    /// Calls other than sendMessage (setWebhook, getUpdates, sendChatAction…), per method.
    pub fn other_calls(&self) -> BTreeMap<String, u64> {
        self.state
            .other_calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /bot{TOKEN}/{Method}`; teloxide spells methods in CamelCase, Telegram ignores case.
#[handler]
async fn telegram_call(
    Path((bot, method)): Path<(String, String)>,
    body: Vec<u8>,
    state: Data<&Arc<TelegramState>>,
) -> Response {
    let method = method.to_ascii_lowercase();
    if method != "sendmessage" {
        if let Ok(mut calls) = state.other_calls.lock() {
            *calls.entry(method.clone()).or_default() += 1;
        }
    }
    match method.as_str() {
        "sendmessagedraft" => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let text = request["text"].as_str().unwrap_or_default();
            if let Some(seq) = crate::first_text::leading_seq(text) {
                state.timeline.first_text.mark(seq, state.timeline.now());
            }
            json_response(&json!({"ok": true, "result": true}))
        }
        "sendmessage" => {
            let received = state.timeline.now();
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let text = request["text"].as_str().unwrap_or_default();
            let seq = seq_of(text).or_else(|| crate::first_text::leading_seq(text));
            if let Some(seq) = seq {
                // The first text the person sees, when no draft came before.
                state.timeline.first_text.mark(seq, received);
                state.timeline.record_send(seq, received);
            }
            let message_id = state.next_message_id.fetch_add(1, Ordering::Relaxed);
            json_response(&json!({"ok": true, "result": {
                "message_id": message_id,
                "date": 1_764_000_000,
                "chat": {"id": request["chat_id"], "type": "private", "first_name": "A"},
                "from": {"id": 1, "is_bot": true, "first_name": "Bench", "username": "bench_bot"},
                "text": text
            }}))
        }
        "getme" => {
            // The bot's id is the token's digits before the colon.
            let id: i64 = bot
                .trim_start_matches("bot")
                .split(':')
                .next()
                .and_then(|digits| digits.parse().ok())
                .unwrap_or(1);
            json_response(&json!({"ok": true, "result": {
                "id": id, "is_bot": true, "first_name": "Bench", "username": format!("bench_{id}_bot"),
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "has_main_web_app": false
            }}))
        }
        "getupdates" => {
            // A long poll with nothing to deliver: updates arrive by webhook in this bench.
            tokio::time::sleep(Duration::from_secs(1)).await;
            json_response(&json!({"ok": true, "result": []}))
        }
        _ => json_response(&json!({"ok": true, "result": true})),
    }
}
