//! Audit: the event log with the filters of `GET /events` and paging; one event's payload and
//! metadata; a turn's story (every event sharing a correlation id, as a timeline with the time
//! between steps); a bot or chat as it was at a chosen instant.

use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use poem::handler;
use poem::web::{Path, Query};
use projections::{RecordedEvent, StreamPosition};
use uuid::Uuid;

use crate::event_store::history::{self, HistoryFilter};
use crate::event_store::time_travel;
use crate::http::bots::BotView;
use crate::http::chats::ChatView;
use crate::http::events::EventView;

use super::bots::parse_id;
use super::page::{
    badge, count, duration_ms, empty, layout, pager, problem, query, time, usd, Page, PageError,
    PageResult, Section,
};
use super::session::Admin;

const PAGE_SIZE: i64 = 50;

/// The longest story shown (a turn has a handful of events; a retried one a few more).
const STORY_EVENTS: i64 = 1000;

#[derive(serde::Deserialize, Default, Clone)]
pub struct LogQuery {
    after: Option<String>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    event_type: Option<String>,
    correlation_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// An instant typed into a form: RFC 3339, or a `datetime-local` value read as UTC.
fn instant(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
            .map(|at| at.and_utc())
        })
        .filter(|at| at.timestamp() > -210_000_000_000)
}

fn blank(value: &Option<String>) -> Option<String> {
    value.clone().filter(|v| !v.trim().is_empty())
}

fn actor(event: &EventView) -> String {
    event.metadata["actor"].as_str().unwrap_or("—").to_owned()
}

fn correlation(event: &EventView) -> Option<String> {
    event.metadata["correlation_id"].as_str().map(str::to_owned)
}

/// `GET /console/audit`.
#[handler]
pub async fn log(admin: Admin, Query(q): Query<LogQuery>) -> Page {
    Page(render_log(&admin, q).await)
}

async fn render_log(admin: &Admin, q: LogQuery) -> PageResult {
    let mut problems = Vec::new();
    let after = blank(&q.after).and_then(|a| {
        let parsed = a.split_once('/').and_then(|(t, g)| {
            Some(StreamPosition {
                transaction_id: t.parse().ok()?,
                global_position: g.parse().ok()?,
            })
        });
        if parsed.is_none() {
            problems.push("The page position is not one this console gave out.");
        }
        parsed
    });
    let mut timed = |raw: &Option<String>, what: &'static str| {
        blank(raw).and_then(|r| {
            let at = instant(&r);
            if at.is_none() {
                problems.push(what);
            }
            at
        })
    };
    let since = timed(&q.since, "“Since” is not a date and time.");
    let until = timed(&q.until, "“Until” is not a date and time.");
    let correlation_id = blank(&q.correlation_id).and_then(|c| match c.trim().parse::<Uuid>() {
        Ok(id) => Some(id.to_string()),
        Err(_) => {
            problems.push("A correlation id is a UUID.");
            None
        }
    });
    let filter = HistoryFilter {
        after,
        aggregate_type: blank(&q.aggregate_type),
        aggregate_id: blank(&q.aggregate_id).map(|a| a.trim().to_owned()),
        event_type: blank(&q.event_type).map(|e| e.trim().to_owned()),
        correlation_id,
        since,
        until,
    };
    let events: Vec<EventView> = history::read(&admin.state.pool, &filter, PAGE_SIZE)
        .await
        .map_err(|e| PageError::internal("reading the event log failed", &e))?
        .into_iter()
        .map(EventView::from)
        .collect();
    let filters = [
        ("aggregate_type", blank(&q.aggregate_type)),
        ("aggregate_id", blank(&q.aggregate_id)),
        ("event_type", blank(&q.event_type)),
        ("correlation_id", blank(&q.correlation_id)),
        ("since", blank(&q.since)),
        ("until", blank(&q.until)),
    ];
    let next = (events.len() as i64 == PAGE_SIZE)
        .then(|| events.last().map(|e| e.position.clone()))
        .flatten()
        .map(|after| {
            let mut pairs = filters.to_vec();
            pairs.push(("after", Some(after)));
            format!("/console/audit{}", query(&pairs))
        });
    let first = format!("/console/audit{}", query(&filters));
    let filtered = filters.iter().any(|(_, v)| v.is_some());
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        h1 { "Audit" }
        p.muted { "The event log in commit order: every change, who caused it (" code { "actor" } ") and within which story (" code { "correlation" } "). Times are UTC." }
        form.filters method="get" action="/console/audit" {
            label { "Aggregate" select name="aggregate_type" {
                option value="" { "Any" }
                @for t in ["Bot", "Chat", "Person"] { option value=(t) selected[q.aggregate_type.as_deref() == Some(t)] { (t) } }
            } }
            label { "Aggregate id" input type="search" name="aggregate_id" value=(value(&q.aggregate_id)); }
            label { "Event type" input type="search" name="event_type" value=(value(&q.event_type)) placeholder="e.g. TurnFailed"; }
            label { "Correlation id" input type="search" name="correlation_id" value=(value(&q.correlation_id)); }
            label { "Since (UTC)" input type="datetime-local" name="since" step="1" value=(value(&q.since)); }
            label { "Until (UTC)" input type="datetime-local" name="until" step="1" value=(value(&q.until)); }
            button type="submit" { "Filter" }
            @if filtered { a.button href="/console/audit" { "Clear" } }
        }
        @for p in &problems { (problem(p)) }
        div.panel {
            p.small { a href="/console/audit/as-of" { "See a bot or a chat as it was at an instant »" } }
            @if events.is_empty() {
                (empty("No event matches.", html! { p { "Events are recorded as soon as anything happens: a bot registered, a message received." } }))
            } @else {
                (event_table(&events))
                (pager(q.after.as_ref().map(|_| first.as_str()), next))
            }
        }
    };
    Ok(layout(admin, Section::Audit, "Audit", body))
}

