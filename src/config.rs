//! Settings, from flags or the environment, checked once at start.
//!
//! Raw values arrive through clap ([`ServeArgs`]); [`Config::from_args`] turns them into
//! parsed values or one clear line naming the setting that is wrong.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use url::Url;

use crate::auth::accounts::AdminEmail;
use crate::auth::AuthSettings;
use crate::health::HealthThresholds;
use crate::http::limits::LimitSettings;
use crate::secrets::{Redacted, TokenKey};

/// Where the data lives: a PostgreSQL server named by DATABASE_URL, or (unset) the embedded
/// one in the data folder.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL; the database is created when missing. Unset: Botfleet runs
    /// its own PostgreSQL in BOTFLEET_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Most connections the pool opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Botfleet's data folder: generated keys, and the embedded database. Default:
    /// /var/lib/botfleet for root, else ~/.local/share/botfleet.
    #[arg(long, env = "BOTFLEET_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,

    /// The folder of PostgreSQL's server programs (initdb, pg_ctl, postgres) for the embedded
    /// database. Default: found (pg_config, PATH, the packages' folders).
    #[arg(long, env = "POSTGRES_BIN_DIR")]
    pub postgres_bin_dir: Option<std::path::PathBuf>,

    /// The account the embedded database runs as when botfleet runs as root (PostgreSQL
    /// refuses root). Default: postgres, else nobody.
    #[arg(long, env = "POSTGRES_RUN_AS")]
    pub postgres_run_as: Option<String>,

    /// What errors about the database URL name as its source: DATABASE_URL, unless the
    /// embedded database filled it in.
    #[arg(skip)]
    pub origin: Option<String>,
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

    /// How long one Telegram call may take, in seconds: longer than Telegram itself takes on
    /// a bad day, so a slow send is awaited rather than abandoned and sent again.
    #[arg(long, env = "TELEGRAM_SEND_TIMEOUT_SECS", default_value_t = 60)]
    pub telegram_send_timeout_secs: u64,

    /// Telegram's concurrent webhook deliveries per bot (setWebhook's max_connections, 1-100).
    #[arg(long, env = "WEBHOOK_MAX_CONNECTIONS", default_value_t = 40)]
    pub webhook_max_connections: u32,

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

    /// Chats the effect runner works on at once in this process: a turn waiting on a slow
    /// model costs only memory, so thousands.
    #[arg(long, env = "EFFECT_CONCURRENCY", default_value_t = 4096)]
    pub effect_concurrency: usize,

    /// LLM requests in flight at once from this process to `OPENAI_BASE_URL` (0: no limit).
    #[arg(long, env = "LLM_CONCURRENCY", default_value_t = 2048)]
    pub llm_concurrency: usize,

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

    /// A registered bot (its id) that writes admin notifications to ALERT_TELEGRAM_CHAT_ID.
    #[arg(long, env = "ALERT_TELEGRAM_BOT_ID")]
    pub alert_telegram_bot_id: Option<String>,

    /// The Telegram chat (an admin's, or an admin group's) that receives notifications.
    #[arg(long, env = "ALERT_TELEGRAM_CHAT_ID")]
    pub alert_telegram_chat_id: Option<i64>,

    /// A URL that receives each notification as a JSON POST.
    #[arg(long, env = "ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,

    /// At most one notification per bot and error kind within this many seconds.
    #[arg(long, env = "ALERT_WINDOW_SECS", default_value_t = 600)]
    pub alert_window_secs: u64,

    /// How long the first failure waits for others to join its notification, in ms.
    #[arg(long, env = "ALERT_GATHER_MS", default_value_t = 5_000)]
    pub alert_gather_ms: u64,

    /// At least 32 bytes of secret: encrypts the admin session cookie and keys its CSRF
    /// tokens. Changing it logs every admin out.
    #[arg(long, env = "COOKIE_SECRET", hide_env_values = true)]
    pub cookie_secret: Option<String>,

    /// The first admin's email: created at start when no admin exists yet.
    #[arg(long, env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// The first admin's password, from the environment only: a flag would show it in the
    /// process list.
    #[arg(skip = std::env::var("ADMIN_PASSWORD").ok())]
    pub admin_password: Option<String>,

    /// How long an admin session lasts after login, in seconds.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 43_200)]
    pub session_ttl_secs: u64,

    /// Failed logins (per account, and per client address) that lock it.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// How long such a lock lasts, in seconds; also the window the failures are counted in.
    #[arg(long, env = "LOGIN_LOCKOUT_SECS", default_value_t = 900)]
    pub login_lockout_secs: u64,

    /// Admin API requests per minute from one client address (0: no limit).
    #[arg(long, env = "RATE_LIMIT_IP_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_ip_per_minute: u32,

    /// Admin API requests per minute in one session (0: no limit).
    #[arg(long, env = "RATE_LIMIT_SESSION_PER_MINUTE", default_value_t = 300)]
    pub rate_limit_session_per_minute: u32,

    /// Webhook updates per minute accepted for one bot (0: no limit). Only against abuse:
    /// Telegram's own pace is bounded by WEBHOOK_MAX_CONNECTIONS.
    #[arg(long, env = "RATE_LIMIT_BOT_PER_MINUTE", default_value_t = 60_000)]
    pub rate_limit_bot_per_minute: u32,

    /// The largest request body accepted, in bytes.
    #[arg(long, env = "MAX_REQUEST_BYTES", default_value_t = 1_048_576)]
    pub max_request_bytes: usize,

    /// Take the client address from the last X-Forwarded-For entry. Only behind a proxy that
    /// appends it: otherwise any client could pick its own address.
    #[arg(
        long,
        env = "TRUST_FORWARDED_FOR",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub trust_forwarded_for: bool,

    /// Tries of an event a projector fails on before its poison policy applies (pause
    /// before the event, or park it and go on).
    #[arg(long, env = "PROJECTION_MAX_ATTEMPTS", default_value_t = 5)]
    pub projection_max_attempts: u32,

    /// Voice messages and images: the transcription model and the limits.
    #[command(flatten)]
    pub media: MediaArgs,

    /// /health/queue answers 503 when a subscription is this many events behind.
    #[arg(long, env = "HEALTH_MAX_LAG", default_value_t = 1_000)]
    pub health_max_lag: i64,

    /// /health/queue answers 503 when a subscription's oldest unhandled event is this many
    /// seconds old (the subscription is stuck).
    #[arg(long, env = "HEALTH_STUCK_SECS", default_value_t = 60)]
    pub health_stuck_secs: u64,
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
    /// Where `database_url` came from, for errors: `DATABASE_URL` or the embedded database.
    pub database_origin: String,
    pub database_max_connections: u32,
    pub bind_addr: SocketAddr,
    pub public_url: Option<Url>,
    pub token_key: TokenKey,
    pub telegram_api_url: Url,
    pub telegram_call_timeout: Duration,
    pub webhook_max_connections: u32,
    pub openai_base_url: Url,
    pub openai_api_key: Option<crate::secrets::Redacted>,
    pub read_model_wait: Duration,
    pub subscription_poll: Duration,
    pub llm_api: crate::llm::LlmApi,
    pub openai_timeout: Duration,
    pub prices: crate::llm::PriceTable,
    pub effect_concurrency: usize,
    /// LLM requests in flight at once (0: no limit).
    pub llm_concurrency: usize,
    pub effect_lease: Duration,
    pub retry_limit: u32,
    pub retry_backoff: crate::runtime::backoff::Backoff,
    pub poll_timeout_secs: u32,
    pub poll_conflict_pause: Duration,
    pub alerts: crate::bots::alerts::AlertSettings,
    /// Admin accounts, sessions and the login throttle.
    pub auth: AuthSettings,
    /// Session cookies are marked Secure when PUBLIC_URL is https.
    pub secure_cookies: bool,
    pub limits: LimitSettings,
    pub health: HealthThresholds,
    pub projection_max_attempts: u32,
    pub media: crate::turns::media::MediaSettings,
}

