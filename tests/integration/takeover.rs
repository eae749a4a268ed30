//! Crash takeover: a dead process's chats are worked by another at once, without waiting for
//! their leases (`EFFECT_LEASE_MS`) to expire, and a live process's leases are never taken.
//! Liveness is a PostgreSQL session per process holding an advisory lock
//! (src/runtime/liveness.rs); the leases here last ten minutes, far longer than any wait.

use std::time::Duration;

use botfleet::runtime::leases::{chat_resource, Leases};
use botfleet::runtime::liveness::Liveness;
use sqlx::PgPool;

use crate::fakes::telegram::text_update;
use crate::helpers::{eventually, random_token_key, Fakes, TestApp, TestDb};
use crate::resilience::{serve_with_lease, wait_until_serving, ServedBot};

const WAIT: Duration = Duration::from_secs(30);

/// Far longer than any test waits: a takeover that happens did not wait for the lease.
const LONG_LEASE: Duration = Duration::from_secs(600);

/// Ends the database session that holds `key`'s liveness lock, as the death of its process
/// would; returns once the session is gone (and the lock with it).
async fn end_session_holding(pool: &PgPool, key: i64) {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND objsubid = 1 AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(key)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(ended, [true], "one session held the key");
    eventually(WAIT, "the session has ended", || async {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks
             WHERE locktype = 'advisory' AND objsubid = 1
               AND ((classid::bigint << 32) | objid::bigint) = $1",
        )
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap();
        held == 0
    })
    .await;
}

#[tokio::test]
async fn a_live_holders_lease_is_kept_and_a_dead_holders_is_taken_at_once() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let (first, first_keeper) = Liveness::start(&pool).await.unwrap();
    let (second, second_keeper) = Liveness::start(&pool).await.unwrap();
    let (a, b) = (
        Leases::new(pool.clone(), first.clone(), LONG_LEASE),
        Leases::new(pool.clone(), second, LONG_LEASE),
    );
    let chat = uuid::Uuid::now_v7();
    let resource = chat_resource(chat);
    assert!(a.try_claim(&resource).await.unwrap());

    // Alive: neither way of claiming takes it.
    assert!(!b.try_claim(&resource).await.unwrap());
    let b_identity = b.identity().unwrap();
    assert!(b
        .claim_chats(&b_identity, &[chat])
        .await
        .unwrap()
        .is_empty());
    let a_identity = a.identity().unwrap();
    assert!(
        a.renew(&a_identity, &resource).await.unwrap(),
        "still the first's"
    );

    // The first's session ends (its process died, or its connection was cut).
    end_session_holding(&pool, a_identity.key).await;
    assert_eq!(
        b.claim_chats(&b_identity, &[chat]).await.unwrap(),
        [(chat, None)],
        "taken at once, ten minutes before the lease expires"
    );

    // The first learns it lost its session: its work stops, and it goes on under a new
    // identity, to which the old leases do not belong.
    tokio::time::timeout(WAIT, a_identity.lost.cancelled())
        .await
        .expect("the loss is noticed");
    let mut changes = first.subscribe();
    let renewed = tokio::time::timeout(
        WAIT,
        changes.wait_for(|identity| identity.as_ref().is_some_and(|i| i.key != a_identity.key)),
    )
    .await
    .expect("a new session")
    .unwrap()
    .clone()
    .unwrap();
    assert_ne!(renewed.owner, a_identity.owner);
    assert!(!a.renew(&renewed, &resource).await.unwrap());
    assert!(!a.renew(&a_identity, &resource).await.unwrap(), "lost");
    assert!(
        !a.try_claim(&resource).await.unwrap(),
        "the second, alive, keeps it"
    );

    // A lease written by an earlier release (no liveness key) is kept until it expires.
    let old = chat_resource(uuid::Uuid::now_v7());
    sqlx::query(
        "INSERT INTO leases (resource, owner, expires_at)
         VALUES ($1, $2, now() + interval '10 minutes')",
    )
    .bind(&old)
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    assert!(!b.try_claim(&old).await.unwrap());

    first_keeper.stop().await;
    second_keeper.stop().await;
    pool.close().await;
}

#[tokio::test]
async fn a_killed_processs_chat_is_answered_by_the_survivor_without_waiting_for_the_lease() {
    let fakes = Fakes::start().await;
    let db = TestDb::new();
    let key = random_token_key();
    let http = reqwest::Client::new();

    let (mut first, base) = serve_with_lease(&db, &key, &fakes, LONG_LEASE);
    wait_until_serving(&http, &base).await;
    let bot = ServedBot::register(&base, &key, "Crashy").await;

    // The first process's LLM call hangs: the turn is in flight, under its lease, at the kill.
    fakes.openai.set_delay(Duration::from_secs(600));
    let update = text_update(1000, 500, "are you there?");
    assert_eq!(bot.deliver(&base, &update).await, 200);
    fakes.openai.wait_for_requests(1, WAIT).await;
    fakes.openai.set_delay(Duration::ZERO);

    // A replica with the same ten-minute leases is running when the first dies.
    let survivor = TestApp::spawn_with(db, key, |args| {
        fakes.configure(args);
        args.effect_lease_ms = LONG_LEASE.as_millis() as u64;
    })
    .await;
    let held_by_first: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM leases WHERE resource LIKE 'chat:%' AND expires_at > now()",
    )
    .fetch_one(&survivor.pool)
    .await
    .unwrap();
    assert_eq!(held_by_first, 1, "the first holds the chat");

    first.kill().expect("SIGKILL the first process");
    first.wait().unwrap();
    assert!(
        fakes.telegram.sent_messages().is_empty(),
        "killed before any reply"
    );

    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
    survivor.settle().await;
    let replies: Vec<String> = fakes
        .telegram
        .sent_messages()
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    assert_eq!(replies, ["echo: are you there?"]);
    assert_eq!(
        fakes.openai.requests().len(),
        2,
        "asked again by the survivor"
    );
    survivor.stop().await;
}
