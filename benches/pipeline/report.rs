//! The figures of one run, and the compact table they are printed as.

use std::fmt::{self, Display, Formatter};
use std::ops::Range;
use std::time::Duration;

use crate::anchors::{PgBossDrain, SeedFigures};
use crate::load::StepOutcome;
use crate::measure::{ms, Meters, Percentiles};
use crate::timeline::Timeline;
use crate::Plan;

/// One fixed-rate step: intake only, or end to end.
#[derive(Debug, Clone)]
pub struct StepFigures {
    pub offered: f64,
    pub accepted: usize,
    pub failed: usize,
    pub accepted_per_sec: f64,
    /// Webhook answered − intended send time.
    pub ack: Option<Percentiles>,
    /// Turns whose reply reached the fake Telegram.
    pub completed: usize,
    /// Replies per second, between the step's first and last reply.
    pub turns_per_sec: f64,
    /// (reply sent − intended send time) − the LLM's own time: what Botfleet added.
    pub added: Option<Percentiles>,
    /// LLM request received − webhook answered.
    pub pickup: Option<Percentiles>,
    /// Botfleet's resident memory once the step's requests were answered (intake), or when
    /// the step's last update was accepted, with `in_flight_at_end` turns in flight (latency).
    pub rss_after: Option<u64>,
    /// Turns accepted and not yet answered when the step's last update was accepted.
    pub in_flight_at_end: Option<u64>,
    /// What the step's turns cost (latency steps, when measured).
    pub costs: Option<StepCosts>,
}

/// What one turn of a step cost: nothing is subtracted, as the service makes no commits
/// when idle; PostgreSQL's CPU is that of the backends serving Botfleet's connections
/// ([`crate::measure::botfleet_backends_cpu`]), whatever else the machine runs.
#[derive(Debug, Clone, Copy)]
pub struct StepCosts {
    pub commits: f64,
    pub botfleet_cpu_ms: f64,
    pub postgres_cpu_ms: f64,
}

impl StepCosts {
    pub fn between(before: &Meters, after: &Meters, turns: usize) -> Self {
        let n = turns.max(1) as f64;
        Self {
            commits: (after.server.commits - before.server.commits) as f64 / n,
            botfleet_cpu_ms: 1000.0 * (after.botfleet_cpu - before.botfleet_cpu) / n,
            postgres_cpu_ms: 1000.0
                * crate::measure::backends_cpu_between(&before.backends_cpu, &after.backends_cpu)
                / n,
        }
    }
}

fn between(from: Option<u64>, to: Option<u64>) -> Option<Duration> {
    Some(Duration::from_nanos(to?.saturating_sub(from?)))
}

impl StepFigures {
    pub fn intake(offered: f64, outcome: &StepOutcome, timeline: &Timeline) -> Self {
        let ack = outcome
            .seqs
            .clone()
            .filter_map(|seq| between(timeline.intended.get(seq), timeline.acked.get(seq)))
            .collect();
        Self {
            offered,
            accepted: outcome.accepted,
            failed: outcome.failed,
            accepted_per_sec: outcome.accepted_per_sec(),
            ack: Percentiles::of(ack),
            completed: 0,
            turns_per_sec: 0.0,
            added: None,
            pickup: None,
            rss_after: None,
            in_flight_at_end: None,
            costs: None,
        }
    }

    pub fn end_to_end(
        offered: f64,
        step: Duration,
        outcome: &StepOutcome,
        timeline: &Timeline,
    ) -> Self {
        let mut figures = Self::intake(offered, outcome, timeline);
        let (mut added, mut pickup, mut sends) = (Vec::new(), Vec::new(), Vec::new());
        for seq in outcome.seqs.clone() {
            let sent = timeline.sent.get(seq);
            let llm = between(timeline.llm_in.get(seq), timeline.llm_out.get(seq));
            if let (Some(total), Some(llm)) = (between(timeline.intended.get(seq), sent), llm) {
                added.push(total.saturating_sub(llm));
            }
            if let Some(p) = between(timeline.acked.get(seq), timeline.llm_in.get(seq)) {
                pickup.push(p);
            }
            sends.extend(sent);
        }
        sends.sort_unstable();
        figures.completed = sends.len();
        figures.turns_per_sec = match (sends.first(), sends.last()) {
            (Some(first), Some(last)) if sends.len() > 1 && last > first => {
                (sends.len() - 1) as f64 / Duration::from_nanos(last - first).as_secs_f64()
            }
            _ => sends.len() as f64 / step.as_secs_f64(),
        };
        figures.added = Percentiles::of(added);
        figures.pickup = Percentiles::of(pickup);
        figures
    }

