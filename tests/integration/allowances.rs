//! Who may talk to a bot and how much it may spend, end to end: the policy set through the
//! API, people writing through the webhook, the fake OpenAI counting what reaches the model
//! and the fake Telegram what people are told.

use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::{json, Value};

use crate::helpers::{token, Fakes, TestApp};

/// When the test people write: 2025-11-24 16:00 UTC, as Telegram's `date`.
const DATE: i64 = 1_764_000_000;

fn person(id: i64, username: &str, language: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("P{id}"), "username": username,
           "language_code": language})
}

fn private_chat(id: i64) -> Value {
    json!({"id": id, "type": "private", "first_name": format!("P{id}")})
}

fn group(id: i64) -> Value {
    json!({"id": id, "type": "supergroup", "title": "Study group"})
}

fn message(update_id: i64, chat: Value, from: Value, date: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": date,
           "chat": chat, "from": from, "text": text}})
}

/// Ann (42, @ann_w, English) in her private chat.
fn from_ann(update_id: i64, text: &str) -> Value {
    message(
        update_id,
        private_chat(42),
        person(42, "ann_w", "en"),
        DATE + update_id,
        text,
    )
}

async fn set_policy(app: &TestApp, bot_id: &str, policy: Value) -> Value {
    let (status, body) = app.put(&format!("/bots/{bot_id}/policy"), policy).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Delivers `update` and waits until its turn is over and every read model has it.
async fn write(app: &TestApp, bot_id: &str, update: &Value) {
    app.deliver(bot_id, update).await;
    app.settle().await;
}

fn texts_to(fakes: &Fakes, chat_id: i64) -> Vec<String> {
    fakes
        .telegram
        .sent_messages()
        .into_iter()
        .filter(|(chat, _)| *chat == chat_id)
        .map(|(_, text)| text)
        .collect()
}

#[tokio::test]
async fn a_stranger_to_an_allow_listed_bot_is_refused_once_and_nothing_reaches_the_model() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Private", &token(1)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"access": {"people": "allow_list", "allowed_user_ids": [7]}}),
    )
    .await;

    write(&app, &bot_id, &from_ann(1, "hello?")).await;
    write(&app, &bot_id, &from_ann(2, "anyone?")).await;
    write(&app, &bot_id, &from_ann(3, "/start")).await;

    assert!(fakes.openai.requests().is_empty(), "no LLM call");
    assert_eq!(
        texts_to(&fakes, 42),
        ["Sorry, this bot answers only the people it was set up for."],
        "the refusal once a day per chat, then silence"
    );
    // Admins see who tried, how often, and can grant access from there.
    let (status, page) = app.get(&format!("/bots/{bot_id}/refusals")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    let refusal = &page["items"][0];
    assert_eq!(refusal["person"], 42);
    assert_eq!(refusal["username"], "ann_w");
    assert_eq!(refusal["reason"], "not_allowed");
    assert_eq!(refusal["attempts"], 3);
    let (_, messages) = app
        .get(&format!(
            "/chats/{}/messages",
            refusal["chat_id"].as_str().unwrap()
        ))
        .await;
    let statuses: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["refused"; 3], "{messages}");
}

#[tokio::test]
async fn an_allowed_id_and_an_allowed_username_both_pass() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Team", &token(2)).await;
    let policy = set_policy(
        &app,
        &bot_id,
        json!({"access": {"people": "allow_list", "allowed_user_ids": [42],
                          "allowed_usernames": ["@Bob_B"]}}),
    )
    .await;
    assert_eq!(policy["access"]["allowed_usernames"], json!(["bob_b"]));

    write(&app, &bot_id, &from_ann(1, "by id")).await;
    let bob = message(
        2,
        private_chat(43),
        person(43, "Bob_B", "en"),
        DATE,
        "by name",
    );
    write(&app, &bot_id, &bob).await;
    let eve = message(
        3,
        private_chat(44),
        person(44, "eve_e", "en"),
        DATE,
        "me too",
    );
    write(&app, &bot_id, &eve).await;

    assert_eq!(fakes.openai.requests().len(), 2);
    assert_eq!(texts_to(&fakes, 42), ["echo: by id"]);
    assert_eq!(texts_to(&fakes, 43), ["echo: by name"]);
    assert_eq!(
        texts_to(&fakes, 44),
        ["Sorry, this bot answers only the people it was set up for."]
    );
}

