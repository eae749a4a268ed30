//! `/bots/{id}/policy`, `/grants`, `/usage`, `/refusals`: who may talk to a bot and how much it
//! may spend, what people used, and who was refused.
//!
//! The policy is set as a whole through the Bot aggregate (one `PolicySet` event attributed
//! to the admin); grants are `ExtraGranted` events. Reads come from the `bots` and
//! `allowances` read models, after waiting for a write to reach them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aggregates::bot::policy::{
    AccessPolicy, BotPolicy, Budgets, ConversationLimits, GrantPeriod, GroupAccess, Limits,
    PeopleAccess, SystemTexts,
};
use aggregates::bot::texts::TextKey;
use aggregates::bot::{Bot, BotCommand, ExtraGrant};
use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use projections::allowances::{person_usage, refusals};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::consistency::ReadYourWrites;
use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::paging::{cursor_instant, cursor_part, decode_cursor, encode_cursor, micros};
use super::strict_json::Strict;
use super::{ApiTags, Wired};
use crate::event_store::{Actor, CommandGateway, Committed, EventMetadata};
use crate::personal_data::PersonalDataVault;
use crate::runtime::clock::Clock;

/// Who may talk to a bot and how much it may spend. Every field may be left out: a missing
/// one takes its default (anyone may write, no limits, built-in texts in English).
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct PolicyDocument {
    pub access: AccessDocument,
    pub budgets: BudgetsDocument,
    pub conversation: ConversationDocument,
    pub texts: TextsDocument,
}

/// Who may write to the bot.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct AccessDocument {
    /// `open`: anyone; `allow_list`: only the user ids and usernames below (and the admins).
    pub people: PeopleAccessName,
    /// Telegram user ids allowed to write (with `allow_list`).
    pub allowed_user_ids: Vec<i64>,
    /// Telegram @usernames allowed to write (with `allow_list`); `@` and case are ignored.
    pub allowed_usernames: Vec<String>,
    /// `any` group, `none`, or only the `allowed_group_ids`.
    pub groups: GroupAccessName,
    /// Telegram group ids (negative) the bot serves (with groups `allow_list`).
    pub allowed_group_ids: Vec<i64>,
    /// The bot's admins on Telegram (user ids): never refused, never limited.
    pub admins: Vec<i64>,
    /// Leave a group the bot may not serve, after saying so once.
    pub leave_refused_groups: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PeopleAccessName {
    #[default]
    Open,
    AllowList,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum GroupAccessName {
    #[default]
    Any,
    None,
    AllowList,
}

/// Limits on one person's use; a limit left out is no limit. Costs are micro-USD.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct LimitsDocument {
    pub messages_per_day: Option<u32>,
    pub messages_per_month: Option<u32>,
    pub cost_per_day_micro_usd: Option<i64>,
    pub cost_per_month_micro_usd: Option<i64>,
}

/// One person's own limits, in place of the bot's defaults.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[oai(skip_serializing_if_is_none)]
pub struct LimitsOverride {
    /// The person's Telegram user id.
    pub person: i64,
    pub limits: LimitsDocument,
}

/// How much the bot may spend. Days and months are UTC.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct BudgetsDocument {
    /// Everyone's limits, unless overridden.
    pub per_person: LimitsDocument,
    /// Particular people's limits.
    pub overrides: Vec<LimitsOverride>,
    /// What the whole bot may spend in a month: protects the owner's account.
    pub bot_cost_per_month_micro_usd: Option<i64>,
    /// Messages one person may have answered by the model in any minute (per chat).
    pub messages_per_minute: Option<u32>,
}

/// How much of a conversation the model is given.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct ConversationDocument {
    /// At most this many earlier exchanges as context.
    pub max_turns: Option<u32>,
    /// Once the context reaches this many input tokens, a shorter one starts.
    pub max_input_tokens: Option<u64>,
    /// After this many minutes without a message, the next starts a new conversation
    /// (announced to the user in one line).
    pub idle_minutes: Option<u32>,
}

