//! A bot's system texts for the person a turn is with: in their language when the bot (or
//! Botfleet) has one, else the bot's default; placeholders filled in.

use aggregates::bot::policy::{Limits, Usage};
use aggregates::bot::texts::{choose, LegacyTexts, TextKey};
use aggregates::chat::TurnRefusal;
use chrono::{DateTime, Utc};
use projections::bots::BotRow;

/// The bot's text `key` for a person whose Telegram `language_code` is `language`.
pub fn system_text(bot: &BotRow, key: TextKey, language: Option<&str>) -> String {
    let legacy = LegacyTexts {
        start_message: &bot.start_message,
        error_message: &bot.error_message,
    };
    choose(&bot.policy.texts, legacy, key, language)
}

/// What a refused person is told, with when their limit lifts.
pub fn refusal_text(bot: &BotRow, refusal: &TurnRefusal, language: Option<&str>) -> String {
    let text = system_text(bot, refusal.reason.text_key(), language);
    match refusal.resets_at {
        Some(at) => text.replace("{resets_at}", &instant(at)),
        None => text,
    }
}

/// The reply to `/usage`: the person's use today and this month against their limits (with
/// what admins granted); a limit not set shows as ∞.
pub fn usage_text(bot: &BotRow, usage: &Usage, limits: &Limits, language: Option<&str>) -> String {
    let limit = |limit: Option<i64>, granted: i64, show: fn(i64) -> String| {
        limit.map_or_else(|| "∞".to_owned(), |l| show(l + granted))
    };
    let count = |n: i64| n.to_string();
    let (day, month) = (&usage.person_day, &usage.person_month);
    system_text(bot, TextKey::Usage, language)
        .replace("{messages_today}", &day.messages.to_string())
        .replace("{cost_today}", &usd(day.cost_micro_usd))
        .replace("{messages_month}", &month.messages.to_string())
        .replace("{cost_month}", &usd(month.cost_micro_usd))
        .replace(
            "{limit_messages_day}",
            &limit(
                limits.messages_per_day.map(i64::from),
                day.granted_messages,
                count,
            ),
        )
        .replace(
            "{limit_cost_day}",
            &limit(
                limits.cost_per_day_micro_usd,
                day.granted_cost_micro_usd,
                usd,
            ),
        )
        .replace(
            "{limit_messages_month}",
            &limit(
                limits.messages_per_month.map(i64::from),
                month.granted_messages,
                count,
            ),
        )
        .replace(
            "{limit_cost_month}",
            &limit(
                limits.cost_per_month_micro_usd,
                month.granted_cost_micro_usd,
                usd,
            ),
        )
}

/// An instant as people read it: `2026-12-02 00:00 UTC`.
fn instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Micro-USD as dollars, to the micro-dollar, without trailing zeros: `$0.000242`.
fn usd(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let micro = micro.unsigned_abs();
    let fraction = format!("{:06}", micro % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    format!("{sign}${}{dot}{fraction}", micro / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_dollars() {
        assert_eq!(usd(0), "$0");
        assert_eq!(usd(1_500_000), "$1.5");
        assert_eq!(usd(12_300), "$0.0123");
        assert_eq!(usd(242), "$0.000242");
        assert_eq!(usd(10_000_000), "$10");
    }

    #[test]
    fn instants_read_in_utc_to_the_minute() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(instant(at), "2026-12-02 00:00 UTC");
    }
}