/// The shortest COOKIE_SECRET accepted, in bytes (what the cookie key derivation needs).
pub const MIN_COOKIE_SECRET_BYTES: usize = 32;

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
            .map(|s| parse_public_url(&s))
            .transpose()?;
        let secure_cookies = public_url.as_ref().is_some_and(|u| u.scheme() == "https");
        let token_key = match args.token_encryption_key.as_deref() {
            // `serve` fills it from the data folder first; only a caller that skips that gets here.
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
            database_url: args
                .database
                .database_url
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(
                        "DATABASE_URL",
                        "is required when the embedded database is not started",
                    )
                })?,
            database_origin: args
                .database
                .origin
                .unwrap_or_else(|| "DATABASE_URL".to_owned()),
            database_max_connections: args.database.database_max_connections.max(2),
            bind_addr,
            public_url,
            token_key,
            telegram_api_url: parse_url("TELEGRAM_API_URL", &args.telegram_api_url)?,
            telegram_call_timeout: Duration::from_secs(args.telegram_send_timeout_secs.max(1)),
            webhook_max_connections: match args.webhook_max_connections {
                n @ 1..=100 => n,
                _ => {
                    return Err(ConfigError::new(
                        "WEBHOOK_MAX_CONNECTIONS",
                        "must be between 1 and 100 (Telegram's range)",
                    ))
                }
            },
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
            llm_concurrency: args.llm_concurrency,
            effect_lease: Duration::from_millis(args.effect_lease_ms.max(300)),
            retry_limit: args.retry_limit,
            retry_backoff: crate::runtime::backoff::Backoff {
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
            alerts: crate::bots::alerts::AlertSettings {
                telegram_bot_id: args
                    .alert_telegram_bot_id
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|id| {
                        id.parse().map_err(|_| {
                            ConfigError::new("ALERT_TELEGRAM_BOT_ID", "must be a bot's id (a UUID)")
                        })
                    })
                    .transpose()?,
                telegram_chat_id: args.alert_telegram_chat_id,
                webhook_url: args
                    .alert_webhook_url
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|url| parse_url("ALERT_WEBHOOK_URL", url))
                    .transpose()?,
                window: Duration::from_secs(args.alert_window_secs.max(1)),
                gather: Duration::from_millis(args.alert_gather_ms),
            },
            secure_cookies,
            auth: AuthSettings {
                cookie_secret: cookie_secret(args.cookie_secret)?,
                first_admin: first_admin(args.admin_email, args.admin_password)?,
                session_ttl: match args.session_ttl_secs {
                    0 => return Err(ConfigError::new("SESSION_TTL_SECS", "must be at least 1")),
                    secs => Duration::from_secs(secs),
                },
                login_max_failures: args.login_max_failures.max(1),
                login_lockout: Duration::from_secs(args.login_lockout_secs.max(1)),
            },
            limits: LimitSettings {
                ip_per_minute: args.rate_limit_ip_per_minute,
                session_per_minute: args.rate_limit_session_per_minute,
                bot_per_minute: args.rate_limit_bot_per_minute,
                max_request_bytes: match args.max_request_bytes {
                    0..1024 => {
                        return Err(ConfigError::new(
                            "MAX_REQUEST_BYTES",
                            "must be at least 1024 (a Telegram update alone can take a few kB)",
                        ))
                    }
                    bytes => bytes,
                },
                trust_forwarded_for: args.trust_forwarded_for,
            },
            health: HealthThresholds {
                max_lag: args.health_max_lag.max(1),
                stuck_after: Duration::from_secs(args.health_stuck_secs.max(1)),
            },
            projection_max_attempts: args.projection_max_attempts.max(1),
            media: args.media.settings()?,
        })
    }
}

