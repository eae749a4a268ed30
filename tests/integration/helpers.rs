//! Shared test setup: fresh databases and a running application.

use std::time::Duration;

use std::sync::OnceLock;

use base64::Engine;
use botfleet::app::Application;
use botfleet::config::{Config, DatabaseArgs, ServeArgs};
use botfleet::embedded_db::{Cluster, ClusterSettings};
use serde_json::Value;
use sqlx::PgPool;

use crate::fakes::openai::FakeOpenAi;
use crate::fakes::telegram::FakeTelegram;

/// Where the tests look for a PostgreSQL server when TEST_DATABASE_SERVER is not set.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

static SERVER: OnceLock<String> = OnceLock::new();

/// A private cluster started for this test run when no server answers: kept for the whole
/// run, and stopped and deleted by its watchdog when the test process ends.
static PRIVATE_CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The server the tests create their databases on (trust authentication is assumed):
/// TEST_DATABASE_SERVER when set, else the machine's PostgreSQL at [`DEFAULT_SERVER`] when it
/// answers, else a private cluster started once for the run, so that `cargo test` needs no
/// database set up.
pub fn server_url() -> String {
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("TEST_DATABASE_SERVER") {
                return url;
            }
            // Called from tests' runtimes, which cannot block on themselves: a thread of its own.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    if answers(DEFAULT_SERVER).await {
                        return DEFAULT_SERVER.to_owned();
                    }
                    let cluster = start_private_cluster().await;
                    eprintln!(
                        "tests: no PostgreSQL answers at {DEFAULT_SERVER} and TEST_DATABASE_SERVER \
                         is not set; using a private cluster in {}",
                        cluster.settings().cluster_dir.display()
                    );
                    let server = server_of(&cluster);
                    let _ = PRIVATE_CLUSTER.set(cluster);
                    server
                })
            })
            .join()
            .expect("choosing the test server")
        })
        .clone()
}

/// Whether a PostgreSQL server at `server` lets the tests in.
pub async fn answers(server: &str) -> bool {
    use sqlx::Connection;
    let connect = sqlx::PgConnection::connect(&database_url_on(server, "postgres"));
    matches!(
        tokio::time::timeout(Duration::from_secs(5), connect).await,
        Ok(Ok(_))
    )
}

/// A throwaway cluster in the temporary folder (no fsync: it only lives for the run).
pub async fn start_private_cluster() -> Cluster {
    let dir = std::env::temp_dir().join(format!(
        "botfleet-test-pg-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    Cluster::start(ClusterSettings {
        cluster_dir: dir,
        bin_dir: std::env::var_os("POSTGRES_BIN_DIR").map(Into::into),
        run_as: std::env::var("POSTGRES_RUN_AS").ok(),
        durable: false,
        throwaway: true,
    })
    .await
    .expect("start a private PostgreSQL cluster for the tests")
}

/// A cluster's server URL in TEST_DATABASE_SERVER's form: a database name goes after it.
pub fn server_of(cluster: &Cluster) -> String {
    // `…:5432/x?host=/dir` without the database: `…:5432?host=/dir`.
    cluster.url("x").replacen("/x?", "?", 1)
}

/// The URL of `database` on the tests' server.
pub fn database_url(database: &str) -> String {
    database_url_on(&server_url(), database)
}

/// The URL of `database` on `server`, which may carry parameters (`?host=/socket/dir`).
pub fn database_url_on(server: &str, database: &str) -> String {
    match server.split_once('?') {
        Some((base, query)) => format!("{}/{database}?{query}", base.trim_end_matches('/')),
        None => format!("{}/{database}", server.trim_end_matches('/')),
    }
}

