//! `/metrics`: the Prometheus series after one turn, and the request id in every answer.
//!
//! The registry is per process and the tests share a process, so each assertion is on a
//! series this test alone can have caused (its bot's id) or on a series being present.

use std::time::Duration;

use crate::fakes::telegram::text_update;
use crate::helpers::{token, Fakes, TestApp};

/// Families whose samples the effect runner produces (`metrics::turn_completed`,
/// `turn_failed`, `llm_call`, `tokens`, `cost`, `telegram_call`). They are declared from
/// the start; once the runner calls them, assert their samples like the intake's below.
const EFFECT_RUNNER_FAMILIES: &[(&str, &str)] = &[
    ("botfleet_turns_completed_total", "counter"),
    ("botfleet_turns_failed_total", "counter"),
    ("botfleet_llm_request_duration_seconds", "histogram"),
    ("botfleet_llm_tokens_total", "counter"),
    ("botfleet_llm_cost_micro_usd_total", "counter"),
    ("botfleet_telegram_calls_total", "counter"),
];

#[tokio::test]
async fn metrics_expose_the_named_series_after_one_turn() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Support", &token(1)).await;
    assert_eq!(
        app.deliver(&bot_id, &text_update(1, 42, "hello")).await,
        200
    );
    fakes
        .telegram
        .wait_for_calls("sendMessage", 1, Duration::from_secs(20))
        .await;
    app.settle().await;

    // No session: scrapers do not log in.
    let response = reqwest::Client::new()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();

    let sample = |line: &str| text.lines().any(|l| l.starts_with(line));
    assert!(
        sample(&format!(
            "botfleet_updates_received_total{{bot_id=\"{bot_id}\"}} 1"
        )),
        "updates received per bot:\n{text}"
    );
    for route in [
        "botfleet_http_requests_total{method=\"POST\",route=\"/bots\",status=\"201\"}",
        "botfleet_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"200\"}",
        "botfleet_http_requests_total{method=\"POST\",route=\"/telegram/:param0/webhook\",status=\"200\"}",
        "botfleet_http_request_duration_seconds_bucket{method=\"GET\"",
    ] {
        assert!(sample(route), "{route}:\n{text}");
    }
    for subscription in ["bots", "chats", "usage"] {
        let series = format!("botfleet_subscription_lag_events{{subscription=\"{subscription}\"}}");
        assert!(sample(&series), "{series}:\n{text}");
    }
    assert!(sample("botfleet_effects_in_flight "), "{text}");
    assert!(sample("botfleet_messages_failed "), "{text}");
    // The effect runner's series carry samples from this very turn.
    assert!(
        sample(&format!(
            "botfleet_turns_completed_total{{bot_id=\"{bot_id}\"}} 1"
        )),
        "turns completed:\n{text}"
    );
    let has = |prefix: &str, part: &str| {
        text.lines()
            .any(|l| l.starts_with(prefix) && l.contains(part))
    };
    assert!(
        has("botfleet_llm_request_duration_seconds_count", "gpt-5-mini"),
        "{text}"
    );
    assert!(has("botfleet_llm_tokens_total{", "gpt-5-mini"), "{text}");
    assert!(
        has("botfleet_llm_cost_micro_usd_total{", "gpt-5-mini"),
        "{text}"
    );
    assert!(
        has("botfleet_telegram_calls_total{", "sendMessage"),
        "{text}"
    );
    for (family, kind) in EFFECT_RUNNER_FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "{family}:\n{text}"
        );
    }
    // Nothing secret in the exposition.
    assert!(!text.contains(&token(1)));
    assert!(!text.contains("sk-test-key"));
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let fresh = app.http.get(app.url("/bots")).send().await.unwrap();
    let id = fresh.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    // A proxy's id is carried through; a malformed one is replaced.
    let kept = app
        .http
        .get(app.url("/bots"))
        .header("x-request-id", "proxy-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "proxy-1234");
    let replaced = app
        .http
        .get(app.url("/no/such/route"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 404);
    assert_ne!(replaced.headers()["x-request-id"], "bad id with spaces");
    app.stop().await;
}
