//! `/projections`: each read model's subscription, its poison events, and the operator's two
//! answers to a paused one: retry it (after fixing the cause) or skip the event.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::errors::{error_responses, ApiError, ApiFailure};
use super::guard::AdminSession;
use super::health::{PipelineWatch, SubscriptionHealth};
use super::{ApiTags, Wired};
use crate::health::SubscriptionState;
use crate::subscriptions::faults::{self, Fault, ResolveError};

/// An event a projector could not apply.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FaultView {
    pub projection: String,
    /// `transaction_id/global_position`: pass it to `skip`.
    pub position: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    /// The projector's error, with its causes.
    pub error: String,
    pub attempts: i32,
    /// `paused` (the projection stands before it), `parked` (it went on without it),
    /// `retried` or `skipped` (an operator resolved it).
    pub status: String,
    pub failed_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub resolved_by: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<Fault> for FaultView {
    fn from(fault: Fault) -> Self {
        Self {
            projection: fault.subscription,
            position: fault.position.to_string(),
            aggregate_type: fault.aggregate_type,
            aggregate_id: fault.aggregate_id,
            sequence: fault.sequence,
            event_type: fault.event_type,
            error: fault.error,
            attempts: fault.attempts,
            status: fault.status.to_string(),
            failed_at: fault.failed_at,
            resolved_by: fault.resolved_by,
            resolved_at: fault.resolved_at,
        }
    }
}

/// One read model's subscription.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProjectionView {
    pub name: String,
    /// `transaction_id/global_position` of the last event handled.
    pub checkpoint: String,
    /// Committed events not handled yet.
    pub lag: i64,
    pub status: SubscriptionHealth,
    /// What it does with an event it keeps failing on: `pause` or `park`.
    pub poison_policy: String,
    /// Its paused and parked events, newest first.
    pub open_faults: Vec<FaultView>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProjectionList {
    pub items: Vec<ProjectionView>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FaultList {
    pub items: Vec<FaultView>,
}

#[derive(Debug, Clone, Object)]
pub struct SkipRequest {
    /// The event's position as listed (`transaction_id/global_position`).
    pub event: String,
}

#[derive(ApiResponse)]
pub enum ProjectionListResponse {
    #[oai(status = 200)]
    Ok(Json<ProjectionList>),
}

#[derive(ApiResponse)]
pub enum FaultListResponse {
    #[oai(status = 200)]
    Ok(Json<FaultList>),
}

#[derive(ApiResponse)]
pub enum RetryResponse {
    /// The projection tries the event again; if it still fails it pauses again.
    #[oai(status = 200)]
    Resumed(Json<FaultView>),
}

error_responses! {
    /// What `GET /projections` answers when it does not succeed.
    pub enum ProjectionListError { BadRequest, Unauthorized, TooManyRequests, Internal }
}

error_responses! {
    /// What `GET /projections/{name}/faults` answers when it does not succeed.
    pub enum FaultListError { BadRequest, Unauthorized, NotFound, TooManyRequests, Internal }
}

error_responses! {
    /// What `POST /projections/{name}/retry` answers when it does not succeed.
    pub enum ProjectionRetryError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What `POST /projections/{name}/skip` answers when it does not succeed.
    pub enum ProjectionSkipError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
        UnsupportedMediaType, TooManyRequests, Internal,
    }
}

/// Reads and resolves the projections' state: the database and the health thresholds.
pub struct ProjectionsApi(pub Wired<PipelineWatch>);

fn known(name: &str) -> Result<std::sync::Arc<dyn projections::Projector>, ApiFailure> {
    projections::all()
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| {
            ApiFailure::NotFound(Json(ApiError::new(
                "not_found",
                format!("no projection is named {name:?}"),
            )))
        })
}

fn resolve_failure(e: ResolveError) -> ApiFailure {
    match e {
        ResolveError::NotPaused(_) | ResolveError::NoSuchFault { .. } => {
            ApiFailure::conflict(e.to_string())
        }
        ResolveError::Database(e) => ApiFailure::internal("resolving a poison event failed", &e),
    }
}

