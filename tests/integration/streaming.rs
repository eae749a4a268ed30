//! Answers shown while they are written (issue 16): drafts in private chats, one paced
//! preview message in groups, and in every case exactly one final answer sent as today.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::telegram::{error, text_update, TelegramCall};
use crate::helpers::{eventually, token, Fakes, TestApp};
use crate::resilience::{serve, until_every_turn_is_finished, wait_until_serving, ServedBot};

const WAIT: Duration = Duration::from_secs(30);

/// Twenty-three words: as many tokens in the fake's stream (a word and the space before it).
const ANSWER: &str = "Streaming shows the answer while the model writes it, so the person reads \
                      along instead of watching typing for half a minute.";

/// A bot that streams (the test helper makes bots that do not).
async fn streaming_bot(app: &TestApp, name: &str, token: &str) -> String {
    let bot_id = app.create_enabled_bot(name, token).await;
    let (status, body) = app
        .patch(&format!("/bots/{bot_id}"), json!({"streaming": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["streaming"], true);
    bot_id
}

fn group_update(update_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1_764_000_000,
        "chat": {"id": -100_555, "type": "supergroup", "title": "Team"},
        "from": {"id": 42, "is_bot": false, "first_name": "Ann"}, "text": text}})
}

fn text_of(call: &TelegramCall) -> String {
    call.body["text"].as_str().unwrap_or_default().to_owned()
}

/// The shortest time between two consecutive calls.
fn shortest_gap(calls: &[TelegramCall]) -> Option<Duration> {
    calls
        .windows(2)
        .map(|pair| pair[1].at.duration_since(pair[0].at))
        .min()
}

async fn count_events(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_streaming_setting_is_on_for_new_bots_and_changes_like_any_setting() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/bots",
            json!({"name": "Streamer", "token": token(1), "model": "gpt-5-mini"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["streaming"], true, "new bots stream by default");
    let id = created["id"].as_str().unwrap();

    let (status, patched) = app
        .patch(&format!("/bots/{id}"), json!({"streaming": false}))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["streaming"], false);

    let (status, replaced) = app
        .put(
            &format!("/bots/{id}"),
            json!({"name": "Streamer", "model": "gpt-5-mini", "start_message": "Hi",
                   "error_message": "Oops", "instructions": ""}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["streaming"], false, "a PUT without it keeps it");

    let (status, refused) = app
        .patch(&format!("/bots/{id}"), json!({"streaming": "yes"}))
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(count_events(&app, "StreamingSet").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_private_chat_sees_the_draft_grow_then_one_final_message() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(60));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    let request = &fakes.openai.requests()[0];
    assert_eq!(request.body["stream"], true);
    let drafts = fakes.telegram.calls_of("sendMessageDraft");
    assert!(drafts.len() >= 2, "the draft grows: {drafts:?}");
    let draft_id = drafts[0].body["draft_id"].as_i64().unwrap();
    assert_ne!(draft_id, 0);
    let mut previous = 0;
    for draft in &drafts {
        assert_eq!(draft.body["chat_id"], 42);
        assert_eq!(draft.body["draft_id"], draft_id, "one draft, animated");
        let text = text_of(draft);
        let shown = text.trim_end_matches(" …");
        assert!(ANSWER.starts_with(shown), "{text:?} is the answer so far");
        assert!(shown.len() > previous, "each draft shows more");
        previous = shown.len();
    }
    let gap = shortest_gap(&drafts).unwrap();
    assert!(
        gap >= Duration::from_millis(250),
        "drafts are paced: {gap:?}"
    );
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(42, ANSWER.to_owned())],
        "one final message, the whole answer"
    );
    let final_at = fakes.telegram.calls_of("sendMessage")[0].at;
    assert!(drafts.iter().all(|d| d.at < final_at));
    assert_eq!(count_events(&app, "ResponseGenerated").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn chat_completions_stream_too_with_the_same_usage() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(30));
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.llm_api = "chat_completions".to_owned();
    })
    .await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    let request = &fakes.openai.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    assert!(!fakes.telegram.calls_of("sendMessageDraft").is_empty());
    assert_eq!(fakes.telegram.sent_messages(), [(42, ANSWER.to_owned())]);
    let (input, output): (i64, i64) = sqlx::query_as(
        "SELECT (payload->'ResponseGenerated'->'response'->'usage'->>'input_tokens')::bigint,
                (payload->'ResponseGenerated'->'response'->'usage'->>'output_tokens')::bigint
         FROM events WHERE event_type = 'ResponseGenerated'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((input, output), (100, 50), "the usage of the last chunk");
    app.stop().await;
}

