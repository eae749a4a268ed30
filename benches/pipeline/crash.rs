//! What a crash costs (issues 13 and 18): Botfleet is killed with SIGKILL while it answers a
//! steady load, and restarted at once on the same database and port, a few times over. Each
//! time: how many accepted updates were answered twice (a reply that reached Telegram just
//! before the kill, whose sending the dead process could not record), how many were never
//! answered (must be none), and how long the unfinished turns waited after the restart.
//! Then two replicas on the same database: the one taking the webhooks is killed and not
//! restarted, and the survivor takes its unfinished turns over.

use std::fmt::{self, Display, Formatter};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::fakes::LlmMode;
use crate::measure::{ms, Percentiles};
use crate::service::{Botfleet, Settings};
use crate::timeline::Timeline;
use crate::{progress, wait_for_sends, Phase, Plan, System};

/// Telegram chat ids of this phase: `CRASH_CHATS + seq % CRASH_PEOPLE`.
const CRASH_CHATS: i64 = 30_000_000;
const CRASH_PEOPLE: usize = 300;

#[derive(Debug, Clone)]
pub struct Kill {
    /// Updates the webhook accepted during the round (before the kill and after the restart).
    pub accepted: usize,
    /// Accepted updates answered more than once.
    pub duplicates: u64,
    /// Accepted updates never answered.
    pub lost: usize,
    /// Accepted before the kill, not yet answered at the kill.
    pub unfinished: usize,
    /// From the restarted process answering HTTP to the unfinished turns' answers.
    pub resumed: Option<Percentiles>,
    /// From the kill until the restarted process answered HTTP.
    pub restart: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct CrashFigures {
    pub rate: f64,
    pub llm_delay: Duration,
    pub lease: Duration,
    pub kills: Vec<Kill>,
    /// The two-replica round: `resumed` counts from the kill (nobody restarts).
    pub takeover: Option<Kill>,
}

pub async fn measure(phase: &Phase<'_>, next_seq: &mut usize) -> anyhow::Result<CrashFigures> {
    let Phase {
        plan,
        admin,
        settings,
        work_dir,
        timeline,
        llm,
        ..
    } = *phase;
    let mut figures = CrashFigures {
        rate: plan.crash_rate,
        llm_delay: plan.crash_llm_delay,
        lease: Duration::from_millis(crate::service::EFFECT_LEASE_MS),
        kills: Vec::new(),
        takeover: None,
    };
    llm.set_mode(LlmMode::Delay(plan.crash_llm_delay));
    let mut system =
        System::start(plan, admin, settings, work_dir, timeline, "crash", false).await?;
    for kill in 0..plan.crash_kills {
        let restart = Replacement::Restart {
            settings,
            work_dir,
            name: format!("crash-{kill}"),
        };
        let round = kill_round(
            plan,
            &mut system,
            timeline,
            next_seq,
            figures.lease,
            restart,
        );
        figures.kills.push(round.await?);
    }
    // Two replicas: the one the webhooks reach dies for good; the survivor, which has been
    // running all along, finds the dead one's leases dead and works its chats.
    let survivor =
        Replacement::Replica(Botfleet::start(settings, work_dir, "crash-survivor").await?);
    let round = kill_round(
        plan,
        &mut system,
        timeline,
        next_seq,
        figures.lease,
        survivor,
    )
    .await?;
    figures.takeover = Some(round);
    drop(system);
    Ok(figures)
}

/// What takes the killed process's place: a restart on its port, or a replica running all
/// along.
enum Replacement<'s> {
    Restart {
        settings: &'s Settings,
        work_dir: &'s Path,
        name: String,
    },
    Replica(Botfleet),
}

