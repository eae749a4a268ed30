//! The system under test: `botfleet serve` as a child process (the release binary, exactly as
//! deployed), and the admin API calls that set up the bench's bots.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use uuid::Uuid;

/// The settings the bench gives Botfleet, beyond its defaults.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub token_key: String,
    pub telegram_api_url: String,
    pub openai_base_url: String,
    pub pool_size: u32,
    pub effect_concurrency: usize,
    pub rust_log: String,
    /// Long-poll every bot (no PUBLIC_URL) instead of taking updates by webhook.
    pub polling: bool,
    pub admin_email: String,
    pub admin_password: String,
}

/// How long a chat's lease lasts: what a crash costs the chats a killed process held, unless
/// the next process knows the holder is dead.
pub const EFFECT_LEASE_MS: u64 = 30_000;

pub struct Botfleet {
    child: Child,
    port: u16,
    pub base_url: String,
    pub log_path: PathBuf,
}

/// The binary `cargo bench` built next to this bench (the bench profile is the release
/// profile), unless BOTFLEET_BIN names another.
pub fn binary() -> PathBuf {
    std::env::var_os("BOTFLEET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_botfleet")))
}

/// A port nobody listens on right now (the tiny race before Botfleet binds it is harmless
/// on a machine that runs nothing else on 127.0.0.1).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Botfleet {
    /// Starts `botfleet serve`, logging to `log_dir/botfleet-{name}.log`.
    pub async fn start(settings: &Settings, log_dir: &Path, name: &str) -> anyhow::Result<Self> {
        Self::start_on(settings, log_dir, name, free_port()?).await
    }

    /// Starts `botfleet serve` on `port` (a restart where the load generator already sends).
    pub async fn start_on(
        settings: &Settings,
        log_dir: &Path,
        name: &str,
        port: u16,
    ) -> anyhow::Result<Self> {
        let log_path = log_dir.join(format!("botfleet-{name}.log"));
        let log = File::create(&log_path)?;
        let mut command = Command::new(binary());
        if !settings.polling {
            // Webhook mode, as a fleet runs in production, and as the updates arrive here:
            // without PUBLIC_URL every bot is long-polled (the polling phase's mode).
            command.env("PUBLIC_URL", format!("http://127.0.0.1:{port}"));
        }
        let child = command
            .arg("serve")
            .env("DATABASE_URL", &settings.database_url)
            .env("DATABASE_MAX_CONNECTIONS", settings.pool_size.to_string())
            .env("TOKEN_ENCRYPTION_KEY", &settings.token_key)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("TELEGRAM_API_URL", &settings.telegram_api_url)
            .env("OPENAI_BASE_URL", &settings.openai_base_url)
            .env("OPENAI_API_KEY", "sk-bench")
            .env("LLM_API", "responses")
            .env(
                "EFFECT_CONCURRENCY",
                settings.effect_concurrency.to_string(),
            )
            .env("EFFECT_LEASE_MS", EFFECT_LEASE_MS.to_string())
            // Held LLM calls wait through the whole intake phase; they must not time out.
            .env("OPENAI_TIMEOUT_SECS", "600")
            // The rate limits are policy, not capacity: off, so the bench finds the capacity.
            .env("RATE_LIMIT_BOT_PER_MINUTE", "0")
            .env("RATE_LIMIT_IP_PER_MINUTE", "0")
            .env("RATE_LIMIT_SESSION_PER_MINUTE", "0")
            .env("RUST_LOG", &settings.rust_log)
            .env("ADMIN_EMAIL", &settings.admin_email)
            .env("ADMIN_PASSWORD", &settings.admin_password)
            .env("COOKIE_SECRET", random_secret())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary().display()))?;
        // For bench/run's trap, should this process die without stopping its child.
        std::fs::write(log_dir.join("botfleet.pid"), child.id().to_string())?;
        let mut botfleet = Self {
            child,
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        botfleet.wait_until_up().await?;
        Ok(botfleet)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: the process ends where it stands, with nothing flushed or given back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn wait_until_up(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "botfleet exited at start ({status}); its log:\n{}",
                    tail(&self.log_path, 30)
                );
            }
            let probe = http.get(format!("{}/openapi.yaml", self.base_url)).send();
            if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "botfleet did not answer within 60 s; its log:\n{}",
            tail(&self.log_path, 30)
        )
    }

    /// Asks for a graceful stop (SIGTERM), and kills after 15 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Botfleet {
    fn drop(&mut self) {
        self.stop();
    }
}

