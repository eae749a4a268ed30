//! Validation and limits: errors that name their field, the request size limit, the
//! per-address and per-session rate limits of the admin API, and intake limited per bot.

use serde_json::{json, Value};

use crate::fakes::telegram::text_update;
use crate::helpers::{
    decode, log_in, random_token_key, session_client, token, Fakes, TestApp, TestDb, ADMIN_EMAIL,
    ADMIN_PASSWORD,
};

/// The answer's status, its `Retry-After` in seconds, and its body.
async fn send(request: reqwest::RequestBuilder) -> (u16, Option<u64>, Value) {
    let response = request.send().await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let (status, body) = decode(response).await;
    (status, retry_after, body)
}

#[tokio::test]
async fn a_validation_error_names_its_field() {
    let app = TestApp::spawn().await;
    let anonymous = reqwest::Client::new();
    for (body, status, field) in [
        (
            json!({"email": "not an email", "password": "x"}),
            422,
            "email",
        ),
        (
            json!({"email": ADMIN_EMAIL, "password": ""}),
            422,
            "password",
        ),
        (json!({"email": ADMIN_EMAIL}), 400, "password"),
        (
            json!({"email": ADMIN_EMAIL, "password": "x", "remember": true}),
            400,
            "remember",
        ),
    ] {
        let (got, _, error) = send(anonymous.post(app.url("/auth/login")).json(&body)).await;
        assert_eq!(
            (got, error["field"].as_str()),
            (status, Some(field)),
            "{body}: {error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    let (status, body) = app
        .post(
            "/bots",
            json!({"name": "", "token": token(1), "model": "gpt-5-mini"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("name")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_refused_with_413() {
    let app = TestApp::spawn_with(TestDb::new(), random_token_key(), |args| {
        args.max_request_bytes = 4_096;
    })
    .await;
    let (status, body) = app
        .post(
            "/bots",
            json!({"name": "Big", "token": token(1), "model": "gpt-5-mini",
                   "instructions": "x".repeat(5_000)}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    // The webhook is held to the same limit.
    let bot_id = uuid::Uuid::now_v7();
    let (status, _, _) = send(
        reqwest::Client::new()
            .post(app.url(&format!("/telegram/{bot_id}/webhook")))
            .json(&text_update(1, 42, &"y".repeat(5_000))),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(app.event_count().await, 0);
    let (status, _) = app
        .post(
            "/bots",
            json!({"name": "Small", "token": token(1), "model": "gpt-5-mini"}),
        )
        .await;
    assert_eq!(status, 201, "a body under the limit passes");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_is_rate_limited_per_address() {
    let app = TestApp::spawn_with(TestDb::new(), random_token_key(), |args| {
        args.rate_limit_ip_per_minute = 6;
    })
    .await;
    // The login at spawn took one request of this address's six.
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..6 {
        let (status, retry_after, body) = send(app.http.get(app.url("/bots"))).await;
        statuses.push(status);
        if status == 429 {
            refused = Some((retry_after, body));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let (retry_after, body) = refused.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    // Six a minute: one every ten seconds.
    assert!((1..=10).contains(&retry_after.unwrap()), "{retry_after:?}");
    let (status, _, _) = send(
        reqwest::Client::new()
            .post(app.url("/auth/login"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
    )
    .await;
    assert_eq!(status, 429, "logging in again is no way around it");
    // Probes are not admin requests.
    let (status, _, _) = send(reqwest::Client::new().get(app.url("/health"))).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_is_rate_limited_per_session() {
    let app = TestApp::spawn_with(TestDb::new(), random_token_key(), |args| {
        args.rate_limit_session_per_minute = 3;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/auth/me").await.0, 200);
    }
    let (status, retry_after, body) = send(app.http.get(app.url("/auth/me"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    assert!((1..=20).contains(&retry_after.unwrap()));
    // Another session has its own budget.
    let other = session_client(&log_in(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let (status, _, _) = send(other.get(app.url("/auth/me"))).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn intake_is_limited_per_bot_so_one_flood_does_not_starve_the_others() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |args| args.rate_limit_bot_per_minute = 2).await;
    let flooded = app.create_enabled_bot("Flooded", &token(1)).await;
    let quiet = app.create_enabled_bot("Quiet", &token(2)).await;

    assert_eq!(app.deliver(&flooded, &text_update(1, 42, "one")).await, 200);
    assert_eq!(app.deliver(&flooded, &text_update(2, 42, "two")).await, 200);
    let (status, retry_after, body) = send(
        reqwest::Client::new()
            .post(app.url(&format!("/telegram/{flooded}/webhook")))
            .header(
                "X-Telegram-Bot-Api-Secret-Token",
                app.webhook_secret(&flooded),
            )
            .json(&text_update(3, 42, "three")),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.unwrap() >= 1, "Telegram retries after this");
    assert_eq!(app.deliver(&quiet, &text_update(1, 43, "hello")).await, 200);

    let received: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MessageReceived'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(received, 3, "the refused update was not recorded");
    app.stop().await;
}
