//! Polling beside webhooks (issue 18, item 3): the same load twice, on fresh databases, once
//! delivered to the webhook and once long-polled, with an instant LLM, and what each added.
//!
//! The fake Telegram answers `getUpdates` as Telegram does: an update queued for a bot is
//! returned at once to a poll that waits (a long poll), the offset forgets earlier ones. An
//! update counts as "acknowledged" when a poll takes it, the counterpart of a webhook's 200.
//! Both runs go through the counting proxy, so the statements each mode runs per turn are
//! read off the wire (the proxy adds the same small hop to every statement of both).

use std::fmt::{self, Display, Formatter};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::budget::{read, write_differences, PerTurn};
use crate::fakes::LlmMode;
use crate::load::UpdateLoad;
use crate::measure::{Percentiles, STATS_SETTLE};
use crate::report::StepFigures;
use crate::wire::CountingProxy;
use crate::{progress, AnsweredStep, Phase, System};

/// Telegram chat ids of this phase: a chat per person, `POLLING_CHATS + seq % PEOPLE`; people
/// come back (five turns each at the default load), as they do in real use.
const POLLING_CHATS: i64 = 30_000_000;
const PEOPLE: usize = 40;

/// One delivery mode's figures.
#[derive(Debug, Clone)]
pub struct DeliveryRun {
    pub polling: bool,
    pub step: StepFigures,
    /// Per turn, idle background subtracted.
    pub commits: f64,
    pub statements: f64,
    /// `getUpdates` calls per turn (0 for the webhook).
    pub polls: f64,
    pub by_statement: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default)]
pub struct PollingFigures {
    pub rate: f64,
    pub seconds: f64,
    pub bots: usize,
    pub runs: Vec<DeliveryRun>,
}

pub async fn measure(phase: &Phase<'_>, next_seq: &mut usize) -> anyhow::Result<PollingFigures> {
    let Phase {
        plan,
        admin,
        settings,
        work_dir,
        timeline,
        telegram,
        llm,
        ..
    } = *phase;
    let mut figures = PollingFigures {
        rate: plan.polling_rate,
        seconds: plan.polling_step.as_secs_f64(),
        bots: plan.bots,
        runs: Vec::new(),
    };
    llm.set_mode(LlmMode::Delay(Duration::ZERO));
    for polling in [false, true] {
        let proxy = CountingProxy::start(plan.upstream()).await?;
        let mut mode = settings.clone();
        mode.polling = polling;
        mode.database_url = format!(
            "postgres://postgres@{}/{}?sslmode=disable",
            proxy.address, plan.database
        );
        let name = if polling { "polling" } else { "webhook" };
        let mut system = System::start(plan, admin, &mode, work_dir, timeline, name, false).await?;
        if polling {
            let bots: Vec<(uuid::Uuid, String)> =
                system.bots.iter().map(|id| (*id, String::new())).collect();
            system.load = Arc::new(
                UpdateLoad::new(&system.app.base_url, &bots, timeline.clone())
                    .polled(telegram.update_queue()),
            );
        }
        let bench_db = PgPoolOptions::new()
            .max_connections(1)
            .connect(&plan.database_url())
            .await?;
        progress(format!(
            "delivery ({name}): waiting {}s for the statistics (and the pollers), then 5 s idle",
            STATS_SETTLE.as_secs()
        ));
        tokio::time::sleep(STATS_SETTLE).await;
        let idle_start = read(admin, &bench_db, plan, &proxy).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = read(admin, &bench_db, plan, &proxy).await?;
        let polls_start = telegram.calls_of("getupdates");
        progress(format!(
            "delivery ({name}): {}/s for {:?} over {} bots, instant LLM",
            plan.polling_rate, plan.polling_step, plan.bots
        ));
        let AnsweredStep {
            outcome,
            answered: turns,
        } = system
            .answered_step(
                timeline,
                (plan.polling_rate, plan.polling_step),
                next_seq,
                |seq| POLLING_CHATS + (seq % PEOPLE) as i64,
                Duration::from_secs(60),
            )
            .await?;
        let step =
            StepFigures::end_to_end(plan.polling_rate, plan.polling_step, &outcome, timeline);
        let polls_end = telegram.calls_of("getupdates");
        tokio::time::sleep(STATS_SETTLE).await;
        let end = read(admin, &bench_db, plan, &proxy).await?;
        bench_db.close().await;
        drop(system);

        let cost = PerTurn::between(&idle_start, &start, &end, turns);
        figures.runs.push(DeliveryRun {
            polling,
            step,
            commits: cost.commits,
            statements: cost.statements,
            // Over the load window alone: an idle long poll ends only at its timeout.
            polls: (polls_end - polls_start) as f64 / turns.max(1) as f64,
            by_statement: cost.by_statement,
        });
    }
    Ok(figures)
}

fn ms(p: Option<Percentiles>, pick: fn(&Percentiles) -> Duration) -> String {
    p.map_or("-".to_owned(), |p| {
        format!("{:.1}", pick(&p).as_secs_f64() * 1000.0)
    })
}

impl Display for PollingFigures {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Polling beside webhooks (issue 18): {}/s for {} s over {} bots, instant LLM, fresh \
             database each; per turn, idle background subtracted",
            self.rate, self.seconds, self.bots
        )?;
        writeln!(
            f,
            "  {:<9} {:>6} {:>11} {:>11} {:>11} {:>8} {:>11} {:>6}",
            "delivery",
            "turns",
            "added p50",
            "added p99",
            "pickup p50",
            "commits",
            "statements",
            "polls"
        )?;
        for run in &self.runs {
            writeln!(
                f,
                "  {:<9} {:>6} {:>8} ms {:>8} ms {:>8} ms {:>8.2} {:>11.2} {:>6.2}",
                if run.polling { "polling" } else { "webhook" },
                run.step.completed,
                ms(run.step.added, |p| p.p50),
                ms(run.step.added, |p| p.p99),
                ms(run.step.pickup, |p| p.p50),
                run.commits,
                run.statements,
                run.polls
            )?;
        }
        if let [webhook, polling] = self.runs.as_slice() {
            if let (Some(w), Some(p)) = (webhook.step.added, polling.step.added) {
                let gap = p.p50.as_secs_f64() * 1000.0 - w.p50.as_secs_f64() * 1000.0;
                writeln!(
                    f,
                    "  {} polling's added p50 within 10 ms of the webhook's: {gap:+.1} ms",
                    crate::report::verdict(gap <= 10.0)
                )?;
            }
            writeln!(
                f,
                "  statements per turn that polling adds or saves (0.05 or more):"
            )?;
            write_differences(f, &webhook.by_statement, &polling.by_statement)?;
            writeln!(f, "  statements per turn by webhook, by kind:")?;
            for (sql, n) in webhook.by_statement.iter().take(30) {
                let shown: String = sql.chars().take(110).collect();
                writeln!(f, "    {n:>6.2}  {shown}")?;
            }
        }
        Ok(())
    }
}
