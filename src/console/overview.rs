//! The overview: every bot's state and last error; turns, failures and spend today and this
//! month; turns and cost per day per bot over the last 30 days; the pipeline's health.

use std::collections::HashMap;

use chrono::{Datelike, Days, NaiveDate, Utc};
use maud::{html, Markup};
use poem::handler;
use projections::usage::{self, UsageDayRow, UsageRange, UsageTotals};
use uuid::Uuid;

use crate::health::{QueueStatus, SubscriptionState};
use crate::http::bots::{BotStatus, BotView, BotsApi, BotsDeps};
use crate::http::Wired;

use super::charts::{self, Series, PALETTE};
use super::page::{
    badge, count, empty, html_response, layout, time, usd, Page, PageError, PageResult, Section,
};
use super::session::Admin;

/// How many days the overview's chart shows.
const CHART_DAYS: u64 = 30;

/// Bots shown on the overview (the bots page lists them all).
const OVERVIEW_BOTS: i64 = 100;

/// `GET /console`.
#[handler]
pub async fn page(admin: Admin) -> Page {
    Page(render(&admin).await)
}

async fn render(admin: &Admin) -> PageResult {
    let state = &admin.state;
    let pool = &state.pool;
    let today = Utc::now().date_naive();
    let from = today
        .checked_sub_days(Days::new(CHART_DAYS - 1))
        .unwrap_or(today);
    let month = UsageRange {
        bot_id: None,
        from: today.with_day(1).unwrap_or(today),
        to: today,
    };
    let bots = BotsApi(Wired::new(BotsDeps::of(state)))
        .page(false, None, OVERVIEW_BOTS)
        .await?;
    let failed = |e: sqlx::Error| PageError::internal("reading usage failed", &e);
    let days = usage::list_days(
        pool,
        UsageRange {
            bot_id: None,
            from,
            to: today,
        },
    )
    .await
    .map_err(failed)?;
    let this_month = usage::totals(pool, month).await.map_err(failed)?;
    let health = crate::health::queue_status(pool, state.health)
        .await
        .map_err(|e| PageError::internal("reading the pipeline's health failed", &e))?;

    let mut today_total = UsageTotals::default();
    let mut today_by_bot: HashMap<Uuid, UsageTotals> = HashMap::new();
    for day in days.iter().filter(|d| d.day == today) {
        today_total.add(day);
        today_by_bot.entry(day.bot_id).or_default().add(day);
    }
    let body = html! {
        h1 { "Overview" }
        div.cards {
            (card("Turns today", &count(today_total.turns), &format!("{} messages received", count(today_total.messages)), ""))
            (card("Failed today", &count(today_total.failed_turns), "turns that failed for good",
                if today_total.failed_turns > 0 { "bad" } else { "" }))
            (card("Spend today", &usd(today_total.cost_micro_usd), &format!("{} output tokens", count(today_total.output_tokens)), ""))
            (card("Turns this month", &count(this_month.turns), &format!("{} failed", count(this_month.failed_turns)), ""))
            (card("Spend this month", &usd(this_month.cost_micro_usd), &today.format("%B %Y (UTC)").to_string(), ""))
        }
        (health_section(&health))
        div.panel {
            h2 { "Bots" }
            (bots_table(&bots.items, &today_by_bot))
        }
        div.grid2 {
            div.panel {
                h2 { "Turns per day" }
                (usage_chart("Turns per day per bot, last 30 days (UTC)", &bots.items, &days, from, today, |d| d.turns as f64, charts::whole))
            }
            div.panel {
                h2 { "Cost per day" }
                (usage_chart("Cost per day per bot, last 30 days (UTC)", &bots.items, &days, from, today, |d| d.cost_micro_usd as f64, charts::dollars))
            }
        }
    };
    Ok(layout(admin, Section::Overview, "Overview", body))
}

fn card(label: &str, value: &str, sub: &str, tone: &str) -> Markup {
    html! {
        div class=(format!("card {tone}")) {
            div.label { (label) }
            div.value { (value) }
            div.sub { (sub) }
        }
    }
}