    /// Botfleet could not keep up: replies lag the arrivals, or some never came.
    pub fn saturated(&self) -> bool {
        self.failed > 0
            || self.completed < self.accepted
            || self.turns_per_sec < 0.9 * self.offered
            || self.added.is_some_and(|a| a.p99 > Duration::from_secs(1))
    }
}

/// The drain of the turns queued during intake.
#[derive(Debug, Clone)]
pub struct DrainFigures {
    pub queued: usize,
    pub turns: usize,
    pub elapsed: Duration,
    pub turns_per_sec: f64,
    /// The rate between the 10th and the 90th percentile reply: without the start and the tail.
    pub steady_turns_per_sec: f64,
}

impl DrainFigures {
    pub fn measure(timeline: &Timeline, seqs: Range<usize>, released: u64, queued: usize) -> Self {
        let mut sends: Vec<u64> = seqs.filter_map(|seq| timeline.sent.get(seq)).collect();
        sends.sort_unstable();
        let turns = sends.len();
        let elapsed = Duration::from_nanos(sends.last().map_or(0, |last| last - released));
        let steady_turns_per_sec = if turns >= 10 {
            let (lo, hi) = (sends[turns / 10], sends[turns * 9 / 10]);
            (turns * 9 / 10 - turns / 10) as f64 / Duration::from_nanos(hi - lo).as_secs_f64()
        } else {
            0.0
        };
        Self {
            queued,
            turns,
            turns_per_sec: turns as f64 / elapsed.as_secs_f64().max(1e-9),
            elapsed,
            steady_turns_per_sec,
        }
    }
}

/// What one turn costs, with the idle background subtracted.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    pub turns: usize,
    pub window: Duration,
    pub commits: f64,
    pub wal_bytes: f64,
    pub botfleet_cpu_ms: f64,
    pub postgres_cpu_ms: f64,
    pub idle_commits_per_sec: f64,
    pub idle_botfleet_cpu_share: f64,
}

impl Costs {
    /// `idle_start..start` was idle; `start..end` holds the turns (intake and drain).
    pub fn per_turn(idle_start: &Meters, start: &Meters, end: &Meters, turns: usize) -> Self {
        let idle = start.at.duration_since(idle_start.at).as_secs_f64();
        let window = end.at.duration_since(start.at);
        let w = window.as_secs_f64();
        let n = turns.max(1) as f64;
        // The change over the window, less what the idle rate accounts for, per turn.
        let net = |before_idle: f64, before: f64, after: f64| {
            ((after - before) - (before - before_idle) / idle * w) / n
        };
        let (a, b, c) = (&idle_start.server, &start.server, &end.server);
        Self {
            turns,
            window,
            commits: net(a.commits as f64, b.commits as f64, c.commits as f64),
            // Cluster-wide, so a quiet minute elsewhere says little: not subtracted.
            wal_bytes: (c.wal_bytes - b.wal_bytes) as f64 / n,
            botfleet_cpu_ms: 1000.0
                * net(
                    idle_start.botfleet_cpu,
                    start.botfleet_cpu,
                    end.botfleet_cpu,
                ),
            // Every postgres process, as the seed stack's is measured (the ratio compares the
            // two); the drain runs alone, so the machine's other work is small here.
            postgres_cpu_ms: 1000.0
                * net(
                    idle_start.postgres_cpu,
                    start.postgres_cpu,
                    end.postgres_cpu,
                ),
            idle_commits_per_sec: (b.commits - a.commits) as f64 / idle,
            idle_botfleet_cpu_share: (start.botfleet_cpu - idle_start.botfleet_cpu) / idle,
        }
    }
}

