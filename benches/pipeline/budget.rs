//! What the budget check costs a turn (issue 17): the same load twice, on fresh databases,
//! once with bots without a policy and once with every bot under per-person and whole-bot
//! budgets that nobody reaches, and what PostgreSQL did per turn each time: commits, every
//! statement Botfleet ran (read off the wire by [`CountingProxy`]), and the index scans of
//! `person_usage`, the table the check reads.

use std::fmt::{self, Display, Formatter};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::fakes::LlmMode;
use crate::measure::{server_counters, STATS_SETTLE};
use crate::wire::{difference, CountingProxy, StatementCounts};
use crate::{progress, Phase, Plan, System};

/// Telegram chat ids of this phase: `BUDGET_CHATS + seq % PEOPLE`, each chat its own person,
/// so that people come back as they do in real use.
const BUDGET_CHATS: i64 = 20_000_000;
const PEOPLE: usize = 250;

/// Budgets so generous that no turn is refused: the check runs, and every turn still asks the
/// model, so both runs do the same work apart from the check.
fn generous_policy() -> serde_json::Value {
    json!({"budgets": {
        "per_person": {
            "messages_per_day": 1_000_000,
            "messages_per_month": 10_000_000,
            "cost_per_day_micro_usd": 1_000_000_000_i64,
            "cost_per_month_micro_usd": 10_000_000_000_i64
        },
        "bot_cost_per_month_micro_usd": 100_000_000_000_i64
    }})
}

/// One run's figures, per turn.
#[derive(Debug, Clone)]
pub struct BudgetRun {
    pub with_budgets: bool,
    pub turns: u64,
    pub commits: f64,
    pub statements: f64,
    /// Index scans of `person_usage` (the check's read, and the projector's upserts).
    pub usage_index_scans: f64,
    pub by_statement: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default)]
pub struct BudgetFigures {
    pub rate: f64,
    pub seconds: f64,
    pub runs: Vec<BudgetRun>,
}

/// What a counter moved per turn over the load window, less the idle background the same
/// process showed over a quiet window, scaled to the load window's length.
fn per_turn(idle: f64, idle_secs: f64, load: f64, load_secs: f64, turns: u64) -> f64 {
    (load - idle * load_secs / idle_secs.max(1e-9)).max(0.0) / turns.max(1) as f64
}

/// What a load window cost per turn, the idle background subtracted: commits, statements,
/// `person_usage` index scans, and each statement by its SQL (at 0.005 a turn or more, the
/// most frequent first).
pub(crate) struct PerTurn {
    pub commits: f64,
    pub statements: f64,
    pub usage_index_scans: f64,
    pub by_statement: Vec<(String, f64)>,
}

impl PerTurn {
    /// `idle_start..start` was quiet; `start..end` held `turns` turns.
    pub(crate) fn between(
        idle_start: &Reading,
        start: &Reading,
        end: &Reading,
        turns: u64,
    ) -> Self {
        let idle_secs = (start.at - idle_start.at).as_secs_f64();
        let load_secs = (end.at - start.at).as_secs_f64();
        let rate =
            |idle: i64, load: i64| per_turn(idle as f64, idle_secs, load as f64, load_secs, turns);
        let idle_statements = difference(&idle_start.statements, &start.statements);
        let load_statements = difference(&start.statements, &end.statements);
        let mut by_statement: Vec<(String, f64)> = load_statements
            .iter()
            .map(|(sql, n)| {
                let idle = idle_statements.get(sql).copied().unwrap_or_default();
                (sql.clone(), rate(idle as i64, *n as i64))
            })
            .filter(|(_, n)| *n >= 0.005)
            .collect();
        by_statement.sort_by(|a, b| b.1.total_cmp(&a.1));
        Self {
            commits: rate(
                start.commits - idle_start.commits,
                end.commits - start.commits,
            ),
            statements: rate(
                idle_statements.values().sum::<u64>() as i64,
                load_statements.values().sum::<u64>() as i64,
            ),
            usage_index_scans: rate(
                start.usage_index_scans - idle_start.usage_index_scans,
                end.usage_index_scans - start.usage_index_scans,
            ),
            by_statement,
        }
    }
}

/// Writes the statements whose rate per turn differs by 0.05 or more between two runs'
/// `by_statement` lists, as `before -> after  SQL`.
pub(crate) fn write_differences(
    f: &mut Formatter<'_>,
    before: &[(String, f64)],
    after: &[(String, f64)],
) -> fmt::Result {
    let rate_in = |list: &[(String, f64)], sql: &str| {
        list.iter().find(|(s, _)| s == sql).map_or(0.0, |(_, n)| *n)
    };
    let mut all: Vec<&String> = after.iter().map(|(s, _)| s).collect();
    all.extend(before.iter().map(|(s, _)| s));
    all.sort();
    all.dedup();
    for sql in all {
        let (a, b) = (rate_in(before, sql), rate_in(after, sql));
        if (a - b).abs() >= 0.05 {
            let shown: String = sql.chars().take(110).collect();
            writeln!(f, "    {a:>6.2} -> {b:>6.2}  {shown}")?;
        }
    }
    Ok(())
}

