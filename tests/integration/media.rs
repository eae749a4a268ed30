//! Voice messages and photos end to end (issue 16): fetched from the fake Telegram with the
//! bot's own token, transcribed by (or shown to) the fake OpenAI, answered, priced, and seen
//! by the admin; over the limits, refused, or for a model without images, nothing is fetched
//! and nothing reaches OpenAI.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fakes::openai::{error_body, TRANSCRIPT};
use crate::fakes::telegram::text_update;
use crate::helpers::{eventually, token, Fakes, TestApp};

const WAIT: Duration = Duration::from_secs(20);

/// Bytes that start like an OGG file (the fake transcribes anything).
fn ogg(len: usize) -> Vec<u8> {
    let mut bytes = b"OggS\0\x02".to_vec();
    bytes.resize(len, 7);
    bytes
}

/// Bytes that start like a JPEG file, different per `seed`.
fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, seed];
    bytes.resize(len, seed);
    bytes
}

fn message_update(update_id: i64, chat_id: i64, language: &str, content: Value) -> Value {
    let mut message = json!({
        "message_id": update_id * 10,
        "date": 1_764_000_000,
        "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
        "from": {"id": chat_id, "is_bot": false, "first_name": "Ann", "language_code": language},
    });
    for (key, value) in content.as_object().unwrap() {
        message[key] = value.clone();
    }
    json!({"update_id": update_id, "message": message})
}

fn voice_update(update_id: i64, chat_id: i64, language: &str, secs: u32, size: usize) -> Value {
    message_update(
        update_id,
        chat_id,
        language,
        json!({"voice": {"file_id": "voice-1", "file_unique_id": "uv1", "duration": secs,
                          "mime_type": "audio/ogg", "file_size": size}}),
    )
}

fn photo_update(update_id: i64, chat_id: i64, caption: &str) -> Value {
    message_update(
        update_id,
        chat_id,
        "en",
        json!({
            "photo": [
                {"file_id": "photo-small", "file_unique_id": "ps", "width": 90, "height": 60, "file_size": 300},
                {"file_id": "photo-big", "file_unique_id": "pb", "width": 800, "height": 600, "file_size": 2000}
            ],
            "caption": caption
        }),
    )
}

async fn chat_id(app: &TestApp) -> String {
    app.settle().await;
    let (_, list) = app.get("/chats").await;
    list["items"][0]["id"].as_str().unwrap().to_owned()
}

async fn event_payloads(app: &TestApp, event_type: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT payload::text FROM events WHERE event_type = $1 ORDER BY sequence")
        .bind(event_type)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_voice_note_is_transcribed_answered_priced_and_shown_to_the_admin() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    fakes
        .telegram
        .add_file("voice-1", "voice/file_1.oga", ogg(3_000));

    app.deliver(&bot_id, &voice_update(600, 42, "en", 12, 3_000))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(sent[0].body["text"], format!("echo: {TRANSCRIPT}"));

    // Fetched with the bot's own token: getFile, then the download.
    let get_file = fakes.telegram.calls_of("getFile");
    assert_eq!(get_file.len(), 1);
    assert_eq!(get_file[0].token, token(1));
    assert_eq!(get_file[0].body["file_id"], "voice-1");
    let downloads = fakes.telegram.calls_of("file");
    assert_eq!(downloads.len(), 1);
    assert_eq!(downloads[0].token, token(1));
    assert_eq!(downloads[0].body["path"], "voice/file_1.oga");

    // Transcribed as it came (OGG, named so the endpoint knows it), then asked as text.
    let calls = fakes.openai.requests();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].path, "/v1/audio/transcriptions");
    assert_eq!(calls[0].body["model"], "gpt-4o-mini-transcribe");
    assert_eq!(calls[0].body["file"]["name"], "voice.ogg");
    assert_eq!(calls[0].body["file"]["bytes"], 3_000);
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some("Bearer sk-test-key")
    );
    assert_eq!(calls[1].path, "/v1/responses");
    assert_eq!(calls[1].body["input"], TRANSCRIPT);

    app.settle().await;
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Chat' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        types,
        [
            "MessageReceived",
            "MediaTranscribed",
            "ResponseGenerated",
            "ResponseSent"
        ]
    );
    // The transcript is sealed for the person like any text; no event holds the token.
    let transcribed = &event_payloads(&app, "MediaTranscribed").await[0];
    assert!(!transcribed.contains("capital"), "{transcribed}");
    let all: Vec<String> = sqlx::query_scalar("SELECT payload::text FROM events")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(all.iter().all(|p| !p.contains(&token(1))));

    // The answer's cost counts the transcription: 1,000 audio tokens at $3/M and 200 output
    // tokens at $5/M (4,000 micro-USD), beside the answer's 121.
    let cost: i64 = sqlx::query_scalar("SELECT cost_micro_usd FROM messages WHERE role = 'bot'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(cost, 4_121);

    // The admin reads the voice message as its transcript.
    let id = chat_id(&app).await;
    let (status, page) = app.get(&format!("/chats/{id}/messages")).await;
    assert_eq!(status, 200, "{page}");
    let user = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap()
        .clone();
    assert_eq!(user["text"], TRANSCRIPT, "{user}");
    assert_eq!(user["media"], "voice", "{user}");
    app.stop().await;
}

