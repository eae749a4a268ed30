//! An idle service sends its database nothing: no checkpoint written when nothing moved, no
//! poll of an empty queue, no lease renewed with nothing leased. Every wake-up comes from a
//! notification, a request, or a timer set for work that exists.
//!
//! Measured from PostgreSQL's own view of the application's sessions (`pg_stat_activity`,
//! read from another database so that looking is not counted): a statement changes its
//! session's `state_change`, a new connection shows a new `backend_start`. The cumulative
//! counters (`pg_stat_database.xact_commit`) would do too, but a backend flushes them up to
//! ten seconds late when it goes idle.

use std::time::Duration;

use sqlx::PgPool;

use crate::fakes::telegram::text_update;
use crate::helpers::{database_url, eventually, token, Fakes, TestApp};

/// Longer than any timer an idle service might have left (the slowest, the bot supervisor's
/// look while something is unsettled, is 5 s; the test's SUBSCRIPTION_POLL_MS is 1 s).
const QUIET: Duration = Duration::from_secs(7);

/// Whether no session of `database` ran a statement or connected during [`QUIET`].
async fn quiet_for_a_while(observer: &PgPool, database: &str) -> bool {
    let activity = "SELECT count(*) FILTER (WHERE state = 'active'),
                           max(greatest(state_change, backend_start)), now()
                    FROM pg_stat_activity WHERE datname = $1";
    let (active, _, started): (
        i64,
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(activity)
        .bind(database)
        .fetch_one(observer)
        .await
        .unwrap();
    // The window measures; it decides nothing by its length but the idle timers' above.
    tokio::time::sleep(QUIET).await;
    let (still_active, last, _): (
        i64,
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(activity)
        .bind(database)
        .fetch_one(observer)
        .await
        .unwrap();
    active == 0 && still_active == 0 && last.is_some_and(|last| last < started)
}

#[tokio::test]
async fn a_settled_service_sends_its_database_nothing() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.public_url = Some("https://bots.example.com/".into())
    })
    .await;
    let bot_id = app.create_enabled_bot("Quiet", &token(1)).await;
    fakes
        .telegram
        .wait_for_calls("setWebhook", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        app.deliver(&bot_id, &text_update(1, 42, "hello")).await,
        200
    );
    fakes
        .telegram
        .wait_for_calls("sendMessage", 1, Duration::from_secs(30))
        .await;
    app.settle().await;

    let observer = PgPool::connect(&database_url("postgres")).await.unwrap();
    eventually(
        Duration::from_secs(90),
        "the settled service sends its database nothing for a while",
        || quiet_for_a_while(&observer, &app.db.name),
    )
    .await;
    // Its connections say whose they are (the bench counts their CPU by it).
    let named: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'botfleet'",
    )
    .bind(&app.db.name)
    .fetch_one(&observer)
    .await
    .unwrap();
    assert!(
        named > 0,
        "Botfleet's connections are named in pg_stat_activity"
    );
    observer.close().await;
    // Still alive: the next update is answered.
    assert_eq!(
        app.deliver(&bot_id, &text_update(2, 42, "still there?"))
            .await,
        200
    );
    fakes
        .telegram
        .wait_for_calls("sendMessage", 2, Duration::from_secs(30))
        .await;
    app.stop().await;
}

/// A turn waiting on a slow model costs the database nothing while it waits, beyond its
/// lease's renewal (every `EFFECT_LEASE_MS` / 3, 40 s here): the runner does not look at
/// chat_work again for chats it is working itself, as it would for chats leased by another
/// process (which may die).
#[tokio::test]
async fn a_turn_waiting_on_a_slow_model_sends_the_database_nothing_meanwhile() {
    let fakes = Fakes::start().await;
    fakes.openai.set_delay(Duration::from_secs(120));
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.public_url = Some("https://bots.example.com/".into());
        args.openai_timeout_secs = 300;
        args.effect_lease_ms = 120_000;
    })
    .await;
    let bot_id = app.create_enabled_bot("Patient", &token(1)).await;
    fakes
        .telegram
        .wait_for_calls("setWebhook", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        app.deliver(&bot_id, &text_update(1, 42, "think hard"))
            .await,
        200
    );
    fakes
        .openai
        .wait_for_requests(1, Duration::from_secs(30))
        .await;
    // Work announced by another process makes the runner look at chat_work: it finds only
    // the chat it is working itself, and has no reason to look again.
    sqlx::query("SELECT pg_notify('botfleet_work', '')")
        .execute(&app.pool)
        .await
        .unwrap();

    let observer = PgPool::connect(&database_url("postgres")).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the service waiting on the model sends its database nothing for a while",
        || quiet_for_a_while(&observer, &app.db.name),
    )
    .await;
    observer.close().await;
    let in_flight: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_work WHERE open_turns > 0")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(in_flight, 1, "the turn was still waiting on the model");
    app.stop().await;
}