#[tokio::test]
async fn a_group_not_in_the_list_hears_why_once_and_the_bot_leaves_it() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Groups", &token(3)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"access": {"groups": "allow_list", "allowed_group_ids": [-1001],
                          "leave_refused_groups": true}}),
    )
    .await;

    // The bot is added to a group it may not serve, then to one it may.
    let bot_telegram_id: i64 = token(3).split(':').next().unwrap().parse().unwrap();
    let added = |update_id, group_id| {
        json!({"update_id": update_id, "message": {"message_id": update_id, "date": DATE,
               "chat": group(group_id), "from": person(42, "ann_w", "en"),
               "new_chat_members": [{"id": bot_telegram_id, "is_bot": true,
                                     "first_name": "Groups", "username": "groups_bot"}]}})
    };
    let in_group = |update_id, group_id| {
        message(
            update_id,
            group(group_id),
            person(42, "ann_w", "en"),
            DATE,
            "/start",
        )
    };
    write(&app, &bot_id, &added(1, -1002)).await;
    write(&app, &bot_id, &in_group(2, -1002)).await;
    write(&app, &bot_id, &added(3, -1001)).await;
    write(&app, &bot_id, &in_group(4, -1001)).await;

    assert_eq!(
        texts_to(&fakes, -1002),
        ["Sorry, I am not set up to answer in this group."],
        "said once"
    );
    assert_eq!(
        texts_to(&fakes, -1001),
        ["Hello! Ask me anything.", "Hello! Ask me anything."],
        "the allowed group is greeted and answered"
    );
    let left: Vec<i64> = fakes
        .telegram
        .calls_of("leaveChat")
        .iter()
        .map(|c| c.body["chat_id"].as_i64().unwrap())
        .collect();
    assert!(
        !left.is_empty() && left.iter().all(|chat| *chat == -1002),
        "{left:?}"
    );
    let chat_events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Chat' AND event_type = 'ChatLeft'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!chat_events.is_empty(), "the leave is recorded");
}

#[tokio::test]
async fn at_the_daily_limit_a_person_is_told_when_it_resets_and_is_served_the_next_day() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Budget", &token(4)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"budgets": {"per_person": {"messages_per_day": 2}}}),
    )
    .await;
    let clock = app.app.as_ref().unwrap().state().clock.clone();

    for n in 1..=4 {
        write(&app, &bot_id, &from_ann(n, &format!("q{n}"))).await;
    }
    assert_eq!(fakes.openai.requests().len(), 2);
    let midnight = Utc
        .from_utc_datetime(
            &(clock.now().date_naive() + TimeDelta::days(1))
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .format("%Y-%m-%d %H:%M UTC")
        .to_string();
    assert_eq!(
        texts_to(&fakes, 42),
        [
            "echo: q1".to_owned(),
            "echo: q2".to_owned(),
            format!("You have reached your limit for now. It resets at {midnight}."),
        ],
        "told once, with when the limit lifts"
    );

    clock.advance(TimeDelta::days(1));
    write(&app, &bot_id, &from_ann(5, "a new day")).await;
    assert_eq!(fakes.openai.requests().len(), 3);
    assert_eq!(texts_to(&fakes, 42).last().unwrap(), "echo: a new day");
}