#[tokio::test]
async fn a_bots_own_transcription_model_is_used_and_priced_by_the_minute() {
    let fakes = Fakes::start().await;
    let app =
        TestApp::spawn_with_fakes(&fakes, |args| args.llm_api = "chat_completions".into()).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    let (status, settings) = app
        .put(
            &format!("/bots/{bot_id}/media"),
            json!({"transcription_model": "whisper-1"}),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    fakes
        .telegram
        .add_file("voice-1", "voice/file_1.oga", ogg(800));

    app.deliver(&bot_id, &voice_update(650, 42, "en", 12, 800))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(sent[0].body["text"], format!("echo: {TRANSCRIPT}"));
    let calls = fakes.openai.requests();
    assert_eq!(calls[0].body["model"], "whisper-1");
    assert_eq!(calls[1].path, "/v1/chat/completions");
    app.settle().await;
    // whisper-1 by the minute: 12 s at $0.006 a minute is 1,200 micro-USD, beside the
    // answer's 121 (its usage in the fake: 80 uncached, 20 cached, 50 output of gpt-5-mini).
    let cost: i64 = sqlx::query_scalar("SELECT cost_micro_usd FROM messages WHERE role = 'bot'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(cost, 1_321);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_transcription_is_retried_and_the_note_answered_once() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    fakes
        .telegram
        .add_file("voice-1", "voice/file_1.oga", ogg(800));
    fakes.openai.fail_next(
        1,
        500,
        error_body("The server had an error", "server_error", None),
        None,
    );

    app.deliver(&bot_id, &voice_update(660, 42, "en", 4, 800))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(sent[0].body["text"], format!("echo: {TRANSCRIPT}"));
    app.settle().await;
    let paths: Vec<String> = fakes
        .openai
        .requests()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/v1/audio/transcriptions",
            "/v1/audio/transcriptions",
            "/v1/responses"
        ]
    );
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Chat' ORDER BY sequence",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        types,
        [
            "MessageReceived",
            "AttemptFailed",
            "MediaTranscribed",
            "ResponseGenerated",
            "ResponseSent"
        ]
    );
    assert_eq!(fakes.telegram.calls_of("sendMessage").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_over_long_voice_note_gets_the_limit_message_and_nothing_reaches_openai() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    fakes
        .telegram
        .add_file("voice-1", "voice/file_1.oga", ogg(100));

    app.deliver(&bot_id, &voice_update(700, 42, "en", 601, 100))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    let text = sent[0].body["text"].as_str().unwrap();
    assert!(text.contains("up to 10 min"), "{text}");
    assert!(text.contains("20 MB"), "{text}");
    // In the person's language.
    app.deliver(&bot_id, &voice_update(701, 43, "ru", 900, 100))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    let text = sent[1].body["text"].as_str().unwrap();
    assert!(text.contains("до 10 мин"), "{text}");

    assert!(fakes.openai.requests().is_empty(), "nothing reaches OpenAI");
    assert!(
        fakes.telegram.calls_of("getFile").is_empty(),
        "nothing fetched"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_voice_note_from_someone_the_bot_refuses_is_neither_fetched_nor_transcribed() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Private", &token(1)).await;
    let (status, body) = app
        .put(
            &format!("/bots/{bot_id}/policy"),
            json!({"access": {"people": "allow_list", "allowed_user_ids": [7]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    fakes
        .telegram
        .add_file("voice-1", "voice/file_1.oga", ogg(100));

    app.deliver(&bot_id, &voice_update(800, 42, "en", 5, 100))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(
        sent[0].body["text"],
        "Sorry, this bot answers only the people it was set up for."
    );
    assert!(fakes.openai.requests().is_empty());
    assert!(fakes.telegram.calls_of("getFile").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_voice_note_without_words_is_not_put_to_the_model() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    fakes
        .telegram
        .add_file("voice-1", "voice/file_1.oga", ogg(500));
    fakes.openai.set_transcript(Some(" ".to_owned()));

    app.deliver(&bot_id, &voice_update(750, 42, "en", 3, 500))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(
        sent[0].body["text"],
        "Sorry, I could not make out any words in that message. Please try again, or write."
    );
    let paths: Vec<String> = fakes
        .openai
        .requests()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(paths, ["/v1/audio/transcriptions"]);
    app.stop().await;
}

/// The `(type, image data URL)` parts of every user message of a request, in order.
fn image_urls(call: &Value) -> Vec<String> {
    let messages = call
        .get("input")
        .or_else(|| call.get("messages"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    messages
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter_map(|part| match part["type"].as_str() {
            Some("input_image") => part["image_url"].as_str().map(str::to_owned),
            Some("image_url") => part["image_url"]["url"].as_str().map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_photo_reaches_the_model_as_an_image_and_a_follow_up_keeps_it() {
    for api in ["responses", "chat_completions"] {
        let fakes = Fakes::start().await;
        let app = TestApp::spawn_with_fakes(&fakes, |args| args.llm_api = api.into()).await;
        let bot_id = app.create_enabled_bot("Eyes", &token(1)).await;
        fakes
            .telegram
            .add_file("photo-small", "photos/file_1.jpg", jpeg(300, 1));
        fakes
            .telegram
            .add_file("photo-big", "photos/file_2.jpg", jpeg(2_000, 2));

        app.deliver(&bot_id, &photo_update(900, 42, "what is on it?"))
            .await;
        let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
        assert_eq!(sent[0].body["text"], "echo: what is on it?", "{api}");
        // The largest size within the limit.
        let downloads = fakes.telegram.calls_of("file");
        assert_eq!(downloads.len(), 1, "{api}");
        assert_eq!(downloads[0].body["path"], "photos/file_2.jpg", "{api}");

        let calls = fakes.openai.requests();
        let first = &calls[0].body;
        let images = image_urls(first);
        assert_eq!(images.len(), 1, "{api}: {first}");
        assert!(
            images[0].starts_with("data:image/jpeg;base64,/9j/4A"),
            "{api}"
        );
        let whole = first.to_string();
        assert!(
            !whole.contains(&token(1)) && !whole.contains("/file/bot"),
            "{api}"
        );

        app.deliver(&bot_id, &text_update(901, 42, "and what colour is it?"))
            .await;
        fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
        let calls = fakes.openai.requests();
        let follow_up = &calls[1].body;
        if api == "responses" {
            // The provider's chain holds the image.
            assert_eq!(follow_up["previous_response_id"], "resp_1");
            assert!(image_urls(follow_up).is_empty());
        } else {
            // The history travels with the request, the image fetched again beside its question.
            assert_eq!(image_urls(follow_up), images, "{follow_up}");
            assert_eq!(fakes.telegram.calls_of("file").len(), 2);
        }

        // The event log holds the image's fingerprint, never its bytes.
        app.settle().await;
        let attached = &event_payloads(&app, "ImageAttached").await[0];
        let attached: Value = serde_json::from_str(attached).unwrap();
        let image = &attached["ImageAttached"]["image"];
        assert_eq!(image["file_id"], "photo-big", "{attached}");
        assert_eq!(image["bytes"], 2_000);
        assert_eq!(image["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(image["mime_type"], "image/jpeg");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_bot_whose_model_takes_no_images_answers_a_photo_with_the_notice() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Blind", &token(1)).await;
    let (status, settings) = app
        .put(&format!("/bots/{bot_id}/media"), json!({"images": false}))
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["images"], false);
    let (status, error) = app
        .put(
            &format!("/bots/{bot_id}/media"),
            json!({"transcription_model": "two words"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["field"], "transcription_model", "{error}");
    let (status, error) = app
        .put(&format!("/bots/{bot_id}/media"), json!({"imagez": true}))
        .await;
    assert_eq!(status, 400, "an unknown field: {error}");
    let (_, settings) = app.get(&format!("/bots/{bot_id}/media")).await;
    assert_eq!(settings["images"], false, "{settings}");
    fakes
        .telegram
        .add_file("photo-big", "photos/file_2.jpg", jpeg(2_000, 2));

    app.deliver(&bot_id, &photo_update(950, 42, "what is on it?"))
        .await;
    let sent = fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    assert_eq!(
        sent[0].body["text"],
        "Sorry, I can only read text messages. Please write your question as text."
    );
    assert!(fakes.openai.requests().is_empty());
    assert!(fakes.telegram.calls_of("getFile").is_empty());
    eventually(WAIT, "the turn is answered", || async {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM messages WHERE role = 'user'")
                .fetch_optional(&app.pool)
                .await
                .unwrap();
        status.as_deref() == Some("answered")
    })
    .await;
    app.stop().await;
}
