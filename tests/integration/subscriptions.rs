//! Catch-up subscriptions: commit order, crash safety and rebuilds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::{Bot, BotCommand, BotServices};
use botfleet::event_store::{Actor, CommandGateway, EventMetadata};
use botfleet::secrets::{TokenCipher, TokenKey};
use botfleet::subscriptions::{ProjectionRunner, SubscriptionProgress};
use projections::bots::BotProjector;
use projections::{ProjectionError, Projector, RecordedEvent, StreamPosition};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use crate::helpers::{eventually, token, TestApp, TestDb};

async fn append_created(conn: &mut PgConnection, name: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Bot', $1, 1, 'BotCreated', '1.0', $2, '{}')",
    )
    .bind(id.to_string())
    .bind(crate::commit_order::bot_created(uuid::Uuid::nil(), name))
    .execute(conn)
    .await
    .unwrap();
    id
}

async fn bot_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM bots ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Runs batches until `expected` events have been applied in total.
async fn project_until(runner: &ProjectionRunner, expected: usize) {
    let mut applied = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while applied < expected {
        applied += runner.run_batch().await.unwrap().applied;
        assert!(
            tokio::time::Instant::now() < deadline,
            "applied only {applied} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_lower_position_committing_late_is_not_skipped() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let runner = ProjectionRunner::new(
        pool.clone(),
        Arc::new(BotProjector),
        SubscriptionProgress::new(pool.clone()),
    );

    // A takes the lower position but commits last.
    let mut a = pool.begin().await.unwrap();
    append_created(&mut a, "a-lower-position").await;
    let mut b = pool.begin().await.unwrap();
    append_created(&mut b, "b-higher-position").await;
    b.commit().await.unwrap();

    let outcome = runner.run_batch().await.unwrap();
    assert_eq!(
        outcome.applied, 0,
        "nothing is read past a transaction in flight"
    );
    assert!(outcome.blocked);
    assert!(bot_names(&pool).await.is_empty());

    a.commit().await.unwrap();
    project_until(&runner, 2).await;
    assert_eq!(
        bot_names(&pool).await,
        ["a-lower-position", "b-higher-position"]
    );
}

#[tokio::test]
async fn an_older_transaction_with_a_higher_position_is_read_before_a_newer_one() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let runner = ProjectionRunner::new(
        pool.clone(),
        Arc::new(BotProjector),
        SubscriptionProgress::new(pool.clone()),
    );

    // A gets its transaction id first, B takes the lower position, A commits first with the
    // higher one: a reader that followed positions would now step past B's position.
    let mut a = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *a)
        .await
        .unwrap();
    let mut b = pool.begin().await.unwrap();
    append_created(&mut b, "b-lower-position").await;
    append_created(&mut a, "a-higher-position").await;
    a.commit().await.unwrap();

    project_until(&runner, 1).await;
    assert_eq!(bot_names(&pool).await, ["a-higher-position"]);

    b.commit().await.unwrap();
    project_until(&runner, 1).await;
    assert_eq!(
        bot_names(&pool).await,
        ["a-higher-position", "b-lower-position"]
    );
}

/// Delegates to the real projector but fails at its `fail_at`-th event, like a process that
/// dies in the middle of a batch.
struct CrashingProjector {
    inner: BotProjector,
    seen: AtomicUsize,
    fail_at: usize,
}

#[async_trait::async_trait]
impl Projector for CrashingProjector {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }
    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(ProjectionError::Database(sqlx::Error::PoolClosed));
        }
        self.inner.project(tx, event).await
    }
}

#[tokio::test]
async fn events_committed_before_a_crash_are_projected_after_restart() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let cipher = Arc::new(TokenCipher::new(&TokenKey::from_bytes([7; 32])));
    let gateway = CommandGateway::<Bot>::new(pool.clone(), BotServices::new(cipher));

    // The commands commit, and no projection runs: delivery died right after the commits.
    let mut ids = Vec::new();
    for n in 0..4u32 {
        let id = uuid::Uuid::now_v7();
        let settings = aggregates::bot::BotSettings {
            name: aggregates::bot::BotName::parse(&format!("bot-{n}")).unwrap(),
            start_message: aggregates::bot::BotMessage::parse("Hi").unwrap(),
            error_message: aggregates::bot::BotMessage::parse("Oops").unwrap(),
            model: aggregates::bot::ModelName::parse("gpt-5-mini").unwrap(),
            instructions: aggregates::bot::Instructions::parse("").unwrap(),
            streaming: None,
        };
        let metadata = EventMetadata::new_request(Actor::System("test"));
        let create = BotCommand::Create {
            bot_id: aggregates::ids::BotId(id),
            token: aggregates::bot::BotToken::parse(&token(n)).unwrap(),
            settings,
        };
        gateway
            .execute(&id.to_string(), create, &metadata)
            .await
            .unwrap();
        gateway
            .execute(&id.to_string(), BotCommand::Enable, &metadata)
            .await
            .unwrap();
        ids.push(id);
    }
    assert!(bot_names(&pool).await.is_empty());
    // Transactions of other tests' databases hold the server-wide horizon back for a moment;
    // once all eight events are settled they stay so, and the batch below reads them all.
    eventually(
        Duration::from_secs(10),
        "the eight events are settled",
        || async {
            let mut conn = pool.acquire().await.unwrap();
            botfleet::event_store::stream::read_batch(&mut conn, StreamPosition::START, 100)
                .await
                .unwrap()
                .events
                .len()
                == 8
        },
    )
    .await;

    // A runner that dies in the middle of its first batch leaves no trace of it.
    let crashing = ProjectionRunner::new(
        pool.clone(),
        Arc::new(CrashingProjector {
            inner: BotProjector,
            seen: AtomicUsize::new(0),
            fail_at: 5,
        }),
        SubscriptionProgress::new(pool.clone()),
    );
    assert!(crashing.run_batch().await.is_err());
    assert!(
        bot_names(&pool).await.is_empty(),
        "the failed batch was rolled back whole"
    );
    let mut conn = pool.acquire().await.unwrap();
    let checkpoint = botfleet::subscriptions::checkpoints::load(&mut conn, "bots")
        .await
        .unwrap();
    assert_eq!(checkpoint, StreamPosition::START);

    // The restarted runner projects every event, once.
    let restarted = ProjectionRunner::new(
        pool.clone(),
        Arc::new(BotProjector),
        SubscriptionProgress::new(pool.clone()),
    );
    project_until(&restarted, 8).await;
    let rows: Vec<(uuid::Uuid, bool, i64)> =
        sqlx::query_as("SELECT id, is_active, version FROM bots ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<_> = ids.iter().map(|id| (*id, true, 2)).collect();
    assert_eq!(rows, expected);
    assert_eq!(
        restarted.run_batch().await.unwrap().applied,
        0,
        "nothing is applied twice"
    );
}

