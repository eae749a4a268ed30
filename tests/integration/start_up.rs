//! A start that cannot work says why in one line that names the setting and the address.

use crate::helpers::{random_token_key, TestDb, COOKIE_SECRET};

/// `botfleet serve` with these settings (and valid keys), to its end: exit code and stderr.
async fn serve(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let key = random_token_key();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_botfleet"));
    command
        .arg("serve")
        .env_clear()
        .env("TOKEN_ENCRYPTION_KEY", &key)
        .env("COOKIE_SECRET", COOKIE_SECRET)
        .env("BIND_ADDR", "127.0.0.1:0")
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("the start ends")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_one_line(stderr: &str, expected: &[&str]) {
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
}

#[tokio::test]
async fn a_taken_port_names_the_address_and_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = TestDb::new();
    let (code, stderr) = serve(&[("DATABASE_URL", &db.url), ("BIND_ADDR", &addr)]).await;
    assert_eq!(code, Some(1));
    assert_one_line(&stderr, &[&format!("BIND_ADDR {addr} is in use")]);
}

#[tokio::test]
async fn an_unreachable_database_names_its_address_and_the_setting() {
    let (code, stderr) =
        serve(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:9/botfleet")]).await;
    assert_eq!(code, Some(1));
    assert_one_line(
        &stderr,
        &["cannot connect to the database at 127.0.0.1:9 (DATABASE_URL)"],
    );
}

#[tokio::test]
async fn a_refusing_database_says_what_it_answered() {
    let db = TestDb::new();
    // A role that does not exist: the server answers, and refuses.
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username("no_such_role").unwrap();
    let url = url.to_string();
    let (code, stderr) = serve(&[("DATABASE_URL", &url)]).await;
    assert_eq!(code, Some(1));
    assert_one_line(
        &stderr,
        &[
            "cannot connect to the database at",
            "(DATABASE_URL)",
            "no_such_role",
        ],
    );
}

#[tokio::test]
async fn a_database_url_without_a_database_name_is_refused() {
    let (code, stderr) = serve(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:9")]).await;
    assert_eq!(code, Some(1));
    assert_one_line(&stderr, &["DATABASE_URL names no database"]);
}

#[tokio::test]
async fn an_http_public_url_is_refused_unless_it_is_loopback() {
    let (code, stderr) = serve(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/botfleet"),
        ("PUBLIC_URL", "http://bots.example.com"),
    ])
    .await;
    assert_eq!(code, Some(2));
    assert_one_line(&stderr, &["PUBLIC_URL must be an https URL"]);
}

/// Without OPENAI_API_KEY every bot shows it before anyone writes; a start with the key
/// clears it.
#[tokio::test]
async fn a_missing_openai_key_shows_on_every_bot_until_a_start_with_it() {
    use crate::helpers::{eventually, token, TestApp};
    let (db, key) = (TestDb::new(), random_token_key());
    let app = TestApp::spawn_with(db, key.clone(), |args| args.openai_api_key = None).await;
    let id = app.create_bot("Support", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wait = std::time::Duration::from_secs(30);
    eventually(wait, "the bot shows the missing key", || async {
        app.get(&format!("/bots/{id}")).await.1["last_error"]["kind"] == "llm_not_configured"
    })
    .await;
    let (_, bot) = app.get(&format!("/bots/{id}")).await;
    assert!(bot["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("OPENAI_API_KEY is not set"));
    let TestApp {
        app: running, db, ..
    } = app;
    running.unwrap().stop().await.unwrap();

    let app = TestApp::spawn_on(db, key).await;
    eventually(wait, "a start with the key clears it", || async {
        app.get(&format!("/bots/{id}")).await.1["last_error"].is_null()
    })
    .await;
    app.stop().await;
}
