//! `/bots`: registering and administering bots.
//!
//! Writes go through the Bot aggregate; every answer is read from the `bots` read model after
//! waiting for it to include the write, so a write's response and any read after it agree.

use std::sync::Arc;

use aggregates::ids::BotId;
use aggregates::text::InvalidField;
use cqrs_es::Aggregate;

use aggregates::bot::{
    Bot, BotCommand, BotMessage, BotName, BotSettings, BotToken, Instructions, ModelName,
    SettingsChanges,
};
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use projections::bots::{self as read_model, BotRow};
use uuid::Uuid;

use super::consistency::ReadYourWrites;
use super::errors::{error_responses, ApiError, ApiFailure};
use super::guard::AdminSession;
use super::paging::{
    checked_instant, cursor_instant, cursor_part, decode_cursor, encode_cursor, micros, ADMIN_PAGES,
};
use super::strict_json::Strict;
use super::{ApiTags, Wired};
use crate::event_store::{Actor, CommandGateway, Committed, EventMetadata};

const DEFAULT_START_MESSAGE: &str = "Hello! Ask me anything.";
const DEFAULT_ERROR_MESSAGE: &str = "Sorry, something went wrong. Please try again later.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum BotStatus {
    Enabled,
    Disabled,
    Deleted,
}

/// A bot as admins see it. The token is only ever shown masked.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BotView {
    pub id: Uuid,
    pub name: String,
    /// The bot's numeric id and the token's last four characters, e.g. `123456:…wxyz`.
    pub token: String,
    pub start_message: String,
    pub error_message: String,
    pub model: String,
    pub instructions: String,
    /// Whether the bot answers on Telegram.
    pub is_active: bool,
    pub status: BotStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// The number of the bot's last event: it grows with every change.
    pub version: i64,
    /// Where Telegram pushes the bot's updates; absent while it is long-polled or disabled.
    #[oai(skip_serializing_if_is_none)]
    pub webhook_url: Option<String>,
    /// What currently stops the bot from working, if anything.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<BotErrorView>,
    /// The bot's @username on Telegram, once learned.
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// Whether answers stream into the chat as they are written: a draft that grows in a
    /// private chat, one message edited at a paced rate in a group; the finished answer is
    /// always sent as real messages.
    pub streaming: bool,
}

/// A problem that stops a bot from working, until it is resolved.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BotErrorView {
    /// `telegram_conflict`, `telegram_invalid_token`, `webhook`, `llm`, ...
    pub kind: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