fn random_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut secret = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut secret);
    base64::engine::general_purpose::STANDARD.encode(secret)
}

/// The last `lines` lines of a log file, for an error message.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The admin API, logged in when the service asks for it.
pub struct Admin {
    http: reqwest::Client,
    base_url: String,
    /// The session cookies, sent back as one `Cookie` header.
    cookies: Option<String>,
    /// Sent as `X-CSRF-Token` on state-changing requests.
    csrf: Option<String>,
}

impl Admin {
    /// Logs in with the first admin's credentials; a service without `/auth/login` (404)
    /// has no admin authentication, and is used as is.
    pub async fn login(base_url: &str, email: &str, password: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{base_url}/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        let mut admin = Self {
            http,
            base_url: base_url.to_owned(),
            cookies: None,
            csrf: None,
        };
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(admin);
        }
        let status = response.status();
        let pairs: Vec<String> = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(|pair| pair.trim().to_owned())
            .collect();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST /auth/login answered {status}: {body}");
        }
        // The CSRF token: in the login answer, or else in a cookie named for it.
        admin.csrf = ["csrf_token", "csrfToken", "csrf"]
            .iter()
            .find_map(|field| body[*field].as_str().map(str::to_owned))
            .or_else(|| {
                pairs.iter().find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.to_ascii_lowercase()
                        .contains("csrf")
                        .then(|| value.to_owned())
                })
            });
        admin.cookies = (!pairs.is_empty()).then(|| pairs.join("; "));
        Ok(admin)
    }

    pub fn authenticated(&self) -> bool {
        self.cookies.is_some()
    }

    async fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// Sets a bot's policy (who may talk to it, budgets…) as `PUT /bots/{id}/policy` does.
    pub async fn put_policy(&self, bot: Uuid, policy: &Value) -> anyhow::Result<()> {
        self.send(
            reqwest::Method::PUT,
            &format!("/bots/{bot}/policy"),
            Some(policy.clone()),
        )
        .await
        .map(drop)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url));
        if let Some(cookies) = &self.cookies {
            request = request.header(reqwest::header::COOKIE, cookies);
        }
        if let Some(csrf) = &self.csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // The change is recorded and only its read model lags (a busy machine): for the
        // bench's enables and policies that is done; the runner reads the events' outcome.
        let lagging = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && body["error"] == "read_model_lagging";
        if lagging && (method == reqwest::Method::PUT || path.ends_with("/enable")) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(body);
        }
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Registers a bot and enables it; returns its id.
    pub async fn create_enabled_bot(&self, index: usize, streaming: bool) -> anyhow::Result<Uuid> {
        // Telegram's token shape: the bot's numeric id, a colon, 35 characters.
        let token = format!("{}:BenchToken{index:025}", crate::load::bot_number(index));
        let bot = self
            .post(
                "/bots",
                Some(json!({
                    "name": format!("Bench bot {index}"),
                    "token": token,
                    "model": "gpt-5-mini",
                    "instructions": "Answer briefly.",
                    "streaming": streaming
                })),
            )
            .await?;
        let id: Uuid = bot["id"]
            .as_str()
            .context("POST /bots answered without an id")?
            .parse()?;
        self.post(&format!("/bots/{id}/enable"), None).await?;
        Ok(id)
    }
}
