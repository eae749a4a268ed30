//! `/health`, `/health/db` and `/health/queue`: open to anyone, honest when things break.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::fakes::telegram::text_update;
use crate::helpers::{decode, eventually, random_token_key, token, Fakes, TestApp, TestDb};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    // No session: health checks are for probes, which do not log in.
    decode(
        reqwest::Client::new()
            .get(app.url(path))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn health_and_the_database_round_trip_need_no_session() {
    let app = TestApp::spawn().await;
    assert_eq!(get(&app, "/health").await, (200, json!({"status": "ok"})));
    let (status, db) = get(&app, "/health/db").await;
    assert_eq!((status, db["status"].as_str()), (200, Some("ok")), "{db}");
    assert!(db["latency_ms"].as_f64().unwrap() >= 0.0);
    app.stop().await;
}

#[tokio::test]
async fn health_db_answers_503_while_the_database_is_unreachable() {
    let app = TestApp::spawn().await;
    let server = PgPool::connect(&crate::helpers::database_url("postgres"))
        .await
        .unwrap();
    // Refuse new connections to the app's database, then cut the ones it has.
    let allow = |allowed: bool| {
        format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allowed}",
            app.db.name
        )
    };
    sqlx::query(&allow(false)).execute(&server).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&app.db.name)
        .execute(&server)
        .await
        .unwrap();

    let (status, body) = get(&app, "/health/db").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(body["error"].is_string());
    assert!(
        !body.to_string().contains(&app.db.name),
        "no connection details in the answer: {body}"
    );
    let (status, _) = get(&app, "/health/queue").await;
    assert_eq!(status, 503);
    assert_eq!(
        get(&app, "/health").await.0,
        200,
        "the process itself is alive"
    );

    // And it recovers by itself once the database is back.
    sqlx::query(&allow(true)).execute(&server).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "/health/db is 200 again",
        || async { get(&app, "/health/db").await.0 == 200 },
    )
    .await;
    server.close().await;
    app.stop().await;
}

#[tokio::test]
async fn health_queue_shows_checkpoints_lag_and_the_effect_runners_counts() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    assert_eq!(
        app.deliver(&bot_id, &text_update(1, 42, "hello")).await,
        200
    );
    fakes
        .telegram
        .wait_for_calls("sendMessage", 1, Duration::from_secs(20))
        .await;
    app.settle().await;

    let (status, queue) = get(&app, "/health/queue").await;
    assert_eq!(
        (status, queue["status"].as_str()),
        (200, Some("ok")),
        "{queue}"
    );
    let subscriptions = queue["subscriptions"].as_array().unwrap();
    let names: Vec<&str> = subscriptions
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in ["bots", "chats", "usage"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for subscription in subscriptions {
        assert_eq!(subscription["lag"], 0, "{subscription}");
        assert_eq!(subscription["status"], "ok", "{subscription}");
        assert!(subscription["checkpoint"].as_str().unwrap().contains('/'));
    }
    assert_eq!(queue["effects"], json!({"in_flight": 0, "failed": 0}));
    app.stop().await;
}

/// An event no projector can read: its subscription stops there and retries, as designed.
async fn append_unreadable_bot_events(pool: &PgPool, count: i64) {
    let aggregate_id = uuid::Uuid::now_v7().to_string();
    for sequence in 1..=count {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('Bot', $1, $2, 'BotCreated', '1.0', '{\"BotCreated\": \"unreadable\"}', '{}')",
        )
        .bind(&aggregate_id)
        .bind(sequence)
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn health_queue_answers_503_when_a_subscription_lags_or_is_stuck() {
    let app = TestApp::spawn_with(TestDb::new(), random_token_key(), |args| {
        args.health_max_lag = 2;
        args.health_stuck_secs = 3;
        // Stuck, not paused: the projector keeps trying (a poison event pauses it after
        // PROJECTION_MAX_ATTEMPTS, which the projection-faults tests cover).
        args.projection_max_attempts = 1_000;
    })
    .await;
    assert_eq!(get(&app, "/health/queue").await.0, 200);
    append_unreadable_bot_events(&app.pool, 3).await;

    let (status, queue) = get(&app, "/health/queue").await;
    assert_eq!(status, 503, "{queue}");
    let bots = |queue: &Value| {
        queue["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "bots")
            .cloned()
            .unwrap()
    };
    assert_eq!(bots(&queue)["lag"], 3, "{queue}");
    assert_eq!(bots(&queue)["status"], "lagging", "{queue}");

    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let (status, queue) = get(&app, "/health/queue").await;
    assert_eq!(status, 503, "{queue}");
    assert_eq!(bots(&queue)["status"], "stuck", "{queue}");
    assert!(bots(&queue)["oldest_pending_secs"].as_f64().unwrap() >= 3.0);
    app.stop().await;
}
