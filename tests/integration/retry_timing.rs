//! When waiting work falls due: the queries that tell the chat runner and the alert sender
//! how long to sleep read PostgreSQL's numbers as they are (NUMERIC since PostgreSQL 14),
//! instead of failing and polling the database every half second.

use std::time::Duration;

use crate::helpers::TestDb;

#[tokio::test]
async fn a_chat_waiting_for_its_retry_tells_the_runner_when_it_falls_due() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let waiting = || projections::chat_work::waiting(&pool);
    assert_eq!(
        waiting().await.unwrap(),
        projections::chat_work::Waiting {
            retry_due_in: None,
            held: false
        },
        "nothing waits"
    );
    sqlx::query(
        "INSERT INTO chat_work (chat_id, bot_id, open_turns, available_at)
         VALUES ($1, $2, 1, now() + interval '20 seconds')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    let waiting = waiting().await.expect("the query reads its own result");
    assert!(!waiting.held, "the chat is not due yet");
    let due_in = waiting.retry_due_in.expect("a chat waits");
    assert!(
        due_in > Duration::from_secs(15) && due_in <= Duration::from_secs(20),
        "{due_in:?}"
    );
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
