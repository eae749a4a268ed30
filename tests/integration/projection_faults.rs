//! Poison events and repairs: a projector that keeps failing on an event pauses or parks it
//! (by its policy) and says so; operators retry or skip; a rebuild under traffic leaves every
//! subscription current; a database wedged by an older release is repaired at start.

use std::borrow::Cow;
use std::time::Duration;

use botfleet::subscriptions::checkpoints;
use chrono::Utc;
use projections::StreamPosition;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::commit_order::{bot_created, insert_bot_event, Crafted};
use crate::fakes::telegram::text_update;
use crate::helpers::{eventually, token, Fakes, TestApp, TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// Appends an event as a writer would (position and transaction from the database).
async fn append(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    payload: Value,
) -> String {
    let (txid, position): (String, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, $3, $4, '1.0', $5, '{}')
         RETURNING transaction_id::text, global_position",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .fetch_one(pool)
    .await
    .unwrap();
    format!("{txid}/{position}")
}

async fn append_bot(pool: &PgPool, name: &str) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    append(
        pool,
        "Bot",
        &id.to_string(),
        1,
        "BotCreated",
        bot_created(id, name),
    )
    .await;
    id
}

async fn bot_exists(pool: &PgPool, id: uuid::Uuid) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bots WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn subscription<'a>(queue: &'a Value, name: &str) -> &'a Value {
    queue["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {queue}"))
}

