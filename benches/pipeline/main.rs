//! Botfleet's pipeline benchmark (issue 7): `cargo bench --bench pipeline`, or `bench/run`,
//! which first makes sure the tools it needs are there.
//!
//! One run against the release binary, with fake Telegram and OpenAI servers on 127.0.0.1
//! (see the README's "Performance" section for what the figures mean):
//!
//! 1. Drain, cost and memory, on a fresh database: one update to each of 10,000 chats is
//!    queued while the fake LLM holds every call, then the LLM answers at once and the queue
//!    drains: turns per second, what a turn costs (commits, WAL, CPU), and the resident
//!    memory with 10,000 chats that each had a turn.
//! 2. Intake, on the same process: webhook updates at fixed rates, open loop, with the LLM
//!    holding every call again, so the effect runner cannot compete.
//! 3. Latency, on a new process and a fresh database (nothing left queued): the LLM takes 1 s
//!    per answer, and updates (each to a new chat) arrive at rising rates until Botfleet
//!    saturates: its own added latency, and the pickup latency (webhook answered → LLM
//!    called).
//! 4. Time to first visible text ([`first_text`]), on new processes and fresh databases: a
//!    model that thinks, then writes its answer token by token, with streaming off, then on.
//! 5. Budget check, on two new processes and fresh databases: the same load with bots without
//!    a policy and with every bot under budgets, and what PostgreSQL ran per turn each time
//!    (statements read off the wire by a counting proxy).
//! 6. Crash: SIGKILL at a random moment under a steady load, and a restart at once: replies
//!    sent twice, updates never answered, and how long unfinished turns waited.
//! 7. Polling ([`polling`]): the same load by webhook, then long-polled, each on a new process
//!    and a fresh database: the latency each adds and the statements each runs per turn.
//! 8. Anchors, with Botfleet stopped: the seed stack (the old worker's steps per message, on
//!    pg-boss 10 and node-postgres, against the same fakes) draining as many updates as the
//!    drain phase did, pgbench one-row inserts at Botfleet's pool size, and pg-boss 10
//!    draining no-op jobs.
//!
//! Settings (environment, all optional) are listed in [`Plan::from_env`].

mod anchors;
mod budget;
mod crash;
mod fakes;
mod first_text;
mod load;
mod measure;
mod one_bot;
mod polling;
mod report;
mod service;
mod slow_model;
mod timeline;
mod wire;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use botfleet::secrets::{TokenCipher, TokenKey};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::fakes::{FakeOpenAi, FakeTelegram, LlmMode, Writing};
use crate::first_text::{FirstTextFigures, FIRST_TEXT_CHATS};
use crate::load::UpdateLoad;
use crate::measure::{cpu_seconds, memory, server_counters, Meters, STATS_SETTLE};
use crate::report::{Costs, DrainFigures, Report, StepCosts, StepFigures};
use crate::service::{Admin, Botfleet, Settings};
use crate::timeline::Timeline;

/// Telegram chat ids of the drain and intake phases: `CHATS + seq % chats`.
const CHATS: i64 = 1_000_000;
/// Telegram chat ids of the latency phase: a new chat per update, `LATENCY_CHATS + seq`.
const LATENCY_CHATS: i64 = 10_000_000;

