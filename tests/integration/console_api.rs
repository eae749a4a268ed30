//! The JSON API the console brought: usage per bot per day, partial bot updates, admin
//! accounts and lockouts, conversation resets, the chat filters, each person's spend, and the
//! CSRF header declared in the OpenAPI document.

use std::time::Duration;

use serde_json::json;

use crate::fakes::telegram::{error, text_update};
use crate::helpers::{eventually, log_in, session_client, token, Fakes, TestApp, ADMIN_EMAIL};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn usage_is_counted_per_bot_per_day_from_the_events() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    app.deliver(&bot, &text_update(1, 42, "one")).await;
    app.deliver(&bot, &text_update(2, 43, "two")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    app.settle().await;

    let (status, usage) = app.get("/usage").await;
    assert_eq!(status, 200, "{usage}");
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{usage}");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(days[0]["day"], today);
    assert_eq!(days[0]["bot_id"], bot.as_str());
    for (field, expected) in [
        ("messages", 2),
        ("turns", 2),
        ("failed_turns", 0),
        ("input_tokens", 200),
        ("cached_input_tokens", 40),
        ("output_tokens", 100),
        ("reasoning_tokens", 20),
        ("cost_micro_usd", 242),
    ] {
        assert_eq!(days[0][field], expected, "{field}");
        assert_eq!(usage["totals"][field], expected, "totals {field}");
    }
    let (_, other) = app
        .get(&format!("/usage?bot_id={}", uuid::Uuid::now_v7()))
        .await;
    assert!(other["days"].as_array().unwrap().is_empty());
    let (status, error) = app.get("/usage?from=2026-12-02&to=2026-12-01").await;
    assert_eq!((status, error["field"].as_str()), (422, Some("from")));
    let (status, _) = app.get("/usage?from=2020-01-01&to=2026-01-01").await;
    assert_eq!(status, 422, "more than 366 days");

    // A rebuild from the events lands every figure on the same day.
    let before: Vec<(uuid::Uuid, chrono::NaiveDate, i64, i64)> =
        sqlx::query_as("SELECT bot_id, day, turns, cost_micro_usd FROM usage_daily ORDER BY 1, 2")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let output =
        crate::helpers::botfleet_cli(&app.db.url, &["projections", "rebuild", "usage"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after: Vec<(uuid::Uuid, chrono::NaiveDate, i64, i64)> =
        sqlx::query_as("SELECT bot_id, day, turns, cost_micro_usd FROM usage_daily ORDER BY 1, 2")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    app.stop().await;
}

#[tokio::test]
async fn patch_changes_only_what_it_names_and_rotates_a_token_alone() {
    let app = TestApp::spawn().await;
    let bot = app.create_bot("Support", &token(1)).await;
    let id = bot["id"].as_str().unwrap();
    app.create_bot("Other", &token(3)).await;

    let (status, rotated) = app
        .patch(&format!("/bots/{id}"), json!({"token": token(2)}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["token"], bot["token"]);
    for kept in [
        "name",
        "model",
        "instructions",
        "start_message",
        "error_message",
    ] {
        assert_eq!(rotated[kept], bot[kept], "{kept} kept");
    }
    let (_, changed) = app
        .patch(&format!("/bots/{id}"), json!({"model": "gpt-5"}))
        .await;
    assert_eq!(changed["model"], "gpt-5");
    assert_eq!(changed["name"], "Support");
    assert_eq!(changed["token"], rotated["token"], "the token stays");

    let (status, error) = app
        .patch(&format!("/bots/{id}"), json!({"token": token(3)}))
        .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (409, Some("token_in_use"))
    );
    let (status, error) = app.patch(&format!("/bots/{id}"), json!({"name": ""})).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("name")));
    let (status, _) = app
        .patch(&format!("/bots/{id}"), json!({"colour": "red"}))
        .await;
    assert_eq!(status, 400, "an unknown field");
    let (status, same) = app.patch(&format!("/bots/{id}"), json!({})).await;
    assert_eq!(
        (status, &same["version"]),
        (200, &changed["version"]),
        "nothing to change"
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_are_added_disabled_enabled_and_change_their_password() {
    let app = TestApp::spawn().await;
    let (_, admins) = app.get("/admins").await;
    let me = admins["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(admins["items"][0]["email"], ADMIN_EMAIL);

    let (status, ops) = app
        .post(
            "/admins",
            json!({"email": "ops@example.com", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(status, 201, "{ops}");
    assert_eq!(ops["created_by"], format!("admin:{me}"));
    let ops_id = ops["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/admins",
            json!({"email": "OPS@example.com", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, error) = app
        .post(
            "/admins",
            json!({"email": "new@example.com", "password": "short"}),
        )
        .await;
    assert_eq!((status, error["field"].as_str()), (422, Some("password")));

    let ops_session =
        session_client(&log_in(&app.base, "ops@example.com", "a long enough password").await);
    let (status, _) = app
        .post(&format!("/admins/{me}/disable"), json!(null))
        .await;
    assert_eq!(status, 409, "nobody disables themselves");
    let (status, disabled) = app
        .post(&format!("/admins/{ops_id}/disable"), json!(null))
        .await;
    assert_eq!(status, 200);
    assert!(disabled["disabled_at"].is_string());
    let me_as_ops = ops_session.get(app.url("/auth/me")).send().await.unwrap();
    assert_eq!(me_as_ops.status(), 401, "their session ended");
    let (status, _) = app
        .post(
            &format!("/admins/{}/disable", uuid::Uuid::now_v7()),
            json!(null),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(&format!("/admins/{ops_id}/enable"), json!(null))
        .await;
    assert_eq!(status, 200);
    log_in(&app.base, "ops@example.com", "a long enough password").await;

    // Changing one's password needs the current one, and ends one's other sessions.
    let other =
        session_client(&log_in(&app.base, ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD).await);
    let (status, error) = app
        .post("/auth/password", json!({"current_password": "wrong wrong wrong", "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (422, Some("current_password"))
    );
    let (status, _) = app
        .post("/auth/password", json!({"current_password": crate::helpers::ADMIN_PASSWORD, "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.get("/auth/me").await.0, 200, "this session goes on");
    assert_eq!(
        other
            .get(app.url("/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    log_in(&app.base, ADMIN_EMAIL, "a brand new passphrase").await;
    app.stop().await;
}

#[tokio::test]
async fn a_lockout_is_listed_and_lifted() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let response = reqwest::Client::new()
            .post(app.url("/auth/login"))
            .json(&json!({"email": "ops@example.com", "password": "guessing wrong"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let (_, locks) = app.get("/lockouts").await;
    let subjects: Vec<&str> = locks["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["subject"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&"account:ops@example.com"), "{locks}");
    assert_eq!(
        app.delete("/lockouts/account%3Aops%40example.com").await.0,
        204
    );
    assert_eq!(
        app.delete("/lockouts/account%3Aops%40example.com").await.0,
        404
    );
    let (_, locks) = app.get("/lockouts").await;
    assert!(!locks.to_string().contains("account:ops@example.com"));
    app.stop().await;
}

#[tokio::test]
async fn chats_reset_filter_and_show_what_each_person_cost() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        403,
        error(403, "Forbidden: bot was blocked by the user", None),
    );
    // One after the other: the refused send must be chat 42's, and two chats' turns run
    // concurrently.
    app.deliver(&bot, &text_update(1, 42, "blocked one")).await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    app.deliver(&bot, &text_update(2, 43, "fine one")).await;
    fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
    eventually(WAIT, "one turn failed", || async {
        app.get("/failures").await.1["items"]
            .as_array()
            .is_some_and(|i| i.len() == 1)
    })
    .await;
    app.settle().await;

    let ids = |page: serde_json::Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["telegram_chat_id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(app.get("/chats?failing=true").await.1), [42]);
    assert_eq!(ids(app.get("/chats?blocked=true").await.1), [42]);
    assert_eq!(ids(app.get("/chats?blocked=false").await.1), [43]);

    let (_, fine) = app.get("/chats?user_id=43").await;
    let chat = fine["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(fine["items"][0]["previous_response_id"], "resp_2");
    let (status, reset) = app.post(&format!("/chats/{chat}/reset"), json!(null)).await;
    assert_eq!((status, reset["status"].as_str()), (200, Some("reset")));
    assert!(app.get(&format!("/chats/{chat}")).await.1["previous_response_id"].is_null());
    assert!(app
        .event_types()
        .await
        .contains(&"ConversationResetByAdmin".to_owned()));
    assert_eq!(
        app.post(
            &format!("/chats/{}/reset", uuid::Uuid::now_v7()),
            json!(null)
        )
        .await
        .0,
        404
    );

    let (_, messages) = app.get(&format!("/chats/{chat}/messages")).await;
    let answer = &messages["items"][1];
    assert!(
        answer["response_ms"].as_i64().is_some_and(|ms| ms >= 0),
        "{answer}"
    );
    let (_, users) = app.get("/users").await;
    let spend = |id: i64| {
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .unwrap()["spend_micro_usd"]
            .clone()
    };
    assert_eq!(spend(43), 121);
    assert_eq!(
        spend(42),
        121,
        "the blocked chat's answer was generated, and paid for"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_declares_the_csrf_header_on_writes() {
    let document = botfleet::http::spec_yaml();
    let spec: serde_yaml::Value = serde_yaml::from_str(&document).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["CsrfToken"];
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-CSRF-Token");
    let security = |path: &str, method: &str| spec["paths"][path][method]["security"].clone();
    let both: serde_yaml::Value =
        serde_yaml::from_str("[{AdminSession: [], CsrfToken: []}]").unwrap();
    let cookie: serde_yaml::Value = serde_yaml::from_str("[{AdminSession: []}]").unwrap();
    assert_eq!(security("/bots", "post"), both);
    assert_eq!(security("/bots/{id}", "patch"), both);
    assert_eq!(security("/bots/{id}", "delete"), both);
    assert_eq!(security("/bots", "get"), cookie);
    assert!(security("/auth/login", "post").is_null());
}
