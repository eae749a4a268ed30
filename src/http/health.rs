//! `/health`: for load balancers, orchestrators and on-call humans. No authentication and no
//! secrets: the answers say whether things work and how far behind they are, nothing more.

use std::time::{Duration, Instant};

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{ApiTags, Wired};
use crate::health::{HealthThresholds, QueueStatus, SubscriptionState};

/// A health check must answer even when the database does not.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Liveness {
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DatabaseHealth {
    pub status: HealthStatus,
    /// The round trip, when it succeeded.
    #[oai(skip_serializing_if_is_none)]
    pub latency_ms: Option<f64>,
    /// What failed, in general terms (details are in the log).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SubscriptionHealth {
    Ok,
    /// More than HEALTH_MAX_LAG events behind.
    Lagging,
    /// Its oldest unhandled event is older than HEALTH_STUCK_SECS.
    Stuck,
    /// Stopped before a poison event until an operator retries or skips it
    /// (`botfleet projections retry` / `skip`, or `POST /projections/...`).
    Paused,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SubscriptionView {
    pub name: String,
    /// `transaction_id/global_position` of the last event handled.
    pub checkpoint: String,
    /// Committed events not handled yet.
    pub lag: i64,
    /// Age of the oldest unhandled event, in seconds.
    #[oai(skip_serializing_if_is_none)]
    pub oldest_pending_secs: Option<f64>,
    pub status: SubscriptionHealth,
    /// When paused: the position of the event it stopped before.
    #[oai(skip_serializing_if_is_none)]
    pub paused_before: Option<String>,
    /// Poison events it went on without, not yet acknowledged by an operator.
    pub parked_events: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EffectsView {
    /// Chats whose turns a runner is working on now (a live lease).
    pub in_flight: i64,
    /// User messages whose turn failed for good.
    pub failed: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct QueueHealth {
    pub status: HealthStatus,
    pub subscriptions: Vec<SubscriptionView>,
    #[oai(skip_serializing_if_is_none)]
    pub effects: Option<EffectsView>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

#[derive(ApiResponse)]
pub enum LivenessResponse {
    /// The process is up and answering.
    #[oai(status = 200)]
    Ok(Json<Liveness>),
}

#[derive(ApiResponse)]
pub enum DatabaseResponse {
    #[oai(status = 200)]
    Ok(Json<DatabaseHealth>),
    /// The database did not answer in time, or refused.
    #[oai(status = 503)]
    Unavailable(Json<DatabaseHealth>),
}

#[derive(ApiResponse)]
pub enum QueueResponse {
    #[oai(status = 200)]
    Ok(Json<QueueHealth>),
    /// A subscription is paused, stuck or lags past the threshold, or the status cannot be
    /// read.
    #[oai(status = 503)]
    Unavailable(Json<QueueHealth>),
}

/// What watching the pipeline needs: the database, and when /health/queue reports trouble.
pub struct PipelineWatch {
    pub pool: sqlx::PgPool,
    pub thresholds: HealthThresholds,
}

pub struct HealthApi(pub Wired<PipelineWatch>);

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    #[oai(path = "/health", method = "get")]
    async fn alive(&self) -> LivenessResponse {
        LivenessResponse::Ok(Json(Liveness {
            status: HealthStatus::Ok,
        }))
    }

    /// Database round trip
    ///
    /// 503 when the database does not answer `SELECT 1` within two seconds.
    #[oai(path = "/health/db", method = "get")]
    async fn database(&self) -> DatabaseResponse {
        let started = Instant::now();
        let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.0.pool);
        let error = match tokio::time::timeout(CHECK_TIMEOUT, query).await {
            Ok(Ok(_)) => {
                return DatabaseResponse::Ok(Json(DatabaseHealth {
                    status: HealthStatus::Ok,
                    latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
                    error: None,
                }))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "health check: the database refused");
                "the database query failed"
            }
            Err(_) => {
                tracing::warn!("health check: the database did not answer in time");
                "the database did not answer in time"
            }
        };
        DatabaseResponse::Unavailable(Json(DatabaseHealth {
            status: HealthStatus::Unavailable,
            latency_ms: None,
            error: Some(error.to_owned()),
        }))
    }

    /// Subscriptions and effect runner
    ///
    /// Each subscription's checkpoint and lag, and the effect runner's in-flight and failed
    /// counts. 503 when a subscription is paused before a poison event, is stuck, or lags
    /// past the threshold.
    #[oai(path = "/health/queue", method = "get")]
    async fn queue(&self) -> QueueResponse {
        let status = tokio::time::timeout(
            CHECK_TIMEOUT,
            crate::health::queue_status(&self.0.pool, self.0.thresholds),
        )
        .await;
        match status {
            Ok(Ok(status)) => {
                let healthy = status.healthy();
                let body = Json(view(status));
                if healthy {
                    QueueResponse::Ok(body)
                } else {
                    QueueResponse::Unavailable(body)
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "health check: the queue status cannot be read");
                QueueResponse::Unavailable(Json(unreadable("the queue status cannot be read")))
            }
            Err(_) => {
                QueueResponse::Unavailable(Json(unreadable("the database did not answer in time")))
            }
        }
    }
}

fn view(status: QueueStatus) -> QueueHealth {
    QueueHealth {
        status: if status.healthy() {
            HealthStatus::Ok
        } else {
            HealthStatus::Unavailable
        },
        subscriptions: status
            .subscriptions
            .into_iter()
            .map(|s| SubscriptionView {
                name: s.name,
                checkpoint: s.checkpoint,
                lag: s.lag,
                oldest_pending_secs: s.oldest_pending_secs,
                status: match s.state {
                    SubscriptionState::Ok => SubscriptionHealth::Ok,
                    SubscriptionState::Lagging => SubscriptionHealth::Lagging,
                    SubscriptionState::Stuck => SubscriptionHealth::Stuck,
                    SubscriptionState::Paused => SubscriptionHealth::Paused,
                },
                paused_before: s.paused_before,
                parked_events: s.parked_events,
            })
            .collect(),
        effects: Some(EffectsView {
            in_flight: status.in_flight,
            failed: status.failed,
        }),
        error: None,
    }
}

fn unreadable(error: &str) -> QueueHealth {
    QueueHealth {
        status: HealthStatus::Unavailable,
        subscriptions: Vec::new(),
        effects: None,
        error: Some(error.to_owned()),
    }
}