async fn cli(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let output = crate::helpers::botfleet_cli(db_url, args).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_pausing_projection_stops_before_a_poison_event_until_an_operator_retries_it() {
    let app = TestApp::spawn().await;
    // A broken read-model table, as a bad manual change would leave it: one bot cannot be
    // written.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.name = 'poison' THEN RAISE EXCEPTION 'the poison bot'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON bots FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let poison = append_bot(&app.pool, "poison").await;
    let after = append_bot(&app.pool, "after").await;

    eventually(WAIT, "bots pauses before the poison event", || async {
        let (status, queue) = app.get("/health/queue").await;
        status == 503 && subscription(&queue, "bots")["status"] == "paused"
    })
    .await;
    let (_, queue) = app.get("/health/queue").await;
    let paused_before = subscription(&queue, "bots")["paused_before"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !bot_exists(&app.pool, after).await,
        "nothing after the poison event is projected"
    );
    let (status, list) = app.get("/projections").await;
    assert_eq!(status, 200, "{list}");
    let bots = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bots")
        .unwrap();
    assert_eq!(bots["status"], "paused");
    assert_eq!(bots["poison_policy"], "pause");
    let fault = &bots["open_faults"][0];
    assert_eq!(fault["position"], paused_before.as_str());
    assert_eq!(fault["event_type"], "BotCreated");
    assert_eq!(fault["aggregate_id"], poison.to_string());
    assert_eq!(fault["attempts"], 3, "PROJECTION_MAX_ATTEMPTS of the tests");
    assert!(
        fault["error"].as_str().unwrap().contains("the poison bot"),
        "{fault}"
    );
    let (ok, status_out, _) = cli(&app.db.url, &["projections", "status"]).await;
    assert!(ok);
    assert!(
        status_out.contains("PAUSED") && status_out.contains(&paused_before),
        "{status_out}"
    );

    // Retrying without fixing the cause pauses again, attempts adding up.
    let (status, body) = app.post("/projections/bots/retry", Value::Null).await;
    assert_eq!(status, 200, "{body}");
    eventually(WAIT, "bots pauses again", || async {
        let (_, list) = app.get("/projections/bots/faults").await;
        list["items"][0]["status"] == "paused" && list["items"][0]["attempts"] == 6
    })
    .await;

    // Fixed, and retried: everything is projected, in order.
    sqlx::query("DROP TRIGGER refuse_poison ON bots")
        .execute(&app.pool)
        .await
        .unwrap();
    let (ok, out, err) = cli(&app.db.url, &["projections", "retry", "bots"]).await;
    assert!(ok, "{out}{err}");
    eventually(WAIT, "bots catches up", || async {
        bot_exists(&app.pool, poison).await && bot_exists(&app.pool, after).await
    })
    .await;
    eventually(WAIT, "the queue is healthy", || async {
        app.get("/health/queue").await.0 == 200
    })
    .await;
    let (_, faults) = app.get("/projections/bots/faults").await;
    assert_eq!(faults["items"][0]["status"], "retried");
    assert_eq!(faults["items"][0]["resolved_by"], "cli:operator");
    // Retrying a projection that is not paused is refused.
    assert_eq!(
        app.post("/projections/bots/retry", Value::Null).await.0,
        409
    );
    app.stop().await;
}

#[tokio::test]
async fn a_skipped_poison_event_is_stepped_over_and_stays_skipped_through_a_rebuild() {
    let app = TestApp::spawn().await;
    let bot = uuid::Uuid::now_v7();
    append(
        &app.pool,
        "Bot",
        &bot.to_string(),
        1,
        "BotCreated",
        bot_created(bot, "good"),
    )
    .await;
    // An event the code cannot read (as a bad release, or a hand-made row, would leave it).
    let poison = append(
        &app.pool,
        "Bot",
        &bot.to_string(),
        2,
        "BotUpdated",
        json!({"BotUpdated": {"nonsense": true}}),
    )
    .await;
    let after = append_bot(&app.pool, "after").await;
    eventually(WAIT, "bots pauses", || async {
        subscription(&app.get("/health/queue").await.1, "bots")["status"] == "paused"
    })
    .await;
    // An unknown event, or a wrong projection, is refused and changes nothing.
    assert_eq!(
        app.post("/projections/bots/skip", json!({"event": "1/1"}))
            .await
            .0,
        409
    );
    assert_eq!(
        app.post("/projections/nope/skip", json!({"event": poison}))
            .await
            .0,
        404
    );

    let (status, body) = app
        .post("/projections/bots/skip", json!({"event": poison}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["status"], "skipped");
    assert!(body["items"][0]["resolved_by"]
        .as_str()
        .unwrap()
        .starts_with("admin:"));
    eventually(WAIT, "bots goes on past the skipped event", || async {
        bot_exists(&app.pool, after).await
    })
    .await;
    eventually(WAIT, "the queue is healthy", || async {
        app.get("/health/queue").await.0 == 200
    })
    .await;

    // A rebuild honours the operator's decision instead of stopping at the event again.
    let (ok, out, err) = cli(&app.db.url, &["projections", "rebuild", "bots"]).await;
    assert!(ok, "{out}{err}");
    assert!(bot_exists(&app.pool, bot).await && bot_exists(&app.pool, after).await);
    app.stop().await;
}

#[tokio::test]
async fn a_parking_projection_goes_on_without_a_poison_event_and_the_runners_index_refuses_one() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("A", &token(1)).await;

    // chat_work, the effect runner's index, is kept by the append: a turn it cannot read is
    // refused with its append, rather than recorded and never worked.
    let unreadable_turn = uuid::Uuid::now_v7();
    let refused = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('Chat', $1, 1, 'MessageReceived', '2.0', $2, '{}')",
    )
    .bind(unreadable_turn.to_string())
    .bind(json!({"MessageReceived": {"nonsense": true}}))
    .execute(&app.pool)
    .await
    .expect_err("a turn without its bot is refused");
    assert!(refused.to_string().contains("bot_id"), "{refused}");
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(unreadable_turn.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0, "nothing of the refused append is kept");

    // An event the index has no use for, but the chats read model cannot read.
    let broken_chat = uuid::Uuid::now_v7();
    let poison = append(
        &app.pool,
        "Chat",
        &broken_chat.to_string(),
        1,
        "ResponseGenerated",
        json!({"ResponseGenerated": {"nonsense": true}}),
    )
    .await;
    // chats parks it: the read model goes on (and stays healthy, with the count shown).
    eventually(WAIT, "chats parks the event", || async {
        let (_, queue) = app.get("/health/queue").await;
        subscription(&queue, "chats")["parked_events"] == 1
    })
    .await;
    let (_, queue) = app.get("/health/queue").await;
    assert_eq!(subscription(&queue, "chats")["status"], "ok", "{queue}");
    app.deliver(&bot, &text_update(1, 42, "hello")).await;
    eventually(WAIT, "the chats read model shows the new chat", || async {
        app.get("/chats").await.1["items"].as_array().unwrap().len() == 1
    })
    .await;
    fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;

    // The operator's skip resolves it.
    let (ok, out, err) = cli(&app.db.url, &["projections", "skip", &poison]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("chats: skipped"), "{out}");
    eventually(WAIT, "the queue is healthy with nothing parked", || async {
        let (status, queue) = app.get("/health/queue").await;
        status == 200 && subscription(&queue, "chats")["parked_events"] == 0
    })
    .await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("botfleet_subscription_paused{subscription=\"chats\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}

/// What the releases before migration 0013 could leave behind: a rebuild that stored a
/// checkpoint behind the rows it had written, after which the live runner failed on every
/// event it read again (`duplicate key … bots_pkey`).
#[tokio::test]
async fn a_database_wedged_by_an_older_release_is_repaired_when_the_new_one_starts() {
    let db = TestDb::new();
    let pool = botfleet::db::connect(&db.url, 4).await.unwrap();
    let before_the_fix = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            botfleet::db::MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version < 13)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before_the_fix.run(&pool).await.unwrap();
    crate::commit_order::burn_transaction_ids_past(&pool, 1_000).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut ids = Vec::new();
    for (n, (transaction_id, global_position)) in
        [(998, 3), (999, 2), (1000, 1)].into_iter().enumerate()
    {
        let id = uuid::Uuid::now_v7();
        insert_bot_event(
            &mut conn,
            Crafted {
                transaction_id,
                global_position,
            },
            id,
            1,
            "BotCreated",
            bot_created(id, &format!("bot-{n}")),
            Utc::now(),
        )
        .await;
        // The old rebuild projected every bot...
        sqlx::query(
            "INSERT INTO bots (id, name, token_ciphertext, token_fingerprint, token_hint, start_message,
                               error_message, model, instructions, is_active, created_at, updated_at, version)
             VALUES ($1, $2, 'v1.sealed', $3, '1:…abcd', 'Hi', 'Oops', 'gpt-5-mini', '', false, now(), now(), 1)",
        )
        .bind(id)
        .bind(format!("bot-{n}"))
        .bind(format!("fp-bot-{n}"))
        .execute(&mut *conn)
        .await
        .unwrap();
        ids.push(id);
    }
    // ...but stored the checkpoint of the last row it read in text order, '999' < '1000'.
    sqlx::query("INSERT INTO subscription_checkpoints (subscription, transaction_id, global_position) VALUES ('bots', '998', 3)")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    pool.close().await;

    // The new release: migrations, then the one-time rebuild, then the live runners.
    let app = TestApp::spawn_on(db, crate::helpers::random_token_key()).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let checkpoint = checkpoints::load(&mut conn, "bots").await.unwrap();
    assert_eq!(
        checkpoint,
        StreamPosition {
            transaction_id: 1000,
            global_position: 1
        }
    );
    let required: bool = sqlx::query_scalar(
        "SELECT rebuild_required FROM subscription_checkpoints WHERE subscription = 'bots'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(!required);
    let (status, queue) = app.get("/health/queue").await;
    assert_eq!(status, 200, "{queue}");
    let (_, list) = app.get("/bots").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    // The live runner goes on: a new bot is registered and shown.
    let id = app.create_bot("New", &token(7)).await["id"].clone();
    assert_eq!(
        app.get(&format!("/bots/{}", id.as_str().unwrap())).await.0,
        200
    );
    let faults: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_faults")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(faults, 0);
    drop(conn);
    app.stop().await;
}

async fn read_models(pool: &PgPool) -> Value {
    let mut tables = serde_json::Map::new();
    for table in ["bots", "chats", "telegram_users", "messages", "chat_work"] {
        let rows: Vec<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        tables.insert(table.to_owned(), rows.into());
    }
    tables.into()
}

#[tokio::test]
async fn a_rebuild_while_the_service_runs_under_traffic_leaves_every_projection_current() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bots = [
        app.create_enabled_bot("A", &token(1)).await,
        app.create_enabled_bot("B", &token(2)).await,
    ];
    // Traffic: two bots, ten chats, 120 messages, while the operator rebuilds.
    let traffic = {
        let (base, http, secrets) = (
            app.base.clone(),
            app.http.clone(),
            bots.iter()
                .map(|b| (b.clone(), app.webhook_secret(b)))
                .collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            for n in 0..120i64 {
                let (bot, secret) = &secrets[(n % 2) as usize];
                let response = http
                    .post(format!("{base}/telegram/{bot}/webhook"))
                    .header("X-Telegram-Bot-Api-Secret-Token", secret)
                    .json(&text_update(
                        1000 + n,
                        100 + n % 10,
                        &format!("message {n}"),
                    ))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    for _ in 0..3 {
        let (ok, out, err) = cli(&app.db.url, &["projections", "rebuild"]).await;
        assert!(ok, "{out}{err}");
    }
    traffic.await.unwrap();
    fakes
        .telegram
        .wait_for_calls("sendMessage", 120, WAIT)
        .await;
    // Every checkpoint reaches the newest event, and no chat has work left.
    app.settle().await;
    let (status, queue) = app.get("/health/queue").await;
    assert_eq!(status, 200, "{queue}");
    let newest: String = sqlx::query_scalar(
        "SELECT transaction_id::text || '/' || global_position FROM events
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    for name in ["bots", "chats"] {
        assert_eq!(
            subscription(&queue, name)["checkpoint"],
            newest.as_str(),
            "{name}"
        );
    }
    assert_eq!(
        fakes.telegram.calls_of("sendMessage").len(),
        120,
        "every message answered once"
    );

    // The tables the live runners kept equal a rebuild from nothing.
    let live = read_models(&app.pool).await;
    let (ok, out, err) = cli(&app.db.url, &["projections", "rebuild"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(read_models(&app.pool).await, live);
    // The runner's index, which the appends keep, is rebuilt only when named, to the same rows.
    assert!(!out.contains("chat_work"), "{out}");
    let (ok, out, err) = cli(&app.db.url, &["projections", "rebuild", "chat_work"]).await;
    assert!(ok && out.contains("chat_work: rebuilt from"), "{out}{err}");
    assert_eq!(read_models(&app.pool).await, live);
    // And the live runners go on.
    app.deliver(&bots[0], &text_update(5000, 777, "after the rebuild"))
        .await;
    fakes
        .telegram
        .wait_for_calls("sendMessage", 121, WAIT)
        .await;
    eventually(WAIT, "the new chat is listed", || async {
        app.get("/chats?limit=100").await.1["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["telegram_chat_id"] == 777)
    })
    .await;
    app.stop().await;
}
