//! The `bots` read model: one row per bot, for the admin API and the effect runner.

use aggregates::bot::{Bot, BotEvent};
use cqrs_es::Aggregate;
use sqlx::PgConnection;

use crate::{ProjectionError, Projector, RecordedEvent};

/// The projection's name (its checkpoint's).
pub const NAME: &str = "bots";

/// The channel the projector announces each bot it changed on (payload: the bot's id), at the
/// commit of the batch: what other processes remember of the bot is stale from then on.
pub const CHANGES_CHANNEL: &str = "botfleet_bots";

pub struct BotProjector;

#[async_trait::async_trait]
impl Projector for BotProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["bots"]
    }

    fn follows(&self, aggregate_type: &str) -> bool {
        aggregate_type == Bot::TYPE
    }

    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if event.aggregate_type != Bot::TYPE {
            return Ok(());
        }
        let id = event.aggregate_uuid()?;
        let at = event.recorded_at;
        let version = event.sequence;
        // Every process forgets what it remembered of the bot when this batch commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        match event.decode::<BotEvent>()? {
            BotEvent::BotCreated {
                bot_id: _,
                name,
                token,
                start_message,
                error_message,
                model,
                instructions,
            } => {
                sqlx::query(
                    "INSERT INTO bots (id, name, token_ciphertext, token_fingerprint, token_hint,
                        start_message, error_message, model, instructions, is_active,
                        created_at, updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, $10, $11)",
                )
                .bind(id)
                .bind(name)
                .bind(token.ciphertext)
                .bind(token.fingerprint)
                .bind(token.hint)
                .bind(start_message)
                .bind(error_message)
                .bind(model)
                .bind(instructions)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::BotUpdated {
                name,
                token,
                start_message,
                error_message,
                model,
                instructions,
            } => {
                let (ciphertext, fingerprint, hint) = match token {
                    Some(t) => (Some(t.ciphertext), Some(t.fingerprint), Some(t.hint)),
                    None => (None, None, None),
                };
                sqlx::query(
                    "UPDATE bots SET name = $2,
                        token_ciphertext = COALESCE($3, token_ciphertext),
                        token_fingerprint = COALESCE($4, token_fingerprint),
                        token_hint = COALESCE($5, token_hint),
                        start_message = $6, error_message = $7, model = $8, instructions = $9,
                        updated_at = $10, version = $11
                     WHERE id = $1",
                )
                .bind(id)
                .bind(name)
                .bind(ciphertext)
                .bind(fingerprint)
                .bind(hint)
                .bind(start_message)
                .bind(error_message)
                .bind(model)
                .bind(instructions)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::BotEnabled => set_active(tx, id, true, at, version).await?,
            BotEvent::BotDisabled => set_active(tx, id, false, at, version).await?,
            BotEvent::WebhookSet {
                url,
                allowed_updates,
            } => {
                sqlx::query(
                    "UPDATE bots SET webhook_url = $2, webhook_updates = $3, version = $4
                     WHERE id = $1",
                )
                .bind(id)
                .bind(url)
                .bind(allowed_updates)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::WebhookDeleted => {
                sqlx::query(
                    "UPDATE bots SET webhook_url = NULL, webhook_updates = NULL, version = $2
                     WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::BotErrorRecorded { kind, message } => {
                sqlx::query(
                    "UPDATE bots SET last_error_kind = $2, last_error_message = $3,
                        last_error_at = $4, version = $5
                     WHERE id = $1",
                )
                .bind(id)
                .bind(kind.as_str())
                .bind(message)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::BotIdentified { username } => {
                sqlx::query("UPDATE bots SET username = $2, version = $3 WHERE id = $1")
                    .bind(id)
                    .bind(username)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
            BotEvent::BotErrorCleared => {
                sqlx::query(
                    "UPDATE bots SET last_error_kind = NULL, last_error_message = NULL,
                        last_error_at = NULL, version = $2
                     WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::BotDeleted => {
                sqlx::query(
                    "UPDATE bots SET is_active = false, deleted_at = $2, updated_at = $2,
                        version = $3
                     WHERE id = $1",
                )
                .bind(id)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::PolicySet { policy } => {
                sqlx::query(
                    "UPDATE bots SET policy = $2, updated_at = $3, version = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(sqlx::types::Json(&policy))
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::MediaSettingsSet { settings } => {
                sqlx::query(
                    "UPDATE bots SET media = $2, updated_at = $3, version = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(sqlx::types::Json(&settings))
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            BotEvent::StreamingSet { on } => {
                sqlx::query(
                    "UPDATE bots SET streaming = $2, updated_at = $3, version = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(on)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            // Counted by the allowances read model.
            BotEvent::ExtraGranted(_) => {
                sqlx::query("UPDATE bots SET version = $2 WHERE id = $1")
                    .bind(id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn set_active(
    tx: &mut PgConnection,
    id: uuid::Uuid,
    active: bool,
    at: chrono::DateTime<chrono::Utc>,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bots SET is_active = $2, updated_at = $3, version = $4 WHERE id = $1")
        .bind(id)
        .bind(active)
        .bind(at)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A row of the `bots` read model.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BotRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub token_ciphertext: String,
    pub token_fingerprint: String,
    pub token_hint: String,
    pub start_message: String,
    pub error_message: String,
    pub model: String,
    pub instructions: String,
    pub is_active: bool,
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub version: i64,
    pub webhook_url: Option<String>,
    pub last_error_kind: Option<String>,
    pub last_error_message: Option<String>,
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    pub username: Option<String>,
    /// Who may talk to the bot and how much it may spend.
    pub policy: sqlx::types::Json<std::sync::Arc<aggregates::bot::policy::BotPolicy>>,
    /// What the bot does with voice messages and images.
    pub media: sqlx::types::Json<aggregates::bot::media::BotMediaSettings>,
    /// Whether answers stream into the chat as they are written.
    pub streaming: bool,
}

const BOT_COLUMNS: &str =
    "id, name, token_ciphertext, token_fingerprint, token_hint, start_message,
    error_message, model, instructions, is_active, deleted_at, created_at, updated_at, version,
    webhook_url, last_error_kind, last_error_message, last_error_at, username, policy, media,
    streaming";

pub async fn find_bot(
    conn: impl sqlx::PgExecutor<'_>,
    id: uuid::Uuid,
) -> Result<Option<BotRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {BOT_COLUMNS} FROM bots WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A page of bots in creation order, after the `(created_at, id)` cursor when given.
pub async fn list_bots(
    conn: impl sqlx::PgExecutor<'_>,
    include_deleted: bool,
    after: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
    limit: i64,
) -> Result<Vec<BotRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {BOT_COLUMNS} FROM bots
         WHERE ($1 OR deleted_at IS NULL)
           AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
         ORDER BY created_at, id
         LIMIT $4"
    ))
    .bind(include_deleted)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Another live bot that uses the token with this fingerprint, if any.
pub async fn bot_using_token(
    conn: impl sqlx::PgExecutor<'_>,
    fingerprint: &str,
    except: Option<uuid::Uuid>,
) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM bots
         WHERE token_fingerprint = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id <> $2)
         LIMIT 1",
    )
    .bind(fingerprint)
    .bind(except)
    .fetch_optional(conn)
    .await
}

/// Live bots whose error is none or of `kind`, with that kind: the bots a component that owns
/// `kind` may record it on (never over another component's error) or clear it from.
pub async fn live_bots_free_for_error(
    conn: impl sqlx::PgExecutor<'_>,
    kind: &str,
) -> Result<Vec<(uuid::Uuid, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, last_error_kind FROM bots
         WHERE deleted_at IS NULL AND (last_error_kind IS NULL OR last_error_kind = $1)",
    )
    .bind(kind)
    .fetch_all(conn)
    .await
}

/// A bot's @username, once learned; `None` when there is no such bot.
pub async fn find_username(
    conn: impl sqlx::PgExecutor<'_>,
    id: uuid::Uuid,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT username FROM bots WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// How a bot's updates reach Botfleet, and how they should.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: uuid::Uuid,
    /// Enabled and not deleted.
    pub active: bool,
    pub webhook_url: Option<String>,
    /// The update kinds the webhook was set with (none recorded by earlier versions).
    pub webhook_updates: Option<Vec<String>>,
    pub token_ciphertext: String,
    pub token_hint: String,
    pub username: Option<String>,
    /// Telegram refused the token: nothing is attempted until an admin sets a new one.
    pub token_invalid: bool,
}

/// The bots whose delivery needs looking after: the live ones, and those with a webhook set.
pub async fn list_deliveries(
    conn: impl sqlx::PgExecutor<'_>,
    invalid_token_kind: &str,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, (is_active AND deleted_at IS NULL) AS active, webhook_url, webhook_updates,
                token_ciphertext,
                token_hint, username, last_error_kind IS NOT DISTINCT FROM $1 AS token_invalid
         FROM bots
         WHERE (is_active AND deleted_at IS NULL) OR webhook_url IS NOT NULL",
    )
    .bind(invalid_token_kind)
    .fetch_all(conn)
    .await
}
