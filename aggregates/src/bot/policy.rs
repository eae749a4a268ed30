//! Who may talk to a bot, and how much it may spend: the bot's policy, and the pure decision
//! whether a turn may go ahead ([`screen_access`], [`screen_budget`]).
//!
//! The policy is one value, set as a whole by an admin (`PolicySet`), so that every change is
//! one event attributed to that admin. Every field has a default that changes nothing: a bot
//! without a policy answers anyone, without limits, as before.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::texts::TextKey;
use crate::text::InvalidField;

/// Everything an admin decides about who is served and how much.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BotPolicy {
    pub access: AccessPolicy,
    pub budgets: Budgets,
    pub conversation: ConversationLimits,
    pub texts: SystemTexts,
}

/// Who may talk to the bot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessPolicy {
    /// Anyone, or only the people listed.
    pub people: PeopleAccess,
    /// With `allow_list`: Telegram user ids that may write.
    pub allowed_user_ids: BTreeSet<i64>,
    /// With `allow_list`: @usernames that may write (stored without `@`, lower case).
    pub allowed_usernames: BTreeSet<String>,
    /// Which groups the bot serves.
    pub groups: GroupAccess,
    /// With groups `allow_list`: the group ids (negative, as Telegram gives them).
    pub allowed_group_ids: BTreeSet<i64>,
    /// The bot's admins on Telegram: never refused, never limited.
    pub admins: BTreeSet<i64>,
    /// Leave a group the bot may not serve, after saying so once.
    pub leave_refused_groups: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeopleAccess {
    #[default]
    Open,
    AllowList,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupAccess {
    #[default]
    Any,
    None,
    AllowList,
}

/// Limits on one person's use of the bot; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub messages_per_day: Option<u32>,
    pub messages_per_month: Option<u32>,
    pub cost_per_day_micro_usd: Option<i64>,
    pub cost_per_month_micro_usd: Option<i64>,
}

/// How much the bot may spend, per person and in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Budgets {
    /// Everyone's limits, unless overridden.
    pub per_person: Limits,
    /// Limits for particular people (Telegram user id), replacing `per_person` for them.
    pub overrides: BTreeMap<i64, Limits>,
    /// What the whole bot may spend in a calendar month (UTC): protects the owner's account.
    pub bot_cost_per_month_micro_usd: Option<i64>,
    /// Messages one person may have answered by the model in any minute (per chat, by the
    /// times Telegram gives the messages).
    pub messages_per_minute: Option<u32>,
}

/// How much of a conversation the model is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConversationLimits {
    /// At most this many earlier turns are kept as context; then a new conversation starts.
    pub max_turns: Option<u32>,
    /// Once a turn's input (its context) reaches this many tokens, the next starts afresh.
    pub max_input_tokens: Option<u64>,
    /// After this many minutes without a message, the next one starts a new conversation.
    pub idle_minutes: Option<u32>,
}

/// The bot's own system texts, per language (ISO 639-1, e.g. `en`, `ru`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemTexts {
    /// Used for a person whose language the bot has no text for.
    pub default_language: String,
    pub by_language: BTreeMap<String, BTreeMap<TextKey, String>>,
}

impl Default for SystemTexts {
    fn default() -> Self {
        Self {
            default_language: "en".to_owned(),
            by_language: BTreeMap::new(),
        }
    }
}

impl BotPolicy {
    /// Whether anything is screened: without, a turn goes ahead without a look.
    pub fn screens_anything(&self) -> bool {
        self.access.people != PeopleAccess::Open
            || self.access.groups != GroupAccess::Any
            || self.budgets.counts_use()
            || self.budgets.messages_per_minute.is_some()
    }

    /// Whether screening `user_id` needs their @username: only when a username could be what
    /// lets them in.
    pub fn needs_username(&self, user_id: Option<i64>) -> bool {
        let access = &self.access;
        access.people == PeopleAccess::AllowList
            && !access.allowed_usernames.is_empty()
            && !user_id.is_some_and(|id| {
                access.allowed_user_ids.contains(&id) || access.admins.contains(&id)
            })
    }

