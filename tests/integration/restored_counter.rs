//! Events restored onto a server whose transaction counter is behind theirs: new events must
//! still sort after them. The start moves the counter past them (the embedded database's
//! restore uses `pg_resetwal -e` instead, in `fresh_machine`).

use chrono::Utc;

use crate::commit_order::{bot_created, insert_bot_event, Crafted};
use crate::helpers::{random_token_key, token, TestApp, TestDb};

#[tokio::test]
async fn a_start_moves_a_lagging_transaction_counter_past_the_stored_events() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let current: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    // An event "restored" from a server 50,000 transactions ahead of this one.
    let ahead = current.parse::<u64>().unwrap() + 50_000;
    let restored = uuid::Uuid::now_v7();
    let mut conn = pool.acquire().await.unwrap();
    insert_bot_event(
        &mut conn,
        Crafted {
            transaction_id: ahead,
            global_position: 1_000,
        },
        restored,
        1,
        "BotCreated",
        bot_created(restored, "restored"),
        Utc::now(),
    )
    .await;
    drop(conn);
    assert!(botfleet::db::transaction_counter_behind(&pool)
        .await
        .unwrap()
        .is_some());
    pool.close().await;

    let app = TestApp::spawn_on(db, random_token_key()).await;
    assert_eq!(
        botfleet::db::transaction_counter_behind(&app.pool)
            .await
            .unwrap(),
        None
    );
    // A new bot's event sorts after the restored one, so the projection sees both.
    let created = app.create_bot("New", &token(1)).await;
    let (_, list) = app.get("/bots").await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["restored", "New"], "{list}");
    assert_eq!(created["name"], "New");
    app.stop().await;
}
