//! Admin authentication: login, me and logout; every admin endpoint closed without a
//! session; expired and logged-out sessions refused; CSRF; the failed-login lockout; the
//! admin as the actor of what they do; `botfleet admin create`; the cookie secret's check.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{decode, log_in, session_client, token, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

/// Operations anyone may call. Everything else in the spec must be an admin operation.
const PUBLIC_OPERATIONS: &[(&str, &str)] = &[
    ("post", "/auth/login"),
    ("post", "/auth/setup"),
    ("post", "/telegram/{bot_id}/webhook"),
    ("get", "/health"),
    ("get", "/health/db"),
    ("get", "/health/queue"),
    ("get", "/metrics"),
];

/// Every `(method, path, secured)` of the generated spec. poem-openapi writes paths at two
/// spaces of indentation, methods at four and their fields at six, so a line walk suffices.
fn operations(spec: &str) -> Vec<(String, String, bool)> {
    let mut operations: Vec<(String, String, bool)> = Vec::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in spec.lines() {
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  ").filter(|l| l.starts_with('/')) {
            path = p.trim_end_matches(':').trim_matches('\'').to_owned();
        } else if let Some(m) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')) {
            operations.push((m.trim_end_matches(':').to_owned(), path.clone(), false));
        } else if line == "      security:" {
            operations.last_mut().expect("security follows a method").2 = true;
        }
    }
    operations
}

