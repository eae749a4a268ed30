//! How long the admin console takes to render its heaviest pages with 10,000 chats in the
//! database: the overview, a page of the chat list, and a 200-message conversation.
//!
//! `cargo bench --bench console`. It starts the release `botfleet serve` on a fresh database
//! (dropped at the end), registers 20 bots through the API, then fills the read models the
//! pages read, as the projectors would have written them: 10,000 people, each with a private
//! chat of one exchange, one chat of 100 exchanges (200 messages), and 30 days of usage per
//! bot. Names and texts are sealed per person, as in production, so every page pays for
//! opening them. Each page is then fetched 20 times to warm up and 200 times measured, one at
//! a time, over loopback, by a signed-in admin; the figures are the client's view of each
//! request (server time plus a loopback round trip, well under a millisecond).
//!
//! Settings: BENCH_DATABASE_SERVER (default `postgres://postgres@127.0.0.1:5432`),
//! BOTFLEET_BIN (default: the binary cargo built with this bench), BENCH_CHATS (10000).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const ADMIN_EMAIL: &str = "bench@example.com";
const ADMIN_PASSWORD: &str = "a bench admin passphrase";
const BOTS: usize = 20;
const WARM_UP: usize = 20;
const MEASURED: usize = 200;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    std::env::var_os("BOTFLEET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_botfleet")))
}

async fn start(database_url: &str, token_key: &str) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(binary())
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("TOKEN_ENCRYPTION_KEY", token_key)
        .env(
            "COOKIE_SECRET",
            "a bench cookie secret of more than thirty-two bytes",
        )
        .env("ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        // Nothing outside: no bot is enabled, so nothing calls Telegram or the model.
        .env("TELEGRAM_API_URL", "http://127.0.0.1:9")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("RATE_LIMIT_IP_PER_MINUTE", "0")
        .env("RATE_LIMIT_SESSION_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start botfleet serve")?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while reqwest::get(format!("{}/health", server.base))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("botfleet did not start within two minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(server)
}

/// A signed-in client: the session cookie and the CSRF header on every request.
async fn sign_in(base: &str) -> anyhow::Result<reqwest::Client> {
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await?;
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("a session cookie")?
        .to_owned();
    let body: Value = response.json().await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse()?);
    headers.insert(
        "x-csrf-token",
        body["csrf_token"]
            .as_str()
            .context("a CSRF token")?
            .parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Fills the read models with `chats` people and chats, one long conversation, and usage.
async fn seed(
    pool: &PgPool,
    vault: &botfleet::personal_data::PersonalDataVault,
    bots: &[Uuid],
    chats: usize,
) -> anyhow::Result<Uuid> {
    let now = Utc::now();
    let mut batch = Vec::new();
    for n in 0..chats {
        let person = 1_000_000 + n as i64;
        let name = vault
            .seal(person, &format!("Person {n}"))
            .await?
            .to_column();
        let username = vault.seal(person, &format!("person{n}")).await?.to_column();
        let question = vault
            .seal(person, "When are you open on Saturdays?")
            .await?
            .to_column();
        let answer = vault
            .seal(person, "We are open from 10:00 to 16:00 on Saturdays.")
            .await?
            .to_column();
        batch.push((
            person,
            bots[n % bots.len()],
            name,
            username,
            question,
            answer,
            now - chrono::Duration::seconds(n as i64),
        ));
        if batch.len() == 1000 || n + 1 == chats {
            insert_people(pool, &batch).await?;
            batch.clear();
        }
    }
    // One chat of 100 exchanges: 200 messages.
    let person = 999_999_i64;
    let chat = Uuid::new_v4();
    let title = vault.seal(person, "A long conversation").await?.to_column();
    sqlx::query(
        "INSERT INTO chats (id, bot_id, telegram_chat_id, chat_type, title, telegram_user_id,
            message_count, total_cost_micro_usd, created_at, last_activity_at, version)
         VALUES ($1, $2, $3, 'private', $4, $3, 200, 12100, $5, $5, 300)",
    )
    .bind(chat)
    .bind(bots[0])
    .bind(person)
    .bind(&title)
    .bind(now)
    .execute(pool)
    .await?;
    for turn in 0..100_i64 {
        let at = now - chrono::Duration::minutes(200 - turn * 2);
        let question = vault
            .seal(
                person,
                &format!(
                    "Question number {turn}: how does the premium plan differ from the basic one?"
                ),
            )
            .await?
            .to_column();
        let answer = vault.seal(person, &format!("Answer {turn}: the premium plan adds priority support, a higher message limit and exports of your history. **Upgrade** any time from the settings page.")).await?.to_column();
        sqlx::query(
            "INSERT INTO messages (chat_id, update_id, role, text, status, telegram_user_id,
                created_at, turn_id, telegram_message_id)
             VALUES ($1, $2, 'user', $3, 'answered', $4, $5, gen_random_uuid(), $2 * 10);
             ",
        )
        .bind(chat)
        .bind(turn + 1)
        .bind(&question)
        .bind(person)
        .bind(at)
        .execute(pool)
        .await?;
        sqlx::query(
            "INSERT INTO messages (chat_id, update_id, role, text, status, response_kind, model,
                input_tokens, cached_input_tokens, output_tokens, reasoning_tokens,
                cost_micro_usd, created_at, sent_at, telegram_message_ids)
             VALUES ($1, $2, 'bot', $3, 'sent', 'llm', 'gpt-5-mini', 100, 20, 50, 10, 121,
                $4, $4, ARRAY[$2 * 10 + 1])",
        )
        .bind(chat)
        .bind(turn + 1)
        .bind(&answer)
        .bind(at + chrono::Duration::milliseconds(1800))
        .execute(pool)
        .await?;
    }
    // Thirty days of usage per bot.
    sqlx::query(
        "INSERT INTO usage_daily (bot_id, day, messages, turns, failed_turns, input_tokens,
            cached_input_tokens, output_tokens, reasoning_tokens, cost_micro_usd)
         SELECT b, $2::date - d, 300 + d * 7, 290 + d * 7, d % 3, 30000, 6000, 15000, 3000,
                36300 + d * 900
         FROM unnest($1::uuid[]) AS b, generate_series(0, 29) AS d",
    )
    .bind(bots)
    .bind(now.date_naive())
    .execute(pool)
    .await?;
    Ok(chat)
}