#[tokio::test]
async fn the_bots_monthly_cap_stops_every_llm_call_once_reached() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Capped", &token(5)).await;
    // Each fake answer costs 121 micro-USD (gpt-5-mini, 100 in / 20 cached / 50 out).
    set_policy(
        &app,
        &bot_id,
        json!({"budgets": {"bot_cost_per_month_micro_usd": 200}}),
    )
    .await;

    for (n, person_id) in [(1, 42), (2, 43), (3, 44), (4, 45)] {
        let update = message(
            n,
            private_chat(person_id),
            person(person_id, &format!("p{person_id}xx"), "en"),
            DATE,
            "question",
        );
        write(&app, &bot_id, &update).await;
    }
    // 0 and 121 are under the cap: two answers; then 242 is over it for everyone.
    assert_eq!(fakes.openai.requests().len(), 2);
    for chat in [44, 45] {
        let told = texts_to(&fakes, chat);
        assert_eq!(told.len(), 1);
        assert!(
            told[0].starts_with("This bot has reached its spending limit for the month."),
            "{told:?}"
        );
    }
    let (_, usage) = app.get(&format!("/bots/{bot_id}/usage?period=month")).await;
    assert_eq!(usage["rows"][0]["person"], 0, "{usage}");
    assert_eq!(usage["rows"][0]["cost_micro_usd"], 242, "{usage}");
}

#[tokio::test]
async fn an_admins_grant_lifts_a_limit_and_is_recorded_as_the_admins_event() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Grants", &token(6)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"budgets": {"per_person": {"messages_per_day": 1}}}),
    )
    .await;

    write(&app, &bot_id, &from_ann(1, "one")).await;
    write(&app, &bot_id, &from_ann(2, "two")).await;
    assert_eq!(fakes.openai.requests().len(), 1);

    let (status, usage) = app
        .post(
            &format!("/bots/{bot_id}/grants"),
            json!({"person": 42, "period": "day", "messages": 1, "note": "exam week"}),
        )
        .await;
    assert_eq!(status, 201, "{usage}");
    assert_eq!(usage["day"]["messages"], 1);
    assert_eq!(usage["day"]["granted_messages"], 1);
    assert_eq!(usage["limits"]["messages_per_day"], 1);

    write(&app, &bot_id, &from_ann(3, "three")).await;
    assert_eq!(fakes.openai.requests().len(), 2);
    assert_eq!(texts_to(&fakes, 42).last().unwrap(), "echo: three");

    let actors: Vec<Value> = sqlx::query_scalar(
        "SELECT metadata->'actor' FROM events
         WHERE event_type IN ('PolicySet', 'ExtraGranted') ORDER BY global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actors.len(), 2);
    for actor in actors {
        assert!(actor.to_string().contains("admin"), "{actor}");
    }
}

#[tokio::test]
async fn two_replicas_count_one_budget() {
    let fakes = Fakes::start().await;
    let first = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let second = fakes.replica_of(&first).await;
    let second_base = format!("http://{}", second.addr());
    let bot_id = first.create_enabled_bot("Shared", &token(7)).await;
    set_policy(
        &first,
        &bot_id,
        json!({"budgets": {"per_person": {"messages_per_day": 3}}}),
    )
    .await;

    // Ann writes in her private chat and in a group, through either replica's webhook, and
    // either replica's runner may work each turn.
    for n in 1..=8 {
        let update = if n % 2 == 0 {
            from_ann(n, &format!("q{n}"))
        } else {
            message(
                n,
                group(-1005),
                person(42, "ann_w", "en"),
                DATE + n,
                "in the group",
            )
        };
        let base = if n % 2 == 0 {
            &first.base
        } else {
            &second_base
        };
        let response = first
            .http
            .post(format!("{base}/telegram/{bot_id}/webhook"))
            .header(
                "X-Telegram-Bot-Api-Secret-Token",
                first.webhook_secret(&bot_id),
            )
            .json(&update)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        first.settle().await;
    }
    assert_eq!(fakes.openai.requests().len(), 3, "one budget of three");
    let (_, usage) = first.get(&format!("/bots/{bot_id}/usage/42")).await;
    assert_eq!(usage["day"]["messages"], 3, "{usage}");
    second.shutdown_token().cancel();
    second.run_until_stopped().await.unwrap();
}

