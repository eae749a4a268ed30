//! `/usage`: what each bot did and cost, per UTC day, from the `usage_daily` read model.

use aggregates::text::InvalidField;
use chrono::{Days, NaiveDate, Utc};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use projections::usage::{self as read_model, UsageDayRow, UsageRange, UsageTotals};
use uuid::Uuid;

use super::errors::{error_responses, ApiFailure};
use super::guard::AdminSession;
use super::{ApiTags, Wired};

/// The longest range one request reads.
pub const MAX_DAYS: u64 = 366;

/// One bot's UTC day.
#[derive(Debug, Clone, Object)]
pub struct UsageDayView {
    pub bot_id: Uuid,
    pub day: NaiveDate,
    /// People's messages received.
    pub messages: i64,
    /// Turns answered (the model's answers, commands, notices, error messages; not admins').
    pub turns: i64,
    /// Turns that failed for good.
    pub failed_turns: i64,
    pub input_tokens: i64,
    /// Part of `input_tokens` served from the provider's cache.
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    /// Part of `output_tokens` spent on reasoning.
    pub reasoning_tokens: i64,
    pub cost_micro_usd: i64,
}

impl From<UsageDayRow> for UsageDayView {
    fn from(row: UsageDayRow) -> Self {
        Self {
            bot_id: row.bot_id,
            day: row.day,
            messages: row.messages,
            turns: row.turns,
            failed_turns: row.failed_turns,
            input_tokens: row.input_tokens,
            cached_input_tokens: row.cached_input_tokens,
            output_tokens: row.output_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost_micro_usd: row.cost_micro_usd,
        }
    }
}

/// The range's figures added up.
#[derive(Debug, Clone, Object)]
pub struct UsageTotalsView {
    pub messages: i64,
    pub turns: i64,
    pub failed_turns: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micro_usd: i64,
}

impl From<UsageTotals> for UsageTotalsView {
    fn from(row: UsageTotals) -> Self {
        Self {
            messages: row.messages,
            turns: row.turns,
            failed_turns: row.failed_turns,
            input_tokens: row.input_tokens,
            cached_input_tokens: row.cached_input_tokens,
            output_tokens: row.output_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost_micro_usd: row.cost_micro_usd,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct UsageReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Days with any activity, by day then bot; a day without any is absent.
    pub days: Vec<UsageDayView>,
    pub totals: UsageTotalsView,
}

#[derive(ApiResponse)]
pub enum UsageResponse {
    #[oai(status = 200)]
    Ok(Json<UsageReport>),
}

error_responses! {
    /// What `GET /usage` answers when it does not succeed.
    pub enum UsageError { BadRequest, Unauthorized, Unprocessable, TooManyRequests, Internal }
}

/// Reads usage: all it needs is the database.
pub struct UsageApi(pub Wired<sqlx::PgPool>);

#[OpenApi(tag = "ApiTags::Usage")]
impl UsageApi {
    /// Usage per bot per day
    ///
    /// Messages, turns, failures, tokens and cost of each bot (or of `bot_id`) on each UTC day
    /// from `from` to `to` (inclusive; by default the last 30 days up to today), at most 366
    /// days at once.
    #[oai(path = "/usage", method = "get")]
    async fn usage(
        &self,
        _auth: AdminSession,
        bot_id: Query<Option<Uuid>>,
        from: Query<Option<NaiveDate>>,
        to: Query<Option<NaiveDate>>,
    ) -> Result<UsageResponse, UsageError> {
        let range = range(bot_id.0, from.0, to.0, Utc::now().date_naive())?;
        Ok(UsageResponse::Ok(Json(self.report(range).await?)))
    }
}

/// What the API does, for its operation and for the admin console alike.
impl UsageApi {
    pub async fn report(&self, range: UsageRange) -> Result<UsageReport, ApiFailure> {
        let failed = |e: sqlx::Error| ApiFailure::internal("reading usage failed", &e);
        let days = read_model::list_days(&*self.0, range)
            .await
            .map_err(failed)?;
        let mut totals = UsageTotals::default();
        days.iter().for_each(|day| totals.add(day));
        Ok(UsageReport {
            from: range.from,
            to: range.to,
            days: days.into_iter().map(UsageDayView::from).collect(),
            totals: totals.into(),
        })
    }
}

/// The range asked for: `to` defaults to `today`, `from` to 29 days before `to`.
pub fn range(
    bot_id: Option<Uuid>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<UsageRange, ApiFailure> {
    let to = to.unwrap_or(today);
    let from = match from {
        Some(from) => from,
        None => to.checked_sub_days(Days::new(29)).unwrap_or(NaiveDate::MIN),
    };
    if from > to {
        return Err(ApiFailure::invalid(InvalidField::new(
            "from",
            "must not be after `to`",
        )));
    }
    if (to - from).num_days() >= MAX_DAYS as i64 {
        return Err(ApiFailure::invalid(InvalidField::new(
            "from",
            format!("the range must be at most {MAX_DAYS} days"),
        )));
    }
    Ok(UsageRange { bot_id, from, to })
}
