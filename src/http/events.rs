//! `/events`: the audit trail. The global feed in commit order, one aggregate's stream, or
//! one story (everything a Telegram update or an admin request caused, by correlation id).

use aggregates::text::InvalidField;
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use projections::{RecordedEvent, StreamPosition};
use uuid::Uuid;

use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::paging::{checked_instant, EVENT_PAGES};
use super::{ApiTags, Wired};
use crate::event_store::history::{self, HistoryFilter};

/// One event as stored, secrets redacted.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventView {
    /// Its place in the commit order: pass the last one as `after` for the next page.
    pub position: String,
    pub global_position: i64,
    pub transaction_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Its number in the aggregate's own stream (1, 2, …).
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    /// `event_id`, `correlation_id`, `causation_id` and `actor`.
    pub metadata: serde_json::Value,
}

impl From<RecordedEvent> for EventView {
    fn from(event: RecordedEvent) -> Self {
        Self {
            position: event.position.to_string(),
            global_position: event.position.global_position,
            transaction_id: event.position.transaction_id.to_string(),
            payload: history::redact(&event.event_type, event.payload),
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            event_version: event.event_version,
            recorded_at: event.recorded_at,
            metadata: event.metadata,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `after` for the next page; absent when no more events were found.
    #[oai(skip_serializing_if_is_none)]
    pub next_after: Option<String>,
}

#[derive(ApiResponse)]
pub enum EventPageResponse {
    #[oai(status = 200)]
    Ok(Json<EventPage>),
}

error_responses! {
    /// What reading the event log answers when it does not succeed.
    pub enum EventReadError { BadRequest, Unauthorized, Unprocessable, TooManyRequests, Internal }
}

error_responses! {
    /// What reading one bot's or chat's stream answers when it does not succeed.
    pub enum StreamReadError {
        BadRequest, Unauthorized, NotFound, Unprocessable, TooManyRequests, Internal,
    }
}

/// Reads the event log; all it needs is the database.
pub struct EventsApi(pub Wired<sqlx::PgPool>);

fn parse_after(after: Option<&str>) -> Result<Option<StreamPosition>, ApiFailure> {
    let Some(after) = after else {
        return Ok(None);
    };
    let invalid = || {
        ApiFailure::invalid(InvalidField::new(
            "after",
            "must be a position this API gave out, like 1234/56",
        ))
    };
    let (transaction_id, global_position) = after.split_once('/').ok_or_else(invalid)?;
    Ok(Some(StreamPosition {
        transaction_id: transaction_id.parse().map_err(|_| invalid())?,
        global_position: global_position.parse().map_err(|_| invalid())?,
    }))
}

impl EventsApi {
    async fn page(&self, filter: HistoryFilter, limit: i64) -> Result<EventPage, ApiFailure> {
        let events = history::read(&self.0, &filter, limit)
            .await
            .map_err(|e| ApiFailure::internal("reading the event log failed", &e))?;
        let next_after = (events.len() as i64 == limit)
            .then(|| events.last().map(|e| e.position.to_string()))
            .flatten();
        Ok(EventPage {
            items: events.into_iter().map(EventView::from).collect(),
            next_after,
        })
    }
}

impl EventsApi {
    /// A page of one aggregate's stream.
    async fn stream_page(
        &self,
        aggregate_type: &str,
        id: Uuid,
        after: Option<String>,
        limit: Option<u32>,
    ) -> Result<EventPageResponse, StreamReadError> {
        let filter = HistoryFilter {
            after: parse_after(after.as_deref())?,
            aggregate_type: Some(aggregate_type.to_owned()),
            aggregate_id: Some(id.to_string()),
            ..HistoryFilter::default()
        };
        let found = self.page(filter, EVENT_PAGES.limit(limit)?).await?;
        if found.items.is_empty() && after.is_none() {
            let exists = history::stream_exists(&self.0, aggregate_type, &id.to_string())
                .await
                .map_err(|e| ApiFailure::internal("reading the event log failed", &e))?;
            if !exists {
                return Err(ApiFailure::not_found(&aggregate_type.to_lowercase()).into());
            }
        }
        Ok(EventPageResponse::Ok(Json(found)))
    }
}

#[OpenApi(tag = "ApiTags::Audit")]
impl EventsApi {
    /// Read the event log
    ///
    /// Every event in commit order, after the `after` position, filtered by aggregate,
    /// event type, correlation id (one Telegram update's or admin request's whole story) and
    /// time range (`since`, `until`, RFC 3339). Secrets are redacted.
    #[oai(path = "/events", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: AdminSession,
        after: Query<Option<String>>,
        aggregate_type: Query<Option<String>>,
        aggregate_id: Query<Option<String>>,
        event_type: Query<Option<String>>,
        correlation_id: Query<Option<Uuid>>,
        since: Query<Option<DateTime<Utc>>>,
        until: Query<Option<DateTime<Utc>>>,
        limit: Query<Option<u32>>,
    ) -> Result<EventPageResponse, EventReadError> {
        let filter = HistoryFilter {
            after: parse_after(after.0.as_deref())?,
            aggregate_type: aggregate_type.0,
            aggregate_id: aggregate_id.0,
            event_type: event_type.0,
            correlation_id: correlation_id.0.map(|id| id.to_string()),
            since: since.0.map(|at| checked_instant("since", at)).transpose()?,
            until: until.0.map(|at| checked_instant("until", at)).transpose()?,
        };
        let page = self.page(filter, EVENT_PAGES.limit(limit.0)?).await?;
        Ok(EventPageResponse::Ok(Json(page)))
    }

    /// Read a bot's events
    #[oai(path = "/bots/:id/events", method = "get")]
    async fn bot_events(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> Result<EventPageResponse, StreamReadError> {
        self.stream_page("Bot", id.0, after.0, limit.0).await
    }

    /// Read a chat's events
    #[oai(path = "/chats/:id/events", method = "get")]
    async fn chat_events(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        after: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> Result<EventPageResponse, StreamReadError> {
        self.stream_page("Chat", id.0, after.0, limit.0).await
    }
}

/// An aggregate's read-model rows as they were at `as_of` (see `event_store::time_travel`).
pub(crate) async fn view_as_of(
    pool: &sqlx::PgPool,
    projector: &dyn projections::Projector,
    aggregate_type: &str,
    aggregate_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<crate::event_store::time_travel::PastView, ApiFailure> {
    crate::event_store::time_travel::view_as_of(
        pool,
        projector,
        aggregate_type,
        &aggregate_id.to_string(),
        as_of,
    )
    .await
    .map_err(|e| ApiFailure::internal("rebuilding the past from events failed", &e))
}
