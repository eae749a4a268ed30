//! Erasure in an append-only log (crypto-shredding), and reading events written by older code
//! (upcasting).

use std::time::Duration;

use serde_json::json;

use crate::fakes::telegram::text_update;
use crate::helpers::{token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(20);

async fn all_rows(app: &TestApp) -> serde_json::Value {
    let mut tables = serde_json::Map::new();
    for table in ["bots", "chats", "telegram_users", "messages"] {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text"
        ))
        .fetch_all(&app.pool)
        .await
        .unwrap();
        tables.insert(table.to_owned(), rows.into());
    }
    tables.into()
}

#[tokio::test]
async fn forgetting_a_person_makes_their_names_and_texts_unreadable_and_keeps_every_fact() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    app.deliver(&bot, &text_update(1, 42, "my secret question"))
        .await;
    app.deliver(&bot, &text_update(2, 43, "another person's question"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;

    // Names and texts never reach a table in plaintext, not even before the forget.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for table in &tables {
        // Names as JSON strings (quoted): a bare "Lee" also turns up in random base64
        // ciphertext now and then.
        for needle in [
            "my secret question",
            "echo: my secret",
            "\"Ann\"",
            "\"Lee\"",
        ] {
            let hits: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'"
            ))
            .bind(needle)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(hits, 0, "{table} holds {needle:?} in plaintext");
        }
    }
    let (_, chats) = app.get("/chats?user_id=42").await;
    let chat = chats["items"][0].clone();
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    let (_, history) = app.get(&format!("/chats/{chat_id}/messages")).await;
    assert_eq!(
        history["items"][0]["text"], "my secret question",
        "admins read it before"
    );

    let (status, forgotten) = app.post("/users/42/forget", json!(null)).await;
    assert_eq!(status, 200, "{forgotten}");
    assert_eq!(forgotten["had_data"], true);

    let (_, history) = app.get(&format!("/chats/{chat_id}/messages")).await;
    let texts: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["[forgotten]", "[forgotten]"]);
    assert_eq!(history["items"][1]["cost_micro_usd"], 121, "costs stay");
    let (_, after) = app.get(&format!("/chats/{chat_id}")).await;
    assert_eq!(after["message_count"], chat["message_count"]);
    assert_eq!(after["total_cost_micro_usd"], chat["total_cost_micro_usd"]);
    let (_, users) = app.get("/users").await;
    let ann = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == 42)
        .unwrap()
        .clone();
    assert_eq!(ann["first_name"], "[forgotten]");
    let other = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == 43)
        .unwrap()
        .clone();
    assert_eq!(other["first_name"], "Ann", "other people are untouched");
    let (_, others) = app.get("/chats?user_id=43").await;
    let other_chat = others["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, other_history) = app.get(&format!("/chats/{other_chat}/messages")).await;
    assert_eq!(
        other_history["items"][0]["text"],
        "another person's question"
    );

    app.settle().await;
    let (_, story) = app.get("/events?event_type=PersonalDataForgotten").await;
    assert!(
        story["items"][0]["metadata"]["actor"]
            .as_str()
            .unwrap()
            .starts_with("admin:"),
        "{story}"
    );

    // Replaying everything into empty read models reproduces them exactly, after the forget.
    let live = all_rows(&app).await;
    let output = crate::helpers::botfleet_cli(&app.db.url, &["projections", "rebuild"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(all_rows(&app).await, live);
    let verify = crate::helpers::botfleet_cli(&app.db.url, &["events", "verify"]).await;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // The CLI forgets too.
    let cli = crate::helpers::botfleet_cli(&app.db.url, &["users", "forget", "43"]).await;
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    // The service drops its cached key within its cache lifetime; a fresh read model shows it
    // at once through the table (no key left).
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM personal_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0);
    app.stop().await;
}

#[tokio::test]
async fn events_written_in_the_old_shape_load_into_the_aggregate_and_the_projections() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    let chat_id =
        aggregates::ids::ChatId::of(aggregates::ids::BotId(bot.parse().unwrap()), 42).to_string();
    // Version 1.0 held texts and names as plain strings.
    let received = json!({"MessageReceived": {
        "bot_id": bot, "update_id": 1, "message_id": 10,
        "chat": {"id": 42, "kind": "private", "title": null, "username": "ann"},
        "from": {"id": 42, "is_bot": false, "first_name": "Ann", "last_name": null, "username": "ann", "language_code": "en"},
        "text": "legacy hello", "sent_at": "2025-11-01T10:00:00Z"}});
    let generated = json!({"ResponseGenerated": {"update_id": 1, "response": {
        "text": "legacy answer", "kind": "llm", "model": "gpt-5-mini", "response_id": "resp_legacy",
        "usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 5, "reasoning_tokens": 0},
        "cost_micro_usd": 12}}});
    let sent = json!({"ResponseSent": {"update_id": 1, "telegram_message_ids": [99]}});
    // One transaction, as the old code appended a finished turn's events.
    let mut tx = app.pool.begin().await.unwrap();
    for (sequence, event_type, payload) in [
        (1, "MessageReceived", received),
        (2, "ResponseGenerated", generated),
        (3, "ResponseSent", sent),
    ] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('Chat', $1, $2, $3, '1.0', $4, '{}')",
        )
        .bind(&chat_id)
        .bind(sequence)
        .bind(event_type)
        .bind(payload)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    app.settle().await;
    // The projections read them…
    let (_, history) = app.get(&format!("/chats/{chat_id}/messages")).await;
    let texts: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["legacy hello", "legacy answer"]);
    // …and so does the aggregate: a new message continues the old conversation, and the old
    // update is still known.
    app.deliver(&bot, &text_update(1, 42, "legacy hello")).await;
    app.deliver(&bot, &text_update(2, 42, "new question")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(42, "echo: new question".to_owned())]
    );
    assert_eq!(
        fakes.openai.requests()[0].body["previous_response_id"],
        "resp_legacy"
    );
    app.stop().await;
}
