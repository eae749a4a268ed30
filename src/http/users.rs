//! `/users`: the people who wrote to the fleet's bots, and forgetting one (crypto-shredding).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use projections::chats::telegram_users::{self as read_model, TelegramUserRow};
use uuid::Uuid;

use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::paging::{
    cursor_instant, cursor_part, decode_cursor, encode_cursor, micros, ADMIN_PAGES,
};
use super::{ApiTags, Wired};
use crate::event_store::Actor;
use crate::personal_data::PersonalDataVault;

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserView {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The chats this person wrote in, across bots.
    pub chat_ids: Vec<Uuid>,
    /// What the answers to this person's messages cost, in micro-USD.
    pub spend_micro_usd: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserPage {
    pub items: Vec<UserView>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Forgotten {
    pub telegram_user_id: i64,
    /// Whether there was any personal data to forget.
    pub had_data: bool,
}

#[derive(ApiResponse)]
pub enum ForgetResponse {
    /// The person's key is destroyed: their names and texts are unreadable everywhere.
    #[oai(status = 200)]
    Ok(Json<Forgotten>),
}

#[derive(ApiResponse)]
pub enum UserListResponse {
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

impl From<TelegramUserRow> for UserView {
    fn from(row: TelegramUserRow) -> Self {
        Self {
            id: row.id,
            is_bot: row.is_bot,
            first_name: row.first_name,
            last_name: row.last_name,
            username: row.username,
            language_code: row.language_code,
            first_seen_at: row.first_seen_at,
            last_seen_at: row.last_seen_at,
            chat_ids: row.chat_ids,
            spend_micro_usd: row.spend_micro_usd,
        }
    }
}

error_responses! {
    /// What `GET /users` answers when it does not succeed.
    pub enum UserListError { BadRequest, Unauthorized, Unprocessable, TooManyRequests, Internal }
}

error_responses! {
    /// What `POST /users/{id}/forget` answers when it does not succeed.
    pub enum ForgetError { BadRequest, Unauthorized, Forbidden, TooManyRequests, Internal }
}

/// What the users API uses.
pub struct UsersDeps {
    pub pool: sqlx::PgPool,
    /// Opens the names it shows; forgets people.
    pub vault: Arc<PersonalDataVault>,
}

pub struct UsersApi(pub Wired<UsersDeps>);

#[OpenApi(tag = "ApiTags::Chats")]
impl UsersApi {
    /// List Telegram users
    ///
    /// Everyone who wrote to any bot, most recently seen first, with their chats.
    #[oai(path = "/users", method = "get")]
    async fn list(
        &self,
        _auth: AdminSession,
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<UserListResponse, UserListError> {
        let limit = ADMIN_PAGES.limit(limit.0)?;
        let page = self.page(cursor.0.as_deref(), limit).await?;
        Ok(UserListResponse::Ok(Json(page)))
    }

    /// Forget a person
    ///
    /// Crypto-shredding: destroys the key their names and message texts were sealed with, so
    /// they are unreadable everywhere (events, snapshots, read models), while every other
    /// fact, count and cost stays. Recorded as an event.
    #[oai(path = "/users/:id/forget", method = "post")]
    async fn forget(
        &self,
        auth: AdminSession,
        id: Path<i64>,
    ) -> Result<ForgetResponse, ForgetError> {
        let had_data = self.forget_person(auth.actor(), id.0).await?;
        Ok(ForgetResponse::Ok(Json(Forgotten {
            telegram_user_id: id.0,
            had_data,
        })))
    }
}

/// What the API does, for its operations and for the admin console alike.
impl UsersApi {
    /// A page of people, most recently seen first, after `cursor` (a `next_cursor`).
    pub async fn page(&self, cursor: Option<&str>, limit: i64) -> Result<UserPage, ApiFailure> {
        let after = match cursor {
            Some(cursor) => {
                let parts = decode_cursor(cursor, 2)?;
                let id: i64 = cursor_part(&parts[1])?;
                Some((cursor_instant(&parts[0])?, id))
            }
            None => None,
        };
        let mut items: Vec<UserView> = read_model::list_users(&self.0.pool, after, limit + 1)
            .await
            .map_err(|e| ApiFailure::internal("listing users failed", &e))?
            .into_iter()
            .map(UserView::from)
            .collect();
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|u| encode_cursor(&[micros(&u.last_seen_at), u.id.to_string()]))
        } else {
            None
        };
        for user in &mut items {
            self.reveal(user).await?;
        }
        Ok(UserPage { items, next_cursor })
    }

    /// One person, their names opened.
    pub async fn read(&self, id: i64) -> Result<UserView, ApiFailure> {
        let row = read_model::find_user(&self.0.pool, id)
            .await
            .map_err(|e| ApiFailure::internal("reading a user failed", &e))?
            .ok_or_else(|| ApiFailure::not_found("Telegram user"))?;
        let mut user = UserView::from(row);
        self.reveal(&mut user).await?;
        Ok(user)
    }

    /// Destroys the person's key; whether there was any personal data to forget.
    pub async fn forget_person(&self, actor: Actor, id: i64) -> Result<bool, ApiFailure> {
        crate::personal_data::forget_person(Some(&self.0.vault), &self.0.pool, id, actor)
            .await
            .map_err(|e| ApiFailure::internal("forgetting a person failed", e.as_ref()))
    }

    async fn reveal(&self, user: &mut UserView) -> Result<(), ApiFailure> {
        let vault = &self.0.vault;
        let failed = |e: sqlx::Error| ApiFailure::internal("opening personal data failed", &e);
        user.first_name = vault
            .reveal_column(&user.first_name)
            .await
            .map_err(failed)?;
        user.last_name = vault
            .reveal_column_option(user.last_name.as_deref())
            .await
            .map_err(failed)?;
        user.username = vault
            .reveal_column_option(user.username.as_deref())
            .await
            .map_err(failed)?;
        Ok(())
    }
}