/// The bot's own system texts, per language.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct TextsDocument {
    /// The language (two letters, e.g. `en`) for people whose language the bot has no text
    /// in; built-in texts exist in `en` and `ru`.
    pub default_language: String,
    /// Texts by language code; a text left out is the built-in one (for `start` and
    /// `error`: the bot's start and error message, in its default language).
    pub by_language: BTreeMap<String, LanguageTexts>,
}

impl Default for TextsDocument {
    fn default() -> Self {
        Self {
            default_language: "en".to_owned(),
            by_language: BTreeMap::new(),
        }
    }
}

/// One language's texts. `{resets_at}` in a limit text is when the limit lifts; the usage
/// text has `{messages_today}`, `{cost_today}`, `{messages_month}`, `{cost_month}`,
/// `{limit_messages_day}`, `{limit_cost_day}`, `{limit_messages_month}`,
/// `{limit_cost_month}`.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[oai(default, skip_serializing_if_is_none)]
pub struct LanguageTexts {
    /// The reply to /start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The reply to /help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The reply to /refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// The reply to a message the bot cannot read (a sticker…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_notice: Option<String>,
    /// Told once a day to someone not on the allow-list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Said once in a group the bot may not serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_refusal: Option<String>,
    /// Told once a day to someone at their limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_reached: Option<String>,
    /// Told once a day when the bot's monthly cap is reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot_limit_reached: Option<String>,
    /// Told once in ten minutes to someone writing too fast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_down: Option<String>,
    /// Sent when the model failed for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The line before the first answer of a conversation started afresh after a pause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_conversation: Option<String>,
    /// The reply to /usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// The answer to a button that no longer does anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_button: Option<String>,
    /// The reply to a voice message or file over the limits; may hold `{max_minutes}` and
    /// `{max_megabytes}`.
    pub media_too_large: Option<String>,
    /// The reply to a voice message in which no words were heard.
    pub voice_unclear: Option<String>,
}

impl LanguageTexts {
    fn entries(&self) -> [(TextKey, &Option<String>); 15] {
        [
            (TextKey::Start, &self.start),
            (TextKey::Help, &self.help),
            (TextKey::Refresh, &self.refresh),
            (TextKey::MediaNotice, &self.media_notice),
            (TextKey::Refusal, &self.refusal),
            (TextKey::GroupRefusal, &self.group_refusal),
            (TextKey::LimitReached, &self.limit_reached),
            (TextKey::BotLimitReached, &self.bot_limit_reached),
            (TextKey::SlowDown, &self.slow_down),
            (TextKey::Error, &self.error),
            (TextKey::NewConversation, &self.new_conversation),
            (TextKey::Usage, &self.usage),
            (TextKey::UnknownButton, &self.unknown_button),
            (TextKey::MediaTooLarge, &self.media_too_large),
            (TextKey::VoiceUnclear, &self.voice_unclear),
        ]
    }

    fn from_map(texts: &BTreeMap<TextKey, String>) -> Self {
        let get = |key| texts.get(&key).cloned();
        Self {
            start: get(TextKey::Start),
            help: get(TextKey::Help),
            refresh: get(TextKey::Refresh),
            media_notice: get(TextKey::MediaNotice),
            refusal: get(TextKey::Refusal),
            group_refusal: get(TextKey::GroupRefusal),
            limit_reached: get(TextKey::LimitReached),
            bot_limit_reached: get(TextKey::BotLimitReached),
            slow_down: get(TextKey::SlowDown),
            error: get(TextKey::Error),
            new_conversation: get(TextKey::NewConversation),
            usage: get(TextKey::Usage),
            unknown_button: get(TextKey::UnknownButton),
            media_too_large: get(TextKey::MediaTooLarge),
            voice_unclear: get(TextKey::VoiceUnclear),
        }
    }
}

impl From<&LimitsDocument> for Limits {
    fn from(d: &LimitsDocument) -> Self {
        Limits {
            messages_per_day: d.messages_per_day,
            messages_per_month: d.messages_per_month,
            cost_per_day_micro_usd: d.cost_per_day_micro_usd,
            cost_per_month_micro_usd: d.cost_per_month_micro_usd,
        }
    }
}

