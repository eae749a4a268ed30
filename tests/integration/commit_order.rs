//! Commit order across powers of ten: every reader of the stream sorts transaction ids as
//! numbers. Events are written with crafted transaction ids on both sides of 10, 100, 1000 and
//! 10000, with positions in the opposite order, as a busy cluster would produce them.

use std::sync::Arc;

use aggregates::bot::{BotEvent, SealedToken};
use botfleet::event_store::stream::read_batch;
use botfleet::runtime::backoff::Backoff;
use botfleet::subscriptions::{ProjectionRunner, SubscriptionProgress};
use chrono::{DateTime, Duration as Span, Utc};
use projections::{ProjectionError, Projector, RecordedEvent, StreamPosition};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use crate::helpers::{TestApp, TestDb};

/// Transaction ids on both sides of each power of ten up to 10^4.
pub const BOUNDARY_TXIDS: [u64; 8] = [9, 10, 99, 100, 999, 1000, 9999, 10000];

/// Makes the cluster's transaction counter pass `beyond`, so that crafted ids below it count
/// as settled (committed long ago). Each autocommit `pg_current_xact_id()` takes one id.
pub async fn burn_transaction_ids_past(pool: &PgPool, beyond: u64) {
    loop {
        let current: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(pool)
            .await
            .unwrap();
        if current.parse::<u64>().unwrap() > beyond + 1 {
            return;
        }
    }
}

/// One crafted event: which transaction wrote it and at which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crafted {
    pub transaction_id: u64,
    pub global_position: i64,
}

impl Crafted {
    pub fn position(self) -> String {
        format!("{}/{}", self.transaction_id, self.global_position)
    }
}

pub fn bot_created(bot_id: uuid::Uuid, name: &str) -> Value {
    serde_json::to_value(BotEvent::BotCreated {
        bot_id: aggregates::ids::BotId(bot_id),
        name: name.to_owned(),
        token: SealedToken {
            ciphertext: "v1.sealed".into(),
            fingerprint: format!("fp-{name}"),
            hint: "1:…abcd".into(),
        },
        start_message: "Hi".into(),
        error_message: "Oops".into(),
        model: "gpt-5-mini".into(),
        instructions: String::new(),
    })
    .unwrap()
}

pub fn bot_renamed(name: &str) -> Value {
    serde_json::to_value(BotEvent::BotUpdated {
        name: name.to_owned(),
        token: None,
        start_message: "Hi".into(),
        error_message: "Oops".into(),
        model: "gpt-5-mini".into(),
        instructions: String::new(),
    })
    .unwrap()
}

/// Inserts a bot event with the given transaction id and position.
#[allow(clippy::too_many_arguments)]
pub async fn insert_bot_event(
    conn: &mut PgConnection,
    at: Crafted,
    bot_id: uuid::Uuid,
    sequence: i64,
    event_type: &str,
    payload: Value,
    recorded_at: DateTime<Utc>,
) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, global_position, transaction_id, recorded_at)
         OVERRIDING SYSTEM VALUE
         VALUES ('Bot', $1, $2, $3, '1.0', $4, '{}', $5, $6::text::xid8, $7)",
    )
    .bind(bot_id.to_string())
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .bind(at.global_position)
    .bind(at.transaction_id.to_string())
    .bind(recorded_at)
    .execute(conn)
    .await
    .unwrap();
}

/// Eight bots created at the boundary ids, the lower id of each pair at the higher position
/// (commit order and position order disagree), at positions above `after_position`; returns
/// them in commit order.
async fn craft_boundary_bots(pool: &PgPool, after_position: i64) -> Vec<(Crafted, uuid::Uuid)> {
    burn_transaction_ids_past(pool, 10_000).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut crafted = Vec::new();
    let count = BOUNDARY_TXIDS.len() as i64;
    for (n, transaction_id) in BOUNDARY_TXIDS.iter().enumerate() {
        let at = Crafted {
            transaction_id: *transaction_id,
            global_position: after_position + count - n as i64,
        };
        let bot_id = uuid::Uuid::now_v7();
        let recorded_at = Utc::now() - Span::minutes(10) + Span::seconds(n as i64);
        insert_bot_event(
            &mut conn,
            at,
            bot_id,
            1,
            "BotCreated",
            bot_created(bot_id, &format!("bot-{transaction_id}")),
            recorded_at,
        )
        .await;
        crafted.push((at, bot_id));
    }
    crafted.sort();
    crafted
}

async fn read_all(pool: &PgPool, batch_size: i64) -> Vec<StreamPosition> {
    let mut conn = pool.acquire().await.unwrap();
    let mut after = StreamPosition::START;
    let mut seen = Vec::new();
    loop {
        let batch = read_batch(&mut conn, after, batch_size).await.unwrap();
        assert!(!batch.blocked, "crafted events are settled");
        for event in &batch.events {
            seen.push(event.position);
            after = event.position;
        }
        if batch.events.is_empty() {
            return seen;
        }
    }
}

