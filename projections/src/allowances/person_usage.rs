//! The `person_usage` table: messages and cost per bot, person (0: the whole bot), UTC day
//! and month, with what admins granted on top.

use aggregates::bot::policy::{month_start, PeriodUse, Usage};
use aggregates::bot::ExtraGrant;
use aggregates::chat::Charge;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

/// Counts one LLM answer: the person's day and month, and the bot's (person 0). One
/// statement: the hot path, once per answer.
pub(super) async fn charge(
    tx: &mut PgConnection,
    charge: &Charge,
    cost_micro_usd: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO person_usage (bot_id, person, period, period_start, messages, cost_micro_usd)
         SELECT $1, v.person, v.period,
                CASE v.period WHEN 'day' THEN $3::date ELSE $4::date END, 1, $5
         FROM (VALUES (0::bigint, 'day'), (0::bigint, 'month'),
                      ($2::bigint, 'day'), ($2::bigint, 'month')) AS v(person, period)
         WHERE v.person IS NOT NULL
         ON CONFLICT (bot_id, person, period, period_start) DO UPDATE SET
            messages = person_usage.messages + 1,
            cost_micro_usd = person_usage.cost_micro_usd + EXCLUDED.cost_micro_usd",
    )
    .bind(charge.bot_id.0)
    .bind(charge.person)
    .bind(at.date_naive())
    .bind(month_start(at))
    .bind(cost_micro_usd)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds an admin's grant to the person's period.
pub(super) async fn grant(
    tx: &mut PgConnection,
    bot_id: uuid::Uuid,
    grant: &ExtraGrant,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO person_usage (bot_id, person, period, period_start, granted_messages,
            granted_cost_micro_usd)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (bot_id, person, period, period_start) DO UPDATE SET
            granted_messages = person_usage.granted_messages + EXCLUDED.granted_messages,
            granted_cost_micro_usd =
                person_usage.granted_cost_micro_usd + EXCLUDED.granted_cost_micro_usd",
    )
    .bind(bot_id)
    .bind(grant.person)
    .bind(grant.period.as_str())
    .bind(grant.period_start)
    .bind(i64::from(grant.messages))
    .bind(grant.cost_micro_usd)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct PeriodRow {
    person: i64,
    period: String,
    messages: i64,
    cost_micro_usd: i64,
    granted_messages: i64,
    granted_cost_micro_usd: i64,
}

impl From<&PeriodRow> for PeriodUse {
    fn from(row: &PeriodRow) -> Self {
        PeriodUse {
            messages: row.messages,
            cost_micro_usd: row.cost_micro_usd,
            granted_messages: row.granted_messages,
            granted_cost_micro_usd: row.granted_cost_micro_usd,
        }
    }
}

/// `person`'s use of the bot in the UTC day and month of `now`, and the bot's in the month:
/// the budget check's one read (at most four rows, by primary key).
pub async fn usage_at(
    conn: impl sqlx::PgExecutor<'_>,
    bot_id: uuid::Uuid,
    person: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Usage, sqlx::Error> {
    let (day, month) = (now.date_naive(), month_start(now));
    let rows: Vec<PeriodRow> = sqlx::query_as(
        "SELECT person, period, messages, cost_micro_usd, granted_messages,
                granted_cost_micro_usd
         FROM person_usage
         WHERE bot_id = $1 AND person IN (0, $2)
           AND ((period = 'day' AND period_start = $3) OR (period = 'month' AND period_start = $4))",
    )
    .bind(bot_id)
    .bind(person.unwrap_or(0))
    .bind(day)
    .bind(month)
    .fetch_all(conn)
    .await?;
    let mut usage = Usage::default();
    for row in &rows {
        match (row.person == 0, row.period.as_str()) {
            (true, "month") => usage.bot_month_cost_micro_usd = row.cost_micro_usd,
            (false, "day") => usage.person_day = row.into(),
            (false, "month") => usage.person_month = row.into(),
            _ => {}
        }
    }
    // The bot's own rows (person 0) are what a person-less usage shows.
    if person.is_none() {
        for row in rows.iter().filter(|r| r.person == 0) {
            match row.period.as_str() {
                "day" => usage.person_day = row.into(),
                _ => usage.person_month = row.into(),
            }
        }
    }
    Ok(usage)
}

/// One period's totals, for admins.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PeriodTotals {
    pub person: i64,
    pub period: String,
    pub period_start: NaiveDate,
    pub messages: i64,
    pub cost_micro_usd: i64,
    pub granted_messages: i64,
    pub granted_cost_micro_usd: i64,
}

/// The people who used the bot most in the period that starts on `period_start`, by cost
/// (person 0, the bot's total, first), at most `limit`.
pub async fn top_users(
    conn: impl sqlx::PgExecutor<'_>,
    bot_id: uuid::Uuid,
    period: &str,
    period_start: NaiveDate,
    limit: i64,
) -> Result<Vec<PeriodTotals>, sqlx::Error> {
    sqlx::query_as(
        "SELECT person, period, period_start, messages, cost_micro_usd, granted_messages,
                granted_cost_micro_usd
         FROM person_usage
         WHERE bot_id = $1 AND period = $2 AND period_start = $3
         ORDER BY person = 0 DESC, cost_micro_usd DESC, messages DESC, person
         LIMIT $4",
    )
    .bind(bot_id)
    .bind(period)
    .bind(period_start)
    .bind(limit)
    .fetch_all(conn)
    .await
}
