//! chat_work, the effect runner's index, kept by the appends themselves (migration 0062).

use std::borrow::Cow;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestDb;

async fn append_raw(
    pool: &PgPool,
    chat: uuid::Uuid,
    sequence: i64,
    kind: &str,
    body: serde_json::Value,
) -> (String, i64) {
    sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Chat', $1, $2, $3, '2.0', $4, '{}')
         RETURNING transaction_id::text, global_position",
    )
    .bind(chat.to_string())
    .bind(sequence)
    .bind(kind)
    .bind(json!({ kind: body }))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn work_of(pool: &PgPool, chat: uuid::Uuid) -> Option<(uuid::Uuid, i32)> {
    sqlx::query_as("SELECT bot_id, open_turns FROM chat_work WHERE chat_id = $1")
        .bind(chat)
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// A runner's lease on `chat`, as a claim takes it.
async fn lease(pool: &PgPool, chat: uuid::Uuid) {
    sqlx::query(
        "INSERT INTO leases (resource, owner, expires_at)
         VALUES ('chat:' || $1::text, gen_random_uuid(), now() + interval '1 hour')",
    )
    .bind(chat)
    .execute(pool)
    .await
    .unwrap();
}

async fn leased(pool: &PgPool, chat: uuid::Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM leases WHERE resource = 'chat:' || $1::text)")
        .bind(chat)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// An earlier release kept chat_work with a catch-up subscription; the upgrade applies the
/// events it had not reached, once, and retires it.
#[tokio::test]
async fn the_upgrade_applies_what_the_old_subscription_had_not_reached_and_nothing_twice() {
    let db = TestDb::new();
    let pool = botfleet::db::connect(&db.url, 4).await.unwrap();
    let earlier_release = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            botfleet::db::MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version < 62)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    earlier_release.run(&pool).await.unwrap();
    let bot = uuid::Uuid::now_v7();
    let (seen, waiting) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    // A turn the old subscription had projected: applied again, it would count twice.
    let (txid, position) =
        append_raw(&pool, seen, 1, "MessageReceived", json!({"bot_id": bot})).await;
    sqlx::query(
        "INSERT INTO chat_work (chat_id, bot_id, open_turns, available_at, last_sequence)
         VALUES ($1, $2, 1, now(), 1)",
    )
    .bind(seen)
    .bind(bot)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscription_checkpoints (subscription, transaction_id, global_position)
         VALUES ('chat_work', $1::xid8, $2)",
    )
    .bind(&txid)
    .bind(position)
    .execute(&pool)
    .await
    .unwrap();
    // A turn recorded after the checkpoint: the old subscription never saw it.
    append_raw(&pool, waiting, 1, "MessageReceived", json!({"bot_id": bot})).await;

    botfleet::db::migrate(&pool).await.unwrap();

    assert_eq!(
        work_of(&pool, seen).await,
        Some((bot, 1)),
        "not applied twice"
    );
    assert_eq!(work_of(&pool, waiting).await, Some((bot, 1)), "caught up");
    let retired: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscription_checkpoints WHERE subscription = 'chat_work'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(retired, 0);
    // From now on every append keeps it, whoever appends; the append that ends the chat's
    // last open turn ends its lease too.
    lease(&pool, waiting).await;
    append_raw(&pool, waiting, 2, "TurnFailed", json!({})).await;
    assert_eq!(work_of(&pool, waiting).await, Some((bot, 0)));
    assert!(
        !leased(&pool, waiting).await,
        "the lease ended with the turn"
    );
    append_raw(&pool, waiting, 3, "TurnRetried", json!({})).await;
    assert_eq!(work_of(&pool, waiting).await, Some((bot, 1)));
    lease(&pool, waiting).await;
    // A refusal with a notice keeps the turn open for the notice; one without ends it.
    append_raw(
        &pool,
        waiting,
        4,
        "TurnRefused",
        json!({"bot_id": bot, "notified": true, "leave_chat": false}),
    )
    .await;
    assert_eq!(work_of(&pool, waiting).await, Some((bot, 1)));
    assert!(
        leased(&pool, waiting).await,
        "a turn still open keeps its lease"
    );
    append_raw(
        &pool,
        waiting,
        5,
        "TurnRefused",
        json!({"bot_id": bot, "notified": false, "leave_chat": false}),
    )
    .await;
    assert_eq!(work_of(&pool, waiting).await, Some((bot, 0)));
    assert!(!leased(&pool, waiting).await);
    // And a rebuild from the log gives the same rows.
    let kept: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT to_jsonb(w) - 'available_at' FROM chat_work w ORDER BY chat_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    projections::chat_work::rebuild(&pool).await.unwrap();
    let rebuilt: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT to_jsonb(w) - 'available_at' FROM chat_work w ORDER BY chat_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kept, rebuilt);
    pool.close().await;
}