fn positions(crafted: &[(Crafted, uuid::Uuid)]) -> Vec<StreamPosition> {
    crafted
        .iter()
        .map(|(at, _)| StreamPosition {
            transaction_id: at.transaction_id,
            global_position: at.global_position,
        })
        .collect()
}

#[tokio::test]
async fn the_subscription_reader_reads_across_powers_of_ten_in_batches_of_every_size() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let crafted = craft_boundary_bots(&pool, 0).await;
    let expected = positions(&crafted);
    for batch_size in 1..=expected.len() as i64 + 1 {
        assert_eq!(
            read_all(&pool, batch_size).await,
            expected,
            "batches of {batch_size}"
        );
    }
}

#[tokio::test]
async fn the_event_feed_and_export_page_across_powers_of_ten() {
    let app = TestApp::spawn().await;
    let crafted = craft_boundary_bots(&app.pool, 0).await;
    let expected: Vec<String> = crafted.iter().map(|(at, _)| at.position()).collect();
    for limit in 1..=expected.len() + 1 {
        let mut paged = Vec::new();
        let mut path = format!("/events?limit={limit}");
        loop {
            let (status, page) = app.get(&path).await;
            assert_eq!(status, 200, "{page}");
            paged.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["position"].as_str().unwrap().to_owned()),
            );
            match page["next_after"].as_str() {
                Some(after) => path = format!("/events?limit={limit}&after={after}"),
                None => break,
            }
        }
        assert_eq!(paged, expected, "pages of {limit}");
    }

    let output = crate::helpers::botfleet_cli(&app.db.url, &["events", "export"]).await;
    assert!(output.status.success());
    let exported: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["position"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(exported, expected);
    app.stop().await;
}

/// A bot created by transaction 999 at position 2 and renamed by transaction 1000 at
/// position 1: read as text, the rename would come first and be lost.
async fn craft_renamed_bot(pool: &PgPool) -> (uuid::Uuid, DateTime<Utc>) {
    burn_transaction_ids_past(pool, 1_000).await;
    let mut conn = pool.acquire().await.unwrap();
    let bot_id = uuid::Uuid::now_v7();
    // Whole seconds, so that an `as_of` in milliseconds names the instant exactly.
    let created_at = DateTime::from_timestamp(Utc::now().timestamp() - 300, 0).unwrap();
    insert_bot_event(
        &mut conn,
        Crafted {
            transaction_id: 999,
            global_position: 2,
        },
        bot_id,
        1,
        "BotCreated",
        bot_created(bot_id, "before"),
        created_at,
    )
    .await;
    insert_bot_event(
        &mut conn,
        Crafted {
            transaction_id: 1000,
            global_position: 1,
        },
        bot_id,
        2,
        "BotUpdated",
        bot_renamed("after"),
        created_at + Span::seconds(1),
    )
    .await;
    (bot_id, created_at)
}