    /// Checks what the types cannot: sizes, names, and that each text fits a message.
    pub fn validate(&self) -> Result<(), InvalidField> {
        let access = &self.access;
        if access.allowed_user_ids.iter().any(|id| *id <= 0) {
            return Err(InvalidField::new(
                "access.allowed_user_ids",
                "must be Telegram user ids (positive numbers)",
            ));
        }
        if access.admins.iter().any(|id| *id <= 0) {
            return Err(InvalidField::new(
                "access.admins",
                "must be Telegram user ids (positive numbers)",
            ));
        }
        if access.allowed_group_ids.iter().any(|id| *id >= 0) {
            return Err(InvalidField::new(
                "access.allowed_group_ids",
                "must be Telegram group ids (negative numbers)",
            ));
        }
        for name in &access.allowed_usernames {
            let valid = (5..=32).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(InvalidField::new(
                    "access.allowed_usernames",
                    format!("{name:?} is not a Telegram username (5 to 32 of a-z, 0-9 and _, without @)"),
                ));
            }
        }
        let lists = access.allowed_user_ids.len()
            + access.allowed_usernames.len()
            + access.allowed_group_ids.len()
            + access.admins.len()
            + self.budgets.overrides.len();
        if lists > 10_000 {
            return Err(InvalidField::new(
                "access",
                "lists hold at most 10000 entries in all",
            ));
        }
        let mut amounts = vec![
            self.budgets.per_person.cost_per_day_micro_usd,
            self.budgets.per_person.cost_per_month_micro_usd,
            self.budgets.bot_cost_per_month_micro_usd,
        ];
        for limits in self.budgets.overrides.values() {
            amounts.push(limits.cost_per_day_micro_usd);
            amounts.push(limits.cost_per_month_micro_usd);
        }
        if amounts.into_iter().flatten().any(|amount| amount < 0) {
            return Err(InvalidField::new(
                "budgets",
                "amounts are micro-USD and cannot be negative",
            ));
        }
        if self.budgets.messages_per_minute == Some(0) {
            return Err(InvalidField::new(
                "budgets.messages_per_minute",
                "must be at least 1 (or absent for no limit)",
            ));
        }
        let language_ok =
            |code: &str| code.len() == 2 && code.bytes().all(|b| b.is_ascii_lowercase());
        if !language_ok(&self.texts.default_language) {
            return Err(InvalidField::new(
                "texts.default_language",
                "must be a two-letter language code, e.g. en",
            ));
        }
        for (language, texts) in &self.texts.by_language {
            if !language_ok(language) {
                return Err(InvalidField::new(
                    "texts.by_language",
                    format!("{language:?} is not a two-letter language code"),
                ));
            }
            for (key, text) in texts {
                let field = format!("texts.by_language.{language}.{}", key.as_str());
                crate::text::bounded(&field, text, 1, 4096)?;
            }
        }
        Ok(())
    }
}

impl Budgets {
    /// Whether any limit needs the use so far: without one, a turn reads nothing to pass.
    pub fn counts_use(&self) -> bool {
        let any = |l: &Limits| {
            l.messages_per_day.is_some()
                || l.messages_per_month.is_some()
                || l.cost_per_day_micro_usd.is_some()
                || l.cost_per_month_micro_usd.is_some()
        };
        self.bot_cost_per_month_micro_usd.is_some()
            || any(&self.per_person)
            || self.overrides.values().any(any)
    }

    /// The limits that apply to `person`.
    pub fn limits_for(&self, person: Option<i64>) -> &Limits {
        person
            .and_then(|id| self.overrides.get(&id))
            .unwrap_or(&self.per_person)
    }
}

/// The period an admin's grant of extra use is for: the current UTC day or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantPeriod {
    Day,
    Month,
}

impl GrantPeriod {
    /// The first day of the period that holds `now`.
    pub fn start(self, now: DateTime<Utc>) -> NaiveDate {
        match self {
            GrantPeriod::Day => now.date_naive(),
            GrantPeriod::Month => month_start(now),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GrantPeriod::Day => "day",
            GrantPeriod::Month => "month",
        }
    }
}

/// Who wrote, as far as screening needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub user_id: Option<i64>,
    pub username: Option<&'a str>,
    /// The Telegram chat: negative for a group.
    pub chat_id: i64,
    pub in_group: bool,
}

/// Why a turn is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The person is not on the bot's allow-list.
    NotAllowed,
    /// The bot may not serve this group.
    GroupNotAllowed,
    /// The person's daily limit (messages or cost) is reached.
    DailyLimit,
    /// The person's monthly limit is reached.
    MonthlyLimit,
    /// The bot's monthly spend cap is reached.
    BotMonthlyCap,
    /// The person writes faster than the bot's per-minute rate.
    TooFast,
}

impl RefusalReason {
    /// The system text that tells the person.
    pub fn text_key(self) -> TextKey {
        match self {
            RefusalReason::NotAllowed => TextKey::Refusal,
            RefusalReason::GroupNotAllowed => TextKey::GroupRefusal,
            RefusalReason::DailyLimit | RefusalReason::MonthlyLimit => TextKey::LimitReached,
            RefusalReason::BotMonthlyCap => TextKey::BotLimitReached,
            RefusalReason::TooFast => TextKey::SlowDown,
        }
    }