#[tokio::test]
async fn a_running_application_catches_up_after_a_restart() {
    let app = TestApp::spawn().await;
    let id = app.create_bot("Support", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (db, key) = {
        let TestApp {
            app: running,
            db,
            token_key,
            ..
        } = app;
        running.unwrap().stop().await.unwrap();
        (db, token_key)
    };
    // While it is down, more events arrive (from another process, say).
    let pool = db.pool().await;
    let cipher = Arc::new(TokenCipher::new(&TokenKey::from_base64(&key).unwrap()));
    let gateway = CommandGateway::<Bot>::new(pool.clone(), BotServices::new(cipher));
    gateway
        .execute(
            &id,
            BotCommand::Enable,
            &EventMetadata::new_request(Actor::System("test")),
        )
        .await
        .unwrap();
    pool.close().await;

    let app = TestApp::spawn_on(db, key).await;
    eventually(
        Duration::from_secs(10),
        "the restarted app projects the missed event",
        || async { app.get(&format!("/bots/{id}")).await.1["status"] == "enabled" },
    )
    .await;
    app.stop().await;
}

async fn read_model_rows(pool: &PgPool) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT to_jsonb(b) FROM bots b ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_rebuilt_read_model_equals_the_live_one_row_for_row() {
    let app = TestApp::spawn().await;
    for n in 0..6u32 {
        let id = app.create_bot(&format!("Bot {n}"), &token(n)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if n % 2 == 0 {
            app.post(&format!("/bots/{id}/enable"), json!(null)).await;
        }
        if n % 3 == 0 {
            app.put(
                &format!("/bots/{id}"),
                json!({"name": format!("Renamed {n}"), "model": "gpt-5", "start_message": "Hi",
                       "error_message": "Oops", "instructions": "x", "token": token(100 + n)}),
            )
            .await;
        }
        if n == 5 {
            app.delete(&format!("/bots/{id}")).await;
        }
    }
    let live = read_model_rows(&app.pool).await;
    assert_eq!(live.len(), 6);

    // The operator's command, against the running application's database.
    let output = crate::helpers::botfleet_cli(&app.db.url, &["projections", "rebuild"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("bots: rebuilt from"));

    assert_eq!(read_model_rows(&app.pool).await, live);
    // The live runner goes on from the rebuilt checkpoint.
    let id = app.create_bot("After rebuild", &token(99)).await["id"].clone();
    let (_, list) = app.get("/bots").await;
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"] == id));
    app.stop().await;
}

/// A projector that refuses every event.
struct BrokenProjector;

#[async_trait::async_trait]
impl Projector for BrokenProjector {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
    async fn project(
        &self,
        _: &mut PgConnection,
        _: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        Err(ProjectionError::Database(sqlx::Error::PoolClosed))
    }
}

#[tokio::test]
async fn a_broken_projector_holds_back_only_its_own_read_model() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let mut conn = pool.acquire().await.unwrap();
    append_created(&mut conn, "alpha").await;
    append_created(&mut conn, "beta").await;
    let group = ProjectionRunner::group(
        pool.clone(),
        vec![Arc::new(BrokenProjector), Arc::new(BotProjector)],
        SubscriptionProgress::new(pool.clone()),
    );
    // The shared transaction fails whole; the runner then projects each on its own.
    eventually(
        Duration::from_secs(10),
        "the bots are projected",
        || async {
            let _ = group.run_batch().await;
            bot_names(&pool).await == ["alpha", "beta"]
        },
    )
    .await;
    let broken = botfleet::subscriptions::checkpoints::load(&mut conn, "broken")
        .await
        .unwrap();
    assert_eq!(
        broken,
        StreamPosition::START,
        "the broken one saw nothing through"
    );
    let bots = botfleet::subscriptions::checkpoints::load(&mut conn, "bots")
        .await
        .unwrap();
    assert!(bots > StreamPosition::START);
}
