//! One bot alone (issue 18, item 5b): Telegram lets a bot send about 30 messages a second, and
//! Botfleet paces each bot's sends to that, so a single bot's throughput is Telegram's limit,
//! not Botfleet's. The other phases spread their load over many bots to measure Botfleet; this
//! one shows the pacing: more updates per second than the limit, to one bot, instant LLM.

use std::fmt::{self, Display, Formatter};
use std::time::Duration;

use crate::fakes::LlmMode;
use crate::measure::ms;
use crate::report::StepFigures;
use crate::{progress, Phase, Plan, System};

/// Telegram chat ids of this phase: `ONE_BOT_CHATS + seq % PEOPLE`.
const ONE_BOT_CHATS: i64 = 50_000_000;
const PEOPLE: usize = 500;

#[derive(Debug, Clone)]
pub struct OneBotFigures {
    pub rate: f64,
    pub seconds: f64,
    pub step: StepFigures,
}

pub async fn measure(phase: &Phase<'_>, next_seq: &mut usize) -> anyhow::Result<OneBotFigures> {
    let Phase {
        plan,
        admin,
        settings,
        work_dir,
        timeline,
        llm,
        ..
    } = *phase;
    llm.set_mode(LlmMode::Delay(Duration::ZERO));
    let one_bot = Plan {
        bots: 1,
        ..plan.clone()
    };
    let system = System::start(
        &one_bot, admin, settings, work_dir, timeline, "one-bot", false,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    progress(format!(
        "one bot: {}/s for {:?}, instant LLM",
        plan.one_bot_rate, plan.one_bot_step
    ));
    let outcome = system
        .answered_step(
            timeline,
            (plan.one_bot_rate, plan.one_bot_step),
            next_seq,
            |seq| ONE_BOT_CHATS + (seq % PEOPLE) as i64,
            Duration::from_secs(120),
        )
        .await?
        .outcome;
    let step = StepFigures::end_to_end(plan.one_bot_rate, plan.one_bot_step, &outcome, timeline);
    drop(system);
    Ok(OneBotFigures {
        rate: plan.one_bot_rate,
        seconds: plan.one_bot_step.as_secs_f64(),
        step,
    })
}

impl Display for OneBotFigures {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let step = &self.step;
        let (p50, p99) = step
            .added
            .map_or((f64::NAN, f64::NAN), |a| (ms(a.p50), ms(a.p99)));
        writeln!(
            f,
            "One bot (Telegram's pacing, not Botfleet's limit): {}/s for {} s to a single bot \
             from {PEOPLE} people, instant LLM",
            self.rate, self.seconds
        )?;
        writeln!(
            f,
            "  {} of {} answered at {:.1}/s (Telegram allows a bot about 30 messages/s); added \
             p50 {p50:.0} ms, p99 {p99:.0} ms: the queue in front of the bot's pace",
            step.completed, step.accepted, step.turns_per_sec
        )
    }
}
