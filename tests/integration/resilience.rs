//! Crash safety and scale-out: polling across a restart, a process killed with turns in
//! flight, and two runners sharing one database.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::fakes::telegram::{error, text_update};
use crate::helpers::{
    eventually, log_in, random_token_key, session_client, token, Fakes, TestApp, TestDb,
    ADMIN_EMAIL, ADMIN_PASSWORD, COOKIE_SECRET,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn polling_answers_and_a_restart_neither_loses_nor_repeats_an_update() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Polled", &token(1)).await;
    fakes
        .telegram
        .push_update(&token(1), text_update(100, 42, "polled one"));
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert!(
        !fakes.telegram.calls_of("deleteWebhook").is_empty(),
        "a webhook would block getUpdates, so it is cleared first"
    );

    let TestApp {
        app: running,
        db,
        token_key,
        ..
    } = app;
    running.unwrap().stop().await.unwrap();
    // While Botfleet is down, another message arrives.
    fakes
        .telegram
        .push_update(&token(1), text_update(101, 42, "polled two"));
    let polls_before_restart = fakes.telegram.calls_of("getUpdates").len();

    let app = TestApp::spawn_with(db, token_key, |args| fakes.configure(args)).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    let texts: Vec<String> = fakes
        .telegram
        .sent_messages()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(texts, ["echo: polled one", "echo: polled two"]);
    let first_poll_after_restart = &fakes.telegram.calls_of("getUpdates")[polls_before_restart];
    assert_eq!(
        first_poll_after_restart.body["offset"], 101,
        "the stored offset is used"
    );
    let received: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MessageReceived'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(received, 2);
    assert!(app
        .get(&format!("/bots/{bot_id}"))
        .await
        .1
        .get("last_error")
        .is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_polling_conflict_is_shown_on_the_bot_and_not_retried_in_a_tight_loop() {
    let fakes = Fakes::start().await;
    let conflict = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
    fakes
        .telegram
        .fail_next("getUpdates", 1, 409, error(409, conflict, None));
    let app = TestApp::spawn_with_fakes(&fakes, |args| args.poll_conflict_pause_secs = 2).await;
    let bot_id = app.create_enabled_bot("Polled", &token(1)).await;

    eventually(WAIT, "the conflict is shown on the bot", || async {
        app.get(&format!("/bots/{bot_id}")).await.1["last_error"]["kind"] == "telegram_conflict"
    })
    .await;
    let calls_at_conflict = fakes.telegram.calls_of("getUpdates").len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fakes.telegram.calls_of("getUpdates").len(),
        calls_at_conflict,
        "no getUpdates during the pause after a conflict"
    );
    eventually(
        WAIT,
        "the error clears once polling works again",
        || async {
            app.get(&format!("/bots/{bot_id}"))
                .await
                .1
                .get("last_error")
                .is_none()
        },
    )
    .await;
    app.stop().await;
}

/// `botfleet serve` as a child process, on a port of its own.
pub(crate) fn serve(db: &TestDb, key: &str, fakes: &Fakes) -> (Child, String) {
    serve_with_lease(db, key, fakes, Duration::from_secs(1))
}

/// `botfleet serve` as a child process whose leases on chats last `lease`.
pub(crate) fn serve_with_lease(
    db: &TestDb,
    key: &str,
    fakes: &Fakes,
    lease: Duration,
) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_botfleet"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TOKEN_ENCRYPTION_KEY", key)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("TELEGRAM_API_URL", &fakes.telegram.base_url)
        .env("OPENAI_BASE_URL", &fakes.openai.base_url)
        .env("OPENAI_API_KEY", "sk-test")
        .env("COOKIE_SECRET", COOKIE_SECRET)
        .env("ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("EFFECT_LEASE_MS", lease.as_millis().to_string())
        .env("READ_MODEL_WAIT_MS", "30000")
        .env("SUBSCRIPTION_POLL_MS", "200")
        .env("RETRY_BACKOFF_MS", "100")
        .env("POLL_TIMEOUT_SECS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start botfleet serve");
    (child, format!("http://127.0.0.1:{port}"))
}

