//! The outside world Botfleet talks to, faked on 127.0.0.1: Telegram's Bot API and OpenAI's
//! Responses API. Both are poem servers inside the bench process (cheap, many connections),
//! and both write what they see into the shared [`Timeline`].
//!
//! The LLM can be held (requests wait until released), which lets the bench queue turns
//! without working them, and can take a fixed time per answer, which stands for a real model.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// Updates waiting for a bot's `getUpdates`, by the bot's numeric id (the polling phase).
    pending: Mutex<HashMap<i64, VecDeque<PendingUpdate>>>,
    /// Moves whenever an update is queued: long polls wake up and look.
    queued: watch::Sender<u64>,
}

/// An update queued for `getUpdates`, as Telegram keeps it until a later offset confirms it.
struct PendingUpdate {
    update_id: i64,
    seq: usize,
    body: Value,
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
            pending: Mutex::default(),
            queued: watch::channel(0).0,
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

    /// Where the polling phase's load puts its updates.
    pub fn update_queue(&self) -> UpdateQueue {
        UpdateQueue(self.state.clone())
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

/// The fake Telegram's updates waiting for `getUpdates`, shared with the load generator.
#[derive(Clone)]
pub struct UpdateQueue(Arc<TelegramState>);

impl UpdateQueue {
    /// Queues `update` (carrying `seq`) for the bot whose numeric id is `bot`: its next
    /// `getUpdates` returns it, at once if one is waiting (a long poll), as Telegram does.
    pub fn queue_update(&self, bot: i64, seq: usize, update: Value) {
        let update_id = update["update_id"].as_i64().unwrap_or_default();
        if let Ok(mut pending) = self.0.pending.lock() {
            pending.entry(bot).or_default().push_back(PendingUpdate {
                update_id,
                seq,
                body: update,
            });
        }
        self.0.queued.send_modify(|n| *n += 1);
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
            let id = bot_number(&bot);
            json_response(&json!({"ok": true, "result": {
                "id": id, "is_bot": true, "first_name": "Bench", "username": format!("bench_{id}_bot"),
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "has_main_web_app": false
            }}))
        }
        "getupdates" => {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let bot_id = bot_number(&bot);
            let offset = request["offset"].as_i64().unwrap_or(0);
            let timeout = Duration::from_secs(request["timeout"].as_u64().unwrap_or(0));
            json_response(&json!({"ok": true,
                "result": long_poll(state.0, bot_id, offset, timeout).await}))
        }
        _ => json_response(&json!({"ok": true, "result": true})),
    }
}

/// The bot's numeric id: the token's digits before the colon (`bot7000000:…`).
fn bot_number(path_segment: &str) -> i64 {
    path_segment
        .trim_start_matches("bot")
        .split(':')
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(1)
}

/// `getUpdates` as Telegram answers it: the offset confirms (forgets) every earlier update;
/// what is left is returned at once, else the call waits up to `timeout` for an update.
async fn long_poll(state: &TelegramState, bot: i64, offset: i64, timeout: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut queued = state.queued.subscribe();
    loop {
        queued.borrow_and_update();
        let ready: Vec<Value> = {
            let Ok(mut pending) = state.pending.lock() else {
                return Vec::new();
            };
            let updates = pending.entry(bot).or_default();
            while updates.front().is_some_and(|u| u.update_id < offset) {
                updates.pop_front();
            }
            let now = state.timeline.now();
            updates
                .iter()
                .take(100)
                .map(|update| {
                    // Handed to Botfleet: the polling counterpart of a webhook's 200.
                    state.timeline.acked.mark(update.seq, now);
                    update.body.clone()
                })
                .collect()
        };
        if !ready.is_empty() {
            return ready;
        }
        if tokio::time::timeout_at(deadline, queued.changed())
            .await
            .is_err()
        {
            return Vec::new();
        }
    }
}