/// What Botfleet does with voice messages and images.
#[derive(Debug, Clone, Args)]
pub struct MediaArgs {
    /// The transcription model of bots that set none.
    #[arg(long, env = "TRANSCRIPTION_MODEL", default_value = DEFAULT_TRANSCRIPTION_MODEL)]
    pub transcription_model: String,

    /// The longest voice message or audio file transcribed, in seconds.
    #[arg(long, env = "MEDIA_MAX_AUDIO_SECS", default_value_t = 600)]
    pub media_max_audio_secs: u32,

    /// The largest voice message, audio file or image document fetched, in bytes (the Bot
    /// API serves at most 20 MB).
    #[arg(long, env = "MEDIA_MAX_FILE_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub media_max_file_bytes: u64,

    /// The largest photo size shown to a model, in bytes (the largest size under it is
    /// chosen).
    #[arg(long, env = "MEDIA_MAX_IMAGE_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub media_max_image_bytes: u64,
}

/// The transcription model when neither the bot nor TRANSCRIPTION_MODEL names one.
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-4o-mini-transcribe";

impl Default for MediaArgs {
    fn default() -> Self {
        Self {
            transcription_model: DEFAULT_TRANSCRIPTION_MODEL.to_owned(),
            media_max_audio_secs: 600,
            media_max_file_bytes: 20 * 1024 * 1024,
            media_max_image_bytes: 5 * 1024 * 1024,
        }
    }
}

impl MediaArgs {
    fn settings(&self) -> Result<crate::turns::media::MediaSettings, ConfigError> {
        const TELEGRAM_MAX: u64 = 20 * 1024 * 1024;
        let model = self.transcription_model.trim();
        if model.is_empty() || model.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "TRANSCRIPTION_MODEL",
                "must be a model name, e.g. gpt-4o-mini-transcribe or whisper-1",
            ));
        }
        if self.media_max_audio_secs == 0 {
            return Err(ConfigError::new(
                "MEDIA_MAX_AUDIO_SECS",
                "must be at least 1",
            ));
        }
        let bytes = |setting: &'static str, value: u64| {
            if (1024..=TELEGRAM_MAX).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::new(
                    setting,
                    "must be between 1024 and 20971520 (the Bot API serves files of up to 20 MB)",
                ))
            }
        };
        Ok(crate::turns::media::MediaSettings {
            transcription_model: model.to_owned(),
            max_audio_secs: self.media_max_audio_secs,
            max_file_bytes: bytes("MEDIA_MAX_FILE_BYTES", self.media_max_file_bytes)?,
            max_image_bytes: bytes("MEDIA_MAX_IMAGE_BYTES", self.media_max_image_bytes)?,
        })
    }
}