#[tokio::test]
async fn usage_reports_what_the_events_say() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Usage", &token(8)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"budgets": {"per_person": {"messages_per_day": 5,
                                          "cost_per_month_micro_usd": 1000000}}}),
    )
    .await;
    write(&app, &bot_id, &from_ann(1, "one")).await;
    write(&app, &bot_id, &from_ann(2, "two")).await;
    write(&app, &bot_id, &from_ann(3, "/usage")).await;

    // What the events say Ann's answers cost.
    let (answers, cost): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum((payload->'ResponseGenerated'->'response'->>'cost_micro_usd')::bigint), 0)::bigint
         FROM events WHERE event_type = 'ResponseGenerated'
           AND payload->'ResponseGenerated'->'response'->>'kind' = 'llm'
           AND payload->'ResponseGenerated'->'response'->'charged_to'->>'person' = '42'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((answers, cost), (2, 242));
    let reply = texts_to(&fakes, 42).last().unwrap().clone();
    assert_eq!(
        reply,
        "Your use of this bot\nToday: 2 of 5 messages, $0.000242 of ∞.\n\
         This month: 2 of ∞ messages, $0.000242 of $1."
    );
    let (_, usage) = app.get(&format!("/bots/{bot_id}/usage/42")).await;
    assert_eq!(usage["day"]["messages"], answers);
    assert_eq!(usage["month"]["cost_micro_usd"], cost);
    assert_eq!(fakes.openai.requests().len(), 2, "/usage asks no model");
}

#[tokio::test]
async fn after_the_idle_time_a_new_conversation_starts_without_earlier_context() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Idle", &token(9)).await;
    set_policy(&app, &bot_id, json!({"conversation": {"idle_minutes": 30}})).await;

    let at = |update_id, minutes: i64, text| {
        message(
            update_id,
            private_chat(42),
            person(42, "ann_w", "en"),
            DATE + minutes * 60,
            text,
        )
    };
    write(&app, &bot_id, &at(1, 0, "first")).await;
    write(&app, &bot_id, &at(2, 10, "second")).await;
    write(&app, &bot_id, &at(3, 41, "after a pause")).await;
    write(&app, &bot_id, &at(4, 42, "go on")).await;

    let requests = fakes.openai.requests();
    assert_eq!(requests.len(), 4);
    let previous = |n: usize| requests[n].body.get("previous_response_id").cloned();
    assert_eq!(previous(1), Some(json!("resp_1")));
    assert_eq!(previous(2), None, "no previous_response_id after the pause");
    assert_eq!(
        requests[2].body["input"], "after a pause",
        "no earlier history"
    );
    assert_eq!(
        previous(3),
        Some(json!("resp_3")),
        "the new conversation goes on"
    );
    let told = texts_to(&fakes, 42);
    assert_eq!(
        told[2],
        "(A new conversation: I forgot our earlier messages.)\n\necho: after a pause"
    );
    let resets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ConversationReset'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(resets, 1);
}

#[tokio::test]
async fn a_full_responses_chain_starts_anew_from_its_newest_exchanges() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Chain", &token(10)).await;
    set_policy(&app, &bot_id, json!({"conversation": {"max_turns": 2}})).await;

    for n in 1..=4 {
        write(&app, &bot_id, &from_ann(n, &format!("q{n}"))).await;
    }
    let requests = fakes.openai.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[1].body["previous_response_id"], "resp_1");
    assert_eq!(requests[2].body["previous_response_id"], "resp_2");
    // Continuing would give the model three earlier exchanges: the fourth turn starts a new
    // chain from the newest one instead.
    assert_eq!(requests[3].body.get("previous_response_id"), None);
    assert_eq!(
        requests[3].body["input"],
        json!([
            {"type": "message", "role": "user", "content": "q3"},
            {"type": "message", "role": "assistant", "content": "echo: q3"},
            {"type": "message", "role": "user", "content": "q4"},
        ])
    );
}