impl From<&Limits> for LimitsDocument {
    fn from(l: &Limits) -> Self {
        LimitsDocument {
            messages_per_day: l.messages_per_day,
            messages_per_month: l.messages_per_month,
            cost_per_day_micro_usd: l.cost_per_day_micro_usd,
            cost_per_month_micro_usd: l.cost_per_month_micro_usd,
        }
    }
}

impl PolicyDocument {
    /// The policy this document describes; usernames lose their `@` and case.
    fn into_policy(self) -> BotPolicy {
        let a = self.access;
        let b = self.budgets;
        BotPolicy {
            access: AccessPolicy {
                people: match a.people {
                    PeopleAccessName::Open => PeopleAccess::Open,
                    PeopleAccessName::AllowList => PeopleAccess::AllowList,
                },
                allowed_user_ids: a.allowed_user_ids.into_iter().collect(),
                allowed_usernames: a
                    .allowed_usernames
                    .iter()
                    .map(|name| name.trim().trim_start_matches('@').to_ascii_lowercase())
                    .collect(),
                groups: match a.groups {
                    GroupAccessName::Any => GroupAccess::Any,
                    GroupAccessName::None => GroupAccess::None,
                    GroupAccessName::AllowList => GroupAccess::AllowList,
                },
                allowed_group_ids: a.allowed_group_ids.into_iter().collect(),
                admins: a.admins.into_iter().collect(),
                leave_refused_groups: a.leave_refused_groups,
            },
            budgets: Budgets {
                per_person: (&b.per_person).into(),
                overrides: b
                    .overrides
                    .iter()
                    .map(|o| (o.person, (&o.limits).into()))
                    .collect(),
                bot_cost_per_month_micro_usd: b.bot_cost_per_month_micro_usd,
                messages_per_minute: b.messages_per_minute,
            },
            conversation: ConversationLimits {
                max_turns: self.conversation.max_turns,
                max_input_tokens: self.conversation.max_input_tokens,
                idle_minutes: self.conversation.idle_minutes,
            },
            texts: SystemTexts {
                default_language: self.texts.default_language,
                by_language: self
                    .texts
                    .by_language
                    .iter()
                    .map(|(language, texts)| {
                        let by_key = texts
                            .entries()
                            .into_iter()
                            .filter_map(|(key, text)| text.clone().map(|t| (key, t)))
                            .collect();
                        (language.clone(), by_key)
                    })
                    .collect(),
            },
        }
    }