fn event_table(events: &[EventView]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Position" } th { "Recorded" } th { "Aggregate" } th.num { "Seq" } th { "Event" } th { "Actor" } th { "Story" } } }
            tbody {
                @for event in events {
                    tr {
                        td { a href=(format!("/console/audit/events/{}", event.global_position)) { code { (event.position) } } }
                        td.small { (time(event.recorded_at)) }
                        td.small {
                            a href=(format!("/console/audit{}", query(&[("aggregate_type", Some(event.aggregate_type.clone())), ("aggregate_id", Some(event.aggregate_id.clone()))]))) {
                                (event.aggregate_type) " " code { (short(&event.aggregate_id)) }
                            }
                        }
                        td.num { (event.sequence) }
                        td { (event.event_type) }
                        td.small { code { (actor(event)) } }
                        td.small { @if let Some(c) = correlation(event) { a href=(format!("/console/audit/story/{c}")) { "story" } } }
                    }
                }
            }
        } }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `GET /console/audit/events/{position}`: one event, its payload and metadata.
#[handler]
pub async fn event_detail(admin: Admin, Path(position): Path<String>) -> Page {
    Page(async {
        let position: i64 = position.parse().map_err(|_| PageError::not_found("event"))?;
        let event: EventView = history::find(&admin.state.pool, position)
            .await
            .map_err(|e| PageError::internal("reading an event failed", &e))?
            .map(EventView::from)
            .ok_or_else(|| PageError::not_found("event"))?;
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let kind = match event.aggregate_type.as_str() {
            "Bot" => Some("bot"),
            "Chat" => Some("chat"),
            _ => None,
        };
        let body = html! {
            h1 { (event.event_type) }
            div.panel {
                dl.facts {
                    dt { "Position" } dd { code { (event.position) } }
                    dt { "Recorded" } dd { (time(event.recorded_at)) }
                    dt { "Aggregate" } dd {
                        a href=(format!("/console/audit{}", query(&[("aggregate_type", Some(event.aggregate_type.clone())), ("aggregate_id", Some(event.aggregate_id.clone()))]))) {
                            (event.aggregate_type) " " code { (event.aggregate_id) }
                        }
                        " · sequence " (event.sequence)
                    }
                    dt { "Version" } dd { (event.event_version) }
                    dt { "Actor" } dd { code { (actor(&event)) } }
                    @if let Some(c) = correlation(&event) {
                        dt { "Story" } dd { a href=(format!("/console/audit/story/{c}")) { code { (c) } } }
                    }
                    @if let Some(kind) = kind {
                        dt { "Then" } dd {
                            a href=(format!("/console/audit/as-of{}", query(&[("kind", Some(kind.into())), ("id", Some(event.aggregate_id.clone())), ("at", Some(event.recorded_at.to_rfc3339()))]))) {
                                "the " (kind) " as it was right after this event"
                            }
                        }
                    }
                }
            }
            div.grid2 {
                div.panel { h2 { "Payload" } p.small.muted { "Secrets redacted; personal texts are shown sealed, as stored." } pre.json { (pretty(&event.payload)) } }
                div.panel { h2 { "Metadata" } pre.json { (pretty(&event.metadata)) } }
            }
        };
        Ok(layout(&admin, Section::Audit, &event.event_type, body))
    }.await)
}

