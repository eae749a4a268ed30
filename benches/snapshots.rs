//! What a command costs on a short chat and on a long one, with snapshots.
//!
//! `cargo bench --bench snapshots` builds chats in a fresh database — about 10 events and
//! about 10,000 (finished turns appended directly, as years of history would be) — then times the same
//! command on each through the command gateway: first without snapshots, then with them (the
//! first command on the long chat replays its history once and writes the snapshot; later
//! ones start from it). It prints the median and p90 per command.

use std::time::{Duration, Instant};

use aggregates::chat::{Chat, ChatCommand, ChatServices, IncomingMessage, TelegramChat};
use aggregates::ids::{BotId, ChatId, TurnKey, UpdateId};
use aggregates::personal::PersonalText;
use botfleet::event_store::{Actor, CommandGateway, EventMetadata};
use sqlx::PgPool;
use uuid::Uuid;

const SAMPLES: usize = 200;

fn message(bot_id: Uuid, chat: i64, update_id: i64) -> IncomingMessage {
    IncomingMessage {
        bot_id: BotId(bot_id),
        update_id: UpdateId(update_id),
        message_id: update_id,
        chat: TelegramChat {
            id: chat,
            kind: "private".into(),
            title: None,
            username: None,
        },
        from: None,
        text: PersonalText::plain(format!("message {update_id}")),
        sent_at: chrono::Utc::now(),
        media: None,
        files: Vec::new(),
    }
}

/// Appends a finished conversation of `events` events to the chat in bulk: turns of
/// MessageReceived, ResponseGenerated and ResponseSent, as years of history would be.
async fn append_history(pool: &PgPool, bot_id: Uuid, chat: i64, events: i64) {
    use aggregates::chat::{ChatEvent, GeneratedResponse, ResponseKind, TokenUsage};
    let aggregate_id = ChatId::of(BotId(bot_id), chat).to_string();
    let event = |sequence: i64| -> (String, &'static str, serde_json::Value) {
        let update_id = (sequence - 1) / 3 + 1;
        let event = match sequence % 3 {
            1 => ChatEvent::MessageReceived {
                bot_id: BotId(bot_id),
                update_id: UpdateId(update_id),
                message_id: update_id,
                chat: message(bot_id, chat, update_id).chat,
                from: None,
                text: PersonalText::plain(format!("message {update_id}")),
                sent_at: chrono::Utc::now(),
                media: None,
                files: Vec::new(),
            },
            2 => ChatEvent::ResponseGenerated {
                update_id: TurnKey::Update(UpdateId(update_id)),
                response: GeneratedResponse {
                    text: PersonalText::plain(format!("answer {update_id}")),
                    kind: ResponseKind::Llm {
                        model: "gpt-5-mini".into(),
                        response_id: Some(format!("resp_{update_id}")),
                        usage: TokenUsage::default(),
                        cost_micro_usd: 0,
                        charged_to: None,
                        context_turns: None,
                        stopped: false,
                    },
                },
            },
            _ => ChatEvent::ResponseSent {
                update_id: TurnKey::Update(UpdateId(update_id)),
                telegram_message_ids: vec![update_id],
            },
        };
        let version = if sequence % 3 == 0 { "1.0" } else { "2.0" };
        (
            cqrs_es::DomainEvent::event_type(&event),
            version,
            serde_json::to_value(event).unwrap(),
        )
    };
    let mut sequence = 1i64;
    while sequence <= events {
        let last = (sequence + 999).min(events);
        let (types, versions, payloads): (Vec<String>, Vec<&str>, Vec<serde_json::Value>) =
            itertools_unzip3((sequence..=last).map(event));
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'Chat', $1, s, t, v, p, '{}'
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::jsonb[]) AS x(s, t, v, p)",
        )
        .bind(&aggregate_id)
        .bind((sequence..=last).collect::<Vec<i64>>())
        .bind(types)
        .bind(versions)
        .bind(payloads)
        .execute(pool)
        .await
        .unwrap();
        sequence = last + 1;
    }
}

fn itertools_unzip3<A, B, C>(items: impl Iterator<Item = (A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (x, y, z) in items {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// Times `SAMPLES` commands on the chat (each a new message, so each appends one event).
async fn time_commands(
    gateway: &CommandGateway<Chat>,
    bot_id: Uuid,
    chat: i64,
    first_update: i64,
) -> (Duration, Duration, Duration) {
    let id = ChatId::of(BotId(bot_id), chat).to_string();
    let metadata = EventMetadata::new_request(Actor::System("bench"));
    let mut samples = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES as i64 {
        let started = Instant::now();
        gateway
            .execute(
                &id,
                ChatCommand::ReceiveMessage(message(bot_id, chat, first_update + n)),
                &metadata,
            )
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    let first = samples[0];
    (
        first,
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.9),
    )
}

#[tokio::main]
async fn main() {
    let server = std::env::var("BENCH_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("botfleet_bench_snapshots_{}", Uuid::new_v4().simple());
    let url = format!("{server}/{name}");
    botfleet::runtime::tls::install_crypto_provider();
    let pool = botfleet::db::connect(&url, 4).await.expect("connect");
    botfleet::db::migrate(&pool).await.expect("migrate");
    let bot_id = Uuid::now_v7();
    let (short, long) = (9i64, 9_999i64);
    append_history(&pool, bot_id, 1, short).await;
    append_history(&pool, bot_id, 2, long).await;
    append_history(&pool, bot_id, 3, short).await;
    append_history(&pool, bot_id, 4, long).await;

    println!("cost of one command (ReceiveMessage: load the chat, decide, append), {SAMPLES} samples each");
    println!("{:<34} {:>12} {:>12} {:>12}", "chat", "first", "p50", "p90");
    let plain = CommandGateway::<Chat>::new(pool.clone(), ChatServices);
    let snapshots = CommandGateway::<Chat>::with_snapshots(
        pool.clone(),
        ChatServices,
        botfleet::app::CHAT_SNAPSHOT_EVERY,
    );
    for (label, gateway, chat, events) in [
        ("10 events, no snapshots", &plain, 1, short),
        ("10,000 events, no snapshots", &plain, 2, long),
        ("10 events, snapshots every 50", &snapshots, 3, short),
        ("10,000 events, snapshots every 50", &snapshots, 4, long),
    ] {
        let (first, p50, p90) = time_commands(gateway, bot_id, chat, events / 3 + 1).await;
        println!(
            "{label:<34} {:>10.2}ms {:>10.2}ms {:>10.2}ms",
            ms(first),
            ms(p50),
            ms(p90)
        );
    }
    pool.close().await;
    let admin = PgPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
