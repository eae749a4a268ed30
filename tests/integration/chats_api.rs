//! `/chats` and `/users`: filters, pagination, message history with cost, admin messages.

use std::time::Duration;

use serde_json::json;

use crate::fakes::telegram::text_update;
use crate::helpers::{token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(20);

/// Two bots; bot A has chats with users 42 and 43, bot B with user 42.
async fn conversations(app: &TestApp, fakes: &Fakes) -> (String, String) {
    let a = app.create_enabled_bot("A", &token(1)).await;
    let b = app.create_enabled_bot("B", &token(2)).await;
    app.deliver(&a, &text_update(1, 42, "a to 42")).await;
    app.deliver(&a, &text_update(2, 43, "a to 43")).await;
    app.deliver(&b, &text_update(1, 42, "b to 42")).await;
    fakes.telegram.wait_for_calls("sendMessage", 3, WAIT).await;
    app.settle().await;
    (a, b)
}

#[tokio::test]
async fn chats_are_filtered_by_bot_and_user_and_paged_newest_first() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let (a, b) = conversations(&app, &fakes).await;

    let (status, all) = app.get("/chats").await;
    assert_eq!(status, 200, "{all}");
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let activity: Vec<&str> = items
        .iter()
        .map(|c| c["last_activity_at"].as_str().unwrap())
        .collect();
    let mut sorted = activity.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(activity, sorted, "newest activity first");

    let (_, of_a) = app.get(&format!("/chats?bot_id={a}")).await;
    assert_eq!(of_a["items"].as_array().unwrap().len(), 2);
    assert!(of_a["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["bot_id"] == a.as_str()));
    let (_, of_42) = app.get("/chats?user_id=42").await;
    let bots: Vec<&str> = of_42["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bot_id"].as_str().unwrap())
        .collect();
    assert_eq!(bots.len(), 2);
    assert!(bots.contains(&a.as_str()) && bots.contains(&b.as_str()));
    let (_, both) = app.get(&format!("/chats?bot_id={b}&user_id=43")).await;
    assert!(both["items"].as_array().unwrap().is_empty());

    let mut seen = Vec::new();
    let mut path = "/chats?limit=1".to_owned();
    loop {
        let (_, page) = app.get(&path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/chats?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<_> = items.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(seen, expected, "pages visit every chat once, in order");
    let (status, error) = app.get("/chats?cursor=nonsense").await;
    assert_eq!((status, error["field"].as_str()), (422, Some("cursor")));
    app.stop().await;
}

#[tokio::test]
async fn a_chat_shows_its_state_and_its_messages_with_usage_and_cost() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    app.deliver(&bot, &text_update(1, 42, "first")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.deliver(&bot, &text_update(2, 42, "second")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;

    let (_, list) = app.get("/chats").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, chat) = app.get(&format!("/chats/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(chat["bot_id"], bot);
    assert_eq!(chat["telegram_chat_id"], 42);
    assert_eq!(chat["telegram_user_id"], 42);
    assert_eq!(chat["message_count"], 4);
    assert_eq!(chat["total_cost_micro_usd"], 242);
    assert_eq!(chat["previous_response_id"], "resp_2");
    assert_eq!(chat["blocked"], false);
    assert_eq!(
        app.get(&format!("/chats/{}", uuid::Uuid::now_v7())).await.0,
        404
    );

    let (_, page) = app.get(&format!("/chats/{id}/messages?limit=3")).await;
    let messages = page["items"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "bot", "user"]);
    assert_eq!(messages[1]["text"], "echo: first");
    assert_eq!(messages[1]["cost_micro_usd"], 121);
    assert_eq!(messages[1]["input_tokens"], 100);
    assert_eq!(messages[1]["cached_input_tokens"], 20);
    assert_eq!(messages[1]["output_tokens"], 50);
    assert_eq!(messages[1]["reasoning_tokens"], 10);
    assert_eq!(messages[1]["status"], "sent");
    assert_eq!(
        messages[0]["status"], "answered",
        "the question shows it was answered"
    );
    assert_eq!(messages[0]["text"], "first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("/chats/{id}/messages?limit=3&cursor={cursor}"))
        .await;
    let rest = rest["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["text"], "echo: second");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_message_reaches_telegram_and_shows_in_the_history() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    app.deliver(&bot, &text_update(1, 42, "hello")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    let (_, list) = app.get("/chats").await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();

    let (status, queued) = app
        .post(
            &format!("/chats/{id}/messages"),
            json!({"text": "An admin here: how can I help?"}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let sent = fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    assert_eq!(sent[1].token, token(1), "sent with the bot's token");
    assert_eq!(sent[1].body["chat_id"], 42);
    assert_eq!(sent[1].body["text"], "An admin here: how can I help?");
    app.settle().await;

    let (_, page) = app.get(&format!("/chats/{id}/messages")).await;
    let last = page["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "admin");
    assert_eq!(last["status"], "sent");
    assert_eq!(last["text"], "An admin here: how can I help?");
    let actor: String = sqlx::query_scalar(
        "SELECT metadata ->> 'actor' FROM events WHERE event_type = 'AdminMessageQueued'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(actor.starts_with("admin:"), "{actor}");
    assert_eq!(
        fakes.openai.requests().len(),
        1,
        "an admin message does not go to the LLM"
    );

    // Empty, blank, or Markdown that shows nothing: Telegram would refuse the empty message.
    for text in ["", " \t\n", "#", "> ", "[](https://example.com)"] {
        let (status, error) = app
            .post(&format!("/chats/{id}/messages"), json!({ "text": text }))
            .await;
        assert_eq!(
            (status, error["field"].as_str()),
            (422, Some("text")),
            "{text:?}"
        );
    }
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'AdminMessageQueued'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(queued, 1, "a refused message is not recorded");
    let (status, _) = app
        .post(
            &format!("/chats/{}/messages", uuid::Uuid::now_v7()),
            json!({"text": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn users_are_listed_with_their_chats() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    conversations(&app, &fakes).await;
    let (status, users) = app.get("/users").await;
    assert_eq!(status, 200, "{users}");
    let items = users["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let ann = items.iter().find(|u| u["id"] == 42).unwrap();
    assert_eq!(ann["first_name"], "Ann");
    assert_eq!(ann["chat_ids"].as_array().unwrap().len(), 2);
    app.stop().await;
}