fn bots_table(bots: &[BotView], today: &HashMap<Uuid, UsageTotals>) -> Markup {
    if bots.is_empty() {
        return empty(
            "No bots yet.",
            html! { p { "Register one with the token @BotFather gave you: " a href="/console/bots/new" { "register a bot" } "." } },
        );
    }
    html! {
        div.table-wrap { table {
            thead { tr { th { "Bot" } th { "State" } th.num { "Turns today" } th.num { "Spend today" } th { "Last error" } } }
            tbody {
                @for bot in bots {
                    @let figures = today.get(&bot.id).cloned().unwrap_or_default();
                    tr {
                        td {
                            a href=(format!("/console/bots/{}", bot.id)) { (bot.name) }
                            @if let Some(username) = &bot.username { br; span.muted.small { "@" (username) } }
                        }
                        td { (status_badge(bot.status)) }
                        td.num { (count(figures.turns)) }
                        td.num { (usd(figures.cost_micro_usd)) }
                        td {
                            @match &bot.last_error {
                                Some(error) => {
                                    (badge(&error.kind, "bad")) " " span.small { (error.message) }
                                    br; span.muted.small { (time(error.at)) }
                                }
                                None => span.muted { "none" },
                            }
                        }
                    }
                }
            }
        } }
    }
}

pub fn status_badge(status: BotStatus) -> Markup {
    match status {
        BotStatus::Enabled => badge("enabled", "ok"),
        BotStatus::Disabled => badge("disabled", "off"),
        BotStatus::Deleted => badge("deleted", "bad"),
    }
}

/// A stacked chart of one figure per day, a layer per bot (a bot no longer listed still
/// counts, under its id).
pub fn usage_chart(
    label: &str,
    bots: &[BotView],
    days: &[UsageDayRow],
    from: NaiveDate,
    to: NaiveDate,
    figure: fn(&UsageDayRow) -> f64,
    unit: fn(f64) -> String,
) -> Markup {
    let calendar = charts::days_between(from, to);
    let mut order: Vec<Uuid> = bots.iter().map(|b| b.id).collect();
    for day in days {
        if !order.contains(&day.bot_id) {
            order.push(day.bot_id);
        }
    }
    let active: Vec<Uuid> = order
        .into_iter()
        .filter(|id| days.iter().any(|d| d.bot_id == *id))
        .collect();
    if active.is_empty() {
        return empty(
            "Nothing to chart yet.",
            html! { p { "Turns and costs appear here as soon as a bot answers someone." } },
        );
    }
    let series: Vec<Series> = active
        .iter()
        .enumerate()
        .map(|(i, id)| Series {
            label: bots
                .iter()
                .find(|b| b.id == *id)
                .map_or_else(|| id.to_string()[..8].to_owned(), |b| b.name.clone()),
            color: PALETTE[i % PALETTE.len()],
            values: calendar
                .iter()
                .map(|day| {
                    days.iter()
                        .filter(|d| d.bot_id == *id && d.day == *day)
                        .map(figure)
                        .sum()
                })
                .collect(),
        })
        .collect();
    charts::stacked_bars(label, &calendar, &series, unit)
}

fn health_section(health: &QueueStatus) -> Markup {
    html! {
        div.panel #health hx-get="/console/health" hx-trigger="every 5s" hx-swap="outerHTML" {
            h2 { "Health" }
            (health_figures(health))
        }
    }
}

fn health_figures(health: &QueueStatus) -> Markup {
    let lag: i64 = health.subscriptions.iter().map(|s| s.lag).sum();
    let troubled: Vec<_> = health
        .subscriptions
        .iter()
        .filter(|s| s.state != SubscriptionState::Ok)
        .collect();
    html! {
        div.cards {
            (card("Subscription lag", &count(lag), "events not yet in the read models", if lag > 1000 { "bad" } else { "" }))
            (card("Turns in flight", &count(health.in_flight), "chats a runner works on now", ""))
            (card("Failed turns", &count(health.failed), "waiting for a retry or to be let go",
                if health.failed > 0 { "bad" } else { "ok" }))
        }
        p.small {
            @if troubled.is_empty() {
                (badge("all projections current", "ok"))
            } @else {
                @for s in &troubled {
                    (badge(&format!("{}: {:?}", s.name, s.state).to_lowercase(), "bad")) " "
                }
            }
            " " a href="/console/operations" { "Operations »" }
            " · " a href="/console/failures" { "Failures »" }
        }
    }
}

/// `GET /console/health`: the health panel alone, for htmx to refresh.
#[handler]
pub async fn health_panel(admin: Admin) -> Page {
    let state = &admin.state;
    Page(
        crate::health::queue_status(&state.pool, state.health)
            .await
            .map(|health| html_response(poem::http::StatusCode::OK, health_section(&health)))
            .map_err(|e| PageError::internal("reading the pipeline's health failed", &e)),
    )
}