#[OpenApi(tag = "ApiTags::Operations")]
impl ProjectionsApi {
    /// List the projections
    ///
    /// Each read model's checkpoint, lag and state, its poison policy, and its paused and
    /// parked events.
    #[oai(path = "/projections", method = "get")]
    async fn list(
        &self,
        _auth: AdminSession,
    ) -> Result<ProjectionListResponse, ProjectionListError> {
        let pool = &self.0.pool;
        let status = crate::health::queue_status(pool, self.0.thresholds)
            .await
            .map_err(|e| ApiFailure::internal("reading the projections failed", &e))?;
        let open = faults::list(pool, None, true)
            .await
            .map_err(|e| ApiFailure::internal("reading the poison events failed", &e))?;
        let items = status
            .subscriptions
            .into_iter()
            .map(|s| ProjectionView {
                poison_policy: known(&s.name)
                    .map(|p| format!("{:?}", p.poison_policy()).to_lowercase())
                    .unwrap_or_default(),
                open_faults: open
                    .iter()
                    .filter(|f| f.subscription == s.name)
                    .cloned()
                    .map(FaultView::from)
                    .collect(),
                status: match s.state {
                    SubscriptionState::Ok => SubscriptionHealth::Ok,
                    SubscriptionState::Lagging => SubscriptionHealth::Lagging,
                    SubscriptionState::Stuck => SubscriptionHealth::Stuck,
                    SubscriptionState::Paused => SubscriptionHealth::Paused,
                },
                name: s.name,
                checkpoint: s.checkpoint,
                lag: s.lag,
            })
            .collect();
        Ok(ProjectionListResponse::Ok(Json(ProjectionList { items })))
    }

    /// A projection's poison events
    ///
    /// Every event it paused before or parked, resolved ones included (who retried or
    /// skipped them, and when).
    #[oai(path = "/projections/:name/faults", method = "get")]
    async fn faults(
        &self,
        _auth: AdminSession,
        name: Path<String>,
    ) -> Result<FaultListResponse, FaultListError> {
        known(&name.0)?;
        let items = faults::list(&self.0.pool, Some(&name.0), false)
            .await
            .map_err(|e| ApiFailure::internal("reading the poison events failed", &e))?;
        Ok(FaultListResponse::Ok(Json(FaultList {
            items: items.into_iter().map(FaultView::from).collect(),
        })))
    }

    /// Retry a paused projection
    ///
    /// After fixing what made its event fail: the projection tries the event again. 409
    /// when it is not paused.
    #[oai(path = "/projections/:name/retry", method = "post")]
    async fn retry(
        &self,
        auth: AdminSession,
        name: Path<String>,
    ) -> Result<RetryResponse, ProjectionRetryError> {
        known(&name.0)?;
        let fault = faults::retry(&self.0.pool, &name.0, &auth.actor().to_string())
            .await
            .map_err(resolve_failure)?;
        Ok(RetryResponse::Resumed(Json(fault.into())))
    }

    /// Skip a poison event
    ///
    /// A paused projection moves past the event (its read model will never hold it); a
    /// parked event is acknowledged. Recorded with the admin who did it. 409 when the
    /// projection has no paused or parked event at that position.
    #[oai(path = "/projections/:name/skip", method = "post")]
    async fn skip(
        &self,
        auth: AdminSession,
        name: Path<String>,
        body: Json<SkipRequest>,
    ) -> Result<FaultListResponse, ProjectionSkipError> {
        known(&name.0)?;
        let resolved = faults::skip(
            &self.0.pool,
            Some(&name.0),
            &body.0.event,
            &auth.actor().to_string(),
        )
        .await
        .map_err(resolve_failure)?;
        Ok(FaultListResponse::Ok(Json(FaultList {
            items: resolved.into_iter().map(FaultView::from).collect(),
        })))
    }
}
