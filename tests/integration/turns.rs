//! Incoming messages answered end to end: webhook in, LLM, Telegram out, every step an
//! event, against the fake Telegram and OpenAI servers.

use std::time::Duration;

use serde_json::json;

use crate::fakes::telegram::text_update;
use crate::helpers::{token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_message_is_answered_with_the_responses_api_and_priced() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    assert_eq!(
        app.deliver(&bot_id, &text_update(500, 42, "hello")).await,
        200
    );
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(sent[0].token, token(1), "sent with the bot's own token");
    assert_eq!(sent[0].body["chat_id"], 42);
    assert_eq!(sent[0].body["text"], "echo: hello");

    let llm = fakes.openai.requests();
    assert_eq!(llm.len(), 1);
    assert_eq!(llm[0].path, "/v1/responses");
    assert_eq!(llm[0].body["model"], "gpt-5-mini");
    assert_eq!(llm[0].body["instructions"], "Answer briefly.");
    assert_eq!(llm[0].body["store"], true);
    assert!(llm[0]
        .body
        .get("previous_response_id")
        .is_none_or(|v| v.is_null()));

    app.settle().await;
    let chat_events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Chat' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        chat_events,
        ["MessageReceived", "ResponseGenerated", "ResponseSent"]
    );
    // gpt-5-mini: 80 uncached input at $0.25/M, 20 cached at $0.025/M, 50 output at $2/M
    // = 20 + 0.5 + 100 = 120.5 micro-USD, rounded half up.
    let (cost, input, cached, output, reasoning, response_id): (i64, i64, i64, i64, i64, String) = sqlx::query_as(
        "SELECT cost_micro_usd, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, response_id
         FROM messages WHERE role = 'bot'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (cost, input, cached, output, reasoning),
        (121, 100, 20, 50, 10)
    );
    assert_eq!(response_id, "resp_1");
    let (status, user_status): (String, String) = sqlx::query_as(
        "SELECT b.status, u.status FROM messages b JOIN messages u USING (chat_id, update_id)
         WHERE b.role = 'bot' AND u.role = 'user'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), user_status.as_str()),
        ("sent", "answered")
    );
    let (count, total): (i64, i64) =
        sqlx::query_as("SELECT message_count, total_cost_micro_usd FROM chats")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((count, total), (2, 121));
    let (_, users) = app.get("/users").await;
    let user = &users["items"][0];
    assert_eq!(
        (
            &user["id"],
            &user["first_name"],
            &user["username"],
            &user["language_code"]
        ),
        (&json!(42), &json!("Ann"), &json!("ann"), &json!("en"))
    );
    app.stop().await;
}