/// Everything one run found.
pub struct Report {
    pub plan: Plan,
    pub postgres_version: String,
    pub load_before: String,
    pub load_after: String,
    /// The load average as each phase started: a disturbed phase can be told apart.
    pub phase_loads: Vec<(&'static str, String)>,
    pub cargo_test_seen: bool,
    /// Commits in the other databases while the bench ran, and how many databases came or
    /// went: how busy the rest of the server was.
    pub other_databases: (i64, usize),
    pub logged_in: bool,
    /// setWebhook calls seen once the bots were enabled.
    pub webhooks_set: u64,
    pub intake: Vec<StepFigures>,
    pub drain: Option<DrainFigures>,
    pub costs: Option<Costs>,
    pub rss_idle: Option<u64>,
    /// The latency phase's process before its first step.
    pub rss_latency_idle: Option<u64>,
    /// Right after the drain: every one of the chats has had its turn.
    pub rss_after_drain: Option<(u64, u64)>,
    /// Updates per second the closed-loop filler got accepted while queueing the drain.
    pub fill_per_sec: f64,
    pub latency: Vec<StepFigures>,
    /// Time to first visible text, streaming off then on.
    pub first_text: Vec<crate::first_text::FirstTextFigures>,
    pub llm_calls: u64,
    pub telegram_other_calls: std::collections::BTreeMap<String, u64>,
    pub botfleet_errors: usize,
    pub pgbench_tps: Option<f64>,
    pub pgboss_version: String,
    pub pgboss_jobs: u64,
    pub pgboss: Vec<PgBossDrain>,
    /// The old stack's worker, draining the same number of updates as Botfleet.
    pub seed: Option<SeedFigures>,
    pub budget: Option<crate::budget::BudgetFigures>,
    pub crash: Option<crate::crash::CrashFigures>,
    pub polling: Option<crate::polling::PollingFigures>,
    pub slow_model: Option<crate::slow_model::SlowModelFigures>,
    pub one_bot: Option<crate::one_bot::OneBotFigures>,
}

impl Report {
    pub fn new(plan: Plan) -> Self {
        Self {
            plan,
            postgres_version: String::new(),
            load_before: String::new(),
            load_after: String::new(),
            phase_loads: Vec::new(),
            cargo_test_seen: false,
            other_databases: (0, 0),
            logged_in: false,
            webhooks_set: 0,
            intake: Vec::new(),
            drain: None,
            costs: None,
            rss_idle: None,
            rss_latency_idle: None,
            rss_after_drain: None,
            fill_per_sec: 0.0,
            latency: Vec::new(),
            first_text: Vec::new(),
            llm_calls: 0,
            telegram_other_calls: Default::default(),
            botfleet_errors: 0,
            pgbench_tps: None,
            pgboss_version: String::new(),
            pgboss_jobs: 0,
            pgboss: Vec::new(),
            seed: None,
            budget: None,
            crash: None,
            polling: None,
            slow_model: None,
            one_bot: None,
        }
    }

    fn best_pgboss(&self) -> Option<&PgBossDrain> {
        self.pgboss
            .iter()
            .max_by(|a, b| a.jobs_per_sec.total_cmp(&b.jobs_per_sec))
    }

    /// The latency step at the target's rate (500/s), if it ran.
    fn at_target_rate(&self) -> Option<&StepFigures> {
        self.latency
            .iter()
            .find(|s| s.offered == self.plan.latency_required_rate)
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn pct(p: Option<Percentiles>, pick: fn(&Percentiles) -> Duration) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{:.1}", ms(pick(&p))))
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met   "
    } else {
        "MISSED"
    }
}

impl Display for Report {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let plan = &self.plan;
        writeln!(f)?;
        writeln!(f, "Botfleet pipeline benchmark")?;
        writeln!(
            f,
            "machine: {} CPUs, PostgreSQL {}; load average {} before, {} after; meanwhile other \
             databases committed {} transactions and {} were created or dropped{}",
            crate::anchors::available_cpus(),
            self.postgres_version,
            self.load_before,
            self.load_after,
            self.other_databases.0,
            self.other_databases.1,
            if self.cargo_test_seen {
                "; a `cargo test` ran during the bench (figures are noisy)"
            } else {
                ""
            }
        )?;
        if !self.phase_loads.is_empty() {
            let loads: Vec<String> = self
                .phase_loads
                .iter()
                .map(|(phase, load)| format!("{phase} {load}"))
                .collect();
            writeln!(
                f,
                "load average as each phase started: {}",
                loads.join("; ")
            )?;
        }
        writeln!(
            f,
            "botfleet: pool {}, EFFECT_CONCURRENCY {}, RUST_LOG={}, {} bots in webhook mode ({} \
             setWebhook), rate limits off, admin login {}; {} ERROR lines in its logs; database \
             options: {}",
            plan.pool,
            plan.effect_concurrency,
            plan.rust_log,
            plan.bots,
            self.webhooks_set,
            if self.logged_in {
                "used"
            } else {
                "not required"
            },
            self.botfleet_errors,
            match plan.database_options.as_str() {
                "" => "none",
                options => options,
            }
        )?;

