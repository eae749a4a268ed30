//! Failures: turns that failed for good, with a retry of one or of a selection.

use chrono::{DateTime, Utc};
use maud::html;
use poem::handler;
use poem::http::StatusCode;
use poem::web::Query;
use uuid::Uuid;

use crate::http::bots::{BotsApi, BotsDeps};
use crate::http::failures::{FailuresApi, FailuresDeps};
use crate::http::Wired;

use super::page::{
    csrf_field, empty, layout, notice, pager, problem, query, see_other, time, Page, PageError,
    Section,
};
use super::session::{Admin, AdminForm};

const PAGE_SIZE: i64 = 25;

fn api(admin: &Admin) -> FailuresApi {
    FailuresApi(Wired::new(FailuresDeps::of(&admin.state)))
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    bot_id: Option<String>,
    before: Option<String>,
    done: Option<String>,
}

/// `GET /console/failures`.
#[handler]
pub async fn list(admin: Admin, Query(q): Query<ListQuery>) -> Page {
    Page(async {
        let bot_id: Option<Uuid> = q.bot_id.as_deref().filter(|b| !b.is_empty()).and_then(|b| b.parse().ok());
        let before: Option<DateTime<Utc>> = q.before.as_deref().and_then(|b| b.parse().ok());
        let page = api(&admin).page(bot_id, before, PAGE_SIZE).await?;
        let bots = BotsApi(Wired::new(BotsDeps::of(&admin.state))).page(true, None, 500).await?.items;
        let bot_name = |id: Uuid| bots.iter().find(|b| b.id == id).map_or_else(|| id.to_string(), |b| b.name.clone());
        let bot_filter = bot_id.map(|b| b.to_string());
        let body = html! {
            h1 { "Failures" }
            (notice(q.done.as_deref()))
            form.filters method="get" action="/console/failures" {
                label { "Bot" select name="bot_id" {
                    option value="" { "Every bot" }
                    @for bot in &bots { option value=(bot.id) selected[bot_id == Some(bot.id)] { (bot.name) } }
                } }
                button type="submit" { "Filter" }
            }
            div.panel {
                @if page.items.is_empty() {
                    (empty("No failed turns.", html! { p { "Every message got its answer. Turns that fail for good (retries exhausted, a refusal) appear here to be retried." } }))
                } @else {
                    form method="post" action="/console/failures/retry" {
                        (csrf_field(&admin))
                        div.table-wrap { table {
                            thead { tr { th { "Select" } th { "Bot" } th { "Chat" } th { "Class" } th { "Step" } th { "Last error" } th.num { "Attempts" } th { "Failed" } th {} } }
                            tbody {
                                @for failure in &page.items {
                                    tr {
                                        td { input type="checkbox" name="turn" value=(failure.id) aria-label="Retry this turn"; }
                                        td { (bot_name(failure.bot_id)) }
                                        td { a href=(format!("/console/chats/{}", failure.chat_id)) { code { (failure.telegram_chat_id) } } }
                                        td { (super::page::badge(failure.class.as_deref().unwrap_or("?"), "bad")) }
                                        td { (failure.step.as_deref().unwrap_or("?")) }
                                        td.small { (failure.last_error.as_deref().unwrap_or("")) }
                                        td.num { (failure.attempts) }
                                        td.small { @if let Some(at) = failure.failed_at { (time(at)) } }
                                        td { button type="submit" name="only" value=(failure.id) { "Retry" } }
                                    }
                                }
                            }
                        } }
                        div.actions { button.primary type="submit" { "Retry the selected turns" } }
                    }
                    (pager(
                        q.before.as_ref().map(|_| "/console/failures"),
                        page.next_before.map(|b| format!("/console/failures{}", query(&[("bot_id", bot_filter.clone()), ("before", Some(b.to_rfc3339()))]))),
                    ))
                }
            }
        };
        Ok(layout(&admin, Section::Failures, "Failures", body))
    }.await)
}

/// `POST /console/failures/retry`: retries one turn (`only`, a row's own button) or each
/// selected one (`turn`, repeated), as `POST /failures/{id}/retry` does, then goes back
/// (`back`, a console page) or to the list.
#[handler]
pub async fn retry(form: AdminForm) -> Page {
    Page(async {
        let admin = &form.admin;
        let chosen = match form.fields.get("only") {
            Some(one) => vec![one],
            None => form.fields.all("turn"),
        };
        let turns: Vec<Uuid> = chosen.iter().filter_map(|t| t.parse().ok()).collect();
        if turns.is_empty() {
            let body = html! {
                h1 { "Failures" }
                (problem("Select at least one turn to retry."))
                p { a href="/console/failures" { "Back to the failures" } }
            };
            let mut response = layout(admin, Section::Failures, "Failures", body);
            response.set_status(StatusCode::UNPROCESSABLE_ENTITY);
            return Ok(response);
        }
        let failures = api(admin);
        let mut refused = Vec::new();
        for turn in &turns {
            if let Err(failure) = failures.retry_turn(admin.actor(), *turn).await {
                if failure.status() >= 500 {
                    return Err(PageError::from(failure));
                }
                refused.push(failure.error().message.clone());
            }
        }
        if !refused.is_empty() {
            let body = html! {
                h1 { "Failures" }
                (problem(&format!("{} of {} turns could not be retried: {}", refused.len(), turns.len(), refused.join("; "))))
                p { a href="/console/failures" { "Back to the failures" } }
            };
            let mut response = layout(admin, Section::Failures, "Failures", body);
            response.set_status(StatusCode::CONFLICT);
            return Ok(response);
        }
        let back = form
            .fields
            .get("back")
            .filter(|b| b.starts_with("/console/") && !b.contains("//"))
            .map_or_else(|| "/console/failures?done=retried".to_owned(), |b| format!("{b}?done=retried"));
        Ok(see_other(&back))
    }.await)
}