#[tokio::test]
async fn chat_completions_mode_sends_the_chats_own_history() {
    let fakes = Fakes::start().await;
    let app =
        TestApp::spawn_with_fakes(&fakes, |args| args.llm_api = "chat_completions".into()).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "first question"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.deliver(&bot_id, &text_update(2, 42, "second question"))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    assert_eq!(sent[1].body["text"], "echo: second question");

    let calls = fakes.openai.requests();
    assert_eq!(calls[1].path, "/v1/chat/completions");
    let roles_and_texts: Vec<(String, String)> = calls[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles_and_texts,
        [
            ("system".to_owned(), "Answer briefly.".to_owned()),
            ("user".to_owned(), "first question".to_owned()),
            ("assistant".to_owned(), "echo: first question".to_owned()),
            ("user".to_owned(), "second question".to_owned()),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn the_webhook_refuses_a_wrong_secret_and_a_malformed_body_and_records_nothing() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    let other_bot = app.create_enabled_bot("Other", &token(2)).await;
    let chat_events = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE aggregate_type = 'Chat'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let url = app.url(&format!("/telegram/{bot_id}/webhook"));

    for secret in [
        None,
        Some("wrong".to_owned()),
        Some(app.webhook_secret(&other_bot)),
    ] {
        let mut request = app.http.post(&url).json(&text_update(1, 42, "hi"));
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    for body in ["{not json", "{\"no_update_id\": true}", "[]"] {
        let response = app
            .http
            .post(&url)
            .header(
                "X-Telegram-Bot-Api-Secret-Token",
                app.webhook_secret(&bot_id),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    assert_eq!(chat_events().await, 0, "nothing was recorded");
    assert!(fakes.openai.requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn updates_for_a_bot_that_is_not_live_are_acknowledged_and_dropped() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let disabled = app.create_bot("Disabled", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = app.create_enabled_bot("Deleted", &token(2)).await;
    app.delete(&format!("/bots/{deleted}")).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for bot in [&disabled, &deleted, &unknown] {
        assert_eq!(app.deliver(bot, &text_update(1, 42, "hi")).await, 200);
    }
    let chat_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'Chat'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(chat_events, 0, "nothing was recorded");
    app.stop().await;
}

#[tokio::test]
async fn one_update_delivered_five_times_at_once_is_answered_once() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    let update = text_update(77, 42, "once please");
    let deliveries = (0..5).map(|_| app.deliver(&bot_id, &update));
    let statuses = futures::future::join_all(deliveries).await;
    assert_eq!(statuses, [200; 5]);

    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(42, "echo: once please".to_owned())]
    );
    assert_eq!(fakes.openai.requests().len(), 1);
    let received: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MessageReceived'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(received, 1);
    app.stop().await;
}

#[tokio::test]
async fn commands_answer_without_the_llm_and_refresh_resets_the_conversation() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    let steps = [
        (1, "/start"),
        (2, "/help@support_bot"),
        (3, "first"),
        (4, "second"),
        (5, "/refresh"),
        (6, "third"),
    ];
    for (n, (update_id, text)) in steps.iter().enumerate() {
        app.deliver(&bot_id, &text_update(*update_id, 42, text))
            .await;
        fakes
            .telegram
            .wait_for_calls("sendMessage", n + 1, WAIT)
            .await;
    }
    let texts: Vec<String> = fakes
        .telegram
        .sent_messages()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(texts[0], "Hello! Ask me anything.");
    assert!(texts[1].contains("/refresh"), "{}", texts[1]);
    assert_eq!(texts[2], "echo: first");
    assert_eq!(texts[3], "echo: second");
    assert!(
        texts[4].to_lowercase().contains("new conversation"),
        "{}",
        texts[4]
    );
    assert_eq!(texts[5], "echo: third");

    let previous: Vec<Option<String>> = fakes
        .openai
        .requests()
        .iter()
        .map(|r| r.body["previous_response_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        previous,
        [None, Some("resp_1".to_owned()), None],
        "chained, then reset"
    );
    app.settle().await;
    let reset: Option<String> = sqlx::query_scalar("SELECT previous_response_id FROM chats")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reset.as_deref(), Some("resp_3"));
    assert!(app
        .event_types()
        .await
        .contains(&"ConversationReset".to_owned()));
    app.stop().await;
}

#[tokio::test]
async fn enabling_sets_the_webhook_and_disabling_deletes_it() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.public_url = Some("https://bots.example.com/".into())
    })
    .await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    let set = fakes.telegram.wait_for_calls("setWebhook", 1, WAIT).await;
    assert_eq!(set[0].token, token(1));
    assert_eq!(
        set[0].body["url"],
        format!("https://bots.example.com/telegram/{bot_id}/webhook")
    );
    assert_eq!(
        set[0].body["allowed_updates"],
        json!([
            "message",
            "edited_message",
            "callback_query",
            "stopped_message_generation"
        ])
    );
    // Telegram will present exactly this secret, which the webhook accepts.
    let secret = set[0].body["secret_token"].as_str().unwrap().to_owned();
    assert_eq!(secret, app.webhook_secret(&bot_id));
    crate::helpers::eventually(WAIT, "WebhookSet is recorded", || async {
        app.event_types().await.contains(&"WebhookSet".to_owned())
    })
    .await;

    app.post(&format!("/bots/{bot_id}/disable"), json!(null))
        .await;
    let deleted = fakes
        .telegram
        .wait_for_calls("deleteWebhook", 1, WAIT)
        .await;
    assert_eq!(deleted[0].token, token(1));
    crate::helpers::eventually(WAIT, "WebhookDeleted is recorded", || async {
        app.event_types()
            .await
            .contains(&"WebhookDeleted".to_owned())
    })
    .await;
    assert!(
        fakes.telegram.calls_of("getUpdates").is_empty(),
        "no polling with a public URL"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_set_by_an_earlier_version_is_set_again_with_every_update_kind() {
    let fakes = Fakes::start().await;
    let public_url = "https://bots.example.com/";
    let mut app =
        TestApp::spawn_with_fakes(&fakes, |args| args.public_url = Some(public_url.into())).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    crate::helpers::eventually(WAIT, "WebhookSet is recorded", || async {
        app.event_types().await.contains(&"WebhookSet".to_owned())
    })
    .await;
    app.app.take().unwrap().stop().await.unwrap();
    // What an upgrade finds: the webhook recorded without its update kinds (no stop button
    // updates asked for), the read model's new column empty.
    let pool = app.db.pool().await;
    // The log refuses changes by trigger; this test plays the earlier version's writer.
    let mut rewrite = pool.begin().await.unwrap();
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER USER",
        "UPDATE events SET payload = payload #- '{WebhookSet,allowed_updates}'
         WHERE event_type = 'WebhookSet'",
        "ALTER TABLE events ENABLE TRIGGER USER",
    ] {
        sqlx::query(statement).execute(&mut *rewrite).await.unwrap();
    }
    rewrite.commit().await.unwrap();
    sqlx::query("UPDATE bots SET webhook_updates = NULL")
        .execute(&pool)
        .await
        .unwrap();

    let mut config = crate::helpers::test_config(&app.db, &app.token_key);
    config.telegram_api_url = fakes.telegram.base_url.parse().unwrap();
    config.openai_base_url = fakes.openai.base_url.parse().unwrap();
    config.public_url = Some(public_url.parse().unwrap());
    let upgraded = botfleet::app::Application::build(config).await.unwrap();
    let set = fakes.telegram.wait_for_calls("setWebhook", 2, WAIT).await;
    assert_eq!(
        set[1].body["allowed_updates"][3], "stopped_message_generation",
        "{set:?}"
    );
    let kinds = || async {
        sqlx::query_scalar::<_, Option<Vec<String>>>("SELECT webhook_updates FROM bots")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    crate::helpers::eventually(WAIT, "the new kinds are recorded", || async {
        kinds().await.is_some_and(|k| k.len() == 4)
    })
    .await;
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'WebhookSet'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 2, "set again once");
    assert!(set[1].body["url"].as_str().unwrap().contains(&bot_id));
    upgraded.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_send_is_retried_without_asking_the_llm_again() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        429,
        crate::fakes::telegram::error(429, "Too Many Requests: retry after 1", Some(1)),
    );
    app.deliver(&bot_id, &text_update(1, 42, "hi")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    assert_eq!(
        fakes.openai.requests().len(),
        1,
        "the recorded response was reused"
    );
    assert_eq!(
        fakes.telegram.sent_messages().len(),
        2,
        "one refused, one delivered"
    );
    assert!(app
        .event_types()
        .await
        .contains(&"AttemptFailed".to_owned()));
    app.stop().await;
}