#[tokio::test]
async fn the_chat_completions_window_follows_the_conversation_limits() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.llm_api = "chat_completions".into();
    })
    .await;
    let bot_id = app.create_enabled_bot("Window", &token(11)).await;
    set_policy(&app, &bot_id, json!({"conversation": {"max_turns": 2}})).await;

    for n in 1..=4 {
        write(&app, &bot_id, &from_ann(n, &format!("q{n}"))).await;
    }
    let requests = fakes.openai.requests();
    let contents: Vec<&str> = requests[3].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["q2", "echo: q2", "q3", "echo: q3", "q4"]);
}

#[tokio::test]
async fn system_texts_follow_the_persons_language_with_the_bots_default_as_fallback() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Languages", &token(12)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"texts": {"by_language": {"ru": {"refresh": "Начнём сначала."}}}}),
    )
    .await;

    let from = |update_id, id, language: &str, text| {
        message(
            update_id,
            private_chat(id),
            person(id, "someone", language),
            DATE,
            text,
        )
    };
    write(&app, &bot_id, &from(1, 42, "ru", "/help")).await;
    write(&app, &bot_id, &from(2, 42, "ru", "/refresh")).await;
    write(&app, &bot_id, &from(3, 43, "pt-br", "/help")).await;
    write(&app, &bot_id, &from(4, 43, "pt-br", "/refresh")).await;

    let russian = texts_to(&fakes, 42);
    assert!(
        russian[0].starts_with("Я отвечаю на ваши сообщения"),
        "{russian:?}"
    );
    assert_eq!(russian[1], "Начнём сначала.", "the bot's own Russian text");
    let portuguese = texts_to(&fakes, 43);
    assert!(
        portuguese[0].starts_with("I answer your messages"),
        "{portuguese:?}"
    );
    assert_eq!(
        portuguese[1],
        "Done: a new conversation starts with your next message."
    );
}

#[tokio::test]
async fn a_person_writing_too_fast_is_told_to_slow_down_once() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Rate", &token(13)).await;
    set_policy(
        &app,
        &bot_id,
        json!({"budgets": {"messages_per_minute": 2}}),
    )
    .await;
    // Four messages within one second, as Telegram dates them.
    for n in 1..=4 {
        let update = message(n, private_chat(42), person(42, "ann_w", "en"), DATE, "hey");
        write(&app, &bot_id, &update).await;
    }
    assert_eq!(fakes.openai.requests().len(), 2);
    assert_eq!(
        texts_to(&fakes, 42),
        [
            "echo: hey",
            "echo: hey",
            "You are writing faster than I can answer. Please slow down."
        ]
    );
}

#[tokio::test]
async fn an_invalid_policy_is_refused_naming_the_field_and_changes_nothing() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Strict", &token(14)).await;
    for (body, field) in [
        (
            json!({"access": {"allowed_usernames": ["no spaces please"]}}),
            "access.allowed_usernames",
        ),
        (
            json!({"access": {"allowed_group_ids": [5]}}),
            "access.allowed_group_ids",
        ),
        (
            json!({"budgets": {"per_person": {"cost_per_day_micro_usd": -1}}}),
            "budgets",
        ),
        (
            json!({"texts": {"default_language": "english"}}),
            "texts.default_language",
        ),
        (
            json!({"texts": {"by_language": {"ru": {"help": ""}}}}),
            "texts.by_language.ru.help",
        ),
    ] {
        let (status, error) = app.put(&format!("/bots/{bot_id}/policy"), body).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["field"], field, "{error}");
    }
    let (status, error) = app
        .put(&format!("/bots/{bot_id}/policy"), json!({"acess": {}}))
        .await;
    assert!(status == 400 || status == 422, "{status} {error}");
    let (status, error) = app
        .post(
            &format!("/bots/{bot_id}/grants"),
            json!({"person": 42, "period": "day"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type IN ('PolicySet', 'ExtraGranted')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 0, "nothing recorded");
    let (_, policy) = app.get(&format!("/bots/{bot_id}/policy")).await;
    assert_eq!(policy["access"]["people"], "open");
}
