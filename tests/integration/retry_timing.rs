//! When waiting work falls due: the queries that tell the chat runner and the alert sender
//! how long to sleep read PostgreSQL's numbers as they are (NUMERIC since PostgreSQL 14),
//! instead of failing and polling the database every half second.

use std::time::Duration;

use crate::helpers::TestDb;

/// The runner's claim: what it took, and what is left waiting besides.
async fn claim(
    pool: &sqlx::PgPool,
    working: &[uuid::Uuid],
) -> (
    Vec<projections::chat_work::ClaimedChat>,
    projections::chat_work::Waiting,
) {
    projections::chat_work::claim_due(pool, uuid::Uuid::now_v7(), 7, 30_000, 16, working, &[], &[])
        .await
        .expect("the claim reads its own result")
}

#[tokio::test]
async fn a_chat_waiting_for_its_retry_tells_the_runner_when_it_falls_due() {
    use projections::chat_work::Waiting;
    let db = TestDb::new();
    let pool = db.pool().await;
    let nothing = Waiting {
        retry_due_in: None,
        held: false,
    };
    assert_eq!(claim(&pool, &[]).await, (vec![], nothing), "nothing waits");
    let later = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO chat_work (chat_id, bot_id, open_turns, available_at)
         VALUES ($1, $2, 1, now() + interval '20 seconds')",
    )
    .bind(later)
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    let (claimed, waiting) = claim(&pool, &[]).await;
    assert!(claimed.is_empty(), "the chat is not due yet");
    assert!(!waiting.held, "the chat is not due yet");
    let due_in = waiting.retry_due_in.expect("a chat waits");
    assert!(
        due_in > Duration::from_secs(15) && due_in <= Duration::from_secs(20),
        "{due_in:?}"
    );

    // A due chat leased by another process that may die is a reason to look again; one the
    // claimer is working itself is not.
    let due = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO chat_work (chat_id, bot_id, open_turns, available_at)
         VALUES ($1, $2, 1, now() - interval '1 second')",
    )
    .bind(due)
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO leases (resource, owner, expires_at)
         VALUES ('chat:' || $1::text, gen_random_uuid(), now() + interval '1 hour')",
    )
    .bind(due)
    .execute(&pool)
    .await
    .unwrap();
    let (claimed, waiting) = claim(&pool, &[]).await;
    assert!(claimed.is_empty(), "a live lease is not taken");
    assert!(waiting.held, "held by another");
    let (claimed, waiting) = claim(&pool, &[due]).await;
    assert!(claimed.is_empty());
    assert!(!waiting.held, "worked by the claimer itself");
}

#[tokio::test]
async fn a_pending_alert_tells_the_sender_when_it_falls_due() {
    let db = TestDb::new();
    let pool = db.pool().await;
    assert_eq!(projections::alerts::next_due_in(&pool).await.unwrap(), None);
    sqlx::query(
        "INSERT INTO admin_alerts (bot_id, kind, pending_count, total_count, last_error,
            first_pending_at, last_at, send_after)
         VALUES ($1, 'llm_fatal', 1, 1, 'boom', now(), now(), now() + interval '20 seconds')",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    let due_in = projections::alerts::next_due_in(&pool)
        .await
        .expect("the query reads its own result")
        .expect("an alert waits");
    assert!(
        due_in > Duration::from_secs(15) && due_in <= Duration::from_secs(20),
        "{due_in:?}"
    );
}
