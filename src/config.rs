//! Settings, from flags or the environment, checked once at start.
//!
//! Raw values arrive through clap ([`ServeArgs`]); [`Config::from_args`] turns them into
//! parsed values or one clear line naming the setting that is wrong.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use url::Url;

use crate::secrets::TokenKey;

/// The default when DATABASE_URL is unset: the local PostgreSQL the README assumes.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/botfleet";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL; the database is created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Most connections the pool opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address the HTTP API listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: String,

    /// The public https URL Telegram reaches this service at. Unset: bots are long-polled.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// 32 random bytes, base64: the key that seals bot tokens. Keep it: without it the stored
    /// tokens cannot be opened.
    #[arg(long, env = "TOKEN_ENCRYPTION_KEY", hide_env_values = true)]
    pub token_encryption_key: Option<String>,

    /// Base URL of the Telegram Bot API (a self-hosted Bot API server, or a fake in tests).
    #[arg(
        long,
        env = "TELEGRAM_API_URL",
        default_value = "https://api.telegram.org"
    )]
    pub telegram_api_url: String,

    /// Base URL of the OpenAI API or of an OpenAI-compatible server.
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub openai_base_url: String,

    /// The OpenAI API key.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// How long a write waits for its read model before answering.
    #[arg(long, env = "READ_MODEL_WAIT_MS", default_value_t = 5_000)]
    pub read_model_wait_ms: u64,

    /// How often subscriptions poll when no notification arrives.
    #[arg(long, env = "SUBSCRIPTION_POLL_MS", default_value_t = 2_000)]
    pub subscription_poll_ms: u64,

    /// Which OpenAI API answers: `responses` or `chat_completions`.
    #[arg(long, env = "LLM_API", default_value = "responses")]
    pub llm_api: String,

    /// Timeout of one LLM request, in seconds.
    #[arg(long, env = "OPENAI_TIMEOUT_SECS", default_value_t = 60)]
    pub openai_timeout_secs: u64,

    /// A JSON file of model prices that replace or extend the built-in table.
    #[arg(long, env = "PRICING_FILE")]
    pub pricing_file: Option<String>,

    /// Chats the effect runner works on at once in this process.
    #[arg(long, env = "EFFECT_CONCURRENCY", default_value_t = 64)]
    pub effect_concurrency: usize,

    /// How long a claim on a chat (or a bot's polling) lasts unless renewed, in ms.
    #[arg(long, env = "EFFECT_LEASE_MS", default_value_t = 30_000)]
    pub effect_lease_ms: u64,

    /// Retries of a failed step before its turn fails for good.
    #[arg(long, env = "RETRY_LIMIT", default_value_t = 4)]
    pub retry_limit: u32,

    /// The first retry's pause, in ms; it doubles with each retry.
    #[arg(long, env = "RETRY_BACKOFF_MS", default_value_t = 1_000)]
    pub retry_backoff_ms: u64,

    /// The longest pause between retries, in ms.
    #[arg(long, env = "RETRY_BACKOFF_MAX_MS", default_value_t = 60_000)]
    pub retry_backoff_max_ms: u64,

    /// getUpdates' long-poll timeout, in seconds (below teloxide's 17 s client timeout).
    #[arg(long, env = "POLL_TIMEOUT_SECS", default_value_t = 10)]
    pub poll_timeout_secs: u32,

    /// The pause after Telegram answers getUpdates with 409 Conflict, in seconds.
    #[arg(long, env = "POLL_CONFLICT_PAUSE_SECS", default_value_t = 30)]
    pub poll_conflict_pause_secs: u64,
}

/// One setting that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &'static str, reason: impl Into<String>) -> Self {
        Self {
            setting,
            reason: reason.into(),
        }
    }
}

/// Settings after parsing: every value here is valid.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub database_max_connections: u32,
    pub bind_addr: SocketAddr,
    pub public_url: Option<Url>,
    pub token_key: TokenKey,
    pub telegram_api_url: Url,
    pub openai_base_url: Url,
    pub openai_api_key: Option<crate::secrets::Redacted>,
    pub read_model_wait: Duration,
    pub subscription_poll: Duration,
    pub llm_api: crate::llm::LlmApi,
    pub openai_timeout: Duration,
    pub prices: crate::llm::PriceTable,
    pub effect_concurrency: usize,
    pub effect_lease: Duration,
    pub retry_limit: u32,
    pub retry_backoff: crate::effects::backoff::Backoff,
    pub poll_timeout_secs: u32,
    pub poll_conflict_pause: Duration,
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let bind_addr = args.bind_addr.parse().map_err(|_| {
            ConfigError::new(
                "BIND_ADDR",
                "must be an address and port, e.g. 127.0.0.1:8080",
            )
        })?;
        let public_url = args
            .public_url
            .filter(|s| !s.is_empty())
            .map(|s| parse_url("PUBLIC_URL", &s))
            .transpose()?;
        let token_key = match args.token_encryption_key.as_deref() {
            None | Some("") => {
                return Err(ConfigError::new(
                    "TOKEN_ENCRYPTION_KEY",
                    "is required: 32 random bytes, base64 (generate one with `openssl rand -base64 32` and keep it)",
                ))
            }
            Some(raw) => TokenKey::from_base64(raw)
                .map_err(|reason| ConfigError::new("TOKEN_ENCRYPTION_KEY", reason))?,
        };
        Ok(Self {
            database_url: args.database.database_url,
            database_max_connections: args.database.database_max_connections.max(2),
            bind_addr,
            public_url,
            token_key,
            telegram_api_url: parse_url("TELEGRAM_API_URL", &args.telegram_api_url)?,
            openai_base_url: parse_url("OPENAI_BASE_URL", &args.openai_base_url)?,
            openai_api_key: args
                .openai_api_key
                .filter(|s| !s.is_empty())
                .map(crate::secrets::Redacted::new),
            read_model_wait: Duration::from_millis(args.read_model_wait_ms),
            subscription_poll: Duration::from_millis(args.subscription_poll_ms.max(10)),
            llm_api: args
                .llm_api
                .parse()
                .map_err(|reason| ConfigError::new("LLM_API", reason))?,
            openai_timeout: Duration::from_secs(args.openai_timeout_secs.max(1)),
            prices: match args.pricing_file.as_deref().filter(|p| !p.is_empty()) {
                None => crate::llm::PriceTable::defaults(),
                Some(path) => crate::llm::PriceTable::defaults()
                    .with_overrides_from_file(std::path::Path::new(path))
                    .map_err(|e| ConfigError::new("PRICING_FILE", e.to_string()))?,
            },
            effect_concurrency: args.effect_concurrency.max(1),
            effect_lease: Duration::from_millis(args.effect_lease_ms.max(300)),
            retry_limit: args.retry_limit,
            retry_backoff: crate::effects::backoff::Backoff {
                base: Duration::from_millis(args.retry_backoff_ms),
                max: Duration::from_millis(args.retry_backoff_max_ms.max(args.retry_backoff_ms)),
            },
            poll_timeout_secs: if (1..=15).contains(&args.poll_timeout_secs) {
                args.poll_timeout_secs
            } else {
                return Err(ConfigError::new(
                    "POLL_TIMEOUT_SECS",
                    "must be between 1 and 15 (teloxide's client gives up after 17 s)",
                ));
            },
            poll_conflict_pause: Duration::from_secs(args.poll_conflict_pause_secs.max(1)),
        })
    }
}

fn parse_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw)
        .map_err(|e| ConfigError::new(setting, format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(setting, "must be an http or https URL"));
    }
    Ok(url)
}