        writeln!(f)?;
        writeln!(
            f,
            "1. Intake: webhook → 200, open loop, {} chats, latency from the intended send time \
             (LLM held: the runner is idle)",
            plan.chats
        )?;
        writeln!(
            f,
            "   offered/s  accepted/s  errors   p50 ms   p99 ms  p99.9 ms   max ms  RSS MB"
        )?;
        for s in &self.intake {
            writeln!(
                f,
                "   {:>9.0}  {:>10.0}  {:>6}  {:>7}  {:>7}  {:>8}  {:>7}  {:>6.0}",
                s.offered,
                s.accepted_per_sec,
                s.failed,
                pct(s.ack, |p| p.p50),
                pct(s.ack, |p| p.p99),
                pct(s.ack, |p| p.p999),
                pct(s.ack, |p| p.max),
                s.rss_after.map_or(0.0, mb),
            )?;
        }

        writeln!(f)?;
        writeln!(f, "2. End to end")?;
        if let Some(d) = &self.drain {
            writeln!(
                f,
                "   drain, instant LLM: {} of {} queued turns (one per chat; queued at {:.0}/s) in \
                 {:.1} s = {:.0} turns/s (10th–90th percentile: {:.0}/s)",
                d.turns,
                d.queued,
                self.fill_per_sec,
                d.elapsed.as_secs_f64(),
                d.turns_per_sec,
                d.steady_turns_per_sec
            )?;
        }
        writeln!(
            f,
            "   LLM answering in {} ms, a new chat per update; added = end to end − LLM time, \
             pickup = webhook 200 → LLM request",
            plan.llm_delay.as_millis()
        )?;
        writeln!(
            f,
            "   offered/s  turns/s  added p50  added p99  pickup p50  pickup p99  ack p99  \
             in flight  RSS MB  done"
        )?;
        for s in &self.latency {
            writeln!(
                f,
                "   {:>9.0}  {:>7.0}  {:>9}  {:>9}  {:>10}  {:>10}  {:>7}  {:>9}  {:>6.0}  {}/{}{}",
                s.offered,
                s.turns_per_sec,
                pct(s.added, |p| p.p50),
                pct(s.added, |p| p.p99),
                pct(s.pickup, |p| p.p50),
                pct(s.pickup, |p| p.p99),
                pct(s.ack, |p| p.p99),
                s.in_flight_at_end.unwrap_or_default(),
                s.rss_after.map_or(0.0, mb),
                s.completed,
                s.accepted + s.failed,
                if s.saturated() { "  saturated" } else { "" }
            )?;
        }
        if self.latency.iter().any(|s| s.costs.is_some()) {
            writeln!(
                f,
                "   per turn at each step (commits of the bench database, over the step and its \
                 tail):"
            )?;
            writeln!(
                f,
                "   offered/s  commits  Botfleet CPU ms  PostgreSQL CPU ms (Botfleet's backends)"
            )?;
            for s in &self.latency {
                if let Some(c) = s.costs {
                    writeln!(
                        f,
                        "   {:>9.0}  {:>7.1}  {:>15.2}  {:>17.2}",
                        s.offered, c.commits, c.botfleet_cpu_ms, c.postgres_cpu_ms
                    )?;
                }
            }
        }