/// A database of its own for one test, dropped when the test ends (even when it fails).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let name = format!("botfleet_test_{}", uuid::Uuid::new_v4().simple());
        let url = database_url(&name);
        Self { name, url }
    }

    /// Creates and migrates the database, returning a pool on it.
    pub async fn pool(&self) -> PgPool {
        botfleet::runtime::tls::install_crypto_provider();
        let pool = botfleet::db::connect(&self.url, 8).await.expect("connect");
        botfleet::db::migrate(&pool).await.expect("migrate");
        pool
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime, which cannot block on itself.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(pool) = PgPool::connect(&database_url("postgres")).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn random_token_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// The arguments `botfleet serve` would get for a test on `db`: a random port, quick retries,
/// outside servers that refuse connections unless a test points them at its fakes.
pub fn test_args(db: &TestDb, token_key: &str) -> ServeArgs {
    ServeArgs {
        database: DatabaseArgs {
            database_url: Some(db.url.clone()),
            database_max_connections: 12,
            data_dir: None,
            postgres_bin_dir: None,
            postgres_run_as: None,
            origin: None,
        },
        bind_addr: "127.0.0.1:0".to_owned(),
        public_url: None,
        token_encryption_key: Some(token_key.to_owned()),
        telegram_api_url: "http://127.0.0.1:9".to_owned(),
        telegram_send_timeout_secs: 60,
        webhook_max_connections: 40,
        openai_base_url: "http://127.0.0.1:9/v1".to_owned(),
        openai_api_key: Some("sk-test-key".to_owned()),
        read_model_wait_ms: 10_000,
        subscription_poll_ms: 1_000,
        llm_api: "responses".to_owned(),
        openai_timeout_secs: 10,
        pricing_file: None,
        effect_concurrency: 16,
        llm_concurrency: 0,
        effect_lease_ms: 30_000,
        retry_limit: 4,
        retry_backoff_ms: 100,
        retry_backoff_max_ms: 2_000,
        poll_timeout_secs: 1,
        poll_conflict_pause_secs: 1,
        alert_telegram_bot_id: None,
        alert_telegram_chat_id: None,
        alert_webhook_url: None,
        alert_window_secs: 600,
        alert_gather_ms: 3_000,
        cookie_secret: Some(COOKIE_SECRET.to_owned()),
        admin_email: Some(ADMIN_EMAIL.to_owned()),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        session_ttl_secs: 3_600,
        login_max_failures: 5,
        login_lockout_secs: 900,
        // Off, so that tests polling with `eventually` are not throttled; the limits tests
        // turn them on.
        rate_limit_ip_per_minute: 0,
        rate_limit_session_per_minute: 0,
        rate_limit_bot_per_minute: 0,
        max_request_bytes: 1_048_576,
        trust_forwarded_for: false,
        health_max_lag: 1_000,
        health_stuck_secs: 60,
        projection_max_attempts: 3,
        media: Default::default(),
    }
}

/// The first admin every test app creates from ADMIN_EMAIL and ADMIN_PASSWORD.
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const COOKIE_SECRET: &str = "a test cookie secret of more than thirty-two bytes";

/// What a successful login hands a client.
pub struct Login {
    /// `botfleet_session=…`, as a `Cookie` header carries it.
    pub cookie: String,
    pub csrf_token: String,
    pub body: Value,
}

/// Logs in at `base` (a running Botfleet) and returns the session.
pub async fn log_in(base: &str, email: &str, password: &str) -> Login {
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .expect("POST /auth/login");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let (status, body) = decode(response).await;
    assert_eq!(status, 200, "login: {body}");
    Login {
        cookie: cookie.expect("the login sets a cookie"),
        csrf_token: body["csrf_token"]
            .as_str()
            .expect("a CSRF token")
            .to_owned(),
        body,
    }
}

/// A client that sends the session cookie and the CSRF token with every request, as a
/// browser (cookie) and the admin UI (header) would.
pub fn session_client(login: &Login) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        login.cookie.parse().expect("a cookie header"),
    );
    headers.insert("x-csrf-token", login.csrf_token.parse().expect("a header"));
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

pub fn test_config(db: &TestDb, token_key: &str) -> Config {
    Config::from_args(test_args(db, token_key)).expect("test settings are valid")
}

/// The fake outside world: Telegram and OpenAI on 127.0.0.1.
pub struct Fakes {
    pub telegram: FakeTelegram,
    pub openai: FakeOpenAi,
}

impl Fakes {
    pub async fn start() -> Self {
        Self {
            telegram: FakeTelegram::start().await,
            openai: FakeOpenAi::start().await,
        }
    }

    /// A second Botfleet on `first`'s database and keys, talking to these fakes: a replica.
    pub async fn replica_of(&self, first: &TestApp) -> Application {
        let mut config = test_config(&first.db, &first.token_key);
        config.telegram_api_url = self.telegram.base_url.parse().unwrap();
        config.openai_base_url = self.openai.base_url.parse().unwrap();
        Application::build(config)
            .await
            .expect("the replica starts")
    }

    /// Points `args` at these fakes.
    pub fn configure(&self, args: &mut ServeArgs) {
        args.telegram_api_url = self.telegram.base_url.clone();
        args.openai_base_url = self.openai.base_url.clone();
    }
}

