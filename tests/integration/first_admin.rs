//! The first admin from the one-time set-up link: once, for an hour, only while no admin
//! exists; ADMIN_EMAIL/ADMIN_PASSWORD and `botfleet admin create` keep working (`auth`).

use botfleet::app::Application;
use botfleet::config::Config;
use serde_json::{json, Value};

use crate::helpers::{decode, log_in, random_token_key, test_args, TestDb};

const EMAIL: &str = "first@example.com";
const PASSWORD: &str = "a long enough passphrase";

/// An application started without ADMIN_EMAIL and ADMIN_PASSWORD.
async fn start(db: &TestDb, key: &str) -> Application {
    let mut args = test_args(db, key);
    args.admin_email = None;
    args.admin_password = None;
    Application::build(Config::from_args(args).unwrap())
        .await
        .expect("the application starts")
}

async fn set_up(base: &str, token: &str, password: &str) -> (u16, Value) {
    decode(
        reqwest::Client::new()
            .post(format!("{base}/auth/setup"))
            .json(&json!({"token": token, "email": EMAIL, "password": password}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn the_set_up_link_creates_the_first_admin_once() {
    let (db, key) = (TestDb::new(), random_token_key());
    let app = start(&db, &key).await;
    let base = format!("http://{}", app.addr());
    let link = app.setup_link().expect("no admin: a link").to_owned();
    assert!(link.starts_with(&format!("{base}/setup?token=")), "{link}");
    let token = token_of(&link);

    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.text().await.unwrap().contains("/auth/setup"));

    // A weak password is refused without spending the token; a wrong token is refused.
    let (status, body) = set_up(&base, &token, "short").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("password")),
        "{body}"
    );
    let (status, body) = set_up(&base, "not-the-token", PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_setup_token")),
        "{body}"
    );

    let (status, body) = set_up(&base, &token, PASSWORD).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (201, Some(EMAIL)),
        "{body}"
    );
    let (status, body) = set_up(&base, &token, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_setup_token")),
        "{body}"
    );
    log_in(&base, EMAIL, PASSWORD).await;
    app.stop().await.unwrap();

    // An admin exists: no link any more.
    let again = start(&db, &key).await;
    assert!(again.setup_link().is_none());
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_set_up_link_expires_after_an_hour() {
    let (db, key) = (TestDb::new(), random_token_key());
    let app = start(&db, &key).await;
    let base = format!("http://{}", app.addr());
    let token = token_of(app.setup_link().unwrap());
    let ttl: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM admin_setup_tokens",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(ttl, 3600.0);
    // An hour later, as far as the table can tell.
    sqlx::query("UPDATE admin_setup_tokens SET expires_at = now() - interval '1 second'")
        .execute(app.pool())
        .await
        .unwrap();
    let (status, body) = set_up(&base, &token, PASSWORD).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_setup_token")),
        "{body}"
    );
    app.stop().await.unwrap();
}
