//! A fake Telegram Bot API: a real HTTP server on 127.0.0.1 that records every call, serves
//! `getUpdates` from a queue per bot, and answers scripted failures on demand. Files added
//! with [`FakeTelegram::add_file`] are described by `getFile` and served at
//! `/file/bot<token>/<path>` (each download recorded as a call of method `file`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Path};
use poem::{handler, post, EndpointExt, IntoResponse, Response, Route, Server};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// One call as the fake received it.
#[derive(Debug, Clone)]
pub struct TelegramCall {
    pub token: String,
    /// Lower case, e.g. `sendmessage` (teloxide sends `SendMessage`; Telegram ignores case).
    pub method: String,
    pub body: Value,
    /// When the call arrived.
    pub at: std::time::Instant,
}

struct ScriptedFailure {
    status: u16,
    body: Value,
}

#[derive(Default)]
struct State {
    calls: Mutex<Vec<TelegramCall>>,
    changed: Notify,
    failures: Mutex<HashMap<String, VecDeque<ScriptedFailure>>>,
    /// Per method: how long the next calls take before they are answered (and succeed).
    delays: Mutex<HashMap<String, VecDeque<Duration>>>,
    /// Per token: updates not yet confirmed by a getUpdates offset.
    updates: Mutex<HashMap<String, Vec<Value>>>,
    updates_added: Notify,
    next_message_id: AtomicI64,
    /// Files by id: their path and bytes.
    files: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// The text of every message sent or edited, by `(chat_id, message_id)`: an edit to the
    /// same text is refused as "message is not modified", as Telegram does.
    texts: Mutex<HashMap<(i64, i64), String>>,
}

pub struct FakeTelegram {
    /// What TELEGRAM_API_URL is set to.
    pub base_url: String,
    state: Arc<State>,
}