/// What the run does; every field can be changed from the environment.
#[derive(Debug, Clone)]
pub struct Plan {
    pub server_url: String,
    pub database: String,
    pub database_options: String,
    pub bots: usize,
    pub pool: u32,
    pub effect_concurrency: usize,
    pub rust_log: String,
    pub intake_rates: Vec<f64>,
    pub intake_step: Duration,
    pub chats: usize,
    pub latency_rates: Vec<f64>,
    pub latency_step: Duration,
    /// The latency phase goes at least this far, saturated or not (the target's rate).
    pub latency_required_rate: f64,
    pub llm_delay: Duration,
    pub drain_timeout: Duration,
    pub pgbench_seconds: u32,
    /// Jobs per pg-boss drain; by default as many as the turns Botfleet drained.
    pub pgboss_jobs: Option<u64>,
    pub pgboss_settings: String,
    /// Updates the seed stack drains; by default as many as the turns Botfleet drained.
    pub seed_jobs: Option<u64>,
    /// The seed stack's pg-boss workers and the jobs each fetches at a time.
    pub seed_setting: (u32, u32),
    /// Which phases run (drain, intake, latency, first_text, budget, crash, polling, slow_model,
    /// one_bot, seed_anchor, anchors); all by default.
    pub phases: Vec<String>,
    pub budget_rate: f64,
    pub budget_step: Duration,
    pub crash_rate: f64,
    pub crash_llm_delay: Duration,
    pub crash_kills: usize,
    /// The polling phase's load: updates per second for this long, webhook then polling.
    pub polling_rate: f64,
    pub polling_step: Duration,
    /// The slow-model phase: updates per second for this long, each answer taking the delay.
    pub slow_model_rate: f64,
    pub slow_model_step: Duration,
    pub slow_model_delay: Duration,
    /// The one-bot phase: updates per second to a single bot, for this long.
    pub one_bot_rate: f64,
    pub one_bot_step: Duration,
    /// Whether each latency step also measures commits and CPU per turn (it then waits for
    /// PostgreSQL's statistics after each step).
    pub step_costs: bool,
    /// The first-text phase: the fake model writes this many tokens, one per `token_pace`,
    /// after thinking for `llm_delay`; updates arrive at `first_text_rate` for `first_text_step`.
    pub tokens: usize,
    pub token_pace: Duration,
    pub first_text_rate: f64,
    pub first_text_step: Duration,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[f64]) -> Vec<f64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .filter(|v: &Vec<f64>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

impl Plan {
    /// `BENCH_DATABASE_SERVER` (postgres://postgres@127.0.0.1:5432), `BENCH_DATABASE`
    /// (botfleet_bench), `BENCH_DATABASE_OPTIONS` (sslmode=disable: all three clients on
    /// loopback without TLS, which is node-postgres's default; empty measures the TLS that
    /// sqlx and libpq otherwise negotiate), `BENCH_BOTS` (50: Botfleet paces each bot's sends to Telegram's 30
    /// per second, so a few bots would measure that), `BENCH_POOL` (16, Botfleet's default),
    /// `BENCH_EFFECT_CONCURRENCY` (1024: 500 updates/s with a 1 s LLM keep 500 turns in flight),
    /// `BENCH_RUST_LOG` (warn), `BENCH_INTAKE_RATES` (250,500,1000,2000), `BENCH_INTAKE_SECS`
    /// (5), `BENCH_CHATS` (10000), `BENCH_LATENCY_RATES` (50,100,200,300,400,500,750,1000,1500),
    /// `BENCH_LATENCY_SECS` (8), `BENCH_LLM_DELAY_MS` (1000), `BENCH_DRAIN_TIMEOUT_SECS` (300),
    /// `BENCH_PGBENCH_SECS` (10), `BENCH_PGBOSS_JOBS` (as many as the turns drained),
    /// `BENCH_PGBOSS_SETTINGS` (4x500,8x250,8x500,16x500: workers x batch size),
    /// `BENCH_SEED_JOBS` (as many as the turns drained) and `BENCH_SEED_SETTING` (16x50:
    /// workers x batch size): the seed stack's drain,
    /// `BENCH_STEP_COSTS` (1: commits and CPU per turn of each latency step; 0: not measured),
    /// `BENCH_TOKENS` (40), `BENCH_TOKEN_PACE_MS` (50), `BENCH_FIRST_TEXT_RATE` (10) and
    /// `BENCH_FIRST_TEXT_SECS` (5): the first-text phase's model and load,
    /// `BENCH_PHASES` (drain,intake,latency,first_text,budget,crash,polling,slow_model,
    /// one_bot,seed_anchor,anchors: a subset runs only those, for profiling one part; the intake phase runs on the drain
    /// phase's process),
    /// `BENCH_BUDGET_RATE` (50) and `BENCH_BUDGET_SECS` (10): the budget check's load,
    /// `BENCH_CRASH_RATE` (30), `BENCH_CRASH_LLM_DELAY_MS` (500) and `BENCH_CRASH_KILLS` (3):
    /// the crash phase's, `BENCH_POLLING_RATE` (20) and `BENCH_POLLING_SECS` (10): the
    /// polling phase's load (webhook, then long polling), `BENCH_SLOW_MODEL_RATE` (200),
    /// `BENCH_SLOW_MODEL_SECS` (10) and `BENCH_SLOW_MODEL_DELAY_MS` (10000): the slow-model
    /// phase's, `BENCH_ONE_BOT_RATE` (60) and `BENCH_ONE_BOT_SECS` (5): the one-bot phase's,
    /// `BENCH_KEEP_DATABASE` (set: the last phase's database is left for
    /// inspection).
    fn from_env() -> Self {
        Self {
            server_url: env_or(
                "BENCH_DATABASE_SERVER",
                "postgres://postgres@127.0.0.1:5432".to_owned(),
            ),
            database: env_or("BENCH_DATABASE", "botfleet_bench".to_owned()),
            database_options: env_or("BENCH_DATABASE_OPTIONS", "sslmode=disable".to_owned()),
            bots: env_or("BENCH_BOTS", 50usize).max(1),
            pool: env_or("BENCH_POOL", 16),
            effect_concurrency: env_or("BENCH_EFFECT_CONCURRENCY", 1024),
            rust_log: env_or("BENCH_RUST_LOG", "warn".to_owned()),
            intake_rates: env_list("BENCH_INTAKE_RATES", &[250.0, 500.0, 1000.0, 2000.0]),
            intake_step: Duration::from_secs_f64(env_or("BENCH_INTAKE_SECS", 5.0)),
            chats: env_or("BENCH_CHATS", 10_000usize).max(1),
            latency_rates: env_list(
                "BENCH_LATENCY_RATES",
                &[
                    50.0, 100.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 1500.0,
                ],
            ),
            latency_step: Duration::from_secs_f64(env_or("BENCH_LATENCY_SECS", 8.0)),
            latency_required_rate: 500.0,
            llm_delay: Duration::from_millis(env_or("BENCH_LLM_DELAY_MS", 1000)),
            drain_timeout: Duration::from_secs(env_or("BENCH_DRAIN_TIMEOUT_SECS", 300)),
            pgbench_seconds: env_or("BENCH_PGBENCH_SECS", 10),
            pgboss_jobs: std::env::var("BENCH_PGBOSS_JOBS")
                .ok()
                .and_then(|v| v.parse().ok()),
            pgboss_settings: env_or(
                "BENCH_PGBOSS_SETTINGS",
                "4x500,8x250,8x500,16x500".to_owned(),
            ),
            seed_jobs: std::env::var("BENCH_SEED_JOBS")
                .ok()
                .and_then(|v| v.parse().ok()),
            seed_setting: env_or("BENCH_SEED_SETTING", "16x50".to_owned())
                .split_once('x')
                .and_then(|(w, b)| Some((w.trim().parse().ok()?, b.trim().parse().ok()?)))
                .unwrap_or((16, 50)),
            step_costs: env_or("BENCH_STEP_COSTS", 1u8) == 1,
            phases: env_or(
                "BENCH_PHASES",
                "drain,intake,latency,first_text,budget,crash,polling,slow_model,one_bot,seed_anchor,anchors"
                    .to_owned(),
            )
            .split(',')
            .map(|p| p.trim().to_owned())
            .collect(),
            budget_rate: env_or("BENCH_BUDGET_RATE", 50.0),
            budget_step: Duration::from_secs_f64(env_or("BENCH_BUDGET_SECS", 10.0)),
            crash_rate: env_or("BENCH_CRASH_RATE", 30.0),
            crash_llm_delay: Duration::from_millis(env_or("BENCH_CRASH_LLM_DELAY_MS", 500)),
            crash_kills: env_or("BENCH_CRASH_KILLS", 3),
            polling_rate: env_or("BENCH_POLLING_RATE", 20.0),
            polling_step: Duration::from_secs_f64(env_or("BENCH_POLLING_SECS", 10.0)),
            slow_model_rate: env_or("BENCH_SLOW_MODEL_RATE", 200.0),
            slow_model_step: Duration::from_secs_f64(env_or("BENCH_SLOW_MODEL_SECS", 10.0)),
            slow_model_delay: Duration::from_millis(env_or("BENCH_SLOW_MODEL_DELAY_MS", 10_000)),
            one_bot_rate: env_or("BENCH_ONE_BOT_RATE", 60.0),
            one_bot_step: Duration::from_secs_f64(env_or("BENCH_ONE_BOT_SECS", 5.0)),
            tokens: env_or("BENCH_TOKENS", 40usize).max(1),
            token_pace: Duration::from_millis(env_or("BENCH_TOKEN_PACE_MS", 50)),
            first_text_rate: env_or("BENCH_FIRST_TEXT_RATE", 10.0),
            first_text_step: Duration::from_secs_f64(env_or("BENCH_FIRST_TEXT_SECS", 5.0)),
        }
    }

    /// The bench database's URL, with `BENCH_DATABASE_OPTIONS` (e.g. `sslmode=disable`) for
    /// Botfleet, pgbench and pg-boss alike.
    fn database_url(&self) -> String {
        match self.database_options.as_str() {
            "" => format!("{}/{}", self.server_url, self.database),
            options => format!("{}/{}?{options}", self.server_url, self.database),
        }
    }

    /// PostgreSQL's `host:port`, for the counting proxy to forward to.
    fn upstream(&self) -> String {
        self.server_url
            .rsplit_once('@')
            .map_or(self.server_url.as_str(), |(_, host)| host)
            .trim_end_matches('/')
            .to_owned()
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }

    /// Sequence numbers the run can use: every update of every phase, plus slack.
    fn capacity(&self) -> usize {
        let intake: f64 = self.intake_rates.iter().sum::<f64>() * self.intake_step.as_secs_f64()
            + self.budget_rate * self.budget_step.as_secs_f64() * 2.0
            + self.crash_rate * 8.0 * self.crash_kills as f64
            + self.polling_rate * self.polling_step.as_secs_f64() * 2.0
            + self.slow_model_rate * self.slow_model_step.as_secs_f64()
            + self.one_bot_rate * self.one_bot_step.as_secs_f64();
        let latency: f64 = self.latency_rates.iter().sum::<f64>() * self.latency_step.as_secs_f64();
        let first_text = 2.0 * self.first_text_rate * self.first_text_step.as_secs_f64();
        let seed = if self.runs("seed_anchor") {
            self.seed_jobs.unwrap_or(self.chats as u64) as usize
        } else {
            0
        };
        self.chats + (intake + latency + first_text) as usize + seed + 1_000
    }
}

fn main() -> ExitCode {
    let plan = Plan::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the bench's runtime starts");
    let outcome = runtime.block_on(async {
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("{}/postgres", plan.server_url))
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", plan.server_url))?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Whatever ends the run (its end, an error, Ctrl-C, SIGTERM), Botfleet and the fakes
        // are dropped with `run`'s future, then the database goes.
        let result = tokio::select! {
            result = run(&plan, &admin) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
        };
        if std::env::var_os("BENCH_KEEP_DATABASE").is_none() {
            drop_database(&admin, &plan.database).await;
        }
        result
    });
    match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pipeline bench failed: {e:?}");
            ExitCode::FAILURE
        }
    }
}