impl From<BotRow> for BotView {
    fn from(row: BotRow) -> Self {
        let status = match (row.deleted_at, row.is_active) {
            (Some(_), _) => BotStatus::Deleted,
            (None, true) => BotStatus::Enabled,
            (None, false) => BotStatus::Disabled,
        };
        Self {
            id: row.id,
            name: row.name,
            token: row.token_hint,
            start_message: row.start_message,
            error_message: row.error_message,
            model: row.model,
            instructions: row.instructions,
            is_active: row.is_active,
            status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted_at: row.deleted_at,
            version: row.version,
            last_error: match (
                row.last_error_kind,
                row.last_error_message,
                row.last_error_at,
            ) {
                (Some(kind), Some(message), Some(at)) => Some(BotErrorView { kind, message, at }),
                _ => None,
            },
            webhook_url: row.webhook_url,
            username: row.username,
            streaming: row.streaming,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BotPage {
    pub items: Vec<BotView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// A new bot. It starts disabled: enable it once its settings are right.
#[derive(Debug, Clone, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct CreateBotRequest {
    /// 1 to 64 characters.
    pub name: String,
    /// The token from BotFather: digits, a colon, 35 characters of `A-Za-z0-9_-`.
    pub token: String,
    /// The LLM model that answers, e.g. `gpt-5-mini`.
    pub model: String,
    /// Sent on /start; at most 4096 characters.
    pub start_message: Option<String>,
    /// Sent when an answer cannot be produced; at most 4096 characters.
    pub error_message: Option<String>,
    /// The system instructions for the LLM; at most 32768 characters.
    pub instructions: Option<String>,
    /// Stream answers as they are written (see the bot's `streaming`); on when left out.
    pub streaming: Option<bool>,
}

/// A bot's new settings, replacing the current ones. Leave `token` out to keep it.
#[derive(Debug, Clone, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct UpdateBotRequest {
    pub name: String,
    pub token: Option<String>,
    pub model: String,
    pub start_message: String,
    pub error_message: String,
    pub instructions: String,
    /// Stream answers as they are written; left out, the current choice stays.
    pub streaming: Option<bool>,
}

/// Some of a bot's settings: only those given change. A `token` alone rotates the token and
/// leaves every setting as it is.
#[derive(Debug, Clone, Default, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(deny_unknown_fields)]
pub struct PatchBotRequest {
    pub name: Option<String>,
    /// A new token from BotFather (after `/revoke`); the old one stops working here.
    pub token: Option<String>,
    pub model: Option<String>,
    pub start_message: Option<String>,
    pub error_message: Option<String>,
    pub instructions: Option<String>,
    pub streaming: Option<bool>,
}

#[derive(ApiResponse)]
pub enum CreateBotResponse {
    /// The bot was registered.
    #[oai(status = 201)]
    Created(Json<BotView>),
}

#[derive(ApiResponse)]
pub enum BotResponse {
    #[oai(status = 200)]
    Ok(Json<BotView>),
}

#[derive(ApiResponse)]
pub enum BotListResponse {
    #[oai(status = 200)]
    Ok(Json<BotPage>),
}

#[derive(ApiResponse)]
pub enum DeleteBotResponse {
    /// The bot was deleted; it stays visible with status `deleted`.
    #[oai(status = 204)]
    Deleted,
}

error_responses! {
    /// What `GET /bots` answers when it does not succeed.
    pub enum BotListError { BadRequest, Unauthorized, Unprocessable, TooManyRequests, Internal }
}

error_responses! {
    /// What `GET /bots/{id}` answers when it does not succeed.
    pub enum BotReadError {
        BadRequest, Unauthorized, NotFound, Unprocessable, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `POST /bots` answers when it does not succeed.
    pub enum BotCreateError {
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType,
        Unprocessable, TooManyRequests, Internal, Unavailable,
    }
}

error_responses! {
    /// What `PUT /bots/{id}` answers when it does not succeed.
    pub enum BotUpdateError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, TooManyRequests, Internal, Unavailable,
    }
}

error_responses! {
    /// What enabling, disabling or deleting a bot answers when it does not succeed.
    pub enum BotActionError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests, Internal,
        Unavailable,
    }
}

/// What the bots API uses.
pub struct BotsDeps {
    pub pool: sqlx::PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub read_your_writes: ReadYourWrites,
    pub bot_rows: Arc<crate::turns::bot_rows::BotCache>,
    /// The models answers can be priced for: a bot's model must be one of them.
    pub prices: Arc<crate::llm::pricing::PriceTable>,
}

pub struct BotsApi(pub Wired<BotsDeps>);

#[OpenApi(tag = "ApiTags::Bots")]
impl BotsApi {
    /// List bots
    ///
    /// In creation order, paginated with `cursor`. Deleted bots are left out unless
    /// `include_deleted` is true.
    #[oai(path = "/bots", method = "get")]
    async fn list(
        &self,
        _auth: AdminSession,
        include_deleted: Query<Option<bool>>,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<BotListResponse, BotListError> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let page = self
            .page(
                include_deleted.0.unwrap_or(false),
                cursor.0.as_deref(),
                limit,
            )
            .await?;
        Ok(BotListResponse::Ok(Json(page)))
    }

    /// Get a bot
    ///
    /// A deleted bot answers 404 unless `include_deleted` is true. With `as_of` (RFC 3339),
    /// the bot as it was at that instant, rebuilt from its events.
    #[oai(path = "/bots/:id", method = "get")]
    async fn get(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        as_of: Query<Option<DateTime<Utc>>>,
        include_deleted: Query<Option<bool>>,
    ) -> Result<BotResponse, BotReadError> {
        let Some(as_of) = as_of.0 else {
            let bot = self.read(id.0).await?;
            // As in the list: a deleted bot is shown only when asked for.
            if bot.status == BotStatus::Deleted && !include_deleted.0.unwrap_or(false) {
                return Err(ApiFailure::not_found("bot").into());
            }
            return Ok(BotResponse::Ok(Json(bot)));
        };
        let as_of = checked_instant("as_of", as_of)?;
        let mut past = super::events::view_as_of(
            &self.0.pool,
            &projections::bots::BotProjector,
            <aggregates::bot::Bot as cqrs_es::Aggregate>::TYPE,
            id.0,
            as_of,
        )
        .await?;
        let bot = read_model::find_bot(past.connection(), id.0)
            .await
            .map_err(|e| ApiFailure::internal("reading a bot's past failed", &e))?
            .ok_or_else(|| ApiFailure::not_found("bot at that instant"))?;
        Ok(BotResponse::Ok(Json(BotView::from(bot))))
    }

