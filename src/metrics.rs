//! The process's Prometheus metrics, served by `GET /metrics`.
//!
//! One registry for the whole process, behind plain functions (`metrics::turn_completed(bot)`)
//! so that a call site is one line and needs no handle threaded through it. Counters are per
//! process: Prometheus sums them across replicas and copes with restarts (`rate()`), which is
//! why nothing here is stored in the database.
//!
//! Every family is declared in [`FAMILIES`] and exposed from the start, even before its first
//! sample, so that dashboards and alerts can name a series that has not happened yet.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use uuid::Uuid;

/// The name, help text and type of every family, in exposition order.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "botfleet_updates_received_total",
        "Telegram updates recorded by the intake, per bot.",
        "counter",
    ),
    (
        "botfleet_turns_completed_total",
        "Turns answered and sent, per bot.",
        "counter",
    ),
    (
        "botfleet_turns_failed_total",
        "Turns that failed for good, per bot and failure class.",
        "counter",
    ),
    (
        "botfleet_llm_request_duration_seconds",
        "Latency of LLM requests, per model and outcome (ok or error).",
        "histogram",
    ),
    (
        "botfleet_llm_tokens_total",
        "Tokens used, per model and kind (input, cached_input, output, reasoning).",
        "counter",
    ),
    (
        "botfleet_llm_cost_micro_usd_total",
        "Cost of LLM responses in micro-USD (integer, as in the events), per model.",
        "counter",
    ),
    (
        "botfleet_telegram_calls_total",
        "Telegram Bot API calls, per method and HTTP code (0: no answer); errors are code != 200.",
        "counter",
    ),
    (
        "botfleet_telegram_ambiguous_calls_total",
        "Telegram calls that got no answer after the request was written (Telegram may have acted on them), per method.",
        "counter",
    ),
    (
        "botfleet_subscription_lag_events",
        "Events a subscription has not handled yet, refreshed at every scrape.",
        "gauge",
    ),
    (
        "botfleet_subscription_paused",
        "1 while a subscription is paused before a poison event (an operator must retry or skip it).",
        "gauge",
    ),
    (
        "botfleet_subscription_parked_events",
        "Poison events a subscription went on without, not yet acknowledged.",
        "gauge",
    ),
    (
        "botfleet_effects_in_flight",
        "Chats with unfinished turns whose lease is held by a live runner.",
        "gauge",
    ),
    (
        "botfleet_messages_failed",
        "User messages whose turn failed for good.",
        "gauge",
    ),
    (
        "botfleet_http_requests_total",
        "HTTP requests, per method, route pattern and status.",
        "counter",
    ),
    (
        "botfleet_http_request_duration_seconds",
        "HTTP request latency, per method and route pattern.",
        "histogram",
    ),
];

/// Buckets for LLM calls: a cached short answer takes a fraction of a second, a reasoning
/// model's long one a minute or more.
const LLM_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0];

/// Buckets for HTTP requests: reads take milliseconds, a write waits for its read model.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

struct Metrics {
    registry: Registry,
    updates_received: IntCounterVec,
    turns_completed: IntCounterVec,
    turns_failed: IntCounterVec,
    llm_duration: HistogramVec,
    llm_tokens: IntCounterVec,
    llm_cost: IntCounterVec,
    telegram_calls: IntCounterVec,
    telegram_ambiguous: IntCounterVec,
    subscription_lag: IntGaugeVec,
    subscription_paused: IntGaugeVec,
    subscription_parked: IntGaugeVec,
    effects_in_flight: IntGauge,
    messages_failed: IntGauge,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn help(name: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, help, _)| *help)
        .expect("every family is declared in FAMILIES")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        fn counter(registry: &Registry, name: &str, labels: &[&str]) -> IntCounterVec {
            let c = IntCounterVec::new(Opts::new(name, help(name)), labels).expect("valid counter");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        }
        fn histogram(
            registry: &Registry,
            name: &str,
            labels: &[&str],
            buckets: &[f64],
        ) -> HistogramVec {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help(name)).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid histogram");
            registry.register(Box::new(h.clone())).expect("unique name");
            h
        }
        fn gauge(registry: &Registry, name: &str) -> IntGauge {
            let g = IntGauge::new(name, help(name)).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        }
        fn gauge_vec(registry: &Registry, name: &str, labels: &[&str]) -> IntGaugeVec {
            let g = IntGaugeVec::new(Opts::new(name, help(name)), labels).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        }
        let subscription_lag = gauge_vec(
            &registry,
            "botfleet_subscription_lag_events",
            &["subscription"],
        );
        Self {
            updates_received: counter(&registry, "botfleet_updates_received_total", &["bot_id"]),
            turns_completed: counter(&registry, "botfleet_turns_completed_total", &["bot_id"]),
            turns_failed: counter(
                &registry,
                "botfleet_turns_failed_total",
                &["bot_id", "class"],
            ),
            llm_duration: histogram(
                &registry,
                "botfleet_llm_request_duration_seconds",
                &["model", "outcome"],
                LLM_BUCKETS,
            ),
            llm_tokens: counter(&registry, "botfleet_llm_tokens_total", &["model", "kind"]),
            llm_cost: counter(&registry, "botfleet_llm_cost_micro_usd_total", &["model"]),
            telegram_calls: counter(
                &registry,
                "botfleet_telegram_calls_total",
                &["method", "code"],
            ),
            telegram_ambiguous: counter(
                &registry,
                "botfleet_telegram_ambiguous_calls_total",
                &["method"],
            ),
            subscription_lag,
            subscription_paused: gauge_vec(
                &registry,
                "botfleet_subscription_paused",
                &["subscription"],
            ),
            subscription_parked: gauge_vec(
                &registry,
                "botfleet_subscription_parked_events",
                &["subscription"],
            ),
            effects_in_flight: gauge(&registry, "botfleet_effects_in_flight"),
            messages_failed: gauge(&registry, "botfleet_messages_failed"),
            http_requests: counter(
                &registry,
                "botfleet_http_requests_total",
                &["method", "route", "status"],
            ),
            http_duration: histogram(
                &registry,
                "botfleet_http_request_duration_seconds",
                &["method", "route"],
                HTTP_BUCKETS,
            ),
            registry,
        }
    }
}

