//! Shared test setup: fresh databases and a running application.

use std::time::Duration;

use base64::Engine;
use botfleet::app::Application;
use botfleet::config::{Config, DatabaseArgs, ServeArgs};
use serde_json::Value;
use sqlx::PgPool;

/// The server the tests create their databases on; trust authentication is assumed.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database of its own for one test, dropped when the test ends (even when it fails).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let name = format!("botfleet_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{name}", server_url());
        Self { name, url }
    }

    /// Creates and migrates the database, returning a pool on it.
    pub async fn pool(&self) -> PgPool {
        botfleet::app::install_crypto_provider();
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
                if let Ok(pool) = PgPool::connect(&format!("{}/postgres", server_url())).await {
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

/// Settings for a test application on `db`: a random port, fast polling.
pub fn test_config(db: &TestDb, token_key: &str) -> Config {
    Config::from_args(ServeArgs {
        database: DatabaseArgs {
            database_url: db.url.clone(),
            database_max_connections: 8,
        },
        bind_addr: "127.0.0.1:0".to_owned(),
        public_url: None,
        token_encryption_key: Some(token_key.to_owned()),
        telegram_api_url: "http://127.0.0.1:9".to_owned(),
        openai_base_url: "http://127.0.0.1:9/v1".to_owned(),
        openai_api_key: None,
        read_model_wait_ms: 10_000,
        subscription_poll_ms: 1_000,
    })
    .expect("test settings are valid")
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
        let app = Application::build(test_config(&db, &token_key))
            .await
            .expect("the application starts");
        let base = format!("http://{}", app.addr());
        let pool = app.pool().clone();
        Self {
            app: Some(app),
            base,
            http: reqwest::Client::new(),
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

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE");
        decode(response).await
    }

    /// Registers a bot and returns its JSON.
    pub async fn create_bot(&self, name: &str, token: &str) -> Value {
        let (status, body) = self
            .post(
                "/bots",
                serde_json::json!({"name": name, "token": token, "model": "gpt-5-mini",
                    "instructions": "Answer briefly."}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
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

async fn decode(response: reqwest::Response) -> (u16, Value) {
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
