//! The audit trail: the event feed, a turn's whole story, time travel, the CLI's export and
//! verification, and snapshots.

use std::time::Duration;

use serde_json::json;

use crate::fakes::openai::error_body;
use crate::fakes::telegram::text_update;
use crate::helpers::{token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_event_feed_pages_in_commit_order_filters_and_redacts_secrets() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    app.deliver(&bot, &text_update(1, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    let (status, all) = app.get("/events?limit=1000").await;
    assert_eq!(status, 200, "{all}");
    let events = all["items"].as_array().unwrap().clone();
    assert!(events.len() >= 5);
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["global_position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] != w[1]));
    let created = events
        .iter()
        .find(|e| e["event_type"] == "BotCreated")
        .unwrap();
    assert_eq!(
        created["payload"]["BotCreated"]["token"]["ciphertext"],
        "[redacted]"
    );
    assert_eq!(
        created["payload"]["BotCreated"]["token"]["fingerprint"],
        "[redacted]"
    );
    assert_eq!(
        created["payload"]["BotCreated"]["token"]["hint"],
        "100001:…0001"
    );
    assert!(created["metadata"]["actor"]
        .as_str()
        .unwrap()
        .starts_with("admin:"));

    // Paging one at a time visits the same events in the same order.
    let mut paged = Vec::new();
    let mut path = "/events?limit=1".to_owned();
    loop {
        let (_, page) = app.get(&path).await;
        let items = page["items"].as_array().unwrap();
        paged.extend(items.iter().map(|e| e["position"].clone()));
        match page["next_after"].as_str() {
            Some(after) => path = format!("/events?limit=1&after={after}"),
            None => break,
        }
    }
    let expected: Vec<_> = events.iter().map(|e| e["position"].clone()).collect();
    assert_eq!(paged, expected);

    let (_, bots) = app.get(&format!("/bots/{bot}/events")).await;
    assert!(bots["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["aggregate_id"] == bot.as_str()));
    let (_, received) = app.get("/events?event_type=MessageReceived").await;
    assert_eq!(received["items"].as_array().unwrap().len(), 1);
    let chat_id = received["items"][0]["aggregate_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, chat) = app.get(&format!("/chats/{chat_id}/events")).await;
    let types: Vec<&str> = chat["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["MessageReceived", "ResponseGenerated", "ResponseSent"]
    );
    let (_, future) = app.get("/events?since=2999-01-01T00:00:00Z").await;
    assert!(future["items"].as_array().unwrap().is_empty());
    let (_, past) = app.get("/events?until=2000-01-01T00:00:00Z").await;
    assert!(past["items"].as_array().unwrap().is_empty());
    let (status, error) = app.get("/events?after=garbage").await;
    assert_eq!((status, error["field"].as_str()), (422, Some("after")));
    app.stop().await;
}

#[tokio::test]
async fn a_turns_correlation_id_tells_its_whole_story() {
    let fakes = Fakes::start().await;
    fakes.openai.fail_next(
        1,
        500,
        error_body("The server had an error", "server_error", None),
        None,
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    app.deliver(&bot, &text_update(7, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    let (_, received) = app.get("/events?event_type=MessageReceived").await;
    let correlation = received["items"][0]["metadata"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, story) = app
        .get(&format!("/events?correlation_id={correlation}"))
        .await;
    let types: Vec<&str> = story["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "MessageReceived",
            "AttemptFailed",
            "ResponseGenerated",
            "ResponseSent"
        ]
    );
    let actors: Vec<&str> = story["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors[0], "telegram:42");
    assert!(
        actors[1..].iter().all(|a| *a == "system:effect-runner"),
        "{actors:?}"
    );

    // An admin request's story: the enable and the webhook it caused share one id.
    let (_, enabled) = app.get("/events?event_type=BotEnabled").await;
    let admin_story = enabled["items"][0]["metadata"]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, story) = app
        .get(&format!("/events?correlation_id={admin_story}"))
        .await;
    assert_eq!(story["items"][0]["event_type"], "BotEnabled");
    app.stop().await;
}

#[tokio::test]
async fn bots_and_chats_can_be_seen_as_they_were_at_an_instant() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let before_creation = chrono::Utc::now();
    let bot = app.create_enabled_bot("Original", &token(1)).await;
    app.deliver(&bot, &text_update(1, 42, "one")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    let moment = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;

    app.put(
        &format!("/bots/{bot}"),
        json!({"name": "Renamed", "model": "gpt-5", "start_message": "Hi", "error_message": "Oops", "instructions": ""}),
    )
    .await;
    app.deliver(&bot, &text_update(2, 42, "two")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;

    let at = |t: chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B")
    };
    let (status, then) = app.get(&format!("/bots/{bot}?as_of={}", at(moment))).await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["name"], "Original");
    assert_eq!(then["model"], "gpt-5-mini");
    assert_eq!(then["status"], "enabled");
    let (_, now) = app.get(&format!("/bots/{bot}")).await;
    assert_eq!(now["name"], "Renamed");
    assert_eq!(
        app.get(&format!("/bots/{bot}?as_of={}", at(before_creation)))
            .await
            .0,
        404
    );

    let (_, chats) = app.get("/chats").await;
    let chat = chats["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, chat_then) = app
        .get(&format!("/chats/{chat}?as_of={}", at(moment)))
        .await;
    assert_eq!(chat_then["message_count"], 2);
    assert_eq!(chat_then["previous_response_id"], "resp_1");
    let (_, chat_now) = app.get(&format!("/chats/{chat}")).await;
    assert_eq!(chat_now["message_count"], 4);
    // The live read model is untouched by the look into the past.
    assert_eq!(app.get(&format!("/bots/{bot}")).await.1["name"], "Renamed");
    app.stop().await;
}

async fn botfleet(args: &[&str], database_url: &str) -> std::process::Output {
    crate::helpers::botfleet_cli(database_url, args).await
}

#[tokio::test]
async fn the_cli_exports_ndjson_and_verifies_the_store() {
    let app = TestApp::spawn().await;
    let bot = app.create_bot("A", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/bots/{bot}/enable"), json!(null)).await;
    app.create_bot("B", &token(2)).await;

    let export = botfleet(&["events", "export"], &app.db.url).await;
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, app.event_count().await);
    assert!(
        lines.iter().all(|l| !l.to_string().contains("v1.")),
        "sealed tokens are redacted"
    );
    let one = botfleet(
        &["events", "export", "--aggregate", &format!("Bot:{bot}")],
        &app.db.url,
    )
    .await;
    assert_eq!(String::from_utf8(one.stdout).unwrap().lines().count(), 2);
    let none = botfleet(
        &["events", "export", "--since", "2999-01-01T00:00:00Z"],
        &app.db.url,
    )
    .await;
    assert_eq!(String::from_utf8(none.stdout).unwrap().lines().count(), 0);

    let verify = botfleet(&["events", "verify"], &app.db.url).await;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("sound"));

    // A gap in a stream and an unreadable payload are both reported.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Bot', $1, 9, 'BotEnabled', '1.0', '\"BotEnabled\"', '{}'),
                ('Bot', $2, 1, 'BotCreated', '1.0', '{\"BotCreated\": {\"nonsense\": 1}}', '{}')",
    )
    .bind(&bot)
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&app.pool)
    .await
    .unwrap();
    let verify = botfleet(&["events", "verify"], &app.db.url).await;
    let report = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(!verify.status.success(), "{report}");
    assert!(report.contains("sequence gap"), "{report}");
    assert!(report.contains("unreadable"), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn long_chats_load_from_snapshots_and_keep_working() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    // Each turn is three events: 20 turns cross the snapshot interval.
    for n in 1..=20 {
        app.deliver(&bot, &text_update(n, 42, &format!("message {n}")))
            .await;
        fakes
            .telegram
            .wait_for_calls("sendMessage", n as usize, WAIT)
            .await;
    }
    app.settle().await;
    let snapshots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM snapshots WHERE aggregate_type = 'Chat'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(snapshots, 1);
    let last: i64 = sqlx::query_scalar("SELECT last_sequence FROM snapshots")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(last >= 50);
    // The conversation state survived the snapshot: the 20th call chained on the 19th.
    let requests = fakes.openai.requests();
    assert_eq!(requests[19].body["previous_response_id"], "resp_19");
    // And a redelivered early update is still recognised after it.
    app.deliver(&bot, &text_update(3, 42, "message 3")).await;
    app.settle().await;
    assert_eq!(fakes.telegram.calls_of("sendMessage").len(), 20);
    app.stop().await;
}
