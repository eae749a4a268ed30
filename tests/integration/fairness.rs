//! Sharing instead of refusing: the webhook takes a popular bot's deliveries at the rate
//! Telegram sends them, and the effect runner shares its slots between bots, so a bot with a
//! deep backlog does not hold back every other bot's turns.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::fakes::telegram::text_update;
use crate::helpers::{eventually, token, Fakes, TestApp};

const BACKLOG: i64 = 2_000;
const OTHER_BOTS: u32 = 10;
const TURNS_EACH: i64 = 10;

#[tokio::test]
async fn ten_bots_are_answered_while_one_bots_backlog_of_two_thousand_still_drains() {
    let fakes = Fakes::start().await;
    // A slow model and few slots, so the backlog takes seconds to drain; the per-bot webhook
    // limit at its default (against abuse only).
    fakes.openai.set_delay(Duration::from_millis(20));
    let app = TestApp::spawn_with_fakes(&fakes, |args| {
        args.effect_concurrency = 4;
        args.rate_limit_bot_per_minute = 60_000;
    })
    .await;
    let busy = app.create_enabled_bot("Busy", &token(0)).await;
    let mut others = Vec::new();
    for n in 1..=OTHER_BOTS {
        others.push(
            app.create_enabled_bot(&format!("Quiet {n}"), &token(n))
                .await,
        );
    }

    // The busy bot's backlog, delivered as fast as sixteen connections can: every delivery
    // is taken, none refused.
    let deliveries = (0..BACKLOG).map(|n| (busy.clone(), text_update(n + 1, 10_000 + n, "hi")));
    let refused = deliver_all(&app, deliveries).await;
    assert!(
        refused.is_empty(),
        "the webhook refused genuine deliveries: {refused:?}"
    );

    // Then ten turns for each of the ten other bots.
    let deliveries = others.iter().enumerate().flat_map(|(b, bot)| {
        (0..TURNS_EACH).map(move |n| {
            (
                bot.clone(),
                text_update(n + 1, 20_000 + b as i64 * 100 + n, "hello"),
            )
        })
    });
    assert_eq!(
        deliver_all(&app, deliveries.collect::<Vec<_>>().into_iter()).await,
        Vec::<u16>::new()
    );

    let quiet_tokens: HashSet<String> = (1..=OTHER_BOTS).map(token).collect();
    let expected = usize::try_from(i64::from(OTHER_BOTS) * TURNS_EACH).unwrap();
    eventually(
        Duration::from_secs(60),
        "the ten bots' turns are answered",
        || async {
            fakes
                .telegram
                .calls_of("sendMessage")
                .iter()
                .filter(|c| quiet_tokens.contains(&c.token))
                .count()
                >= expected
        },
    )
    .await;
    let busy_answered = fakes
        .telegram
        .calls_of("sendMessage")
        .iter()
        .filter(|c| c.token == token(0))
        .count();
    assert!(
        busy_answered < usize::try_from(BACKLOG).unwrap() * 3 / 4,
        "the ten bots waited for the backlog: {busy_answered} of {BACKLOG} were answered first"
    );
    app.stop().await;
}

/// Delivers every `(bot, update)` with sixteen at a time, as Telegram does: an update the
/// webhook could not take for a moment (a 5xx while the machine is overloaded) is delivered
/// again; a 429 is a refusal and is not. Returns the statuses of the deliveries that were
/// refused or never taken.
async fn deliver_all(
    app: &TestApp,
    deliveries: impl Iterator<Item = (String, serde_json::Value)>,
) -> Vec<u16> {
    let statuses: Vec<u16> = stream::iter(deliveries)
        .map(|(bot, update)| async move {
            let mut status = 0;
            for _ in 0..5 {
                status = app
                    .http
                    .post(app.url(&format!("/telegram/{bot}/webhook")))
                    .header("X-Telegram-Bot-Api-Secret-Token", app.webhook_secret(&bot))
                    .json(&update)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                if status < 500 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            status
        })
        .buffer_unordered(16)
        .collect()
        .await;
    statuses
        .into_iter()
        .filter(|status| *status != 200)
        .collect()
}