    /// Register a bot
    #[oai(path = "/bots", method = "post")]
    async fn create(
        &self,
        auth: AdminSession,
        body: Json<Strict<CreateBotRequest>>,
    ) -> Result<CreateBotResponse, BotCreateError> {
        let bot = self.register(auth.actor(), body.0 .0).await?;
        Ok(CreateBotResponse::Created(Json(bot)))
    }

    /// Replace a bot's settings
    #[oai(path = "/bots/:id", method = "put")]
    async fn update(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
        body: Json<Strict<UpdateBotRequest>>,
    ) -> Result<BotResponse, BotUpdateError> {
        Ok(BotResponse::Ok(Json(
            self.replace(auth.actor(), id.0, body.0 .0).await?,
        )))
    }

    /// Change some of a bot's settings
    ///
    /// Only the fields given change; the others keep their values. Send `token` alone to
    /// rotate the token without touching the settings.
    #[oai(path = "/bots/:id", method = "patch")]
    async fn patch(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
        body: Json<Strict<PatchBotRequest>>,
    ) -> Result<BotResponse, BotUpdateError> {
        Ok(BotResponse::Ok(Json(
            self.change(auth.actor(), id.0, body.0 .0).await?,
        )))
    }

    /// Delete a bot
    ///
    /// The bot stops answering; its history stays for auditors.
    #[oai(path = "/bots/:id", method = "delete")]
    async fn delete(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<DeleteBotResponse, BotActionError> {
        self.command(id.0, BotCommand::Delete, auth.actor()).await?;
        Ok(DeleteBotResponse::Deleted)
    }

    /// Enable a bot
    ///
    /// The bot starts answering on Telegram. Enabling an enabled bot changes nothing.
    #[oai(path = "/bots/:id/enable", method = "post")]
    async fn enable(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<BotResponse, BotActionError> {
        let bot = self.command(id.0, BotCommand::Enable, auth.actor()).await?;
        Ok(BotResponse::Ok(Json(bot)))
    }

    /// Disable a bot
    ///
    /// The bot stops answering on Telegram. Disabling a disabled bot changes nothing.
    #[oai(path = "/bots/:id/disable", method = "post")]
    async fn disable(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<BotResponse, BotActionError> {
        let bot = self
            .command(id.0, BotCommand::Disable, auth.actor())
            .await?;
        Ok(BotResponse::Ok(Json(bot)))
    }
}

/// What the API does, for its operations and for the admin console alike: each answers the
/// bot as the read model shows it once it includes the change.
impl BotsApi {
    /// A page of bots in creation order, after `cursor` (a `next_cursor` given out before).
    pub async fn page(
        &self,
        include_deleted: bool,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<BotPage, ApiFailure> {
        let after = cursor.map(decode_bot_cursor).transpose()?;
        let mut rows = read_model::list_bots(&self.0.pool, include_deleted, after, limit + 1)
            .await
            .map_err(|e| ApiFailure::internal("listing bots failed", &e))?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(encode_bot_cursor)
        } else {
            None
        };
        Ok(BotPage {
            items: rows.into_iter().map(BotView::from).collect(),
            next_cursor,
        })
    }

    /// Registers a bot (disabled).
    pub async fn register(
        &self,
        actor: Actor,
        body: CreateBotRequest,
    ) -> Result<BotView, ApiFailure> {
        let token = BotToken::parse(&body.token).map_err(ApiFailure::invalid)?;
        let settings = parse_settings(
            &body.name,
            &body.model,
            body.start_message
                .as_deref()
                .unwrap_or(DEFAULT_START_MESSAGE),
            body.error_message
                .as_deref()
                .unwrap_or(DEFAULT_ERROR_MESSAGE),
            body.instructions.as_deref().unwrap_or_default(),
            // New bots stream unless asked not to.
            Some(body.streaming.unwrap_or(true)),
        )?;
        self.priced(&settings.model)?;
        let _claim = self.claim_token(&token, None).await?;
        let bot_id = Uuid::now_v7();
        let committed = self
            .0
            .bots
            .execute(
                &bot_id.to_string(),
                BotCommand::Create {
                    bot_id: BotId(bot_id),
                    token,
                    settings,
                },
                &EventMetadata::new_request(actor),
            )
            .await
            .map_err(ApiFailure::from)?;
        self.await_read_model(&bot_id.to_string(), &committed)
            .await?;
        self.read(bot_id).await
    }

    /// Replaces every setting (and the token when one is given).
    pub async fn replace(
        &self,
        actor: Actor,
        id: Uuid,
        body: UpdateBotRequest,
    ) -> Result<BotView, ApiFailure> {
        let token = body
            .token
            .as_deref()
            .map(BotToken::parse)
            .transpose()
            .map_err(ApiFailure::invalid)?;
        let settings = parse_settings(
            &body.name,
            &body.model,
            &body.start_message,
            &body.error_message,
            &body.instructions,
            body.streaming,
        )?;
        self.priced(&settings.model)?;
        let _claim = match &token {
            Some(token) => Some(self.claim_token(token, Some(id)).await?),
            None => None,
        };
        self.command(id, BotCommand::Update { token, settings }, actor)
            .await
    }

    /// Changes the settings given (and the token when one is given).
    pub async fn change(
        &self,
        actor: Actor,
        id: Uuid,
        body: PatchBotRequest,
    ) -> Result<BotView, ApiFailure> {
        let token = body
            .token
            .as_deref()
            .map(BotToken::parse)
            .transpose()
            .map_err(ApiFailure::invalid)?;
        let invalid = ApiFailure::invalid;
        let changes = SettingsChanges {
            name: body
                .name
                .as_deref()
                .map(BotName::parse)
                .transpose()
                .map_err(invalid)?,
            model: body
                .model
                .as_deref()
                .map(ModelName::parse)
                .transpose()
                .map_err(invalid)?,
            start_message: body
                .start_message
                .as_deref()
                .map(|m| BotMessage::parse_field("start_message", m))
                .transpose()
                .map_err(invalid)?,
            error_message: body
                .error_message
                .as_deref()
                .map(|m| BotMessage::parse_field("error_message", m))
                .transpose()
                .map_err(invalid)?,
            instructions: body
                .instructions
                .as_deref()
                .map(Instructions::parse)
                .transpose()
                .map_err(invalid)?,
            streaming: body.streaming,
        };
        if let Some(model) = &changes.model {
            self.priced(model)?;
        }
        let _claim = match &token {
            Some(token) => Some(self.claim_token(token, Some(id)).await?),
            None => None,
        };
        self.command(id, BotCommand::Change { token, changes }, actor)
            .await
    }

    /// Enables, disables or deletes a bot (or any other admin command on it).
    pub async fn command(
        &self,
        id: Uuid,
        command: BotCommand,
        actor: Actor,
    ) -> Result<BotView, ApiFailure> {
        let committed = self
            .0
            .bots
            .execute(&id.to_string(), command, &EventMetadata::new_request(actor))
            .await?;
        self.await_read_model(&id.to_string(), &committed).await?;
        self.read(id).await
    }

    /// One bot as the read model shows it (a deleted one too).
    pub async fn read(&self, id: Uuid) -> Result<BotView, ApiFailure> {
        read_model::find_bot(&self.0.pool, id)
            .await
            .map_err(|e| ApiFailure::internal("reading a bot failed", &e))?
            .map(BotView::from)
            .ok_or_else(|| ApiFailure::not_found("bot"))
    }

    /// Refuses a model whose answers could not be priced: billed at nothing, they would
    /// never count against the bot's or a person's cost budgets.
    fn priced(&self, model: &ModelName) -> Result<(), ApiFailure> {
        if self.0.prices.price(model.as_str()).is_some() {
            return Ok(());
        }
        Err(ApiFailure::invalid(InvalidField::new(
            "model",
            "no price is known for this model, so its answers could not be priced or held to \
             budgets: add it to PRICING_FILE (a price of 0 for a model that costs nothing)",
        )))
    }

    /// Waits until the `bots` read model includes what `committed` appended.
    async fn await_read_model(
        &self,
        bot_id: &str,
        committed: &Committed,
    ) -> Result<(), ApiFailure> {
        if committed.appended == 0 {
            return Ok(());
        }
        let position = self.0.bots.position_of(bot_id, committed.sequence).await?;
        self.0
            .read_your_writes
            .caught_up(projections::bots::NAME, position)
            .await?;
        if let Ok(id) = bot_id.parse() {
            self.0.bot_rows.forget(BotId(id));
        }
        Ok(())
    }

    /// One token answers for one bot: Telegram delivers each update to a single receiver.
    /// Every registration or token change of one token takes a PostgreSQL advisory lock
    /// keyed by the token's fingerprint (so writers in every process take turns), waits until
    /// the bots read model includes every bot event committed so far, and only then checks
    /// it; the lock is held until the guard is dropped, after the write is in the read model.
    async fn claim_token(
        &self,
        token: &BotToken,
        except: Option<Uuid>,
    ) -> Result<TokenGuard, ApiFailure> {
        let failed = |e: sqlx::Error| ApiFailure::internal("checking a token failed", &e);
        let fingerprint = self.0.bots.services().sealer.fingerprint(token);
        let mut lock = self.0.pool.begin().await.map_err(failed)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(TOKEN_LOCK_NAMESPACE)
            .bind(&fingerprint)
            .execute(&mut *lock)
            .await
            .map_err(failed)?;
        let newest = crate::event_store::stream::newest_of_type(&mut lock, Bot::TYPE)
            .await
            .map_err(failed)?;
        if let Some(newest) = newest {
            self.0
                .read_your_writes
                .caught_up(read_model::NAME, newest)
                .await?;
        }
        let used = read_model::bot_using_token(&self.0.pool, &fingerprint, except)
            .await
            .map_err(failed)?;
        // A bot that does not exist is not found, whatever token the request carries.
        if let (Some(_), Some(id)) = (used, except) {
            let exists = read_model::find_bot(&self.0.pool, id)
                .await
                .map_err(failed)?
                .is_some();
            if !exists {
                return Err(ApiFailure::not_found("bot"));
            }
        }
        match used {
            Some(other) => Err(ApiFailure::Conflict(Json(
                ApiError::new(
                    "token_in_use",
                    format!("token: bot {other} already uses this token"),
                )
                .with_field("token"),
            ))),
            None => Ok(TokenGuard { _lock: lock }),
        }
    }
}

/// The advisory-lock namespace of token claims (the first key of the two-key form).
const TOKEN_LOCK_NAMESPACE: i32 = 0x6266_0002;

/// Holds a token's claim (a transaction holding its advisory lock, and nothing else: it
/// writes nothing, so it holds back no reader) until dropped.
struct TokenGuard {
    _lock: sqlx::Transaction<'static, sqlx::Postgres>,
}

fn parse_settings(
    name: &str,
    model: &str,
    start_message: &str,
    error_message: &str,
    instructions: &str,
    streaming: Option<bool>,
) -> Result<BotSettings, ApiFailure> {
    Ok(BotSettings {
        name: BotName::parse(name).map_err(ApiFailure::invalid)?,
        model: ModelName::parse(model).map_err(ApiFailure::invalid)?,
        start_message: BotMessage::parse_field("start_message", start_message)
            .map_err(ApiFailure::invalid)?,
        error_message: BotMessage::parse_field("error_message", error_message)
            .map_err(ApiFailure::invalid)?,
        instructions: Instructions::parse(instructions).map_err(ApiFailure::invalid)?,
        streaming,
    })
}

fn encode_bot_cursor(row: &BotRow) -> String {
    encode_cursor(&[micros(&row.created_at), row.id.to_string()])
}

fn decode_bot_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiFailure> {
    let parts = decode_cursor(cursor, 2)?;
    Ok((cursor_instant(&parts[0])?, cursor_part(&parts[1])?))
}