/// An update was recorded for `bot_id` (not a duplicate, not an ignored kind).
pub fn update_received(bot_id: Uuid) {
    METRICS
        .updates_received
        .with_label_values(&[&bot_id.to_string()])
        .inc();
}

/// A turn of `bot_id` was answered and its reply sent.
pub fn turn_completed(bot_id: Uuid) {
    METRICS
        .turns_completed
        .with_label_values(&[&bot_id.to_string()])
        .inc();
}

/// A turn of `bot_id` failed for good; `class` is its failure class (`fatal`, `terminal`…).
pub fn turn_failed(bot_id: Uuid, class: &str) {
    METRICS
        .turns_failed
        .with_label_values(&[&bot_id.to_string(), class])
        .inc();
}

/// One LLM request to `model` took `seconds`; `ok` is false when it failed.
pub fn llm_call(model: &str, seconds: f64, ok: bool) {
    METRICS
        .llm_duration
        .with_label_values(&[model, if ok { "ok" } else { "error" }])
        .observe(seconds);
}

/// The token usage of one LLM response. `cached` is part of `input` and `reasoning` part of
/// `output`, as the provider reports them; each is its own series.
pub fn tokens(model: &str, input: u64, cached: u64, output: u64, reasoning: u64) {
    for (kind, count) in [
        ("input", input),
        ("cached_input", cached),
        ("output", output),
        ("reasoning", reasoning),
    ] {
        METRICS
            .llm_tokens
            .with_label_values(&[model, kind])
            .inc_by(count);
    }
}

/// The cost of one LLM response, in integer micro-USD as recorded in its event. Kept in
/// integer micro-USD here too (money is never a float in Botfleet); a negative amount is
/// ignored, as a counter only grows.
pub fn cost(model: &str, micro_usd: i64) {
    if let Ok(amount) = u64::try_from(micro_usd) {
        METRICS.llm_cost.with_label_values(&[model]).inc_by(amount);
    }
}

/// One Telegram Bot API call of `method` answered with HTTP `code` (200 on success, 0 when
/// no answer arrived: a timeout or a network error).
pub fn telegram_call(method: &str, code: u16) {
    METRICS
        .telegram_calls
        .with_label_values(&[method, &code.to_string()])
        .inc();
}

/// A Telegram call of `method` timed out after its request was written: it may have taken
/// effect (a message delivered that will be sent again on retry).
pub fn telegram_ambiguous_call(method: &str) {
    METRICS
        .telegram_ambiguous
        .with_label_values(&[method])
        .inc();
}

/// How many events subscription `name` has yet to handle.
pub fn subscription_lag(name: &str, events: i64) {
    METRICS
        .subscription_lag
        .with_label_values(&[name])
        .set(events);
}

/// Whether subscription `name` is paused, and how many parked events it has.
pub fn subscription_faults(name: &str, paused: bool, parked: i64) {
    METRICS
        .subscription_paused
        .with_label_values(&[name])
        .set(i64::from(paused));
    METRICS
        .subscription_parked
        .with_label_values(&[name])
        .set(parked);
}

/// The effect runner's in-flight chats and failed messages, as /health/queue counts them.
pub fn effects(in_flight: i64, failed: i64) {
    METRICS.effects_in_flight.set(in_flight);
    METRICS.messages_failed.set(failed);
}

/// One HTTP request; `route` is its route pattern (`/bots/:param0`: poem-openapi numbers the
/// path parameters), never the raw path, so the number of series stays bounded.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    METRICS
        .http_requests
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    METRICS
        .http_duration
        .with_label_values(&[method, route])
        .observe(seconds);
}

/// Everything, in the Prometheus text format (version 0.0.4).
pub fn render() -> String {
    let families = METRICS.registry.gather();
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut buffer)
        .expect("encoding to memory cannot fail");
    let mut text = String::from_utf8(buffer).expect("the text format is UTF-8");
    // The registry leaves out a family with no sample yet; declare it anyway.
    for (name, help, kind) in FAMILIES {
        if !families.iter().any(|f| f.name() == *name) {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_declared_before_its_first_sample() {
        let text = render();
        for (name, _, kind) in FAMILIES {
            assert!(text.contains(&format!("# TYPE {name} {kind}")), "{name}");
        }
    }

    #[test]
    fn samples_carry_their_labels() {
        let bot = Uuid::now_v7();
        update_received(bot);
        tokens("test-model", 10, 2, 5, 1);
        cost("test-model", 1_500_000);
        let text = render();
        assert!(text.contains(&format!(
            "botfleet_updates_received_total{{bot_id=\"{bot}\"}} 1"
        )));
        assert!(text
            .contains("botfleet_llm_tokens_total{kind=\"cached_input\",model=\"test-model\"} 2"));
        assert!(text.contains("botfleet_llm_cost_micro_usd_total{model=\"test-model\"} 1500000"));
    }
}