impl FakeTelegram {
    pub async fn start() -> Self {
        let state = Arc::new(State {
            next_message_id: AtomicI64::new(1000),
            ..State::default()
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the fake Telegram");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a socket address")
            .port();
        let app = Route::new()
            .at("/:bot/:method", post(call))
            .at("/file/:bot/*path", poem::get(file))
            .data(state.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn calls(&self) -> Vec<TelegramCall> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<TelegramCall> {
        let method = method.to_ascii_lowercase();
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// `(chat_id, text)` of every sendMessage, in order.
    pub fn sent_messages(&self) -> Vec<(i64, String)> {
        self.calls_of("sendMessage")
            .iter()
            .map(|c| {
                (
                    c.body["chat_id"].as_i64().unwrap_or_default(),
                    c.body["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The next `times` calls of `method` answer `status` with `body`.
    pub fn fail_next(&self, method: &str, times: usize, status: u16, body: Value) {
        let mut failures = self.state.failures.lock().unwrap();
        let queue = failures.entry(method.to_ascii_lowercase()).or_default();
        for _ in 0..times {
            queue.push_back(ScriptedFailure {
                status,
                body: body.clone(),
            });
        }
    }

    /// The next `times` calls of `method` are answered (successfully) only after `delay`, as
    /// a Telegram having a bad day would; each is recorded when it arrives.
    pub fn delay_next(&self, method: &str, times: usize, delay: Duration) {
        let mut delays = self.state.delays.lock().unwrap();
        let queue = delays.entry(method.to_ascii_lowercase()).or_default();
        queue.extend(std::iter::repeat_n(delay, times));
    }

    /// A file the bots may fetch: getFile answers with `path`, the download serves `bytes`.
    pub fn add_file(&self, file_id: &str, path: &str, bytes: Vec<u8>) {
        self.state
            .files
            .lock()
            .unwrap()
            .insert(file_id.to_owned(), (path.to_owned(), bytes));
    }

    /// Queues an update for `token`'s getUpdates.
    pub fn push_update(&self, token: &str, update: Value) {
        self.state
            .updates
            .lock()
            .unwrap()
            .entry(token.to_owned())
            .or_default()
            .push(update);
        self.state.updates_added.notify_waiters();
    }

    /// Waits until `method` has been called `n` times; panics after `timeout`.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<TelegramCall> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            let calls = self.calls_of(method);
            if calls.len() >= n {
                return calls;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "timed out waiting for {n} {method} calls; got {}: {:?}",
                    calls.len(),
                    self.calls().iter().map(|c| &c.method).collect::<Vec<_>>()
                );
            }
        }
    }
}

/// A Telegram error body, e.g. `error(429, "Too Many Requests: retry after 1", Some(1))`.
pub fn error(code: u16, description: &str, retry_after: Option<u64>) -> Value {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    body
}

/// A text message update as Telegram sends it to a bot.
pub fn text_update(update_id: i64, chat_id: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id * 10,
            "date": 1_764_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Ann", "username": "ann"},
            "from": {"id": chat_id, "is_bot": false, "first_name": "Ann", "last_name": "Lee",
                     "username": "ann", "language_code": "en"},
            "text": text
        }
    })
}

/// Reads a call's parameters: JSON, or multipart (teloxide sends setWebhook that way), whose
/// fields become a JSON object (a field holding JSON text is parsed).
async fn parameters(request: &poem::Request, body: poem::Body) -> Value {
    let content_type = request.content_type().unwrap_or_default().to_owned();
    let bytes = body.into_bytes().await.unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut fields = serde_json::Map::new();
        for part in text.split(&format!("--{boundary}")) {
            let Some((headers, value)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let Some(name) = headers
                .split("name=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            else {
                continue;
            };
            let value = value.trim_end_matches("\r\n");
            let parsed = serde_json::from_str(value)
                .ok()
                .filter(|v: &Value| v.is_array() || v.is_object())
                .unwrap_or_else(|| Value::String(value.to_owned()));
            fields.insert(name.to_owned(), parsed);
        }
        Value::Object(fields)
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }
}

#[handler]
async fn call(
    request: &poem::Request,
    Path((bot, method)): Path<(String, String)>,
    body: poem::Body,
    state: Data<&Arc<State>>,
) -> Response {
    let token = bot.strip_prefix("bot").unwrap_or(&bot).to_owned();
    let method = method.to_ascii_lowercase();
    let body = parameters(request, body).await;
    state.calls.lock().unwrap().push(TelegramCall {
        token: token.clone(),
        method: method.clone(),
        body: body.clone(),
        at: std::time::Instant::now(),
    });
    state.changed.notify_waiters();
    let failure = state
        .failures
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(|q| q.pop_front());
    let delay = state
        .delays
        .lock()
        .unwrap()
        .get_mut(&method)
        .and_then(|q| q.pop_front());
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(failure) = failure {
        return Json(failure.body)
            .with_status(poem::http::StatusCode::from_u16(failure.status).unwrap())
            .into_response();
    }
    let chat_id = body["chat_id"].as_i64().unwrap_or_default();
    let result = match method.as_str() {
        // Drafts exist in private chats only (a negative id is a group's).
        "sendmessagedraft" if chat_id < 0 => {
            let refusal = error(
                400,
                "Bad Request: sendMessageDraft can be used only in private chats",
                None,
            );
            return Json(refusal)
                .with_status(poem::http::StatusCode::BAD_REQUEST)
                .into_response();
        }
        "editmessagetext" => {
            let message_id = body["message_id"].as_i64().unwrap_or_default();
            let text = body["text"].as_str().unwrap_or_default().to_owned();
            let previous = state
                .texts
                .lock()
                .unwrap()
                .insert((chat_id, message_id), text.clone());
            if previous.as_deref() == Some(text.as_str()) {
                let refusal = error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message", None);
                return Json(refusal)
                    .with_status(poem::http::StatusCode::BAD_REQUEST)
                    .into_response();
            }
            json!({
                "message_id": message_id,
                "date": 1_764_000_000,
                "edit_date": 1_764_000_001,
                "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
                "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
                "text": text
            })
        }
        "sendmessage" => {
            let message_id = state.next_message_id.fetch_add(1, Ordering::SeqCst);
            state.texts.lock().unwrap().insert(
                (chat_id, message_id),
                body["text"].as_str().unwrap_or_default().to_owned(),
            );
            json!({
                "message_id": message_id,
                "date": 1_764_000_000,
                "chat": {"id": body["chat_id"], "type": "private", "first_name": "Ann"},
                "from": {"id": 1, "is_bot": true, "first_name": "Bot", "username": "test_bot"},
                "text": body["text"]
            })
        }
        "getupdates" => Value::Array(updates_for(&state, &token, &body).await),
        "getfile" => {
            let file_id = body["file_id"].as_str().unwrap_or_default().to_owned();
            let known = state.files.lock().unwrap().get(&file_id).cloned();
            match known {
                Some((path, bytes)) => json!({
                    "file_id": file_id, "file_unique_id": format!("u-{file_id}"),
                    "file_size": bytes.len(), "file_path": path
                }),
                None => {
                    return Json(error(400, "Bad Request: invalid file_id", None))
                        .with_status(poem::http::StatusCode::BAD_REQUEST)
                        .into_response()
                }
            }
        }
        "getme" => json!({
            "id": token.split(':').next().and_then(|id| id.parse::<i64>().ok()).unwrap_or(1),
            "is_bot": true, "first_name": "Support", "username": "support_bot",
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "has_main_web_app": false
        }),
        _ => json!(true),
    };
    Json(json!({"ok": true, "result": result})).into_response()
}

/// A file download: `/file/bot<token>/<path>`, recorded as a call of method `file` whose body
/// names the token and path.
#[handler]
async fn file(Path((bot, path)): Path<(String, String)>, state: Data<&Arc<State>>) -> Response {
    let token = bot.strip_prefix("bot").unwrap_or(&bot).to_owned();
    state.calls.lock().unwrap().push(TelegramCall {
        token,
        method: "file".to_owned(),
        body: json!({"path": path}),
        at: std::time::Instant::now(),
    });
    state.changed.notify_waiters();
    let bytes = state
        .files
        .lock()
        .unwrap()
        .values()
        .find(|(known, _)| *known == path)
        .map(|(_, bytes)| bytes.clone());
    match bytes {
        Some(bytes) => Response::builder().body(bytes),
        None => Response::builder()
            .status(poem::http::StatusCode::NOT_FOUND)
            .finish(),
    }
}

/// Long polling: confirms updates below `offset`, returns the rest, or waits for some.
async fn updates_for(state: &State, token: &str, body: &Value) -> Vec<Value> {
    // Shorter than a real long poll, so tests and shutdowns stay quick.
    let wait = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0).min(1));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let added = state.updates_added.notified();
        {
            let mut updates = state.updates.lock().unwrap();
            let queue = updates.entry(token.to_owned()).or_default();
            if let Some(offset) = body["offset"].as_i64() {
                queue.retain(|u| u["update_id"].as_i64().unwrap_or_default() >= offset);
            }
            if !queue.is_empty() {
                return queue.clone();
            }
        }
        if tokio::time::timeout_at(deadline, added).await.is_err() {
            return Vec::new();
        }
    }
}