        if !self.first_text.is_empty() {
            writeln!(
                f,
                "   time to first visible text: the model thinks {} ms, then writes {} tokens \
                 one per {} ms; {}/s for {:.0} s, a new private chat per update; from the \
                 webhook's 200 to the first draft (streaming) or the answer (not streaming)",
                plan.llm_delay.as_millis(),
                plan.tokens,
                plan.token_pace.as_millis(),
                plan.first_text_rate,
                plan.first_text_step.as_secs_f64()
            )?;
            writeln!(
                f,
                "   streaming  turns  first text p50  first text p99  answer p50  answer p99  drafts"
            )?;
            for s in &self.first_text {
                writeln!(
                    f,
                    "   {:>9}  {:>5}  {:>14}  {:>14}  {:>10}  {:>10}  {:>6}",
                    if s.streaming { "on" } else { "off" },
                    s.turns,
                    pct(s.first_text, |p| p.p50),
                    pct(s.first_text, |p| p.p99),
                    pct(s.answered, |p| p.p50),
                    pct(s.answered, |p| p.p99),
                    s.drafts
                )?;
            }
        }

        writeln!(f)?;
        writeln!(
            f,
            "3. Cost per turn (queueing and draining the drain's turns; Botfleet's idle background \
             subtracted from commits and CPU)"
        )?;
        if let Some(c) = &self.costs {
            writeln!(
                f,
                "   {:.1} PostgreSQL commits, {:.0} WAL bytes (cluster-wide), {:.2} ms Botfleet CPU, \
                 {:.2} ms PostgreSQL CPU per turn (every postgres process) ({} turns over {:.0} s; idle: {:.1} commits/s, \
                 {:.1}% of a CPU)",
                c.commits,
                c.wal_bytes,
                c.botfleet_cpu_ms,
                c.postgres_cpu_ms,
                c.turns,
                c.window.as_secs_f64(),
                c.idle_commits_per_sec,
                c.idle_botfleet_cpu_share * 100.0
            )?;
        }
        let rss = |m: Option<(u64, u64)>| {
            m.map_or_else(
                || "-".to_owned(),
                |(now, peak)| format!("{:.0} MB (peak {:.0} MB)", mb(now), mb(peak)),
            )
        };
        writeln!(
            f,
            "   Botfleet RSS: idle {:.0} MB; with {} active chats {} (intake steps: see 1.); \
             latency process before its steps {:.0} MB (with turns in flight: see 2.)",
            self.rss_idle.map_or(0.0, mb),
            plan.chats,
            rss(self.rss_after_drain),
            self.rss_latency_idle.map_or(0.0, mb),
        )?;

        writeln!(f)?;
        writeln!(f, "4. Anchors (same server, Botfleet stopped)")?;
        if let Some(seed) = &self.seed {
            let d = &seed.drain;
            writeln!(
                f,
                "   seed stack (pg-boss {} + node-postgres, the old worker's steps, same fakes, \
                 instant LLM; {} workers x {}, pool {}): {} updates enqueued at {:.0}/s, then \
                 drained in {:.1} s = {:.0} turns/s; {} completed, {} failed, {} answers reached \
                 Telegram ({} twice)",
                seed.pgboss_version,
                d.workers,
                d.batch,
                d.pool,
                seed.jobs,
                d.enqueue_per_sec,
                d.seconds,
                d.jobs_per_sec,
                d.completed,
                d.failed,
                seed.answered,
                seed.duplicates
            )?;
            writeln!(
                f,
                "   seed stack per turn (enqueueing and draining): {:.1} PostgreSQL commits, \
                 {:.2} ms Node CPU ({:.2} enqueueing), {:.2} ms PostgreSQL CPU; Node peak RSS \
                 {:.0} MB",
                seed.commits,
                seed.node_cpu_ms,
                d.node_cpu_ms_enqueue / d.completed.max(1) as f64,
                seed.postgres_cpu_ms,
                d.max_rss_mb
            )?;
        }
        if let Some(tps) = self.pgbench_tps {
            write!(
                f,
                "   pgbench, one-row INSERT per transaction, {} clients: {:.0} commits/s",
                plan.pool, tps
            )?;
            match &self.costs {
                Some(c) if c.commits > 0.0 => writeln!(
                    f,
                    " → at {:.1} commits per turn, a ceiling of {:.0} turns/s",
                    c.commits,
                    tps / c.commits
                )?,
                _ => writeln!(f)?,
            }
        }
        let settings: Vec<String> = self
            .pgboss
            .iter()
            .map(|d| format!("{}x{}: {:.0}", d.workers, d.batch, d.jobs_per_sec))
            .collect();
        writeln!(
            f,
            "   pg-boss {} no-op drain, {} jobs, workers x batch: {} jobs/s",
            self.pgboss_version,
            self.pgboss_jobs,
            settings.join(", ")
        )?;

