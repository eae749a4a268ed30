//! When things fail: error classes, retries, what the Telegram user and the admin see, and
//! Telegram's own rules — with faults injected into the fake servers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::openai::error_body;
use crate::fakes::telegram::{error, text_update};
use crate::fakes::webhook::FakeWebhook;
use crate::helpers::{eventually, token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(30);

async fn count_events(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_llm_401_is_not_retried_the_user_gets_the_error_message_once_and_the_bot_shows_it() {
    let fakes = Fakes::start().await;
    fakes.openai.fail_next(
        1,
        401,
        error_body(
            "Incorrect API key provided",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        None,
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.openai.requests().len(),
        1,
        "no retry after a fatal error"
    );
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(
            42,
            "Sorry, something went wrong. Please try again later.".to_owned()
        )]
    );
    let (_, bot) = app.get(&format!("/bots/{bot_id}")).await;
    assert_eq!(bot["last_error"]["kind"], "llm");
    assert!(bot["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("Incorrect API key"));
    assert!(
        !bot.to_string().contains("sk-test"),
        "no secret in the answer"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_empty_answer_is_asked_again_and_never_sent_as_an_empty_message() {
    let fakes = Fakes::start().await;
    // The model answers with nothing but whitespace, every time.
    fakes.openai.set_reply(Some(" \n ".to_owned()));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    // Asked again on the retry schedule (RETRY_LIMIT 4: five attempts), then the error message.
    assert_eq!(fakes.openai.requests().len(), 5);
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(
            42,
            "Sorry, something went wrong. Please try again later.".to_owned()
        )]
    );
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT payload::text FROM events WHERE event_type = 'AttemptFailed' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(codes.len(), 5, "{codes:?}");
    assert!(
        codes.iter().all(|c| c.contains("empty_answer")),
        "{codes:?}"
    );

    // A model that answers again is heard again.
    fakes.openai.set_reply(None);
    app.deliver(&bot_id, &text_update(2, 42, "hello?")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    assert_eq!(fakes.telegram.sent_messages()[1].1, "echo: hello?");
    app.stop().await;
}

#[tokio::test]
async fn an_llm_500_twice_then_success_gives_one_reply() {
    let fakes = Fakes::start().await;
    fakes.openai.fail_next(
        2,
        500,
        error_body("The server had an error", "server_error", None),
        None,
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(fakes.openai.requests().len(), 3);
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(42, "echo: hi".to_owned())]
    );
    assert_eq!(
        count_events(&app, "AttemptFailed").await,
        2,
        "each attempt is an event"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_telegram_429_is_honoured_and_the_reply_delivered_once() {
    let fakes = Fakes::start().await;
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        429,
        error(429, "Too Many Requests: retry after 1", Some(1)),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    let calls = fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.telegram.calls_of("sendMessage").len(),
        2,
        "refused once, delivered once"
    );
    assert!(
        calls[1].at.duration_since(calls[0].at) >= Duration::from_secs(1),
        "the retry waited for retry_after"
    );
    assert_eq!(fakes.openai.requests().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_blocked_bot_stops_all_attempts_for_that_chat_until_the_user_writes_again() {
    let fakes = Fakes::start().await;
    // Slow enough for all three messages to be received before the first send.
    fakes.openai.set_delay(Duration::from_millis(500));
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        403,
        error(403, "Forbidden: bot was blocked by the user", None),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    for n in 1..=3 {
        app.deliver(&bot_id, &text_update(n, 42, &format!("message {n}")))
            .await;
    }
    app.settle().await;
    assert_eq!(
        fakes.telegram.calls_of("sendMessage").len(),
        1,
        "one refused send, then none"
    );
    assert_eq!(
        fakes.openai.requests().len(),
        1,
        "no more LLM calls for a blocked chat"
    );
    assert_eq!(count_events(&app, "TurnFailed").await, 3);
    let blocked: bool = sqlx::query_scalar("SELECT blocked FROM chats")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(blocked);

    fakes.openai.set_delay(Duration::ZERO);
    app.deliver(&bot_id, &text_update(4, 42, "back again"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    assert_eq!(
        fakes.telegram.sent_messages()[1],
        (42, "echo: back again".to_owned())
    );
    app.stop().await;
}

#[tokio::test]
async fn a_long_reply_arrives_as_several_messages_that_join_to_the_whole_text() {
    let fakes = Fakes::start().await;
    let paragraph = "This sentence is part of a very long answer. ".repeat(20);
    let long: String = (0..11)
        .map(|n| format!("Part {n}. {paragraph}\n\n"))
        .collect::<String>()
        .trim_end()
        .to_owned();
    assert!(long.chars().count() >= 10_000);
    fakes.openai.set_reply(Some(long.clone()));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "tell me everything"))
        .await;
    app.settle().await;
    let parts: Vec<String> = fakes
        .telegram
        .sent_messages()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(
        parts.len() >= 3,
        "{} parts; events: {:?}; calls: {:?}",
        parts.len(),
        app.event_types().await,
        fakes
            .telegram
            .calls()
            .iter()
            .map(|c| c.method.clone())
            .collect::<Vec<_>>()
    );
    assert!(parts.iter().all(|p| p.chars().count() <= 4096));
    // Cut between paragraphs: the blank line between two messages is all that is left out
    // (and the spaces that end a line, which Markdown does not show).
    let shown: Vec<&str> = long.lines().map(str::trim_end).collect();
    assert_eq!(parts.join("\n\n"), shown.join("\n"), "nothing was cut");
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT unnest(telegram_message_ids) FROM messages WHERE role = 'bot'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        ids.len(),
        parts.len(),
        "every part's message id is recorded"
    );
    app.stop().await;
}

#[tokio::test]
async fn markdown_is_sent_as_html_and_as_plain_text_when_telegram_rejects_it() {
    let fakes = Fakes::start().await;
    fakes
        .openai
        .set_reply(Some("**Bold** answer with `code`".into()));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "format please"))
        .await;
    let first = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(first[0].body["parse_mode"], "HTML");
    assert_eq!(
        first[0].body["text"],
        "<b>Bold</b> answer with <code>code</code>"
    );

    fakes.telegram.fail_next(
        "sendMessage",
        1,
        400,
        error(
            400,
            "Bad Request: can't parse entities: Unsupported start tag \"b\" at byte offset 0",
            None,
        ),
    );
    app.deliver(&bot_id, &text_update(2, 43, "again")).await;
    let calls = fakes.telegram.wait_for_calls("sendMessage", 3, WAIT).await;
    app.settle().await;
    assert_eq!(calls[2].body["text"], "**Bold** answer with `code`");
    assert!(calls[2].body.get("parse_mode").is_none_or(|m| m.is_null()));
    assert_eq!(fakes.telegram.calls_of("sendMessage").len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn fifty_identical_failures_make_one_admin_notification() {
    let fakes = Fakes::start().await;
    let alerts = FakeWebhook::start().await;
    fakes.openai.fail_next(
        50,
        401,
        error_body(
            "Incorrect API key provided",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        None,
    );
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.alert_webhook_url = Some(alerts.url.clone());
        args.alert_gather_ms = 5_000;
    })
    .await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    for chat in 0..50 {
        app.deliver(&bot_id, &text_update(chat + 1, 1000 + chat, "hi"))
            .await;
    }
    let received = alerts.wait_for(1, WAIT).await;
    app.settle().await;
    assert_eq!(alerts.bodies().len(), 1, "{:?}", alerts.bodies());
    assert_eq!(received[0]["bot_id"], bot_id);
    assert_eq!(received[0]["bot_name"], "Support");
    assert_eq!(received[0]["kind"], "llm_fatal");
    assert_eq!(received[0]["count"], 50);
    assert!(received[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("Incorrect API key"));
    app.stop().await;
}

#[tokio::test]
async fn a_manual_retry_of_a_failed_turn_delivers_it() {
    let fakes = Fakes::start().await;
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        403,
        error(403, "Forbidden: bot was blocked by the user", None),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    app.settle().await;

    let (status, page) = app.get("/failures").await;
    assert_eq!(status, 200, "{page}");
    let failure = &page["items"][0];
    assert_eq!(failure["bot_id"], bot_id);
    assert_eq!(failure["class"], "terminal");
    assert_eq!(failure["step"], "send");
    assert!(failure["last_error"].as_str().unwrap().contains("blocked"));
    let id = failure["id"].as_str().unwrap().to_owned();

    let (status, body) = app
        .post(&format!("/failures/{id}/retry"), json!(null))
        .await;
    assert_eq!(status, 202, "{body}");
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.telegram.sent_messages()[1],
        (42, "echo: hi".to_owned())
    );
    assert_eq!(
        fakes.openai.requests().len(),
        1,
        "the recorded response was sent again"
    );
    let (_, page) = app.get("/failures").await;
    assert!(page["items"].as_array().unwrap().is_empty());

    let (status, body) = app
        .post(&format!("/failures/{id}/retry"), json!(null))
        .await;
    assert_eq!(status, 409, "retrying what is not failed: {body}");
    let (status, _) = app
        .post(
            &format!("/failures/{}/retry", uuid::Uuid::now_v7()),
            json!(null),
        )
        .await;
    assert_eq!(status, 404);
    let retried: serde_json::Value =
        sqlx::query_scalar("SELECT metadata FROM events WHERE event_type = 'TurnRetried'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        retried["actor"].as_str().unwrap().starts_with("admin:"),
        "{retried}"
    );
    app.stop().await;
}

fn callback_update(update_id: i64, chat_id: i64, data: &str) -> serde_json::Value {
    json!({"update_id": update_id, "callback_query": {
        "id": format!("query-{update_id}"), "chat_instance": "x", "data": data,
        "from": {"id": chat_id, "is_bot": false, "first_name": "Ann"},
        "message": {"message_id": 5, "date": 1_764_000_000,
                    "chat": {"id": chat_id, "type": "private", "first_name": "Ann"}, "text": "menu"}}})
}

#[tokio::test]
async fn callback_queries_are_answered_and_other_updates_handled_without_the_llm() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &callback_update(1, 42, "refresh"))
        .await;
    app.deliver(&bot_id, &callback_update(2, 42, "something-old"))
        .await;
    let answers = fakes
        .telegram
        .wait_for_calls("answerCallbackQuery", 2, WAIT)
        .await;
    assert_eq!(answers[0].body["callback_query_id"], "query-1");
    assert!(answers[0].body["text"]
        .as_str()
        .unwrap()
        .contains("new conversation"));
    assert!(answers[1].body["text"]
        .as_str()
        .unwrap()
        .contains("no longer"));

    // A sticker: media the model cannot take (photos and voice go to it: tests/media.rs).
    let sticker = json!({"update_id": 3, "message": {"message_id": 30, "date": 1_764_000_000,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "first_name": "Ann"},
        "sticker": {"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1,
                    "type": "regular", "is_animated": false, "is_video": false}}});
    app.deliver(&bot_id, &sticker).await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert!(sent[0].body["text"]
        .as_str()
        .unwrap()
        .contains("only read text"));

    app.deliver(&bot_id, &text_update(4, 42, "original")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    let edit = json!({"update_id": 5, "edited_message": {"message_id": 40, "date": 1_764_000_000,
        "edit_date": 1_764_000_100, "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "first_name": "Ann"}, "text": "edited"}});
    app.deliver(&bot_id, &edit).await;
    app.settle().await;
    assert_eq!(count_events(&app, "MessageEdited").await, 1);
    let (_, chats) = app.get("/chats").await;
    let chat = chats["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, history) = app.get(&format!("/chats/{chat}/messages")).await;
    let edited = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["update_id"] == 4 && m["role"] == "user")
        .unwrap()
        .clone();
    assert_eq!(edited["text"], "edited", "the edit shows in the history");
    assert!(edited["edited_at"].is_string());
    assert_eq!(
        fakes.telegram.calls_of("sendMessage").len(),
        2,
        "an edit is not answered again"
    );
    assert_eq!(
        fakes.openai.requests().len(),
        1,
        "only the text message reached the LLM"
    );
    app.stop().await;
}

fn group_update(update_id: i64, text: &str) -> serde_json::Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1_764_000_000,
        "chat": {"id": -100_555, "type": "supergroup", "title": "Team"},
        "from": {"id": 42, "is_bot": false, "first_name": "Ann"}, "text": text}})
}

#[tokio::test]
async fn in_a_group_the_bot_answers_only_when_addressed() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    eventually(WAIT, "the bot's username is learned", || async {
        app.get(&format!("/bots/{bot_id}")).await.1["username"] == "support_bot"
    })
    .await;

    app.deliver(&bot_id, &group_update(1, "hello everyone"))
        .await;
    app.deliver(&bot_id, &group_update(2, "@support_bot what time is it?"))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(fakes.telegram.calls_of("sendMessage").len(), 1, "{sent:?}");
    assert_eq!(sent[0].body["chat_id"], -100_555);
    assert_eq!(
        sent[0].body["text"], "echo: what time is it?",
        "the mention is stripped"
    );
    assert_eq!(
        count_events(&app, "MessageReceived").await,
        1,
        "unaddressed chatter is not recorded"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_migrated_group_is_answered_at_its_new_id() {
    let fakes = Fakes::start().await;
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat",
               "parameters": {"migrate_to_chat_id": -100_777}}),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    let calls = fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    assert_eq!(calls[1].body["chat_id"], -100_777);
    assert_eq!(count_events(&app, "ChatMigrated").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_turn_whose_llm_retries_ran_out_is_a_failure_admins_see_and_can_retry() {
    let fakes = Fakes::start().await;
    // RETRY_LIMIT 1: two attempts, both fail; the user gets the bot's error message.
    fakes.openai.fail_next(
        2,
        500,
        error_body("The server had an error", "server_error", None),
        None,
    );
    let app = TestApp::spawn_with_fakes(&fakes, |args| args.retry_limit = 1).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(fakes.openai.requests().len(), 2);

    let (_, failures) = app.get("/failures").await;
    let failure = &failures["items"][0];
    assert_eq!(failure["step"], "generate", "{failures}");
    assert_eq!(failure["class"], "terminal");
    assert_eq!(failure["outcome"], "error_message_sent");
    assert!(failure["last_error"]
        .as_str()
        .unwrap()
        .contains("The server had an error"));
    let (_, bot) = app.get(&format!("/bots/{bot_id}")).await;
    assert_eq!(bot["last_error"]["kind"], "llm", "{bot}");

    // Retried by an admin: the model is asked again and the answer follows the apology.
    let id = failure["id"].as_str().unwrap();
    let (status, _) = app
        .post(&format!("/failures/{id}/retry"), Value::Null)
        .await;
    assert_eq!(status, 202);
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.telegram.sent_messages()[1],
        (42, "echo: hi".to_owned())
    );
    let (_, failures) = app.get("/failures").await;
    assert!(
        failures["items"].as_array().unwrap().is_empty(),
        "{failures}"
    );
    eventually(WAIT, "the answer clears the bot's error", || async {
        app.get(&format!("/bots/{bot_id}")).await.1["last_error"].is_null()
    })
    .await;
    app.stop().await;
}