type Person = (
    i64,
    Uuid,
    String,
    String,
    String,
    String,
    chrono::DateTime<Utc>,
);

async fn insert_people(pool: &PgPool, people: &[Person]) -> anyhow::Result<()> {
    let ids: Vec<i64> = people.iter().map(|p| p.0).collect();
    let bots: Vec<Uuid> = people.iter().map(|p| p.1).collect();
    let names: Vec<&str> = people.iter().map(|p| p.2.as_str()).collect();
    let usernames: Vec<&str> = people.iter().map(|p| p.3.as_str()).collect();
    let questions: Vec<&str> = people.iter().map(|p| p.4.as_str()).collect();
    let answers: Vec<&str> = people.iter().map(|p| p.5.as_str()).collect();
    let times: Vec<chrono::DateTime<Utc>> = people.iter().map(|p| p.6).collect();
    sqlx::query(
        "WITH p AS (
            SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::timestamptz[])
                AS t(id, bot_id, name, username, question, answer, at)
         ), users AS (
            INSERT INTO telegram_users (id, is_bot, first_name, username, language_code,
                first_seen_at, last_seen_at)
            SELECT id, false, name, username, 'en', at, at FROM p
         ), chats AS (
            INSERT INTO chats (id, bot_id, telegram_chat_id, chat_type, username,
                telegram_user_id, message_count, total_cost_micro_usd, created_at,
                last_activity_at, version)
            SELECT md5(id::text)::uuid, bot_id, id, 'private', username, id, 2, 121, at, at, 3
            FROM p
         ), questions AS (
            INSERT INTO messages (chat_id, update_id, role, text, status, telegram_user_id,
                created_at, turn_id, telegram_message_id)
            SELECT md5(id::text)::uuid, 1, 'user', question, 'answered', id, at,
                   gen_random_uuid(), 10
            FROM p
         )
         INSERT INTO messages (chat_id, update_id, role, text, status, response_kind, model,
            input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_micro_usd,
            created_at, sent_at, telegram_message_ids)
         SELECT md5(id::text)::uuid, 1, 'bot', answer, 'sent', 'llm', 'gpt-5-mini', 100, 20,
                50, 10, 121, at, at, ARRAY[11::bigint]
         FROM p",
    )
    .bind(&ids)
    .bind(&bots)
    .bind(&names)
    .bind(&usernames)
    .bind(&questions)
    .bind(&answers)
    .bind(&times)
    .execute(pool)
    .await?;
    Ok(())
}

