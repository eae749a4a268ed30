//! Inputs at the edges: no input to any route makes a 5xx. A NUL character, an instant before
//! PostgreSQL's calendar, a token whose id is not a positive 64-bit number, an unknown
//! stream, one token registered eight times at once, and a database that is away.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::telegram::text_update;
use crate::helpers::{token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn an_update_with_nul_characters_is_recorded_once_and_answered() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    let mut update = text_update(1, 42, "hello\u{0}there");
    update["message"]["chat"]["type"] = json!("private\u{0}");
    update["message"]["from"]["language_code"] = json!("e\u{0}n");
    let button = json!({
        "update_id": 2,
        "callback_query": {
            "id": "query\u{0}id", "data": "refresh\u{0}",
            "from": {"id": 42, "is_bot": false, "first_name": "Ann"},
            "message": {"message_id": 5, "date": 1_764_000_000,
                        "chat": {"id": 42, "type": "private\u{0}"}}
        }
    });
    for _ in 0..2 {
        // Redelivered: still 200, still recorded once.
        app.deliver(&bot, &update).await;
        app.deliver(&bot, &button).await;
    }
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    fakes
        .telegram
        .wait_for_calls("answerCallbackQuery", 1, WAIT)
        .await;
    app.settle().await;
    let received: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type IN ('MessageReceived', 'CallbackQueryReceived')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(received, 2);
    let (_, chats) = app.get("/chats").await;
    assert_eq!(chats["items"][0]["chat_type"], "private\u{FFFD}");
    app.stop().await;
}

#[tokio::test]
async fn nul_characters_in_admin_requests_are_refused_naming_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let before = app.event_count().await;
    let (status, body) = app
        .post(
            "/bots",
            json!({"name": "A\u{0}", "token": token(1), "model": "gpt-5-mini"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "name", "{body}");
    let (status, body) = app
        .post(
            "/bots",
            json!({"name": "A", "token": token(1), "model": "gpt-5-mini", "instructions": ["x"]}),
        )
        .await;
    assert_eq!(status, 400, "a wrong type is still named: {body}");

    let login = reqwest::Client::new()
        .post(app.url("/auth/login"))
        .json(&json!({"email": "a\u{0}@example.com", "password": "whatever it is"}))
        .send()
        .await
        .unwrap();
    let (status, body) = crate::helpers::decode(login).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "email");

    for (path, field) in [
        ("/events?event_type=Bot%00Created", "event_type"),
        ("/events?aggregate_id=%00", "aggregate_id"),
        ("/chats?cursor=%00", "cursor"),
        ("/projections/bots%00/faults", "path"),
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    assert_eq!(app.event_count().await, before, "nothing was recorded");
    app.stop().await;
}

#[tokio::test]
async fn instants_before_postgresqls_calendar_are_refused() {
    let app = TestApp::spawn().await;
    let bot = app.create_bot("A", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, field) in [
        (format!("/bots/{bot}?as_of=-99999-01-01T00:00:00Z"), "as_of"),
        (format!("/chats/{bot}?as_of=-4713-01-01T00:00:00Z"), "as_of"),
        ("/events?since=-5000-01-01T00:00:00Z".to_owned(), "since"),
        (
            "/failures?before=-5000-01-01T00:00:00Z".to_owned(),
            "before",
        ),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    // The earliest instant PostgreSQL keeps is fine: the bot did not exist yet.
    let (status, _) = app
        .get(&format!("/bots/{bot}?as_of=-4712-01-01T00:00:00Z"))
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_token_whose_bot_id_is_not_a_positive_64_bit_number_is_refused() {
    let app = TestApp::spawn().await;
    let secret = "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1";
    for id in ["0", "9223372036854775808", "01"] {
        let (status, body) = app
            .post(
                "/bots",
                json!({"name": "A", "token": format!("{id}:{secret}"), "model": "gpt-5-mini"}),
            )
            .await;
        assert_eq!(status, 422, "{id}: {body}");
        assert_eq!(body["field"], "token");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_stream_of_an_unknown_bot_or_chat_is_not_found() {
    let app = TestApp::spawn().await;
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(app.get(&format!("/bots/{unknown}/events")).await.0, 404);
    assert_eq!(app.get(&format!("/chats/{unknown}/events")).await.0, 404);
    let bot = app.create_bot("A", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, page) = app.get(&format!("/bots/{bot}/events")).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn eight_registrations_of_one_token_at_once_make_one_bot() {
    let app = TestApp::spawn().await;
    let attempts = (0..8).map(|n| {
        let (http, url) = (app.http.clone(), app.url("/bots"));
        async move {
            let response = http
                .post(url)
                .json(&json!({"name": format!("Racer {n}"), "token": token(7), "model": "gpt-5-mini"}))
                .send()
                .await
                .unwrap();
            crate::helpers::decode(response).await
        }
    });
    let answers: Vec<(u16, Value)> = futures::future::join_all(attempts).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 409)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created, 1, "{answers:?}");
    assert_eq!(refused.len(), 7, "{answers:?}");
    assert!(refused.iter().all(|body| body["error"] == "token_in_use"));
    let (_, list) = app.get("/bots").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// Takes the test's database away from the service (new connections refused, open ones
/// ended) until the guard is dropped or `restore` is called.
struct Outage {
    admin: sqlx::PgPool,
    name: String,
}

impl Outage {
    async fn begin(name: &str) -> Self {
        let admin = sqlx::PgPool::connect(&format!("{}/postgres", crate::helpers::server_url()))
            .await
            .unwrap();
        sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .execute(&admin)
            .await
            .unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&admin)
        .await
        .unwrap();
        Self {
            admin,
            name: name.to_owned(),
        }
    }

    async fn end(self) {
        sqlx::query(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            self.name
        ))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn while_the_database_is_away_the_webhook_answers_503_and_the_update_comes_through_after() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    let update = text_update(1, 42, "are you there?");
    let deliver = || async {
        app.http
            .post(app.url(&format!("/telegram/{bot}/webhook")))
            .header("X-Telegram-Bot-Api-Secret-Token", app.webhook_secret(&bot))
            .json(&update)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    let outage = Outage::begin(&app.db.name).await;
    assert_eq!(
        deliver().await,
        503,
        "a quick 503, not a 500 after the pool's wait"
    );
    outage.end().await;

    crate::helpers::eventually(WAIT, "the redelivery is taken", || async {
        deliver().await == 200
    })
    .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(fakes.telegram.calls_of("sendMessage").len(), 1);
    app.stop().await;
}