async fn drop_database(admin: &PgPool, name: &str) {
    if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(admin)
        .await
    {
        eprintln!("could not drop the bench database {name}: {e}");
    }
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("-- {message}");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Whether another `cargo test` runs on the machine (the other figures would then be noisy).
fn cargo_test_running() -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", "cargo test"])
        .output()
        .is_ok_and(|out| !out.stdout.is_empty())
}

async fn read_meters(admin: &PgPool, plan: &Plan, pid: u32) -> anyhow::Result<Meters> {
    Ok(Meters {
        at: Instant::now(),
        server: server_counters(admin, &plan.database).await?,
        botfleet_cpu: cpu_seconds(pid).unwrap_or_default(),
        backends_cpu: measure::botfleet_backends_cpu(admin, &plan.database).await?,
        postgres_cpu: measure::postgres_cpu_seconds(),
    })
}

/// What every phase that starts Botfleet itself works with.
pub struct Phase<'a> {
    pub plan: &'a Plan,
    pub admin: &'a PgPool,
    pub settings: &'a Settings,
    pub work_dir: &'a Path,
    pub timeline: &'a Arc<Timeline>,
    pub telegram: &'a FakeTelegram,
    pub llm: &'a FakeOpenAi,
}

/// A running Botfleet with the bench's bots registered and enabled.
struct System {
    app: Botfleet,
    load: Arc<UpdateLoad>,
    logged_in: bool,
    admin: Admin,
    bots: Vec<uuid::Uuid>,
}