        writeln!(f)?;
        writeln!(f, "Targets")?;
        let turns = self.drain.as_ref().map_or(0.0, |d| d.turns_per_sec);
        if let Some(best) = self.best_pgboss() {
            let ratio = turns / best.jobs_per_sec;
            writeln!(
                f,
                "   {} turns/s ≥ pg-boss's best no-op drain (aim 1.5×): {:.0} ÷ {:.0} ({}x{}) = {:.2}×",
                verdict(ratio >= 1.0),
                turns,
                best.jobs_per_sec,
                best.workers,
                best.batch,
                ratio
            )?;
        }
        if let (Some(seed), Some(drain)) = (&self.seed, &self.drain) {
            write!(
                f,
                "   Botfleet ÷ seed stack: {:.0} ÷ {:.0} turns/s = {:.2}×",
                drain.turns_per_sec,
                seed.drain.jobs_per_sec,
                drain.turns_per_sec / seed.drain.jobs_per_sec
            )?;
            match &self.costs {
                Some(c) => writeln!(
                    f,
                    "; per turn, commits {:.1} ÷ {:.1} = {:.2}×, service CPU {:.2} ÷ {:.2} ms = \
                     {:.2}×, PostgreSQL CPU {:.2} ÷ {:.2} ms = {:.2}×",
                    c.commits,
                    seed.commits,
                    c.commits / seed.commits,
                    c.botfleet_cpu_ms,
                    seed.node_cpu_ms,
                    c.botfleet_cpu_ms / seed.node_cpu_ms,
                    c.postgres_cpu_ms,
                    seed.postgres_cpu_ms,
                    c.postgres_cpu_ms / seed.postgres_cpu_ms
                )?,
                None => writeln!(f)?,
            }
        }
        match self.at_target_rate() {
            Some(s) => {
                let p99 = s.added.map(|a| a.p99);
                writeln!(
                    f,
                    "   {} added latency p99 < 50 ms at {:.0} updates/s: {} ms",
                    verdict(p99.is_some_and(|p| p < Duration::from_millis(50))),
                    s.offered,
                    pct(s.added, |p| p.p99)
                )?;
                let p50 = s.pickup.map(|p| p.p50);
                writeln!(
                    f,
                    "   {} pickup p50 < 5 ms at {:.0} updates/s: {} ms (at {:.0}/s: {} ms)",
                    verdict(p50.is_some_and(|p| p < Duration::from_millis(5))),
                    s.offered,
                    pct(s.pickup, |p| p.p50),
                    self.latency.first().map_or(0.0, |s| s.offered),
                    pct(self.latency.first().and_then(|s| s.pickup), |p| p.p50),
                )?;
            }
            None => writeln!(f, "   (the latency phase did not reach 500 updates/s)")?,
        }
        if let Some((rss, _)) = self.rss_after_drain {
            writeln!(
                f,
                "   {} RSS < 200 MB with {} active chats: {:.0} MB",
                verdict(mb(rss) < 200.0),
                plan.chats,
                mb(rss)
            )?;
        }
        let others: Vec<String> = self
            .telegram_other_calls
            .iter()
            .map(|(method, n)| format!("{n} {method}"))
            .collect();
        if let Some(budget) = &self.budget {
            write!(f, "{budget}")?;
        }
        if let Some(crash) = &self.crash {
            write!(f, "{crash}")?;
        }
        if let Some(polling) = &self.polling {
            write!(f, "{polling}")?;
        }
        if let Some(slow_model) = &self.slow_model {
            write!(f, "{slow_model}")?;
        }
        if let Some(one_bot) = &self.one_bot {
            write!(f, "{one_bot}")?;
        }
        write!(
            f,
            "   (the fake LLM saw {} calls; the fake Telegram, besides sendMessage: {})",
            self.llm_calls,
            if others.is_empty() {
                "nothing".to_owned()
            } else {
                others.join(", ")
            }
        )
    }
}