/// A running Botfleet and a client for it.
pub struct TestApp {
    pub app: Option<Application>,
    pub base: String,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub token_key: String,
    // Declared last: dropped after the application has stopped.
    pub db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(TestDb::new(), random_token_key()).await
    }

    pub async fn spawn_on(db: TestDb, token_key: String) -> Self {
        Self::spawn_with(db, token_key, |_| {}).await
    }

    /// A fresh database and the fakes; `tweak` adjusts the settings.
    pub async fn spawn_with_fakes(fakes: &Fakes, tweak: impl FnOnce(&mut ServeArgs)) -> Self {
        Self::spawn_with(TestDb::new(), random_token_key(), |args| {
            fakes.configure(args);
            tweak(args);
        })
        .await
    }

    pub async fn spawn_with(
        db: TestDb,
        token_key: String,
        tweak: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let mut args = test_args(&db, &token_key);
        tweak(&mut args);
        let config = Config::from_args(args).expect("test settings are valid");
        let app = Application::build(config)
            .await
            .expect("the application starts");
        let base = format!("http://{}", app.addr());
        let pool = app.pool().clone();
        // Every test acts as the first admin, logged in: the tests that predate
        // authentication keep working unchanged, and the auth tests use their own clients.
        let login = log_in(&base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        Self {
            app: Some(app),
            base,
            http: session_client(&login),
            pool,
            token_key,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        decode(response).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        decode(response).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .put(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("PUT");
        decode(response).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("PATCH");
        decode(response).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE");
        decode(response).await
    }

    /// Registers a bot and returns its JSON. It does not stream its answers (new bots do by
    /// default): the tests written before streaming keep proving the answer as it was, and
    /// `streaming::` turns it on where it is the subject.
    pub async fn create_bot(&self, name: &str, token: &str) -> Value {
        let (status, body) = self
            .post(
                "/bots",
                serde_json::json!({"name": name, "token": token, "model": "gpt-5-mini",
                    "instructions": "Answer briefly.", "streaming": false}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Registers a bot and enables it; returns its id.
    pub async fn create_enabled_bot(&self, name: &str, token: &str) -> String {
        let id = self.create_bot(name, token).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = self.post(&format!("/bots/{id}/enable"), Value::Null).await;
        assert_eq!(status, 200, "{body}");
        // The answer waits for the read model, but only so long (READ_MODEL_WAIT_MS): on a
        // loaded machine, make sure the webhook will see the bot live before going on.
        eventually(Duration::from_secs(30), "the bot shows enabled", || async {
            self.get(&format!("/bots/{id}")).await.1["status"] == "enabled"
        })
        .await;
        id
    }

    /// The secret Telegram would send with `bot_id`'s updates.
    pub fn webhook_secret(&self, bot_id: &str) -> String {
        let key = botfleet::secrets::TokenKey::from_base64(&self.token_key).unwrap();
        botfleet::secrets::TokenCipher::new(&key).webhook_secret(bot_id.parse().unwrap())
    }

    /// Delivers an update to the webhook as Telegram would; returns the status.
    pub async fn deliver(&self, bot_id: &str, update: &Value) -> u16 {
        let response = self
            .http
            .post(self.url(&format!("/telegram/{bot_id}/webhook")))
            .header(
                "X-Telegram-Bot-Api-Secret-Token",
                self.webhook_secret(bot_id),
            )
            .json(update)
            .send()
            .await
            .expect("deliver an update");
        let status = response.status().as_u16();
        // Every delivery a test makes through here is meant to be accepted.
        assert_eq!(
            status,
            200,
            "the webhook refused an update: {}",
            response.text().await.unwrap_or_default()
        );
        status
    }

    /// Waits until no chat has unfinished turns and every projection has read every event.
    pub async fn settle(&self) {
        let pool = self.pool.clone();
        eventually(Duration::from_secs(30), "the pipeline settles", || {
            let pool = pool.clone();
            async move {
                // One statement, so one snapshot: a read model's rows and its checkpoint
                // commit together, and are seen together.
                let (open, behind): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM chat_work WHERE open_turns > 0),
                            (SELECT count(*) FROM subscription_checkpoints c
                             WHERE EXISTS (SELECT 1 FROM events e
                                           WHERE (e.transaction_id, e.global_position)
                                               > (c.transaction_id, c.global_position)))",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                open == 0 && behind == 0
            }
        })
        .await;
    }

    pub async fn event_types(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM events ORDER BY transaction_id, global_position")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("the application stops cleanly");
        }
    }
}

pub async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A token of Telegram's shape, different for each `n`.
pub fn token(n: u32) -> String {
    format!("{}:AAHdqTcvCH1vGWJxfSeofSAs0K5PA{:06}", 100_000 + n, n)
}

/// Polls `check` until it is true, failing the test after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the `botfleet` command against `database_url` as an operator would, without blocking
/// the test's runtime: an application under test runs on that runtime, and a command that
/// waits for one of its locks (a rebuild, a skip) would otherwise wait forever.
pub async fn botfleet_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    botfleet_cli_with(database_url, args, &[]).await
}

/// [`botfleet_cli`] with more environment variables.
pub async fn botfleet_cli_with(
    database_url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_botfleet"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("USER", "operator")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("botfleet {args:?} did not finish within 120 s"))
        .expect("run botfleet")
}