/// One 8 s round at the phase's rate, with a SIGKILL somewhere in its middle; `replace` puts
/// the process that goes on in the killed one's place. `resumed` counts from the moment the
/// replacement answers HTTP (for a replica running all along, from the kill).
async fn kill_round(
    plan: &Plan,
    system: &mut System,
    timeline: &Arc<Timeline>,
    next_seq: &mut usize,
    lease: Duration,
    replacement: Replacement<'_>,
) -> anyhow::Result<Kill> {
    let round = Duration::from_secs(8);
    let first = *next_seq;
    let load = system.load.clone();
    let rate = plan.crash_rate;
    let sending = tokio::spawn(async move {
        load.fixed_rate(rate, round, first, |seq| {
            CRASH_CHATS + (seq % CRASH_PEOPLE) as i64
        })
        .await
    });
    // Somewhere in the middle of the round, where turns are in every state.
    let wait = rand::thread_rng().gen_range(2_000..5_000);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let killed_at = Instant::now();
    let killed_ns = timeline.at(killed_at);
    let port = system.app.port();
    system.app.kill();
    progress(format!(
        "crash: killed with SIGKILL after {wait} ms at {rate}/s; {}",
        match &replacement {
            Replacement::Restart { .. } => "restarting",
            Replacement::Replica(_) => "the other replica takes over",
        }
    ));
    system.app = match replacement {
        Replacement::Restart {
            settings,
            work_dir,
            name,
        } => Botfleet::start_on(settings, work_dir, &name, port).await?,
        Replacement::Replica(replica) => replica,
    };
    let up_ns = timeline.now();
    let restart = killed_at.elapsed();
    let outcome = sending.await??;
    *next_seq = outcome.seqs.end;
    let accepted: Vec<usize> = outcome
        .seqs
        .clone()
        .filter(|&seq| timeline.acked.get(seq).is_some())
        .collect();
    let sent_before = timeline.sent_total();
    let answered_before = accepted
        .iter()
        .filter(|&&s| timeline.sent.get(s).is_some())
        .count() as u64;
    // Every accepted update's answer, or the lease's time and a margin for nothing more.
    let expected = sent_before + (accepted.len() as u64 - answered_before);
    wait_for_sends(timeline, expected, lease + Duration::from_secs(60)).await;
    // Extra answers that may still come (a duplicate is sent last) get a moment more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unfinished: Vec<usize> = accepted
        .iter()
        .copied()
        .filter(|&s| timeline.acked.get(s).is_some_and(|at| at < killed_ns))
        .filter(|&s| timeline.sent.get(s).is_none_or(|at| at >= killed_ns))
        .collect();
    let resumed = unfinished
        .iter()
        .filter_map(|&s| timeline.sent.get(s))
        .map(|at| Duration::from_nanos(at.saturating_sub(up_ns)))
        .collect();
    let duplicates = outcome
        .seqs
        .clone()
        .filter(|&s| timeline.sends_of(s) > 1)
        .count() as u64;
    Ok(Kill {
        accepted: accepted.len(),
        duplicates,
        lost: accepted
            .iter()
            .filter(|&&s| timeline.sent.get(s).is_none())
            .count(),
        unfinished: unfinished.len(),
        resumed: Percentiles::of(resumed),
        restart,
    })
}

impl Display for CrashFigures {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Crash (issues 13, 18): SIGKILL at a random moment of an 8 s round at {}/s, LLM {} ms, \
             restart at once on the same database (EFFECT_LEASE_MS {} ms)",
            self.rate,
            self.llm_delay.as_millis(),
            self.lease.as_millis()
        )?;
        writeln!(
            f,
            "  {:<5} {:>8} {:>10} {:>5} {:>10} {:>10} {:>16} {:>16}",
            "kill",
            "accepted",
            "duplicated",
            "lost",
            "unfinished",
            "restart",
            "resumed p50",
            "resumed max"
        )?;
        for (i, kill) in self.kills.iter().enumerate() {
            let (p50, max) = kill.resumed.map_or(("-".to_owned(), "-".to_owned()), |p| {
                (
                    format!("{:.0} ms", ms(p.p50)),
                    format!("{:.0} ms", ms(p.max)),
                )
            });
            writeln!(
                f,
                "  {:<5} {:>8} {:>10} {:>5} {:>10} {:>7.0} ms {:>16} {:>16}",
                i + 1,
                kill.accepted,
                kill.duplicates,
                kill.lost,
                kill.unfinished,
                ms(kill.restart),
                p50,
                max
            )?;
        }
        let accepted: usize = self.kills.iter().map(|k| k.accepted).sum();
        let duplicates: u64 = self.kills.iter().map(|k| k.duplicates).sum();
        let lost: usize = self.kills.iter().map(|k| k.lost).sum();
        writeln!(
            f,
            "  in all: {duplicates} duplicated and {lost} lost of {accepted} accepted updates in {} kills",
            self.kills.len()
        )?;
        if let Some(takeover) = &self.takeover {
            let (p50, max) = takeover
                .resumed
                .map_or(("-".to_owned(), "-".to_owned()), |p| {
                    (
                        format!("{:.0} ms", ms(p.p50)),
                        format!("{:.0} ms", ms(p.max)),
                    )
                });
            writeln!(
                f,
                "  two replicas, the one taking webhooks killed and not restarted: {} accepted, {} \
                 duplicated, {} lost; the survivor answered its {} unfinished turns {p50} (p50) and \
                 {max} (max) after the kill (its webhooks then fail until Telegram redelivers: not sent here)",
                takeover.accepted, takeover.duplicates, takeover.lost, takeover.unfinished
            )?;
        }
        Ok(())
    }
}
