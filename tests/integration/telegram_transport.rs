//! Talking to Telegram on a bad day: a 5xx is answered at once and retried on our backoff
//! (not after a client's ten-second sleep), a slow send is awaited rather than abandoned and
//! sent again, and a send that timed out after it was written is counted as ambiguous.

use std::time::Duration;

use crate::fakes::telegram::{error, text_update};
use crate::helpers::{token, Fakes, TestApp};

async fn attempt_errors(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload -> 'AttemptFailed' ->> 'error' FROM events
         WHERE event_type = 'AttemptFailed' ORDER BY global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_telegram_5xx_is_retried_on_our_backoff_at_once() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    fakes
        .telegram
        .fail_next("sendMessage", 1, 502, error(502, "Bad Gateway", None));
    app.deliver(&bot, &text_update(1, 42, "hi")).await;
    // RETRY_BACKOFF_MS is 100 ms in the tests: far inside this wait, which a client that
    // slept ten seconds on every 5xx would overrun.
    let calls = fakes
        .telegram
        .wait_for_calls("sendMessage", 2, Duration::from_secs(5))
        .await;
    assert!(calls[1].at.duration_since(calls[0].at) < Duration::from_secs(5));
    app.settle().await;
    assert_eq!(attempt_errors(&app).await, ["Bad Gateway"]);
    let (_, messages) = app
        .get(&format!(
            "/chats/{}/messages",
            app.get("/chats").await.1["items"][0]["id"]
                .as_str()
                .unwrap()
        ))
        .await;
    assert_eq!(messages["items"][1]["status"], "sent");
    app.stop().await;
}

#[tokio::test]
async fn a_slow_send_is_awaited_and_arrives_once() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |args| args.telegram_send_timeout_secs = 10).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    fakes
        .telegram
        .delay_next("sendMessage", 1, Duration::from_secs(2));
    app.deliver(&bot, &text_update(1, 42, "hi")).await;
    fakes
        .telegram
        .wait_for_calls("sendMessage", 1, Duration::from_secs(20))
        .await;
    app.settle().await;
    assert_eq!(fakes.telegram.calls_of("sendMessage").len(), 1, "sent once");
    assert!(attempt_errors(&app).await.is_empty(), "no attempt failed");
    app.stop().await;
}

#[tokio::test]
async fn a_send_that_times_out_after_it_was_written_is_counted_as_ambiguous_and_retried() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |args| args.telegram_send_timeout_secs = 1).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;
    fakes
        .telegram
        .delay_next("sendMessage", 1, Duration::from_secs(3));
    app.deliver(&bot, &text_update(1, 42, "hi")).await;
    fakes
        .telegram
        .wait_for_calls("sendMessage", 2, Duration::from_secs(20))
        .await;
    app.settle().await;
    let errors = attempt_errors(&app).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("no answer from Telegram"),
        "{errors:?}"
    );
    assert!(
        !errors[0].contains(&token(1)),
        "the token never reaches an event"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ambiguous = metrics
        .lines()
        .find(|l| l.starts_with("botfleet_telegram_ambiguous_calls_total{method=\"sendMessage\"}"))
        .unwrap_or_else(|| panic!("no ambiguous sendMessage counted:\n{metrics}"));
    assert!(!ambiguous.ends_with(" 0"), "{ambiguous}");
    app.stop().await;
}
