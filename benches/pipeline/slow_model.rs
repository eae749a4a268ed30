//! A slow model (issue 18, item 2): updates at a steady rate while every answer takes
//! seconds, as reasoning models do, on a new process with the product's default concurrency
//! (`EFFECT_CONCURRENCY` 4096, `LLM_CONCURRENCY` 2048): does every turn finish within the
//! model's time and a second, and what do the turns in flight cost in memory.

use std::fmt::{self, Display, Formatter};
use std::time::Duration;

use crate::fakes::LlmMode;
use crate::measure::{memory, ms};
use crate::report::StepFigures;
use crate::{progress, wait_for_sends, Phase, System};

/// Telegram chat ids of this phase: a new chat per update.
const SLOW_MODEL_CHATS: i64 = 40_000_000;

/// Botfleet's default `EFFECT_CONCURRENCY`: this phase measures the product as shipped.
const DEFAULT_EFFECT_CONCURRENCY: usize = 4096;

#[derive(Debug, Clone)]
pub struct SlowModelFigures {
    pub rate: f64,
    pub seconds: f64,
    pub llm_delay: Duration,
    pub step: StepFigures,
    /// Resident memory before the step, and when its last update was accepted.
    pub rss_before: Option<u64>,
    pub rss_at_end: Option<u64>,
}

impl SlowModelFigures {
    /// Memory per turn in flight, from the growth over the step.
    fn bytes_per_turn(&self) -> Option<f64> {
        let grown = self.rss_at_end?.checked_sub(self.rss_before?)?;
        let in_flight = self.step.in_flight_at_end.filter(|n| *n > 0)?;
        Some(grown as f64 / in_flight as f64)
    }
}

pub async fn measure(phase: &Phase<'_>, next_seq: &mut usize) -> anyhow::Result<SlowModelFigures> {
    let Phase {
        plan,
        admin,
        settings,
        work_dir,
        timeline,
        llm,
        ..
    } = *phase;
    llm.set_mode(LlmMode::Delay(plan.slow_model_delay));
    let mut shipped = settings.clone();
    shipped.effect_concurrency = DEFAULT_EFFECT_CONCURRENCY;
    let system = System::start(
        plan,
        admin,
        &shipped,
        work_dir,
        timeline,
        "slow-model",
        false,
    )
    .await?;
    let pid = system.app.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = memory(pid).map(|m| m.0);
    progress(format!(
        "slow model: {}/s for {:?}, every answer takes {:?}",
        plan.slow_model_rate, plan.slow_model_step, plan.slow_model_delay
    ));
    let sent_before = timeline.sent_total();
    let outcome = system
        .load
        .fixed_rate(
            plan.slow_model_rate,
            plan.slow_model_step,
            *next_seq,
            |seq| SLOW_MODEL_CHATS + seq as i64,
        )
        .await?;
    *next_seq = outcome.seqs.end;
    let in_flight =
        (outcome.accepted as u64).saturating_sub(timeline.sent_total().saturating_sub(sent_before));
    let rss_at_end = memory(pid).map(|m| m.0);
    wait_for_sends(
        timeline,
        sent_before + outcome.accepted as u64,
        plan.slow_model_delay + Duration::from_secs(60),
    )
    .await;
    let mut step = StepFigures::end_to_end(
        plan.slow_model_rate,
        plan.slow_model_step,
        &outcome,
        timeline,
    );
    step.in_flight_at_end = Some(in_flight);
    step.rss_after = rss_at_end;
    drop(system);
    Ok(SlowModelFigures {
        rate: plan.slow_model_rate,
        seconds: plan.slow_model_step.as_secs_f64(),
        llm_delay: plan.slow_model_delay,
        step,
        rss_before,
        rss_at_end,
    })
}

impl Display for SlowModelFigures {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mb = |bytes: Option<u64>| bytes.map_or(0.0, |b| b as f64 / 1_048_576.0);
        writeln!(
            f,
            "Slow model (issue 18): {}/s for {} s, every answer takes {} ms, default \
             EFFECT_CONCURRENCY {DEFAULT_EFFECT_CONCURRENCY}, a new chat per update",
            self.rate,
            self.seconds,
            self.llm_delay.as_millis()
        )?;
        let step = &self.step;
        let (p50, p99) = step
            .added
            .map_or((f64::NAN, f64::NAN), |a| (ms(a.p50), ms(a.p99)));
        writeln!(
            f,
            "  {} of {} answered at {:.0}/s; added p50 {p50:.0} ms, p99 {p99:.0} ms; {} in flight \
             at the step's end; RSS {:.0} MB before, {:.0} MB then{}",
            step.completed,
            step.accepted,
            step.turns_per_sec,
            step.in_flight_at_end.unwrap_or_default(),
            mb(self.rss_before),
            mb(self.rss_at_end),
            self.bytes_per_turn().map_or(String::new(), |b| format!(
                " (about {:.0} kB per turn in flight)",
                b / 1024.0
            ))
        )?;
        writeln!(
            f,
            "  {} every turn within the model's time + 1 s (p99): {p99:.0} ms added",
            crate::report::verdict(step.completed == step.accepted && p99 <= 1000.0)
        )
    }
}
