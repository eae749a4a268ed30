//! Read your writes: a write answers from the read model once that includes the write.

use std::time::Duration;

use projections::StreamPosition;

use super::errors::{ApiError, ApiFailure};
use crate::subscriptions::SubscriptionProgress;

/// How long a write waits for its read model (`READ_MODEL_WAIT_MS`), and what it watches.
#[derive(Clone)]
pub struct ReadYourWrites {
    pub progress: SubscriptionProgress,
    pub wait: Duration,
}

impl ReadYourWrites {
    /// Waits until `subscription` has handled the event at `position`. When it has not in
    /// time, the write stands but its answer would be stale: 503 `read_model_lagging` says so
    /// rather than show it.
    pub async fn caught_up(
        &self,
        subscription: &str,
        position: StreamPosition,
    ) -> Result<(), ApiFailure> {
        if self
            .progress
            .wait_for(subscription, position, self.wait)
            .await
        {
            return Ok(());
        }
        tracing::warn!(subscription, %position, "the read model did not catch up in time");
        Err(ApiFailure::Unavailable(poem_openapi::payload::Json(
            ApiError::new(
                "read_model_lagging",
                "the change is recorded, but the read model has not caught up yet; read it again shortly",
            ),
        )))
    }
}