/// A fixed-rate step and how many answers reached Telegram by the end of the wait for them.
struct AnsweredStep {
    outcome: crate::load::StepOutcome,
    answered: u64,
}

impl System {
    /// Sends `rate` updates a second for `step`, numbered from `*next_seq` (which moves past
    /// them), update `seq` to chat `chat_of(seq)`; then waits up to `patience` for their answers.
    async fn answered_step(
        &self,
        timeline: &Timeline,
        (rate, step): (f64, Duration),
        next_seq: &mut usize,
        chat_of: impl Fn(usize) -> i64 + Send + 'static,
        patience: Duration,
    ) -> anyhow::Result<AnsweredStep> {
        let sent_before = timeline.sent_total();
        let outcome = self.load.fixed_rate(rate, step, *next_seq, chat_of).await?;
        *next_seq = outcome.seqs.end;
        wait_for_sends(timeline, sent_before + outcome.accepted as u64, patience).await;
        Ok(AnsweredStep {
            answered: timeline.sent_total() - sent_before,
            outcome,
        })
    }

    /// Starts Botfleet on a fresh database, logs in, and registers and enables the bots,
    /// streaming their answers or not.
    async fn start(
        plan: &Plan,
        admin: &PgPool,
        settings: &Settings,
        work_dir: &std::path::Path,
        timeline: &Arc<Timeline>,
        name: &str,
        streaming: bool,
    ) -> anyhow::Result<Self> {
        drop_database(admin, &plan.database).await;
        progress(format!("starting {}", service::binary().display()));
        let app = Botfleet::start(settings, work_dir, name).await?;
        let admin_api = Admin::login(
            &app.base_url,
            &settings.admin_email,
            &settings.admin_password,
        )
        .await?;
        let key = TokenKey::from_base64(&settings.token_key).map_err(anyhow::Error::msg)?;
        let cipher = TokenCipher::new(&key);
        let mut bots = Vec::new();
        for index in 0..plan.bots {
            let id = admin_api.create_enabled_bot(index, streaming).await?;
            bots.push((id, cipher.webhook_secret(id)));
        }
        Ok(Self {
            load: Arc::new(UpdateLoad::new(&app.base_url, &bots, timeline.clone())),
            logged_in: admin_api.authenticated(),
            admin: admin_api,
            bots: bots.iter().map(|(id, _)| *id).collect(),
            app,
        })
    }
}

