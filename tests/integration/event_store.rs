//! What the event store holds: ordered, attributed, append-only, and free of secrets.

use serde_json::json;
use sqlx::Row;

use crate::helpers::{token, TestApp};
use aggregates::ids::{BotId, TurnKey, UpdateId};

#[tokio::test]
async fn every_bot_operation_is_an_ordered_event_with_metadata() {
    let app = TestApp::spawn().await;
    let id = app.create_bot("Support", &token(1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.put(
        &format!("/bots/{id}"),
        json!({"name": "Sales", "model": "gpt-5", "start_message": "Hi", "error_message": "Oops", "instructions": ""}),
    )
    .await;
    app.post(&format!("/bots/{id}/enable"), json!(null)).await;
    app.post(&format!("/bots/{id}/disable"), json!(null)).await;
    app.delete(&format!("/bots/{id}")).await;

    let rows = sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, metadata,
                global_position, transaction_id::text AS transaction_id, recorded_at
         FROM events ORDER BY transaction_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let types: Vec<String> = rows.iter().map(|r| r.get("event_type")).collect();
    assert_eq!(
        types,
        [
            "BotCreated",
            "BotUpdated",
            "BotEnabled",
            "BotDisabled",
            "BotDeleted"
        ]
    );
    let mut event_ids = std::collections::HashSet::new();
    let mut correlations = std::collections::HashSet::new();
    let mut last_position = 0i64;
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<String, _>("aggregate_type"), "Bot");
        assert_eq!(row.get::<String, _>("aggregate_id"), id);
        assert_eq!(row.get::<i64, _>("sequence"), n as i64 + 1);
        assert_eq!(row.get::<String, _>("event_version"), "1.0");
        let position: i64 = row.get("global_position");
        assert!(
            position > last_position,
            "positions grow in commit order here"
        );
        last_position = position;
        assert!(
            row.get::<String, _>("transaction_id")
                .parse::<u64>()
                .unwrap()
                > 0
        );
        let _: chrono::DateTime<chrono::Utc> = row.get("recorded_at");
        let metadata: serde_json::Value = row.get("metadata");
        for key in ["event_id", "correlation_id", "causation_id"] {
            let value = metadata[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in {metadata}"));
            uuid::Uuid::parse_str(value).unwrap();
        }
        // The logged-in admin, by id (see auth::what_an_admin_does_is_recorded_…).
        assert!(
            metadata["actor"]
                .as_str()
                .is_some_and(|actor| actor.starts_with("admin:")),
            "{metadata}"
        );
        event_ids.insert(metadata["event_id"].as_str().unwrap().to_owned());
        correlations.insert(metadata["correlation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(event_ids.len(), 5, "every event has its own id");
    assert_eq!(correlations.len(), 5, "every request is its own story");
    app.stop().await;
}

#[tokio::test]
async fn no_table_holds_a_bot_token_in_plaintext() {
    let app = TestApp::spawn().await;
    let plaintext = token(42);
    let id = app.create_bot("Support", &plaintext).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replacement = token(43);
    app.put(
        &format!("/bots/{id}"),
        json!({"name": "Support", "model": "gpt-5", "start_message": "Hi", "error_message": "Oops",
               "instructions": "", "token": replacement}),
    )
    .await;
    let secret_parts: Vec<String> = [&plaintext, &replacement]
        .iter()
        .map(|t| t.split_once(':').unwrap().1.to_owned())
        .collect();

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(tables.contains(&"events".to_owned()) && tables.contains(&"bots".to_owned()));
    for table in &tables {
        for secret in &secret_parts {
            let hits: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'"
            ))
            .bind(secret)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(hits, 0, "table {table} holds a token in plaintext");
        }
    }
    // And the API never shows it either.
    let (_, listed) = app.get("/bots").await;
    for secret in &secret_parts {
        assert!(!listed.to_string().contains(secret.as_str()));
    }
    app.stop().await;
}

#[tokio::test]
async fn the_event_log_refuses_to_be_rewritten() {
    let app = TestApp::spawn().await;
    app.create_bot("Support", &token(1)).await;
    let update = sqlx::query("UPDATE events SET event_type = 'Forged'")
        .execute(&app.pool)
        .await;
    assert!(update.is_err());
    let delete = sqlx::query("DELETE FROM events").execute(&app.pool).await;
    assert!(delete.is_err());
    assert_eq!(app.event_count().await, 1);
    app.stop().await;
}

/// A chat read through its snapshots (and through the in-memory copy of recent chats) is the
/// same chat as the one its events replay to, however many snapshots were taken on the way.
#[tokio::test]
async fn snapshots_and_remembered_chats_equal_a_full_replay() {
    use aggregates::chat::{
        Chat, ChatCommand, ChatServices, GeneratedResponse, IncomingMessage, ResponseKind,
        TelegramChat,
    };
    use aggregates::personal::PersonalText;
    use botfleet::event_store::{Actor, CommandGateway, EventMetadata};

    let db = crate::helpers::TestDb::new();
    let pool = db.pool().await;
    let snapshots_every = 5;
    let remembered =
        CommandGateway::<Chat>::with_snapshots(pool.clone(), ChatServices, snapshots_every)
            .with_recent(16);
    let plain = CommandGateway::<Chat>::with_snapshots(pool.clone(), ChatServices, snapshots_every);
    let replay = CommandGateway::<Chat>::new(pool.clone(), ChatServices);
    let chat_id = uuid::Uuid::new_v4().to_string();
    let metadata = EventMetadata::caused_by(
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        Actor::System("test"),
    );
    // 13 turns of three events each cross the snapshot interval several times, at every
    // offset within a command.
    for update_id in 1..=13_i64 {
        let gateway = if update_id % 2 == 0 {
            &remembered
        } else {
            &plain
        };
        let message = IncomingMessage {
            bot_id: BotId(uuid::Uuid::from_u128(1)),
            update_id: UpdateId(update_id),
            message_id: update_id,
            chat: TelegramChat {
                id: 42,
                kind: "private".into(),
                title: None,
                username: None,
            },
            from: None,
            text: PersonalText::plain(format!("question {update_id}")),
            sent_at: chrono::Utc::now(),
            media: None,
            files: Vec::new(),
        };
        gateway
            .execute(&chat_id, ChatCommand::ReceiveMessage(message), &metadata)
            .await
            .expect("message recorded");
        let response = ChatCommand::RecordResponse {
            update_id: TurnKey::Update(UpdateId(update_id)),
            response: GeneratedResponse {
                text: PersonalText::plain(format!("answer {update_id}")),
                kind: ResponseKind::Notice,
            },
            reset_conversation: false,
        };
        gateway
            .execute(&chat_id, response, &metadata)
            .await
            .expect("response recorded");
        let sent = ChatCommand::RecordSent {
            update_id: TurnKey::Update(UpdateId(update_id)),
            telegram_message_ids: vec![update_id],
        };
        gateway
            .execute(&chat_id, sent, &metadata)
            .await
            .expect("sending recorded");
        let replayed = replay.load(&chat_id).await.expect("replayed");
        assert_eq!(
            plain
                .load(&chat_id)
                .await
                .expect("loaded from the snapshot"),
            replayed,
            "after update {update_id}"
        );
        assert_eq!(
            remembered
                .load_current(&chat_id, None)
                .await
                .expect("remembered, or read again when another writer moved it on")
                .state(),
            &replayed,
            "after update {update_id}"
        );
        assert!(replayed.next_turn().is_none(), "every turn is closed");
    }
    let snapshots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM snapshots WHERE aggregate_id = $1")
            .bind(&chat_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(snapshots, 1, "one snapshot row, updated in place");

    // A snapshot the code can no longer read (the aggregate's shape changed) is passed over:
    // every event is replayed instead.
    sqlx::query("UPDATE snapshots SET payload = '\"an older shape\"' WHERE aggregate_id = $1")
        .bind(&chat_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        plain.load(&chat_id).await.expect("loaded by replay"),
        replay.load(&chat_id).await.expect("replayed")
    );
}