/// A bot registered and enabled through a served process's admin API, and its webhook.
pub(crate) struct ServedBot {
    pub(crate) id: String,
    /// What `POST /bots` answered.
    pub(crate) created: serde_json::Value,
    secret: String,
    http: reqwest::Client,
    /// Signed in as the first admin.
    pub(crate) admin: reqwest::Client,
}

impl ServedBot {
    /// Signs in to the process at `base`, registers bot `name` (token 1) and enables it.
    pub(crate) async fn register(base: &str, key: &str, name: &str) -> Self {
        let admin = session_client(&log_in(base, ADMIN_EMAIL, ADMIN_PASSWORD).await);
        let created: serde_json::Value = admin
            .post(format!("{base}/bots"))
            .json(&json!({"name": name, "token": token(1), "model": "gpt-5-mini"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        admin
            .post(format!("{base}/bots/{id}/enable"))
            .send()
            .await
            .unwrap();
        let secret = botfleet::secrets::TokenCipher::new(
            &botfleet::secrets::TokenKey::from_base64(key).unwrap(),
        )
        .webhook_secret(id.parse().unwrap());
        Self {
            id,
            created,
            secret,
            http: reqwest::Client::new(),
            admin,
        }
    }

    /// Delivers `update` to the bot's webhook at `base`, as Telegram does; its status.
    pub(crate) async fn deliver(&self, base: &str, update: &serde_json::Value) -> u16 {
        self.http
            .post(format!("{base}/telegram/{}/webhook", self.id))
            .header("X-Telegram-Bot-Api-Secret-Token", &self.secret)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Waits until no chat has a turn left open.
pub(crate) async fn until_every_turn_is_finished(pool: &sqlx::PgPool) {
    eventually(WAIT, "every turn is finished", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM chat_work WHERE open_turns > 0")
            .fetch_one(pool)
            .await
            .unwrap()
            == 0
    })
    .await;
}

pub(crate) async fn wait_until_serving(http: &reqwest::Client, base: &str) {
    eventually(WAIT, "the child process serves", || async {
        http.get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
}

#[tokio::test]
async fn a_process_killed_with_twenty_turns_in_flight_answers_each_once_after_restart() {
    let fakes = Fakes::start().await;
    let db = TestDb::new();
    let key = random_token_key();
    let http = reqwest::Client::new();

    let (mut first, base) = serve(&db, &key, &fakes);
    wait_until_serving(&http, &base).await;
    let bot = ServedBot::register(&base, &key, "Busy").await;

    // Every LLM call hangs long enough for all twenty to be in flight at the kill.
    fakes.openai.set_delay(Duration::from_secs(5));
    for chat in 0..20i64 {
        let update = text_update(1000 + chat, 500 + chat, &format!("question {chat}"));
        assert_eq!(bot.deliver(&base, &update).await, 200);
    }
    fakes.openai.wait_for_requests(20, WAIT).await;
    first.kill().expect("SIGKILL the first process");
    first.wait().unwrap();
    assert!(
        fakes.telegram.sent_messages().is_empty(),
        "killed before any reply"
    );

    fakes.openai.set_delay(Duration::ZERO);
    let (mut second, base) = serve(&db, &key, &fakes);
    wait_until_serving(&http, &base).await;
    fakes.telegram.wait_for_calls("sendMessage", 20, WAIT).await;

    let pool = db.pool().await;
    until_every_turn_is_finished(&pool).await;
    let mut replies_per_chat: HashMap<i64, Vec<String>> = HashMap::new();
    for (chat, text) in fakes.telegram.sent_messages() {
        replies_per_chat.entry(chat).or_default().push(text);
    }
    assert_eq!(replies_per_chat.len(), 20);
    for (chat, replies) in &replies_per_chat {
        assert_eq!(
            replies,
            &[format!("echo: question {}", chat - 500)],
            "chat {chat}"
        );
    }
    second.kill().unwrap();
    second.wait().unwrap();
    pool.close().await;
}

#[tokio::test]
async fn two_runners_on_one_database_answer_every_message_exactly_once() {
    let fakes = Fakes::start().await;
    fakes.openai.set_delay(Duration::from_millis(30));
    let first = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let second = fakes.replica_of(&first).await;
    let second_base = format!("http://{}", second.addr());

    let bot_id = first.create_enabled_bot("Shared", &token(1)).await;
    let secret = first.webhook_secret(&bot_id);
    let mut deliveries = Vec::new();
    for n in 0..30i64 {
        let base = if n % 2 == 0 {
            first.base.clone()
        } else {
            second_base.clone()
        };
        let (http, secret, bot_id) = (first.http.clone(), secret.clone(), bot_id.clone());
        deliveries.push(async move {
            http.post(format!("{base}/telegram/{bot_id}/webhook"))
                .header("X-Telegram-Bot-Api-Secret-Token", secret)
                .json(&text_update(n + 1, 700 + n % 10, &format!("message {n}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    assert!(futures::future::join_all(deliveries)
        .await
        .iter()
        .all(|s| *s == 200));

    fakes.telegram.wait_for_calls("sendMessage", 30, WAIT).await;
    first.settle().await;
    let mut sent = fakes.telegram.sent_messages();
    sent.sort();
    let mut expected: Vec<(i64, String)> = (0..30)
        .map(|n| (700 + n % 10, format!("echo: message {n}")))
        .collect();
    expected.sort();
    assert_eq!(sent, expected, "every message answered, none twice");
    assert_eq!(fakes.openai.requests().len(), 30);

    // Within each chat, answers went out in the order the messages were received.
    // Message n came as update n + 1 (texts are sealed in the log; update ids are not).
    let received: Vec<(i64, String)> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT (payload -> 'MessageReceived' -> 'chat' ->> 'id')::bigint,
                (payload -> 'MessageReceived' ->> 'update_id')::bigint
         FROM events WHERE event_type = 'MessageReceived' ORDER BY aggregate_id, sequence",
    )
    .fetch_all(&first.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(chat, update_id)| (chat, format!("echo: message {}", update_id - 1)))
    .collect();
    let by_chat = fakes.telegram.sent_messages();
    for chat in 700..710 {
        let answered: Vec<&String> = by_chat
            .iter()
            .filter(|(c, _)| *c == chat)
            .map(|(_, t)| t)
            .collect();
        let arrived: Vec<&String> = received
            .iter()
            .filter(|(c, _)| *c == chat)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(answered, arrived, "chat {chat}");
    }
    second.stop().await.unwrap();
    first.stop().await;
}

/// Each process remembers the bots' rows its webhook and turns read; a change projected by
/// any process is announced to all, so a replica does not go on with a row for the minute it
/// would otherwise trust it.
#[tokio::test]
async fn a_bot_disabled_through_one_replica_is_seen_by_the_others_webhook_at_once() {
    let fakes = Fakes::start().await;
    let first = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let second = fakes.replica_of(&first).await;
    let second_base = format!("http://{}", second.addr());
    let bot_id = first.create_enabled_bot("Shared", &token(1)).await;
    let secret = first.webhook_secret(&bot_id);
    let deliver = |update_id: i64| {
        let (http, url, secret) = (
            first.http.clone(),
            format!("{second_base}/telegram/{bot_id}/webhook"),
            secret.clone(),
        );
        async move {
            let status = http
                .post(url)
                .header("X-Telegram-Bot-Api-Secret-Token", secret)
                .json(&text_update(update_id, 42, "hello"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };
    let recorded = |update_id: i64| {
        let pool = first.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE event_type = 'MessageReceived'
                   AND payload -> 'MessageReceived' ->> 'update_id' = $1::text",
            )
            .bind(update_id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // The second replica reads the live bot, and remembers it.
    deliver(1).await;
    assert_eq!(recorded(1).await, 1);
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;

    let (status, _) = first
        .post(&format!("/bots/{bot_id}/disable"), json!(null))
        .await;
    assert_eq!(status, 200);
    // Well within the minute a remembered row is trusted at most.
    let next = std::sync::atomic::AtomicI64::new(1);
    eventually(
        Duration::from_secs(10),
        "the second replica drops the disabled bot's updates",
        || async {
            let update_id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            deliver(update_id).await;
            recorded(update_id).await == 0
        },
    )
    .await;
    second.stop().await.unwrap();
    first.stop().await;
}
