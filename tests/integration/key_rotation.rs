//! `botfleet keys rotate`: a new sealing key for what comes, every old token and person still
//! readable, and the retired key refused at start.

use std::time::Duration;

use botfleet::app::Application;
use botfleet::config::Config;
use botfleet::secrets::TokenKey;

use crate::fakes::telegram::text_update;
use crate::helpers::{
    botfleet_cli_with, eventually, random_token_key, test_args, token, Fakes, TestApp, TestDb,
};

const WAIT: Duration = Duration::from_secs(60);

fn key_id(key: &str) -> String {
    TokenKey::from_base64(key).unwrap().id().to_string()
}

/// The stored form of a bot's token, from the read model.
async fn sealed_token(app: &TestApp, bot_id: &str) -> String {
    sqlx::query_scalar("SELECT token_ciphertext FROM bots WHERE id = $1::uuid")
        .bind(bot_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn sealed_person_key(app: &TestApp, subject: i64) -> String {
    sqlx::query_scalar("SELECT sealed_key FROM personal_keys WHERE subject = $1")
        .bind(subject)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Every message text of every chat, as the API shows them.
async fn texts(app: &TestApp) -> Vec<String> {
    let (_, chats) = app.get("/chats").await;
    let mut texts = Vec::new();
    for chat in chats["items"].as_array().unwrap() {
        let id = chat["id"].as_str().unwrap();
        let (_, page) = app.get(&format!("/chats/{id}/messages")).await;
        for message in page["items"].as_array().unwrap() {
            texts.push(message["text"].as_str().unwrap_or_default().to_owned());
        }
    }
    texts.sort();
    texts
}

#[tokio::test]
async fn a_rotation_keeps_old_tokens_and_people_readable_and_seals_new_ones_under_the_new_key() {
    let fakes = Fakes::start().await;
    let old_key = random_token_key();
    let app =
        TestApp::spawn_with(TestDb::new(), old_key.clone(), |args| fakes.configure(args)).await;
    let first = app.create_enabled_bot("First", &token(1)).await;
    app.deliver(&first, &text_update(1, 501, "before the rotation"))
        .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.settle().await;
    assert!(sealed_token(&app, &first)
        .await
        .starts_with(&format!("v2.{}.", key_id(&old_key))));
    let TestApp {
        app: running, db, ..
    } = app;
    running.unwrap().stop().await.unwrap();

    // The operator rotates; the key is in the environment, so the new one is printed.
    let rotated = botfleet_cli_with(
        &db.url,
        &["keys", "rotate"],
        &[("TOKEN_ENCRYPTION_KEY", &old_key)],
    )
    .await;
    assert!(rotated.status.success(), "{rotated:?}");
    let new_key = String::from_utf8(rotated.stdout).unwrap().trim().to_owned();
    assert_ne!(key_id(&new_key), key_id(&old_key));
    assert!(TokenKey::from_base64(&new_key).is_ok());

    // The retired key no longer starts the service.
    let mut args = test_args(&db, &old_key);
    fakes.configure(&mut args);
    let refused = Application::build(Config::from_args(args).unwrap())
        .await
        .err()
        .expect("a start with the retired key is refused")
        .to_string();
    assert!(
        refused.contains("was retired by `botfleet keys rotate`")
            && refused.contains(&key_id(&new_key)),
        "{refused}"
    );

    let app = TestApp::spawn_with(db, new_key.clone(), |args| fakes.configure(args)).await;
    // People's words sealed under the old key read as before.
    eventually(WAIT, "the chat reads as before", || async {
        texts(&app)
            .await
            .contains(&"before the rotation".to_owned())
    })
    .await;
    // A new bot's token is sealed under the new key; the old bot's stays as it was.
    let second = app.create_enabled_bot("Second", &token(2)).await;
    assert!(sealed_token(&app, &second)
        .await
        .starts_with(&format!("v2.{}.", key_id(&new_key))));
    assert!(sealed_token(&app, &first)
        .await
        .starts_with(&format!("v2.{}.", key_id(&old_key))));
    // Both tokens open: Telegram is polled with each.
    for n in [1, 2] {
        eventually(WAIT, "a bot's token is used", || {
            let used = fakes
                .telegram
                .calls_of("getUpdates")
                .iter()
                .any(|c| c.token == token(n));
            std::future::ready(used)
        })
        .await;
    }
    // A new person's key is sealed under the new key; the first person's is not re-sealed.
    // (Webhook secrets stay the root key's, so the old key still signs the delivery.)
    let secret = botfleet::secrets::TokenCipher::new(&TokenKey::from_base64(&old_key).unwrap())
        .webhook_secret(first.parse().unwrap());
    let status = app
        .http
        .post(app.url(&format!("/telegram/{first}/webhook")))
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .json(&text_update(2, 502, "after the rotation"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;
    assert!(sealed_person_key(&app, 502)
        .await
        .starts_with(&format!("v2.{}.", key_id(&new_key))));
    assert!(sealed_person_key(&app, 501)
        .await
        .starts_with(&format!("v2.{}.", key_id(&old_key))));
    let all = texts(&app).await;
    for text in ["before the rotation", "after the rotation"] {
        assert!(all.contains(&text.to_owned()), "{all:?}");
    }

    let status = botfleet_cli_with(
        &app.db.url,
        &["keys", "status"],
        &[("TOKEN_ENCRYPTION_KEY", &new_key)],
    )
    .await;
    let listing = String::from_utf8_lossy(&status.stdout);
    let line_of = |id: String| {
        listing
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap_or_default()
            .to_owned()
    };
    let (old_line, new_line) = (line_of(key_id(&old_key)), line_of(key_id(&new_key)));
    assert!(
        old_line.contains("retired") && old_line.contains("root"),
        "{listing}"
    );
    assert!(
        new_line.contains("current") && new_line.contains("<- TOKEN_ENCRYPTION_KEY"),
        "{listing}"
    );
    app.stop().await;
}