/// Fetches `path` and returns how long it took; fails unless it is a 200 page.
async fn fetch(client: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client.get(format!("{base}{path}")).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    let took = started.elapsed();
    if status != 200 {
        bail!("{path} answered {status}");
    }
    if body.len() < 1000 {
        bail!("{path} answered a page of only {} bytes", body.len());
    }
    Ok(took)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(
    client: &reqwest::Client,
    base: &str,
    label: &str,
    path: &str,
) -> anyhow::Result<()> {
    for _ in 0..WARM_UP {
        fetch(client, base, path).await?;
    }
    let mut times = Vec::with_capacity(MEASURED);
    for _ in 0..MEASURED {
        times.push(fetch(client, base, path).await?);
    }
    times.sort();
    let at = |q: f64| millis(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
    let mean = times.iter().map(|t| millis(*t)).sum::<f64>() / times.len() as f64;
    println!(
        "| {label} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        at(0.5),
        at(0.95),
        mean,
        millis(*times.last().unwrap())
    );
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let server_url = std::env::var("BENCH_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let chats: usize = std::env::var("BENCH_CHATS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000);
    let name = format!("botfleet_bench_console_{}", Uuid::new_v4().simple());
    let database_url = format!("{server_url}/{name}");
    let token_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let admin_pool = PgPool::connect(&format!("{server_url}/postgres")).await?;
    let result = async {
        let server = start(&database_url, &token_key).await?;
        let client = sign_in(&server.base).await?;
        let mut bots = Vec::new();
        for n in 0..BOTS {
            let bot: Value = client
                .post(format!("{}/bots", server.base))
                .json(&json!({"name": format!("Bot {n:02}"), "model": "gpt-5-mini",
                    "token": format!("{}:AAHdqTcvCH1vGWJxfSeofSAs0K5PA{:06}", 100_000 + n, n)}))
                .send()
                .await?
                .json()
                .await?;
            bots.push(bot["id"].as_str().context("a bot id")?.parse::<Uuid>()?);
        }
        let pool = PgPool::connect(&database_url).await?;
        let key = botfleet::secrets::TokenKey::from_base64(&token_key).map_err(anyhow::Error::msg)?;
        let ring = botfleet::secrets::KeyRing::single(key);
        let vault = botfleet::personal_data::PersonalDataVault::new(pool.clone(), &ring);
        let seeding = Instant::now();
        let long_chat = seed(&pool, &vault, &bots, chats).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        eprintln!("seeded {chats} chats in {:.1} s", seeding.elapsed().as_secs_f64());
        println!("Console render times, {chats} chats, {BOTS} bots ({MEASURED} requests each, after {WARM_UP} to warm up):");
        println!();
        println!("| Page | p50 | p95 | mean | max |");
        println!("| --- | --- | --- | --- | --- |");
        measure(&client, &server.base, "Overview (`/console`)", "/console").await?;
        measure(&client, &server.base, "Chat list, first page of 25 (`/console/chats`)", "/console/chats").await?;
        measure(&client, &server.base, "Chat list filtered by bot", &format!("/console/chats?bot_id={}", bots[3])).await?;
        measure(&client, &server.base, "A 200-message conversation (`/console/chats/{id}`)", &format!("/console/chats/{long_chat}")).await?;
        pool.close().await;
        drop(server);
        anyhow::Ok(())
    }
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin_pool)
        .await?;
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects a quick
    // exit.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    botfleet::runtime::tls::install_crypto_provider();
    run().await
}