    /// How long after a notice of this kind in a chat the next one may be sent: a refused
    /// person hears it once a day, a hurried one once per ten minutes, and a group the bot
    /// may not serve once (`None`: never again).
    pub fn notice_spacing(self) -> Option<Duration> {
        match self {
            RefusalReason::TooFast => Some(Duration::minutes(10)),
            RefusalReason::GroupNotAllowed => None,
            _ => Some(Duration::days(1)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NotAllowed => "not_allowed",
            RefusalReason::GroupNotAllowed => "group_not_allowed",
            RefusalReason::DailyLimit => "daily_limit",
            RefusalReason::MonthlyLimit => "monthly_limit",
            RefusalReason::BotMonthlyCap => "bot_monthly_cap",
            RefusalReason::TooFast => "too_fast",
        }
    }
}

/// May this person talk to the bot in this chat at all?
pub fn screen_access(policy: &AccessPolicy, asker: &Asker<'_>) -> Option<RefusalReason> {
    if asker.user_id.is_some_and(|id| policy.admins.contains(&id)) {
        return None;
    }
    if asker.in_group {
        let group_ok = match policy.groups {
            GroupAccess::Any => true,
            GroupAccess::None => false,
            GroupAccess::AllowList => policy.allowed_group_ids.contains(&asker.chat_id),
        };
        if !group_ok {
            return Some(RefusalReason::GroupNotAllowed);
        }
    }
    match policy.people {
        PeopleAccess::Open => None,
        PeopleAccess::AllowList => {
            let by_id = asker
                .user_id
                .is_some_and(|id| policy.allowed_user_ids.contains(&id));
            let by_name = asker.username.is_some_and(|name| {
                policy
                    .allowed_usernames
                    .contains(&name.trim_start_matches('@').to_ascii_lowercase())
            });
            (!(by_id || by_name)).then_some(RefusalReason::NotAllowed)
        }
    }
}

/// What one period's use comes to, with what admins granted on top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodUse {
    pub messages: i64,
    pub cost_micro_usd: i64,
    pub granted_messages: i64,
    pub granted_cost_micro_usd: i64,
}

/// A person's use of the bot, and the bot's, in the current day and month (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub person_day: PeriodUse,
    pub person_month: PeriodUse,
    pub bot_month_cost_micro_usd: i64,
}

/// A refused turn: why, and when the limit that refused it lifts (none for access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub resets_at: Option<DateTime<Utc>>,
}

/// The first moment of the next UTC day after `now`.
pub fn next_day(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(
        &(now.date_naive() + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists"),
    )
}

/// The first moment of the next UTC month after `now`.
pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.from_utc_datetime(
        &NaiveDate::from_ymd_opt(year, month, 1)
            .expect("the first of a month exists")
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists"),
    )
}

/// The first day of `now`'s UTC month.
pub fn month_start(now: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(now.year(), now.month(), 1).expect("the first of a month exists")
}

/// May a turn that asks the model go ahead, given the use so far? `too_fast` says the person
/// is over the per-minute rate (kept by the caller, per process). Admins are never limited.
pub fn screen_budget(
    budgets: &Budgets,
    admins: &BTreeSet<i64>,
    user_id: Option<i64>,
    usage: &Usage,
    too_fast: bool,
    now: DateTime<Utc>,
) -> Option<Refusal> {
    if user_id.is_some_and(|id| admins.contains(&id)) {
        return None;
    }
    let refuse = |reason, resets_at| {
        Some(Refusal {
            reason,
            resets_at: Some(resets_at),
        })
    };
    if budgets
        .bot_cost_per_month_micro_usd
        .is_some_and(|cap| usage.bot_month_cost_micro_usd >= cap)
    {
        return refuse(RefusalReason::BotMonthlyCap, next_month(now));
    }
    let limits = budgets.limits_for(user_id);
    let over =
        |used: i64, limit: Option<i64>, granted: i64| limit.is_some_and(|l| used >= l + granted);
    let day = &usage.person_day;
    if over(
        day.messages,
        limits.messages_per_day.map(i64::from),
        day.granted_messages,
    ) || over(
        day.cost_micro_usd,
        limits.cost_per_day_micro_usd,
        day.granted_cost_micro_usd,
    ) {
        return refuse(RefusalReason::DailyLimit, next_day(now));
    }
    let month = &usage.person_month;
    if over(
        month.messages,
        limits.messages_per_month.map(i64::from),
        month.granted_messages,
    ) || over(
        month.cost_micro_usd,
        limits.cost_per_month_micro_usd,
        month.granted_cost_micro_usd,
    ) {
        return refuse(RefusalReason::MonthlyLimit, next_month(now));
    }
    if too_fast {
        return Some(Refusal {
            reason: RefusalReason::TooFast,
            resets_at: None,
        });
    }
    None
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