#[tokio::test]
async fn time_travel_and_the_live_read_model_see_a_rename_across_a_power_of_ten() {
    let app = TestApp::spawn().await;
    let (bot_id, created_at) = craft_renamed_bot(&app.pool).await;
    crate::helpers::eventually(
        std::time::Duration::from_secs(10),
        "the live read model shows the rename",
        || async { app.get(&format!("/bots/{bot_id}")).await.1["name"] == "after" },
    )
    .await;
    let at = |instant: DateTime<Utc>| {
        format!(
            "/bots/{bot_id}?as_of={}",
            instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    };
    assert_eq!(app.get(&at(created_at)).await.1["name"], "before");
    assert_eq!(
        app.get(&at(created_at + Span::seconds(2))).await.1["name"],
        "after"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rebuild_replays_across_a_power_of_ten_and_stores_the_newest_checkpoint() {
    let db = TestDb::new();
    let pool = db.pool().await;
    let (bot_id, _) = craft_renamed_bot(&pool).await;
    let crafted = craft_boundary_bots(&pool, 2).await;
    let newest = positions(&crafted).into_iter().max().unwrap();

    let output = crate::helpers::botfleet_cli(&db.url, &["projections", "rebuild", "bots"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name: String = sqlx::query_scalar("SELECT name FROM bots WHERE id = $1")
        .bind(bot_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "after");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 9);
    let mut conn = pool.acquire().await.unwrap();
    let checkpoint = botfleet::subscriptions::checkpoints::load(&mut conn, "bots")
        .await
        .unwrap();
    assert_eq!(checkpoint, newest);
}

/// Writes every event it is given into `probe_delivered`, in the projector's transaction,
/// and now and then fails the batch as a transient fault would.
struct DeliveryProbe {
    failures: std::sync::Mutex<StdRng>,
}

#[async_trait::async_trait]
impl Projector for DeliveryProbe {
    fn name(&self) -> &'static str {
        "delivery_probe"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["probe_delivered"]
    }
    async fn project(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if self.failures.lock().unwrap().gen_bool(0.1) {
            return Err(ProjectionError::Database(sqlx::Error::PoolClosed));
        }
        sqlx::query(
            "INSERT INTO probe_delivered (transaction_id, global_position) VALUES ($1, $2)",
        )
        .bind(event.position.transaction_id as i64)
        .bind(event.position.global_position)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn random_interleavings_of_transaction_ids_reach_a_projector_once_each_in_order() {
    let db = TestDb::new();
    let pool = db.pool().await;
    burn_transaction_ids_past(&pool, 10_001).await;
    sqlx::query(
        "CREATE TABLE probe_delivered (n bigserial PRIMARY KEY, transaction_id bigint NOT NULL,
                                       global_position bigint NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let seed: u64 = std::env::var("COMMIT_ORDER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let near_boundaries: Vec<u64> = BOUNDARY_TXIDS
        .iter()
        .flat_map(|t| [t - 1, *t, t + 1])
        .collect();

    for case in 0..25 {
        // A fresh stream each case: TRUNCATE fires no row trigger, so the append-only guard
        // lets this test-only reset through.
        sqlx::query("TRUNCATE events, probe_delivered, subscription_checkpoints")
            .execute(&pool)
            .await
            .unwrap();
        let count = rng.gen_range(1..=40usize);
        let mut global_positions: Vec<i64> = (1..=count as i64).collect();
        global_positions.shuffle(&mut rng);
        let mut crafted: Vec<Crafted> = global_positions
            .into_iter()
            .map(|global_position| Crafted {
                // Several events may share a transaction.
                transaction_id: if rng.gen_bool(0.7) {
                    *near_boundaries.choose(&mut rng).unwrap()
                } else {
                    rng.gen_range(3..=10_001)
                },
                global_position,
            })
            .collect();
        let mut conn = pool.acquire().await.unwrap();
        for (n, at) in crafted.iter().enumerate() {
            let bot_id = uuid::Uuid::now_v7();
            insert_bot_event(
                &mut conn,
                *at,
                bot_id,
                1,
                "BotCreated",
                bot_created(bot_id, &format!("p{n}")),
                Utc::now(),
            )
            .await;
        }
        crafted.sort();
        let batch_size = rng.gen_range(1..=count as i64 + 1);
        let runner = ProjectionRunner::new(
            pool.clone(),
            Arc::new(DeliveryProbe {
                failures: std::sync::Mutex::new(StdRng::seed_from_u64(rng.gen())),
            }),
            SubscriptionProgress::new(pool.clone()),
        )
        .with_batch_size(batch_size)
        .with_retry_backoff(Backoff {
            base: std::time::Duration::from_millis(1),
            max: std::time::Duration::from_millis(4),
        });
        let newest = crafted.last().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(outcome) = runner.run_batch().await {
                if outcome.position.global_position == newest.global_position
                    && outcome.position.transaction_id == newest.transaction_id
                {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let delivered: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, global_position FROM probe_delivered ORDER BY n",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let expected: Vec<(i64, i64)> = crafted
            .iter()
            .map(|at| (at.transaction_id as i64, at.global_position))
            .collect();
        assert_eq!(
            delivered, expected,
            "case {case} of seed {seed} (COMMIT_ORDER_SEED={seed} repeats it), batches of {batch_size}"
        );
    }
}

/// Transaction ids are the server's, not the database's: a write transaction another
/// application leaves open on the same server must not hold Botfleet's readers back.
#[tokio::test]
async fn a_write_transaction_open_in_another_database_does_not_hold_the_stream_back() {
    let app = TestApp::spawn().await;
    let other = TestDb::new();
    let other_pool = other.pool().await;
    let mut held = other_pool.begin().await.unwrap();
    sqlx::query("CREATE TABLE held_open (x int)")
        .execute(&mut *held)
        .await
        .unwrap();
    sqlx::query("INSERT INTO held_open VALUES (1)")
        .execute(&mut *held)
        .await
        .unwrap();

    // Written after the other transaction took its id, so above it in commit order. The
    // answer itself waits for the `bots` read model (read-your-writes).
    let created = app
        .create_bot("Not held back", &crate::helpers::token(3))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, bot) = app.get(&format!("/bots/{id}")).await;
    assert_eq!(status, 200, "{bot}");
    let (_, feed) = app.get("/events?limit=1000").await;
    assert!(
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "BotCreated"),
        "the audit feed shows it too: {feed}"
    );

    held.rollback().await.unwrap();
    other_pool.close().await;
    app.stop().await;
}
