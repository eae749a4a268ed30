//! `GET /metrics`: the Prometheus scrape endpoint (see `crate::metrics` for the series).
//!
//! Unauthenticated like /health: it carries counts and latencies, no secrets; keep it off
//! the public internet with the rest of the admin address if counts are sensitive to you.

use std::time::Duration;

use poem_openapi::payload::PlainText;
use poem_openapi::{ApiResponse, OpenApi};

use super::health::PipelineWatch;
use super::{ApiTags, Wired};

/// A scrape should not hang on a slow database: the gauges keep their last values instead.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(ApiResponse)]
pub enum MetricsResponse {
    /// The Prometheus text exposition format, version 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

/// Serves the metrics; refreshes the pipeline's gauges from the database first.
pub struct MetricsApi(pub Wired<PipelineWatch>);

#[OpenApi(tag = "ApiTags::Operations")]
impl MetricsApi {
    /// Prometheus metrics
    ///
    /// Counters and histograms of this process, and the pipeline's lag read at scrape time.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self) -> MetricsResponse {
        // Refreshes the subscription lag and effect gauges.
        let refreshed = tokio::time::timeout(
            REFRESH_TIMEOUT,
            crate::health::queue_status(&self.0.pool, self.0.thresholds),
        )
        .await;
        if !matches!(refreshed, Ok(Ok(_))) {
            tracing::debug!("metrics: the queue gauges could not be refreshed");
        }
        MetricsResponse::Ok(PlainText(crate::metrics::render()))
    }
}