async fn run(plan: &Plan, admin: &PgPool) -> anyhow::Result<Report> {
    let work_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-pipeline");
    std::fs::create_dir_all(&work_dir)?;
    let mut report = Report::new(plan.clone());
    report.load_before = load_average();
    report.cargo_test_seen |= cargo_test_running();
    report.postgres_version = sqlx::query_scalar("SHOW server_version")
        .fetch_one(admin)
        .await?;
    let databases_before = measure::commits_by_database(admin).await?;

    let timeline = Arc::new(Timeline::new(plan.capacity()));
    let telegram = FakeTelegram::start(timeline.clone()).await?;
    let llm = FakeOpenAi::start(timeline.clone(), LlmMode::Hold).await?;
    let settings = Settings {
        database_url: plan.database_url(),
        token_key: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
        },
        telegram_api_url: telegram.base_url.clone(),
        openai_base_url: llm.base_url.clone(),
        pool_size: plan.pool,
        effect_concurrency: plan.effect_concurrency,
        rust_log: plan.rust_log.clone(),
        polling: false,
        admin_email: "bench@example.com".to_owned(),
        admin_password: "bench-password-0123456789".to_owned(),
    };

    let mut next_seq = 1;
    if plan.runs("drain") || plan.runs("intake") {
        report.phase_loads.push(("drain+intake", load_average()));
        let system =
            System::start(plan, admin, &settings, &work_dir, &timeline, "drain", false).await?;
        let pid = system.app.pid();
        report.logged_in = system.logged_in;
        progress(format!(
            "{} bots enabled; waiting {}s for PostgreSQL's statistics to settle",
            plan.bots,
            STATS_SETTLE.as_secs()
        ));
        tokio::time::sleep(STATS_SETTLE).await;
        report.webhooks_set = telegram
            .other_calls()
            .get("setwebhook")
            .copied()
            .unwrap_or_default();

        // The idle background (lease renewals, fallback polls), to subtract from the per-turn
        // costs.
        let idle_start = read_meters(admin, plan, pid).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = read_meters(admin, plan, pid).await?;
        report.rss_idle = memory(pid).map(|m| m.0);

        let fill = 1..1 + plan.chats;
        let chats = plan.chats;
        let chat_of = move |seq: usize| CHATS + (seq % chats) as i64;
        next_seq = fill.end;
        if plan.runs("drain") {
            // 1. One turn for each chat, queued behind the held LLM, then drained.
            progress(format!(
                "queueing one turn in each of {chats} chats (LLM held)"
            ));
            let fill_started = Instant::now();
            let queued = system.load.fill(fill.clone(), 32, chat_of).await?;
            report.fill_per_sec = queued as f64 / fill_started.elapsed().as_secs_f64();
            progress(format!("draining {queued} queued turns, instant LLM"));
            let released = timeline.now();
            llm.set_mode(LlmMode::Delay(Duration::ZERO));
            wait_for_sends(&timeline, queued as u64, plan.drain_timeout).await;
            let drain = DrainFigures::measure(&timeline, fill.clone(), released, queued);
            report.rss_after_drain = memory(pid);
            progress(format!(
                "drained {} turns at {:.0}/s; waiting {}s for the statistics",
                drain.turns,
                drain.turns_per_sec,
                STATS_SETTLE.as_secs()
            ));
            tokio::time::sleep(STATS_SETTLE).await;
            let end = read_meters(admin, plan, pid).await?;
            report.costs = Some(Costs::per_turn(&idle_start, &start, &end, drain.turns));
            report.drain = Some(drain);
        }
        if plan.runs("intake") {
            // 2. Intake, with the LLM holding every call again.
            llm.set_mode(LlmMode::Hold);
            for &rate in &plan.intake_rates {
                progress(format!("intake: {rate}/s for {:?}", plan.intake_step));
                let outcome = system
                    .load
                    .fixed_rate(rate, plan.intake_step, next_seq, chat_of)
                    .await?;
                next_seq = outcome.seqs.end;
                let mut step = StepFigures::intake(rate, &outcome, &timeline);
                step.rss_after = memory(pid).map(|m| m.0);
                report.intake.push(step);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        report.llm_calls += llm.calls();
        // What intake queued is not worked: released calls finish during the graceful stop,
        // and the database goes.
        llm.set_mode(LlmMode::Delay(Duration::ZERO));
        let log = system.app.log_path.clone();
        drop(system);
        report.botfleet_errors += count_errors(&log);
    }
    if plan.runs("latency") {
        report.phase_loads.push(("latency", load_average()));
        // 3. Added latency with a slow LLM, at rising rates, until saturation, on a new process.
        llm.set_mode(LlmMode::Delay(plan.llm_delay));
        let llm_calls_before = llm.calls();
        let webhooks_before = telegram.calls_of("setwebhook");
        let system = System::start(
            plan, admin, &settings, &work_dir, &timeline, "latency", false,
        )
        .await?;
        let pid = system.app.pid();
        if plan.step_costs {
            // The bots' set-up (webhooks set, usernames learned, their events projected) must
            // not be counted as the first step's turns.
            let deadline = Instant::now() + Duration::from_secs(30);
            while telegram.calls_of("setwebhook") < webhooks_before + plan.bots as u64
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(STATS_SETTLE).await;
        } else {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        report.rss_latency_idle = memory(pid).map(|m| m.0);
        let mut skip_below = 0.0;
        for &rate in &plan.latency_rates {
            if rate < skip_below {
                continue;
            }
            progress(format!(
                "latency: {rate}/s for {:?}, LLM answers in {:?}",
                plan.latency_step, plan.llm_delay
            ));
            let sent_before = timeline.sent_total();
            let before = read_meters(admin, plan, pid).await?;
            let outcome = system
                .load
                .fixed_rate(rate, plan.latency_step, next_seq, |seq| {
                    LATENCY_CHATS + seq as i64
                })
                .await?;
            next_seq = outcome.seqs.end;
            // With a slow model, the step's end is when most turns are in flight at once.
            let in_flight = (outcome.accepted as u64)
                .saturating_sub(timeline.sent_total().saturating_sub(sent_before));
            let rss = memory(pid).map(|m| m.0);
            // Beyond saturation the tail can be long; a step's turns get 60 s to come out.
            let expected = sent_before + outcome.accepted as u64;
            wait_for_sends(&timeline, expected, Duration::from_secs(60)).await;
            let mut step = StepFigures::end_to_end(rate, plan.latency_step, &outcome, &timeline);
            step.rss_after = rss;
            step.in_flight_at_end = Some(in_flight);
            if plan.step_costs {
                // Backends flush their counters up to 10 s after they go idle.
                tokio::time::sleep(STATS_SETTLE).await;
                let after = read_meters(admin, plan, pid).await?;
                step.costs = Some(StepCosts::between(&before, &after, step.completed));
            }
            let saturated = step.saturated();
            report.latency.push(step);
            if saturated && rate >= plan.latency_required_rate {
                break;
            }
            if saturated {
                // Past saturation, the steps in between say nothing new: go to the target's rate.
                skip_below = plan.latency_required_rate;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        report.llm_calls += llm.calls() - llm_calls_before;
        report.telegram_other_calls = telegram.other_calls();
        let log = system.app.log_path.clone();
        drop(system);
        report.botfleet_errors += count_errors(&log);
    }
    if plan.runs("first_text") {
        report.phase_loads.push(("first_text", load_average()));
        // 3b. Time to first visible text, streaming off and on, each on a new process.
        llm.set_mode(LlmMode::Delay(plan.llm_delay));
        let llm_calls_before = llm.calls();
        llm.set_writing(Some(Writing {
            pace: plan.token_pace,
            tokens: plan.tokens,
        }));
        for streaming in [false, true] {
            let name = if streaming { "streaming" } else { "whole" };
            let system = System::start(
                plan, admin, &settings, &work_dir, &timeline, name, streaming,
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            progress(format!(
                "first text, streaming {}: {}/s for {:?}, the model thinks {:?} then writes {} tokens every {:?}",
                if streaming { "on" } else { "off" },
                plan.first_text_rate,
                plan.first_text_step,
                plan.llm_delay,
                plan.tokens,
                plan.token_pace
            ));
            let drafts_before = telegram.calls_of("sendmessagedraft");
            let AnsweredStep { outcome, .. } = system
                .answered_step(
                    &timeline,
                    (plan.first_text_rate, plan.first_text_step),
                    &mut next_seq,
                    |seq| FIRST_TEXT_CHATS + seq as i64,
                    Duration::from_secs(60),
                )
                .await?;
            let drafts = telegram.calls_of("sendmessagedraft") - drafts_before;
            report.first_text.push(FirstTextFigures::measure(
                streaming,
                outcome.seqs.clone(),
                &timeline,
                drafts,
            ));
            let log = system.app.log_path.clone();
            drop(system);
            report.botfleet_errors += count_errors(&log);
        }
        llm.set_writing(None);
        report.llm_calls += llm.calls() - llm_calls_before;
    }
    let phase = Phase {
        plan,
        admin,
        settings: &settings,
        work_dir: &work_dir,
        timeline: &timeline,
        telegram: &telegram,
        llm: &llm,
    };
    if plan.runs("budget") {
        report.phase_loads.push(("budget", load_average()));
        // 5. What the budget check adds to a turn, on two new processes.
        report.budget = Some(budget::measure(&phase, &mut next_seq).await?);
    }
    if plan.runs("crash") {
        report.phase_loads.push(("crash", load_average()));
        // 6. SIGKILL under load, and a restart at once.
        report.crash = Some(crash::measure(&phase, &mut next_seq).await?);
    }
    if plan.runs("polling") {
        report.phase_loads.push(("polling", load_average()));
        // 6b. The same load by webhook and by long polling.
        report.polling = Some(polling::measure(&phase, &mut next_seq).await?);
    }
    if plan.runs("slow_model") {
        report.phase_loads.push(("slow_model", load_average()));
        // 7b. A model that takes seconds, at the product's default concurrency.
        let llm_calls_before = llm.calls();
        report.slow_model = Some(slow_model::measure(&phase, &mut next_seq).await?);
        report.llm_calls += llm.calls() - llm_calls_before;
        llm.set_mode(LlmMode::Delay(Duration::ZERO));
    }
    if plan.runs("one_bot") {
        report.phase_loads.push(("one_bot", load_average()));
        // 7c. One bot alone: Telegram's per-bot pace is the bound.
        let llm_calls_before = llm.calls();
        report.one_bot = Some(one_bot::measure(&phase, &mut next_seq).await?);
        report.llm_calls += llm.calls() - llm_calls_before;
    }
    if plan.runs("seed_anchor") {
        report.phase_loads.push(("seed_anchor", load_average()));
        // 8a. The old stack's worker over as many updates as Botfleet drained, same fakes.
        progress("Botfleet stopped; the seed stack next");
        let jobs = plan
            .seed_jobs
            .unwrap_or_else(|| report.drain.as_ref().map_or(plan.chats, |d| d.queued) as u64);
        // The last phase that numbers updates: next_seq is not moved on.
        let seqs = next_seq..next_seq + jobs as usize;
        let llm_calls_before = llm.calls();
        let (workers, batch) = plan.seed_setting;
        progress(format!(
            "seed stack: {jobs} updates enqueued, then drained by {workers} workers x {batch}"
        ));
        let pgboss_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/pgboss");
        let seed = anchors::seed_anchor(plan, admin, &pgboss_dir, &telegram, &llm, &timeline, seqs)
            .await?;
        report.llm_calls += llm.calls() - llm_calls_before;
        report.seed = Some(seed);
    }
    if plan.runs("anchors") {
        report.phase_loads.push(("anchors", load_average()));
        // 8. The anchors, on a quiet server.
        progress("Botfleet stopped; anchors next");
        report.cargo_test_seen |= cargo_test_running();
        let bench_db = PgPoolOptions::new()
            .max_connections(1)
            .connect(&plan.database_url())
            .await?;
        progress(format!(
            "pgbench: one-row inserts, {} clients, {} s",
            plan.pool, plan.pgbench_seconds
        ));
        report.pgbench_tps = Some(
            anchors::pgbench_single_insert(
                &plan.database_url(),
                &bench_db,
                &work_dir,
                plan.pool,
                plan.pgbench_seconds,
            )
            .await?,
        );
        bench_db.close().await;
        let pgboss_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/pgboss");
        anchors::ensure_pgboss(&pgboss_dir).await?;
        report.pgboss_version = anchors::pgboss_version(&pgboss_dir);
        // As many jobs as Botfleet drained turns: a queue's speed depends on its depth.
        let jobs = plan
            .pgboss_jobs
            .unwrap_or_else(|| report.drain.as_ref().map_or(10_000, |d| d.queued as u64));
        report.pgboss_jobs = jobs;
        progress(format!(
            "pg-boss {}: {jobs} no-op jobs per setting, settings {}",
            report.pgboss_version, plan.pgboss_settings
        ));
        report.pgboss = anchors::pgboss_drains(
            &pgboss_dir,
            &plan.database_url(),
            jobs,
            &plan.pgboss_settings,
            plan.pool,
            Duration::from_secs(240),
        )
        .await?;
    }
    let databases_after = measure::commits_by_database(admin).await?;
    report.other_databases =
        measure::other_activity(&databases_before, &databases_after, &plan.database);
    report.cargo_test_seen |= cargo_test_running();
    report.load_after = load_average();
    Ok(report)
}

/// Waits until the fake Telegram has seen `count` answers in all, or nothing new came for
/// 30 s, or `timeout` passed.
async fn wait_for_sends(timeline: &Timeline, count: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let (mut seen, mut moved) = (timeline.sent_total(), Instant::now());
    while timeline.sent_total() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now_seen = timeline.sent_total();
        if now_seen != seen {
            (seen, moved) = (now_seen, Instant::now());
        } else if moved.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
}

/// ERROR lines in Botfleet's log: a clean run has none.
fn count_errors(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .map(|text| text.lines().filter(|l| l.contains("ERROR")).count())
        .unwrap_or_default()
}