pub(crate) struct Reading {
    pub at: Instant,
    pub commits: i64,
    pub usage_index_scans: i64,
    pub statements: StatementCounts,
}

pub(crate) async fn read(
    admin: &PgPool,
    bench_db: &PgPool,
    plan: &Plan,
    proxy: &CountingProxy,
) -> anyhow::Result<Reading> {
    let server = server_counters(admin, &plan.database).await?;
    let mut conn = bench_db.acquire().await?;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let usage_index_scans: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_tables
         WHERE relname = 'person_usage'",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Reading {
        at: Instant::now(),
        commits: server.commits,
        usage_index_scans,
        statements: proxy.counts(),
    })
}

pub async fn measure(phase: &Phase<'_>, next_seq: &mut usize) -> anyhow::Result<BudgetFigures> {
    let Phase {
        plan,
        admin,
        settings,
        work_dir,
        timeline,
        llm,
        ..
    } = *phase;
    let upstream = plan.upstream();
    let mut figures = BudgetFigures {
        rate: plan.budget_rate,
        seconds: plan.budget_step.as_secs_f64(),
        runs: Vec::new(),
    };
    llm.set_mode(LlmMode::Delay(Duration::ZERO));
    for with_budgets in [false, true] {
        let proxy = CountingProxy::start(upstream.clone()).await?;
        let mut through_proxy = settings.clone();
        through_proxy.database_url = format!(
            "postgres://postgres@{}/{}?sslmode=disable",
            proxy.address, plan.database
        );
        let name = if with_budgets { "budgets" } else { "no-policy" };
        let system =
            System::start(plan, admin, &through_proxy, work_dir, timeline, name, false).await?;
        if with_budgets {
            for bot in &system.bots {
                system.admin.put_policy(*bot, &generous_policy()).await?;
            }
        }
        let bench_db = PgPoolOptions::new()
            .max_connections(1)
            .connect(&plan.database_url())
            .await?;
        progress(format!(
            "budget check ({name}): waiting {}s for the statistics, then 5 s idle",
            STATS_SETTLE.as_secs()
        ));
        tokio::time::sleep(STATS_SETTLE).await;
        let idle_start = read(admin, &bench_db, plan, &proxy).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = read(admin, &bench_db, plan, &proxy).await?;
        progress(format!(
            "budget check ({name}): {}/s for {:?}, instant LLM",
            plan.budget_rate, plan.budget_step
        ));
        let turns = system
            .answered_step(
                timeline,
                (plan.budget_rate, plan.budget_step),
                next_seq,
                |seq| BUDGET_CHATS + (seq % PEOPLE) as i64,
                Duration::from_secs(60),
            )
            .await?
            .answered;
        tokio::time::sleep(STATS_SETTLE).await;
        let end = read(admin, &bench_db, plan, &proxy).await?;
        bench_db.close().await;
        drop(system);

        let cost = PerTurn::between(&idle_start, &start, &end, turns);
        figures.runs.push(BudgetRun {
            with_budgets,
            turns,
            commits: cost.commits,
            statements: cost.statements,
            usage_index_scans: cost.usage_index_scans,
            by_statement: cost.by_statement,
        });
    }
    Ok(figures)
}

impl Display for BudgetFigures {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Budget check (issue 17): {}/s for {} s over {} people, instant LLM, fresh database \
             each; per turn, idle background subtracted",
            self.rate, self.seconds, PEOPLE
        )?;
        writeln!(
            f,
            "  {:<28} {:>6} {:>8} {:>11} {:>20}",
            "bots", "turns", "commits", "statements", "person_usage idx scans"
        )?;
        for run in &self.runs {
            let name = if run.with_budgets {
                "every bot under budgets"
            } else {
                "no policy"
            };
            writeln!(
                f,
                "  {:<28} {:>6} {:>8.2} {:>11.2} {:>20.2}",
                name, run.turns, run.commits, run.statements, run.usage_index_scans
            )?;
        }
        if let [without, with] = self.runs.as_slice() {
            writeln!(
                f,
                "  statements whose rate per turn differs by 0.05 or more:"
            )?;
            write_differences(f, &without.by_statement, &with.by_statement)?;
            writeln!(f, "  statements per turn without a policy, by kind:")?;
            for (sql, n) in without.by_statement.iter().take(25) {
                let shown: String = sql.chars().take(110).collect();
                writeln!(f, "    {n:>6.2}  {shown}")?;
            }
        }
        Ok(())
    }
}