#[tokio::test]
async fn a_group_sees_one_preview_edited_at_a_paced_rate_then_the_answer() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    // Twenty-three tokens over about 4.6 s: the preview and an edit or two at the group's pace.
    fakes.openai.set_token_pace(Duration::from_millis(200));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;
    eventually(WAIT, "the bot's username is learned", || async {
        app.get(&format!("/bots/{bot_id}")).await.1["username"] == "support_bot"
    })
    .await;

    app.deliver(&bot_id, &group_update(1, "@support_bot why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;

    assert!(fakes.telegram.calls_of("sendMessageDraft").is_empty());
    let sent = fakes.telegram.calls_of("sendMessage");
    assert_eq!(sent.len(), 2, "the preview, then the answer: {sent:?}");
    assert!(
        text_of(&sent[0]).ends_with(" …"),
        "the preview is unfinished"
    );
    assert_eq!(text_of(&sent[1]), ANSWER);
    let edits = fakes.telegram.calls_of("editMessageText");
    assert!(!edits.is_empty(), "the preview grows");
    let mut updates = vec![sent[0].clone()];
    updates.extend(edits.iter().cloned());
    let gap = shortest_gap(&updates).unwrap();
    assert!(
        gap >= Duration::from_millis(2_900),
        "edits are paced: {gap:?}"
    );
    let deleted = fakes.telegram.calls_of("deleteMessage");
    assert_eq!(deleted.len(), 1, "the preview goes");
    assert_eq!(deleted[0].body["chat_id"], -100_555);
    assert!(
        deleted[0].at < sent[1].at,
        "the preview is gone before the answer arrives"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_429_on_the_preview_slows_it_and_the_answer_still_comes_once() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(150));
    fakes.telegram.fail_next(
        "sendMessageDraft",
        1,
        429,
        error(429, "Too Many Requests: retry after 2", Some(2)),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    // Twenty-three tokens over about 3.5 s: the draft refused at the start is tried again after
    // the 2 s Telegram asked for, not before.
    let drafts = fakes.telegram.calls_of("sendMessageDraft");
    assert!(drafts.len() >= 2, "the preview resumes: {drafts:?}");
    let after_429 = drafts[1].at.duration_since(drafts[0].at);
    assert!(
        after_429 >= Duration::from_millis(1_900),
        "retry_after is honoured: {after_429:?}"
    );
    assert_eq!(fakes.telegram.sent_messages(), [(42, ANSWER.to_owned())]);
    app.stop().await;
}

#[tokio::test]
async fn a_429_on_a_group_edit_holds_the_edits_for_its_retry_after() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    // About 9 s of writing: the preview at once, the first edit (refused) 3 s later, the next
    // once the 4 s Telegram asked for are over.
    fakes.openai.set_token_pace(Duration::from_millis(400));
    fakes.telegram.fail_next(
        "editMessageText",
        1,
        429,
        error(429, "Too Many Requests: retry after 4", Some(4)),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;
    eventually(WAIT, "the bot's username is learned", || async {
        app.get(&format!("/bots/{bot_id}")).await.1["username"] == "support_bot"
    })
    .await;

    app.deliver(&bot_id, &group_update(1, "@support_bot why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;

    let edits = fakes.telegram.calls_of("editMessageText");
    assert!(edits.len() >= 2, "the edits resume: {edits:?}");
    let held = edits[1].at.duration_since(edits[0].at);
    assert!(
        held >= Duration::from_millis(3_900),
        "retry_after is honoured: {held:?}"
    );
    let sent = fakes.telegram.sent_messages();
    assert_eq!(sent.len(), 2, "the preview and one answer: {sent:?}");
    assert_eq!(sent[1], (-100_555, ANSWER.to_owned()));
    assert_eq!(fakes.telegram.calls_of("deleteMessage").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_broken_midway_is_retried_and_answered_once_in_full() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(20));
    fakes.openai.break_next_streams(1);
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    assert_eq!(
        fakes.openai.requests().len(),
        2,
        "asked again after the break"
    );
    assert_eq!(fakes.telegram.sent_messages(), [(42, ANSWER.to_owned())]);
    assert_eq!(count_events(&app, "AttemptFailed").await, 1);
    assert_eq!(count_events(&app, "ResponseGenerated").await, 1);
    let code: String = sqlx::query_scalar(
        "SELECT payload->'AttemptFailed'->>'error' FROM events WHERE event_type = 'AttemptFailed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap_or_default();
    assert!(code.contains("stream_ended"), "{code}");
    app.stop().await;
}

#[tokio::test]
async fn a_bot_that_does_not_stream_answers_as_before() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Plain", &token(1)).await;
    assert_eq!(
        app.get(&format!("/bots/{bot_id}")).await.1["streaming"],
        false
    );

    app.deliver(&bot_id, &text_update(1, 42, "hello")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    assert_eq!(fakes.openai.requests()[0].body.get("stream"), None);
    assert!(fakes.telegram.calls_of("sendMessageDraft").is_empty());
    assert_eq!(
        fakes.telegram.sent_messages(),
        [(42, "echo: hello".to_owned())]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_process_killed_mid_stream_answers_once_after_restart() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(150));
    let db = crate::helpers::TestDb::new();
    let key = crate::helpers::random_token_key();
    let http = reqwest::Client::new();

    let (mut first, base) = serve(&db, &key, &fakes);
    wait_until_serving(&http, &base).await;
    // Streaming is left to its default: on.
    let bot = ServedBot::register(&base, &key, "Streamer").await;
    assert_eq!(bot.created["streaming"], true);
    assert_eq!(
        bot.deliver(&base, &text_update(1, 42, "why stream?")).await,
        200
    );

    // Killed while the answer is being written.
    fakes
        .telegram
        .wait_for_calls("sendMessageDraft", 2, WAIT)
        .await;
    first.kill().expect("SIGKILL the first process");
    first.wait().unwrap();
    assert!(
        fakes.telegram.sent_messages().is_empty(),
        "killed mid-stream"
    );

    fakes.openai.set_token_pace(Duration::from_millis(10));
    let (mut second, base) = serve(&db, &key, &fakes);
    wait_until_serving(&http, &base).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    let pool = db.pool().await;
    until_every_turn_is_finished(&pool).await;
    assert_eq!(fakes.telegram.sent_messages(), [(42, ANSWER.to_owned())]);
    assert_eq!(fakes.openai.requests().len(), 2, "the model is asked again");
    second.kill().unwrap();
    second.wait().unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_group_preview_left_by_a_killed_process_is_deleted_before_the_one_answer() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(300));
    let db = crate::helpers::TestDb::new();
    let key = crate::helpers::random_token_key();
    let http = reqwest::Client::new();

    let (mut first, base) = serve(&db, &key, &fakes);
    wait_until_serving(&http, &base).await;
    let bot = ServedBot::register(&base, &key, "Streamer").await;
    eventually(WAIT, "the bot's username is learned", || async {
        let view: Value = bot
            .admin
            .get(format!("{base}/bots/{}", bot.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        view["username"] == "support_bot"
    })
    .await;
    let update = group_update(1, "@support_bot why stream?");
    assert_eq!(bot.deliver(&base, &update).await, 200);

    // Killed while the group's preview is up.
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    let pool = db.pool().await;
    eventually(WAIT, "the preview is remembered", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM group_previews")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    first.kill().expect("SIGKILL the first process");
    first.wait().unwrap();
    let orphan = fakes.telegram.calls_of("sendMessage")[0].clone();
    assert!(text_of(&orphan).ends_with(" …"), "the preview is up");
    assert!(fakes.telegram.calls_of("deleteMessage").is_empty());

    fakes.openai.set_token_pace(Duration::from_millis(10));
    let (mut second, base) = serve(&db, &key, &fakes);
    wait_until_serving(&http, &base).await;
    until_every_turn_is_finished(&pool).await;
    eventually(WAIT, "the answer is sent", || async {
        fakes
            .telegram
            .calls_of("sendMessage")
            .iter()
            .any(|call| text_of(call) == ANSWER)
    })
    .await;

    let answers: Vec<_> = fakes
        .telegram
        .calls_of("sendMessage")
        .into_iter()
        .filter(|call| !text_of(call).ends_with(" …"))
        .collect();
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    // The fake numbers messages from 1000: the orphan was the first.
    let deleted: Vec<i64> = fakes
        .telegram
        .calls_of("deleteMessage")
        .iter()
        .map(|call| call.body["message_id"].as_i64().unwrap())
        .collect();
    assert!(
        deleted.contains(&1000),
        "the orphaned preview is deleted: {deleted:?}"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM group_previews")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "no preview is left remembered");
    second.kill().unwrap();
    second.wait().unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_preview_edit_that_changes_nothing_is_no_failure_and_drafts_are_for_private_chats() {
    use botfleet::telegram::drafts::LivePreview;

    let fakes = Fakes::start().await;
    let api = botfleet::telegram::bot_api::BotApi::new(
        fakes.telegram.base_url.parse().unwrap(),
        Duration::from_secs(10),
    );
    let bot = api.endpoint(botfleet::secrets::Redacted::new(token(1)));
    let id = bot.send_preview(-100_555, "Hello …").await.unwrap();
    bot.edit_preview(-100_555, id, "Hello, world …")
        .await
        .unwrap();
    // Telegram refuses the same text again as "message is not modified": as good as done.
    bot.edit_preview(-100_555, id, "Hello, world …")
        .await
        .unwrap();
    assert_eq!(fakes.telegram.calls_of("editMessageText").len(), 2);
    bot.delete_preview(-100_555, id).await.unwrap();

    bot.send_draft(42, 7, "Hello …").await.unwrap();
    let refused = bot.send_draft(-100_555, 7, "Hello …").await.unwrap_err();
    assert_eq!(refused.code, 400, "no drafts in groups");
}

/// An answer long enough to be stopped midway: sixty-odd tokens.
const LONG_ANSWER: &str = "Streaming shows the answer while the model writes it, so the person \
    reads along instead of watching typing for half a minute. When the person has read enough \
    they press stop, the model stops writing, and what it wrote so far stays in the chat as the \
    answer, billed for what it used and kept in the conversation for the next question.";

#[tokio::test]
async fn a_stopped_answer_is_kept_as_written_recorded_and_billed() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(LONG_ANSWER.to_owned()));
    fakes.openai.set_token_pace(Duration::from_millis(100));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;

    app.deliver(&bot_id, &text_update(1, 42, "why stream?"))
        .await;
    let drafts = fakes
        .telegram
        .wait_for_calls("sendMessageDraft", 2, WAIT)
        .await;
    assert_eq!(drafts[0].body["can_stop"], true, "the draft offers stop");
    let draft_id = drafts[0].body["draft_id"].as_i64().unwrap();
    // The person presses stop: Telegram tells the bot which draft (through the webhook, which
    // announces it to whichever process writes the answer).
    app.deliver(
        &bot_id,
        &json!({"update_id": 2, "stopped_message_generation": {
            "chat": {"id": 42, "type": "private", "first_name": "Ann"}, "draft_id": draft_id}}),
    )
    .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;

    // One message: what was written by the stop, not the whole answer.
    let sent = fakes.telegram.sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (chat, written) = &sent[0];
    assert_eq!(*chat, 42);
    assert!(
        LONG_ANSWER.starts_with(written.trim_end()) && !written.trim().is_empty(),
        "the answer is the start of what the model wrote: {written:?}"
    );
    assert!(
        written.trim_end().len() < LONG_ANSWER.len() / 2,
        "the model stopped writing when asked: {written:?}"
    );
    let drafts = fakes.telegram.calls_of("sendMessageDraft");
    let last_shown = text_of(drafts.last().unwrap());
    assert!(
        written.starts_with(last_shown.trim_end_matches(" …")),
        "nothing the person saw is taken back: {last_shown:?} then {written:?}"
    );
    let final_at = fakes.telegram.calls_of("sendMessage")[0].at;
    assert!(drafts.iter().all(|d| d.at < final_at), "no draft after it");
    eventually(WAIT, "the model's stream is closed", || async {
        fakes.openai.abandoned_streams() == 1
    })
    .await;

    // Recorded as stopped, with an estimated usage and its cost, and no response to continue.
    let response: Value = sqlx::query_scalar(
        "SELECT payload->'ResponseGenerated'->'response' FROM events
         WHERE event_type = 'ResponseGenerated'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(response["stopped"], true, "{response}");
    assert_eq!(response["response_id"], Value::Null, "{response}");
    let output = response["usage"]["output_tokens"].as_u64().unwrap();
    assert_eq!(output, written.chars().count().div_ceil(4) as u64);
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(response["cost_micro_usd"].as_i64().unwrap() > 0, "billed");
    let id = {
        let (_, list) = app.get("/chats").await;
        list["items"][0]["id"].as_str().unwrap().to_owned()
    };
    let (_, page) = app.get(&format!("/chats/{id}/messages")).await;
    let answer = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "bot")
        .unwrap()
        .clone();
    assert_eq!(answer["stopped"], true, "{answer}");
    assert_eq!(answer["text"].as_str(), Some(written.as_str()), "{answer}");
    assert_eq!(answer["output_tokens"], output);

    // The next question continues the conversation with the partial answer in it.
    fakes.openai.set_token_pace(Duration::ZERO);
    fakes.openai.set_reply(Some("Glad it helps.".to_owned()));
    app.deliver(&bot_id, &text_update(3, 42, "go on")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    let follow_up = &fakes.openai.requests()[1].body;
    assert_eq!(follow_up.get("previous_response_id"), None, "{follow_up}");
    assert!(
        follow_up.to_string().contains(written.trim()),
        "the partial answer is in the context: {follow_up}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stop_for_an_answer_nobody_is_writing_changes_nothing() {
    let fakes = Fakes::start().await;
    fakes.openai.set_reply(Some(ANSWER.to_owned()));
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = streaming_bot(&app, "Streamer", &token(1)).await;
    app.deliver(&bot_id, &text_update(1, 42, "why stream?"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    let events = app.event_count().await;

    // A stop that comes after the answer (or for a draft that never was) is acknowledged and
    // recorded nowhere.
    for draft_id in [
        fakes.telegram.calls_of("sendMessageDraft")[0].body["draft_id"]
            .as_i64()
            .unwrap(),
        12_345,
    ] {
        app.deliver(
            &bot_id,
            &json!({"update_id": 2, "stopped_message_generation": {
                "chat": {"id": 42, "type": "private"}, "draft_id": draft_id}}),
        )
        .await;
    }
    app.settle().await;
    assert_eq!(app.event_count().await, events);
    assert_eq!(fakes.telegram.sent_messages(), [(42, ANSWER.to_owned())]);
    app.stop().await;
}