/// `GET /console/audit/story/{correlation_id}`: every event of one story, in commit order.
#[handler]
pub async fn story(admin: Admin, Path(correlation_id): Path<String>) -> Page {
    Page(async {
        let id: Uuid = correlation_id.parse().map_err(|_| PageError::not_found("story"))?;
        let filter = HistoryFilter {
            correlation_id: Some(id.to_string()),
            ..HistoryFilter::default()
        };
        let events: Vec<RecordedEvent> = history::read(&admin.state.pool, &filter, STORY_EVENTS)
            .await
            .map_err(|e| PageError::internal("reading a story failed", &e))?;
        let first = events.first().map(|e| e.recorded_at);
        let events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
        let body = html! {
            h1 { "A story" }
            p.muted { "Everything that shares the correlation id " code { (id) } ": a Telegram update or an admin request, and all it caused, in commit order." }
            div.panel {
                @if events.is_empty() {
                    (empty("No event has this correlation id (yet).", html! { p { "Events show here once every older transaction has ended." } }))
                } @else {
                    ol.timeline {
                        @for (i, event) in events.iter().enumerate() {
                            li data-event-type=(event.event_type) {
                                strong { a href=(format!("/console/audit/events/{}", event.global_position)) { (event.event_type) } }
                                " " span.muted.small { (event.aggregate_type) " " code { (short(&event.aggregate_id)) } " #" (event.sequence) " · " code { (actor(event)) } }
                                br;
                                (time(event.recorded_at))
                                " " span.gap {
                                    @if i == 0 { "start" } @else {
                                        "+" (duration_ms((event.recorded_at - events[i - 1].recorded_at).num_milliseconds()))
                                        @if let Some(first) = first { " (" (duration_ms((event.recorded_at - first).num_milliseconds())) " in)" }
                                    }
                                }
                                (step_summary(event))
                            }
                        }
                    }
                }
            }
        };
        Ok(layout(&admin, Section::Audit, "A story", body))
    }.await)
}