#[tokio::test]
async fn every_admin_operation_in_the_spec_answers_401_without_a_session() {
    let spec = botfleet::cli::openapi_yaml();
    let operations = operations(&spec);
    assert!(operations.len() >= 12, "the walk found {operations:?}");
    let app = TestApp::spawn().await;
    let anonymous = reqwest::Client::new();
    let forged = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::COOKIE,
                "botfleet_session=forged-value".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let mut checked = 0;
    for (method, path, secured) in &operations {
        let public = PUBLIC_OPERATIONS.contains(&(method.as_str(), path.as_str()));
        assert_eq!(
            *secured, !public,
            "{method} {path}: only the public operations may go without the security scheme"
        );
        if public {
            continue;
        }
        // Every path parameter gets a well-formed id: the 401 must come first anyway.
        let mut url = String::new();
        for segment in path.split('/').skip(1) {
            url.push('/');
            url.push_str(if segment.starts_with('{') {
                &id
            } else {
                segment
            });
        }
        for (who, client) in [("no cookie", &anonymous), ("a forged cookie", &forged)] {
            let request = client
                .request(method.to_uppercase().parse().unwrap(), app.url(&url))
                .json(&json!({}));
            let (status, body) = decode(request.send().await.unwrap()).await;
            assert_eq!(status, 401, "{method} {url} with {who}: {body}");
            assert_eq!(body["error"], "unauthorized", "{method} {url}: {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        checked += 1;
    }
    assert!(checked >= 9, "admin operations checked: {checked}");
    assert_eq!(app.event_count().await, 0, "nothing was recorded");
    app.stop().await;
}

#[tokio::test]
async fn log_in_see_who_you_are_and_log_out() {
    let app = TestApp::spawn().await;
    let anonymous = reqwest::Client::new();

    let response = anonymous
        .post(app.url("/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, session) = decode(response).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["admin"]["email"], ADMIN_EMAIL);
    assert!(session["csrf_token"].as_str().unwrap().len() >= 32);
    assert!(session["expires_at"].is_string());
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "no Secure without https: {set_cookie}"
    );
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM admin_sessions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let cookie_value = set_cookie.split(';').next().unwrap();
    assert!(
        stored.iter().all(|hash| hash.len() == 32),
        "only SHA-256 hashes of tokens are stored"
    );

    let login = log_in(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let client = session_client(&login);
    let (status, me) = decode(client.get(app.url("/auth/me")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["admin"], login.body["admin"]);
    assert_eq!(me["csrf_token"], login.csrf_token);

    let response = client.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("botfleet_session=;"), "{cleared}");
    // The browser would drop the cookie; a copy kept anyway is worth nothing now.
    let (status, body) = decode(client.get(app.url("/auth/me")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = decode(client.get(app.url("/bots")).send().await.unwrap()).await;
    assert_eq!(status, 401, "a logged-out session opens nothing");

    // The other session (the first login) is untouched by this logout.
    let first = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .header("cookie", cookie_value)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_cookie_is_secure_when_the_public_url_is_https() {
    let app = TestApp::spawn_with(
        crate::helpers::TestDb::new(),
        crate::helpers::random_token_key(),
        |args| {
            args.public_url = Some("https://bots.example.com".to_owned());
        },
    )
    .await;
    let response = reqwest::Client::new()
        .post(app.url("/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = TestApp::spawn_with(
        crate::helpers::TestDb::new(),
        crate::helpers::random_token_key(),
        |args| args.session_ttl_secs = 1,
    )
    .await;
    // TestApp logged in at spawn, with a one-second session.
    let (status, _) = app.get("/auth/me").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, body) = app.get("/auth/me").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _) = app.get("/bots").await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_write_without_the_sessions_csrf_token_is_forbidden() {
    let app = TestApp::spawn().await;
    let login = log_in(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // A cross-site form or script could make a browser send the cookie, never this header.
    let cookie_only = reqwest::Client::new();
    let read = cookie_only
        .get(app.url("/bots"))
        .header("cookie", &login.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "reads need no CSRF token");
    for csrf in [
        None,
        Some("wrong"),
        Some(app_csrf_of_another_session(&app).await.as_str()),
    ] {
        let mut request = cookie_only
            .post(app.url("/bots"))
            .header("cookie", &login.cookie)
            .json(&json!({"name": "Support", "token": token(1), "model": "gpt-5-mini"}));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        let (status, body) = decode(request.send().await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("csrf")),
            "{csrf:?}: {body}"
        );
    }
    assert_eq!(app.event_count().await, 0, "nothing was recorded");
    let (status, _) = decode(
        cookie_only
            .post(app.url("/bots"))
            .header("cookie", &login.cookie)
            .header("x-csrf-token", &login.csrf_token)
            .json(&json!({"name": "Support", "token": token(1), "model": "gpt-5-mini"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "with its own token the write goes through");
    app.stop().await;
}

/// The CSRF token of the session the test app logged in with at spawn.
async fn app_csrf_of_another_session(app: &TestApp) -> String {
    app.get("/auth/me").await.1["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", format!("198.51.100.200, {ip}"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_and_the_address() {
    // Addresses come from X-Forwarded-For here, so one test can play several clients.
    let app = TestApp::spawn_with(
        crate::helpers::TestDb::new(),
        crate::helpers::random_token_key(),
        |args| args.trust_forwarded_for = true,
    )
    .await;

    // Five wrong passwords for the admin, each from its own address.
    for n in 1..=5 {
        let response =
            login_from(&app, &format!("10.0.0.{n}"), ADMIN_EMAIL, "wrong password").await;
        let (status, body) = decode(response).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_credentials"))
        );
    }
    // Now even the right password is refused, from anywhere, without being checked.
    let response = login_from(&app, "10.0.0.99", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&retry_after), "{retry_after}");
    let (status, body) = decode(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests"))
    );
    let (status, _) = decode(
        login_from(
            &app,
            "10.0.0.99",
            &ADMIN_EMAIL.to_uppercase(),
            ADMIN_PASSWORD,
        )
        .await,
    )
    .await;
    assert_eq!(
        status, 429,
        "the account is locked whatever the email's case"
    );

    // Five failures from one address, each for another (unknown) account: the address is
    // locked, even for an admin with the right password; other addresses are not.
    let other = botfleet::auth::accounts::AdminEmail::parse("ops@example.com").unwrap();
    botfleet::auth::accounts::create(
        &app.pool,
        &other,
        botfleet::secrets::Redacted::new("another long password".to_owned()),
        false,
    )
    .await
    .unwrap();
    for n in 1..=5 {
        let (status, body) =
            decode(login_from(&app, "10.9.9.9", &format!("nobody{n}@example.com"), "guess").await)
                .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_credentials")),
            "an unknown email is answered like a wrong password"
        );
    }
    let (status, _) =
        decode(login_from(&app, "10.9.9.9", "ops@example.com", "another long password").await)
            .await;
    assert_eq!(status, 429, "the address is locked");
    let (status, _) =
        decode(login_from(&app, "10.8.8.8", "ops@example.com", "another long password").await)
            .await;
    assert_eq!(status, 200, "another address is not");

    // When the lock ends, the right password works again.
    sqlx::query("UPDATE login_throttle SET locked_until = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, _) =
        decode(login_from(&app, "10.0.0.99", ADMIN_EMAIL, ADMIN_PASSWORD).await).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn what_an_admin_does_is_recorded_with_the_admin_as_actor() {
    let app = TestApp::spawn().await;
    let admin_id = app.get("/auth/me").await.1["admin"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    let actors: Vec<Value> = sqlx::query_scalar(
        "SELECT metadata -> 'actor' FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&bot_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(actors.len() >= 2, "{actors:?}");
    assert_eq!(actors[0], json!(format!("admin:{admin_id}")));
    assert_eq!(actors[1], json!(format!("admin:{admin_id}")));

    // No secret of the session reaches the event log.
    let login = log_in(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let everything: Vec<String> =
        sqlx::query_scalar("SELECT payload::text || metadata::text FROM events")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for text in everything {
        assert!(!text.contains(ADMIN_PASSWORD));
        assert!(!text.contains(&login.csrf_token));
        assert!(!text.contains(login.cookie.trim_start_matches("botfleet_session=")));
    }
    app.stop().await;
}

#[tokio::test]
async fn admin_create_reads_the_password_from_stdin() {
    let app = TestApp::spawn().await;
    let create = |email: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_botfleet"))
            .args(["admin", "create", "--email", email])
            .env("DATABASE_URL", &app.db.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run botfleet admin create");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"a password from stdin\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let output = create("ops@example.com");
    assert!(output.status.success(), "{output:?}");
    let login = log_in(&app.base, "ops@example.com", "a password from stdin").await;
    assert_eq!(login.body["admin"]["email"], "ops@example.com");

    let again = create("OPS@example.com");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    app.stop().await;
}

/// A missing COOKIE_SECRET is generated into the data folder (`fresh_machine`); a short one
/// is refused with one line that names it and does not echo it.
#[tokio::test]
async fn start_up_refuses_a_short_cookie_secret() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_botfleet"))
        .arg("serve")
        .env_clear()
        .env("TOKEN_ENCRYPTION_KEY", crate::helpers::random_token_key())
        .env("DATABASE_URL", "postgres://127.0.0.1:9/unused")
        .env("COOKIE_SECRET", "too short")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.contains("COOKIE_SECRET must be at least 32 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("too short"), "the secret is not echoed");
}