    fn of(policy: &BotPolicy) -> Self {
        let a = &policy.access;
        let b = &policy.budgets;
        let list = |set: &BTreeSet<i64>| set.iter().copied().collect::<Vec<_>>();
        PolicyDocument {
            access: AccessDocument {
                people: match a.people {
                    PeopleAccess::Open => PeopleAccessName::Open,
                    PeopleAccess::AllowList => PeopleAccessName::AllowList,
                },
                allowed_user_ids: list(&a.allowed_user_ids),
                allowed_usernames: a.allowed_usernames.iter().cloned().collect(),
                groups: match a.groups {
                    GroupAccess::Any => GroupAccessName::Any,
                    GroupAccess::None => GroupAccessName::None,
                    GroupAccess::AllowList => GroupAccessName::AllowList,
                },
                allowed_group_ids: list(&a.allowed_group_ids),
                admins: list(&a.admins),
                leave_refused_groups: a.leave_refused_groups,
            },
            budgets: BudgetsDocument {
                per_person: (&b.per_person).into(),
                overrides: b
                    .overrides
                    .iter()
                    .map(|(person, limits)| LimitsOverride {
                        person: *person,
                        limits: limits.into(),
                    })
                    .collect(),
                bot_cost_per_month_micro_usd: b.bot_cost_per_month_micro_usd,
                messages_per_minute: b.messages_per_minute,
            },
            conversation: ConversationDocument {
                max_turns: policy.conversation.max_turns,
                max_input_tokens: policy.conversation.max_input_tokens,
                idle_minutes: policy.conversation.idle_minutes,
            },
            texts: TextsDocument {
                default_language: policy.texts.default_language.clone(),
                by_language: policy
                    .texts
                    .by_language
                    .iter()
                    .map(|(language, texts)| (language.clone(), LanguageTexts::from_map(texts)))
                    .collect(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PeriodName {
    Day,
    Month,
}

impl PeriodName {
    fn period(self) -> GrantPeriod {
        match self {
            PeriodName::Day => GrantPeriod::Day,
            PeriodName::Month => GrantPeriod::Month,
        }
    }
}

/// Extra use for one person in the current UTC day or month, on top of their limits.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The person's Telegram user id.
    pub person: i64,
    pub period: PeriodName,
    /// Extra messages.
    #[serde(default)]
    #[oai(default)]
    pub messages: u32,
    /// Extra cost, micro-USD.
    #[serde(default)]
    #[oai(default)]
    pub cost_micro_usd: i64,
    /// Why, for the audit trail.
    #[serde(default)]
    #[oai(default)]
    pub note: String,
}

/// One period's use.
#[derive(Debug, Clone, Object)]
pub struct PeriodUseView {
    /// The first day of the period (UTC).
    pub period_start: NaiveDate,
    /// Messages answered by the model.
    pub messages: i64,
    pub cost_micro_usd: i64,
    /// What admins granted on top of the limits for this period.
    pub granted_messages: i64,
    pub granted_cost_micro_usd: i64,
}

/// A person's use of a bot today and this month, their limits, and the bot's month.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PersonUsageView {
    pub person: i64,
    pub day: PeriodUseView,
    pub month: PeriodUseView,
    /// The limits that apply to this person (their own, or the bot's defaults).
    pub limits: LimitsDocument,
    /// Whether the person is one of the bot's admins (never limited).
    pub is_admin: bool,
    pub bot_month_cost_micro_usd: i64,
    pub bot_cost_per_month_micro_usd: Option<i64>,
}

/// One row of a bot's use in a period: a person's, or the whole bot's (person 0).
#[derive(Debug, Clone, Object)]
pub struct UsageRow {
    /// The Telegram user id; 0 for the whole bot.
    pub person: i64,
    pub messages: i64,
    pub cost_micro_usd: i64,
    pub granted_messages: i64,
    pub granted_cost_micro_usd: i64,
}

/// A bot's use in one period: the whole bot first, then its people by cost.
#[derive(Debug, Clone, Object)]
pub struct BotUsageView {
    pub period: PeriodName,
    pub period_start: NaiveDate,
    pub rows: Vec<UsageRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RefusalReasonName {
    NotAllowed,
    GroupNotAllowed,
    DailyLimit,
    MonthlyLimit,
    BotMonthlyCap,
    TooFast,
}

/// Someone who wrote and was refused, for one reason.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RefusalView {
    /// The Telegram user id (0 when the update named none).
    pub person: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub reason: RefusalReasonName,
    /// How many of their messages were refused for this reason.
    pub attempts: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The chat of the last refusal.
    pub chat_id: Uuid,
    pub telegram_chat_id: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RefusalPage {
    pub items: Vec<RefusalView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum PolicyResponse {
    #[oai(status = 200)]
    Ok(Json<PolicyDocument>),
}

#[derive(ApiResponse)]
pub enum GrantResponse {
    /// The grant is recorded; the person's use with it.
    #[oai(status = 201)]
    Created(Json<PersonUsageView>),
}

#[derive(ApiResponse)]
pub enum PersonUsageResponse {
    #[oai(status = 200)]
    Ok(Json<PersonUsageView>),
}

#[derive(ApiResponse)]
pub enum BotUsageResponse {
    #[oai(status = 200)]
    Ok(Json<BotUsageView>),
}

#[derive(ApiResponse)]
pub enum RefusalsResponse {
    #[oai(status = 200)]
    Ok(Json<RefusalPage>),
}

error_responses! {
    /// What reading a bot's policy, use or refusals answers when it does not succeed.
    pub enum AllowanceReadError {
        BadRequest, Unauthorized, NotFound, Unprocessable, TooManyRequests, Internal,
    }
}

error_responses! {
    /// What setting a policy or granting extra use answers when it does not succeed.
    pub enum AllowanceWriteError {
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, TooManyRequests, Internal, Unavailable,
    }
}

/// What the allowances API uses.
pub struct AllowancesDeps {
    pub pool: sqlx::PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub vault: Arc<PersonalDataVault>,
    pub read_your_writes: ReadYourWrites,
    pub clock: Clock,
    pub bot_rows: Arc<crate::turns::bot_rows::BotCache>,
}

pub struct AllowancesApi(pub Wired<AllowancesDeps>);

/// Refusals per page unless `limit` says otherwise, and at most.
const REFUSALS_PAGE: (u32, u32) = (50, 200);
/// People listed in a bot's usage unless `limit` says otherwise, and at most.
const USAGE_ROWS: (u32, u32) = (50, 500);

#[OpenApi(tag = "ApiTags::Bots")]
impl AllowancesApi {
    /// Read a bot's access and budget policy
    #[oai(path = "/bots/:id/policy", method = "get")]
    async fn policy(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
    ) -> Result<PolicyResponse, AllowanceReadError> {
        Ok(PolicyResponse::Ok(Json(self.policy_of(id.0).await?)))
    }

    /// Set a bot's access and budget policy
    ///
    /// Replaces the whole policy (a field left out takes its default), as one event
    /// attributed to the admin. Applies to every turn screened after the answer.
    #[oai(path = "/bots/:id/policy", method = "put")]
    async fn set_policy(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
        body: Json<Strict<PolicyDocument>>,
    ) -> Result<PolicyResponse, AllowanceWriteError> {
        let policy = self.set_policy_as(auth.actor(), id.0, body.0 .0).await?;
        Ok(PolicyResponse::Ok(Json(policy)))
    }

    /// Grant a person extra use
    ///
    /// Adds messages and/or cost to the person's limits for the current UTC day or month,
    /// recorded as an event attributed to the admin.
    #[oai(path = "/bots/:id/grants", method = "post")]
    async fn grant(
        &self,
        auth: AdminSession,
        id: Path<Uuid>,
        body: Json<Strict<GrantRequest>>,
    ) -> Result<GrantResponse, AllowanceWriteError> {
        let usage = self.grant_as(auth.actor(), id.0, body.0 .0).await?;
        Ok(GrantResponse::Created(Json(usage)))
    }

    /// Read a person's use of a bot
    ///
    /// Today's and this month's (UTC) messages and cost, what admins granted, and the limits
    /// that apply.
    #[oai(path = "/bots/:id/usage/:person", method = "get")]
    async fn usage_of(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        person: Path<i64>,
    ) -> Result<PersonUsageResponse, AllowanceReadError> {
        if person.0 <= 0 {
            return Err(ApiFailure::invalid(aggregates::text::InvalidField::new(
                "person",
                "must be a Telegram user id (a positive number)",
            ))
            .into());
        }
        let now = self.0.clock.now();
        Ok(PersonUsageResponse::Ok(Json(
            self.person_usage(id.0, person.0, now).await?,
        )))
    }

    /// Read a bot's use
    ///
    /// The whole bot's messages and cost in the current UTC day or month, then its people
    /// by cost.
    #[oai(path = "/bots/:id/usage", method = "get")]
    async fn usage(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        /// `day` (default) or `month`.
        period: Query<Option<PeriodName>>,
        /// At most this many people (default 50, at most 500).
        limit: Query<Option<u32>>,
    ) -> Result<BotUsageResponse, AllowanceReadError> {
        let limit = page_limit(limit.0, USAGE_ROWS)?;
        let period = period.0.unwrap_or(PeriodName::Day);
        Ok(BotUsageResponse::Ok(Json(
            self.bot_usage(id.0, period, limit).await?,
        )))
    }

    /// List who was refused
    ///
    /// People (and groups) the bot's policy refused, one row per person and reason, the most
    /// recent first, paginated with `cursor`.
    #[oai(path = "/bots/:id/refusals", method = "get")]
    async fn refusals(
        &self,
        _auth: AdminSession,
        id: Path<Uuid>,
        /// At most this many (default 50, at most 200).
        limit: Query<Option<u32>>,
        /// From the previous page's `next_cursor`.
        cursor: Query<Option<String>>,
    ) -> Result<RefusalsResponse, AllowanceReadError> {
        let limit = page_limit(limit.0, REFUSALS_PAGE)?;
        Ok(RefusalsResponse::Ok(Json(
            self.refusal_page(id.0, cursor.0.as_deref(), limit).await?,
        )))
    }
}

/// The work of each operation, as plain methods the console calls too.
impl AllowancesApi {
    /// The bot's policy as the bots read model holds it.
    pub async fn policy_of(&self, id: Uuid) -> Result<PolicyDocument, ApiFailure> {
        Ok(PolicyDocument::of(&self.bot(id).await?.policy))
    }

    /// Replaces the bot's policy as `actor`, and answers it once the read model has it.
    pub async fn set_policy_as(
        &self,
        actor: Actor,
        id: Uuid,
        document: PolicyDocument,
    ) -> Result<PolicyDocument, ApiFailure> {
        let policy = document.into_policy();
        let committed = self
            .execute(id, BotCommand::SetPolicy { policy }, actor)
            .await?;
        self.caught_up(id, &committed, projections::bots::NAME)
            .await?;
        self.0.bot_rows.forget(aggregates::ids::BotId(id));
        self.policy_of(id).await
    }

    /// Records `actor`'s grant, and answers the person's use with it.
    pub async fn grant_as(
        &self,
        actor: Actor,
        id: Uuid,
        request: GrantRequest,
    ) -> Result<PersonUsageView, ApiFailure> {
        let now = self.0.clock.now();
        let grant = ExtraGrant {
            person: request.person,
            period: request.period.period(),
            period_start: request.period.period().start(now),
            messages: request.messages,
            cost_micro_usd: request.cost_micro_usd,
            note: request.note,
        };
        let person = grant.person;
        let committed = self
            .execute(id, BotCommand::GrantExtra(grant), actor)
            .await?;
        self.caught_up(id, &committed, projections::allowances::NAME)
            .await?;
        self.person_usage(id, person, now).await
    }

    /// The bot's use in the current `period`: the bot first, then at most `limit` people.
    pub async fn bot_usage(
        &self,
        id: Uuid,
        period: PeriodName,
        limit: u32,
    ) -> Result<BotUsageView, ApiFailure> {
        self.bot(id).await?;
        let period_start = period.period().start(self.0.clock.now());
        let rows = person_usage::top_users(
            &self.0.pool,
            id,
            period.period().as_str(),
            period_start,
            i64::from(limit) + 1,
        )
        .await
        .map_err(|e| ApiFailure::internal("reading a bot's use failed", &e))?;
        Ok(BotUsageView {
            period,
            period_start,
            rows: rows
                .into_iter()
                .map(|r| UsageRow {
                    person: r.person,
                    messages: r.messages,
                    cost_micro_usd: r.cost_micro_usd,
                    granted_messages: r.granted_messages,
                    granted_cost_micro_usd: r.granted_cost_micro_usd,
                })
                .collect(),
        })
    }

    /// A page of the bot's refusals, most recent first.
    pub async fn refusal_page(
        &self,
        id: Uuid,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<RefusalPage, ApiFailure> {
        let before = match cursor {
            None => None,
            Some(cursor) => {
                let parts = decode_cursor(cursor, 3)?;
                Some((
                    cursor_instant(&parts[0])?,
                    cursor_part::<i64>(&parts[1])?,
                    parts[2].clone(),
                ))
            }
        };
        self.bot(id).await?;
        let mut rows = refusals::list(&self.0.pool, id, before, i64::from(limit) + 1)
            .await
            .map_err(|e| ApiFailure::internal("reading refusals failed", &e))?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| {
                encode_cursor(&[micros(&r.last_at), r.person.to_string(), r.reason.clone()])
            })
        } else {
            None
        };
        let vault = &self.0.vault;
        let failed = |e: sqlx::Error| ApiFailure::internal("opening personal data failed", &e);
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(RefusalView {
                person: row.person,
                username: vault
                    .reveal_column_option(row.username.as_deref())
                    .await
                    .map_err(failed)?,
                first_name: vault
                    .reveal_column_option(row.first_name.as_deref())
                    .await
                    .map_err(failed)?,
                reason: reason_name(&row.reason),
                attempts: row.attempts,
                first_at: row.first_at,
                last_at: row.last_at,
                chat_id: row.chat_id,
                telegram_chat_id: row.telegram_chat_id,
            });
        }
        Ok(RefusalPage { items, next_cursor })
    }

    async fn bot(&self, id: Uuid) -> Result<projections::bots::BotRow, ApiFailure> {
        projections::bots::find_bot(&self.0.pool, id)
            .await
            .map_err(|e| ApiFailure::internal("reading a bot failed", &e))?
            .filter(|bot| bot.deleted_at.is_none())
            .ok_or_else(|| ApiFailure::not_found("bot"))
    }

    async fn execute(
        &self,
        id: Uuid,
        command: BotCommand,
        actor: Actor,
    ) -> Result<Committed, ApiFailure> {
        Ok(self
            .0
            .bots
            .execute(&id.to_string(), command, &EventMetadata::new_request(actor))
            .await?)
    }

    async fn caught_up(
        &self,
        id: Uuid,
        committed: &Committed,
        read_model: &str,
    ) -> Result<(), ApiFailure> {
        if committed.appended == 0 {
            return Ok(());
        }
        let position = self
            .0
            .bots
            .position_of(&id.to_string(), committed.sequence)
            .await?;
        self.0
            .read_your_writes
            .caught_up(read_model, position)
            .await
    }

    /// A person's use of the bot as of `now`, with the limits that apply.
    pub async fn person_usage(
        &self,
        bot_id: Uuid,
        person: i64,
        now: DateTime<Utc>,
    ) -> Result<PersonUsageView, ApiFailure> {
        let bot = self.bot(bot_id).await?;
        let usage = person_usage::usage_at(&self.0.pool, bot_id, Some(person), now)
            .await
            .map_err(|e| ApiFailure::internal("reading a person's use failed", &e))?;
        let view = |period: GrantPeriod, u: &aggregates::bot::policy::PeriodUse| PeriodUseView {
            period_start: period.start(now),
            messages: u.messages,
            cost_micro_usd: u.cost_micro_usd,
            granted_messages: u.granted_messages,
            granted_cost_micro_usd: u.granted_cost_micro_usd,
        };
        let budgets = &bot.policy.budgets;
        Ok(PersonUsageView {
            person,
            day: view(GrantPeriod::Day, &usage.person_day),
            month: view(GrantPeriod::Month, &usage.person_month),
            limits: budgets.limits_for(Some(person)).into(),
            is_admin: bot.policy.access.admins.contains(&person),
            bot_month_cost_micro_usd: usage.bot_month_cost_micro_usd,
            bot_cost_per_month_micro_usd: budgets.bot_cost_per_month_micro_usd,
        })
    }
}

fn page_limit(limit: Option<u32>, (default, max): (u32, u32)) -> Result<u32, ApiFailure> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiFailure::invalid(aggregates::text::InvalidField::new(
            "limit",
            format!("must be between 1 and {max}"),
        ))),
    }
}

fn reason_name(stored: &str) -> RefusalReasonName {
    match stored {
        "group_not_allowed" => RefusalReasonName::GroupNotAllowed,
        "daily_limit" => RefusalReasonName::DailyLimit,
        "monthly_limit" => RefusalReasonName::MonthlyLimit,
        "bot_monthly_cap" => RefusalReasonName::BotMonthlyCap,
        "too_fast" => RefusalReasonName::TooFast,
        _ => RefusalReasonName::NotAllowed,
    }
}