/// The facts of a step worth reading in a timeline (errors, models), from its payload.
fn step_summary(event: &EventView) -> Markup {
    let body = &event.payload[&event.event_type];
    html! {
        @if let Some(error) = body["error"].as_str() {
            br; span.small {
                @if let Some(class) = body["class"].as_str() { (badge(class, "bad")) " " }
                (error)
            }
        }
        @if let Some(model) = body["response"]["model"].as_str() {
            br; span.small.muted { (model) " · cost " (usd(body["response"]["cost_micro_usd"].as_i64().unwrap_or(0))) }
        }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct AsOfQuery {
    kind: Option<String>,
    id: Option<String>,
    at: Option<String>,
}

/// `GET /console/audit/as-of`: a bot or chat as it was at an instant, rebuilt from its events
/// by the same projector as the live read model.
#[handler]
pub async fn as_of(admin: Admin, Query(q): Query<AsOfQuery>) -> Page {
    Page(async {
        let kind = q.kind.clone().unwrap_or_else(|| "chat".into());
        let id = blank(&q.id);
        let at = blank(&q.at);
        let mut problems: Vec<&str> = Vec::new();
        let mut result = html! {};
        if let (Some(id), Some(at_raw)) = (&id, &at) {
            match (parse_id(id.trim(), "id"), instant(at_raw)) {
                (Ok(id), Some(at)) => result = past(&admin, &kind, id, at).await?,
                (Err(_), _) => problems.push("The id is not a UUID."),
                (_, None) => problems.push("The instant is not a date and time."),
            }
        }
        let value = |v: &Option<String>| v.clone().unwrap_or_default();
        let body = html! {
            h1 { "As it was" }
            p.muted { "A bot or a chat as the console would have shown it at an instant: its events up to then, replayed by the projector that builds the live view." }
            form.filters method="get" action="/console/audit/as-of" {
                label { "What" select name="kind" {
                    option value="chat" selected[kind == "chat"] { "Chat" }
                    option value="bot" selected[kind == "bot"] { "Bot" }
                } }
                label { "Id" input type="search" name="id" value=(value(&q.id)) required; }
                label { "At (UTC, or RFC 3339)" input type="text" name="at" value=(value(&q.at)) placeholder="2026-12-01 14:30:00" required; }
                button type="submit" { "Show" }
            }
            @for p in &problems { (problem(p)) }
            (result)
        };
        Ok(layout(&admin, Section::Audit, "As it was", body))
    }.await)
}

async fn past(admin: &Admin, kind: &str, id: Uuid, at: DateTime<Utc>) -> Result<Markup, PageError> {
    let pool = &admin.state.pool;
    let heading = html! { h2 { "At " (time(at)) } };
    let markup = if kind == "bot" {
        let mut view = time_travel::view_as_of(
            pool,
            &projections::bots::BotProjector,
            "Bot",
            &id.to_string(),
            at,
        )
        .await
        .map_err(|e| PageError::internal("rebuilding the past failed", &e))?;
        let row = projections::bots::find_bot(view.connection(), id)
            .await
            .map_err(|e| PageError::internal("rebuilding the past failed", &e))?;
        match row.map(BotView::from) {
            None => html! { (heading) (empty("The bot did not exist yet.", html! {})) },
            Some(bot) => html! {
                (heading)
                div.panel { dl.facts {
                    dt { "Name" } dd { (bot.name) }
                    dt { "State" } dd { (super::overview::status_badge(bot.status)) }
                    dt { "Model" } dd { code { (bot.model) } }
                    dt { "Token" } dd { code { (bot.token) } }
                    dt { "Instructions" } dd { (bot.instructions) }
                    dt { "Last error" } dd { @match &bot.last_error { Some(e) => { (e.kind) ": " (e.message) }, None => "none" } }
                    dt { "Version" } dd { (bot.version) " (of " (view.events) " events replayed)" }
                } }
            },
        }
    } else {
        let mut view = time_travel::view_as_of(
            pool,
            &projections::chats::ChatProjector,
            "Chat",
            &id.to_string(),
            at,
        )
        .await
        .map_err(|e| PageError::internal("rebuilding the past failed", &e))?;
        let row = projections::chats::chats::find_chat(view.connection(), id)
            .await
            .map_err(|e| PageError::internal("rebuilding the past failed", &e))?;
        match row.map(ChatView::from) {
            None => html! { (heading) (empty("The chat did not exist yet.", html! {})) },
            Some(chat) => html! {
                (heading)
                div.panel { dl.facts {
                    dt { "Telegram chat" } dd { code { (chat.telegram_chat_id) } }
                    dt { "Messages" } dd { (count(chat.message_count)) }
                    dt { "Cost" } dd { (usd(chat.total_cost_micro_usd)) }
                    dt { "Conversation state" } dd { @match &chat.previous_response_id { Some(r) => code { (r) }, None => "fresh" } }
                    dt { "Blocked" } dd { (if chat.blocked { "yes" } else { "no" }) }
                    dt { "Last activity" } dd { (time(chat.last_activity_at)) }
                    dt { "Version" } dd { (chat.version) " (of " (view.events) " events replayed)" }
                } }
                p { a href=(format!("/console/chats/{id}")) { "The chat now »" } }
            },
        }
    };
    Ok(markup)
}