fn cookie_secret(raw: Option<String>) -> Result<Redacted, ConfigError> {
    const GENERATE: &str = "generate one with `openssl rand -base64 48` and keep it";
    match raw.filter(|s| !s.is_empty()) {
        None => Err(ConfigError::new(
            "COOKIE_SECRET",
            format!("is required: at least {MIN_COOKIE_SECRET_BYTES} bytes of secret ({GENERATE})"),
        )),
        Some(secret) if secret.len() < MIN_COOKIE_SECRET_BYTES => Err(ConfigError::new(
            "COOKIE_SECRET",
            format!(
                "must be at least {MIN_COOKIE_SECRET_BYTES} bytes long, not {} ({GENERATE})",
                secret.len()
            ),
        )),
        Some(secret) => Ok(Redacted::new(secret)),
    }
}

fn first_admin(
    email: Option<String>,
    password: Option<String>,
) -> Result<Option<(AdminEmail, Redacted)>, ConfigError> {
    match (
        email.filter(|s| !s.is_empty()),
        password.filter(|s| !s.is_empty()),
    ) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            "ADMIN_PASSWORD",
            "is required when ADMIN_EMAIL is set",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "ADMIN_EMAIL",
            "is required when ADMIN_PASSWORD is set",
        )),
        (Some(email), Some(password)) => {
            let email = AdminEmail::parse(&email)
                .map_err(|reason| ConfigError::new("ADMIN_EMAIL", reason))?;
            let password = Redacted::new(password);
            crate::auth::passwords::check_strength(&password)
                .map_err(|reason| ConfigError::new("ADMIN_PASSWORD", reason))?;
            Ok(Some((email, password)))
        }
    }
}

/// Telegram delivers webhooks only to https URLs; plain http is accepted only on a loopback
/// address, where nothing travels the network (tests, a proxy on the same machine).
fn parse_public_url(raw: &str) -> Result<Url, ConfigError> {
    let url = parse_url("PUBLIC_URL", raw)?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(ConfigError::new(
            "PUBLIC_URL",
            "must be an https URL: Telegram sends webhooks only to https (http is accepted only for a loopback address)",
        ));
    }
    Ok(url)
}

fn parse_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw)
        .map_err(|e| ConfigError::new(setting, format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(setting, "must be an http or https URL"));
    }
    Ok(url)
}

#[cfg(test)]
mod admin_settings_tests {
    use super::{cookie_secret, first_admin, parse_public_url};

    #[test]
    fn the_public_url_is_https_unless_it_is_loopback() {
        assert!(parse_public_url("https://bots.example.com").is_ok());
        for loopback in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9",
        ] {
            assert!(parse_public_url(loopback).is_ok(), "{loopback}");
        }
        let refused = parse_public_url("http://bots.example.com").unwrap_err();
        assert_eq!(refused.setting, "PUBLIC_URL");
        assert!(refused.to_string().contains("https"), "{refused}");
    }

    #[test]
    fn the_cookie_secret_is_required_and_at_least_32_bytes() {
        let missing = cookie_secret(None).unwrap_err();
        assert_eq!(missing.setting, "COOKIE_SECRET");
        let short = cookie_secret(Some("x".repeat(31))).unwrap_err();
        assert_eq!(short.setting, "COOKIE_SECRET");
        assert!(short
            .to_string()
            .starts_with("COOKIE_SECRET must be at least 32 bytes"));
        assert!(!short.to_string().contains(&"x".repeat(31)), "not echoed");
        assert!(cookie_secret(Some("x".repeat(32))).is_ok());
    }

    #[test]
    fn the_first_admin_needs_both_settings_and_a_long_password() {
        assert!(first_admin(None, None).unwrap().is_none());
        let pair = |e: &str, p: &str| first_admin(Some(e.to_owned()), Some(p.to_owned()));
        assert_eq!(
            first_admin(Some("a@example.com".into()), None)
                .unwrap_err()
                .setting,
            "ADMIN_PASSWORD"
        );
        assert_eq!(
            first_admin(None, Some("long enough password".into()))
                .unwrap_err()
                .setting,
            "ADMIN_EMAIL"
        );
        assert_eq!(
            pair("not an email", "long enough password")
                .unwrap_err()
                .setting,
            "ADMIN_EMAIL"
        );
        assert_eq!(
            pair("a@example.com", "short").unwrap_err().setting,
            "ADMIN_PASSWORD"
        );
        assert!(pair("a@example.com", "long enough password")
            .unwrap()
            .is_some());
    }
}
