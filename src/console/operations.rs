//! Operations: each projection's checkpoint, lag, state and poison events; the effect
//! runner's in-flight and failed counts. What `/health/queue` and `GET /projections` read.

use maud::html;
use poem::handler;

use crate::health::SubscriptionState;
use crate::subscriptions::faults;

use super::page::{badge, count, duration_ms, empty, layout, time, Page, PageError, Section};
use super::session::Admin;

/// `GET /console/operations`.
#[handler]
pub async fn page(admin: Admin) -> Page {
    Page(async {
        let state = &admin.state;
        let health = crate::health::queue_status(&state.pool, state.health)
            .await
            .map_err(|e| PageError::internal("reading the pipeline's health failed", &e))?;
        let open = faults::list(&state.pool, None, true)
            .await
            .map_err(|e| PageError::internal("reading the poison events failed", &e))?;
        let policy = |name: &str| {
            projections::all()
                .into_iter()
                .find(|p| p.name() == name)
                .map(|p| format!("{:?}", p.poison_policy()).to_lowercase())
                .unwrap_or_default()
        };
        let body = html! {
            h1 { "Operations" }
            div.cards {
                div.card { div.label { "Turns in flight" } div.value { (count(health.in_flight)) } div.sub { "chats whose turns a runner holds a live lease on" } }
                div class=(if health.failed > 0 { "card bad" } else { "card ok" }) {
                    div.label { "Failed turns" } div.value { (count(health.failed)) }
                    div.sub { a href="/console/failures" { "retry them »" } }
                }
            }
            div.panel {
                h2 { "Projections" }
                div.table-wrap { table {
                    thead { tr { th { "Read model" } th { "State" } th { "Checkpoint" } th.num { "Lag" } th { "Oldest pending" } th { "Poison policy" } th.num { "Parked" } } }
                    tbody {
                        @for s in &health.subscriptions {
                            tr {
                                td { code { (s.name) } }
                                td { @match s.state {
                                    SubscriptionState::Ok => (badge("ok", "ok")),
                                    SubscriptionState::Lagging => (badge("lagging", "warn")),
                                    SubscriptionState::Stuck => (badge("stuck", "bad")),
                                    SubscriptionState::Paused => (badge("paused", "bad")),
                                } @if let Some(before) = &s.paused_before { br; span.small { "before " code { (before) } } } }
                                td { code { (s.checkpoint) } }
                                td.num { (count(s.lag)) }
                                td { @match s.oldest_pending_secs {
                                    Some(secs) => (duration_ms((secs * 1000.0) as i64)),
                                    None => span.muted { "—" },
                                } }
                                td { (policy(&s.name)) }
                                td.num { (count(s.parked_events)) }
                            }
                        }
                    }
                } }
            }
            div.panel {
                h2 { "Poison events" }
                @if open.is_empty() {
                    (empty("No projection is held up by an event.", html! { p { "A projector that keeps failing on an event pauses before it or parks it; it would show here, to retry or skip with " code { "botfleet projections" } " or the API." } }))
                } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Read model" } th { "Event" } th { "Status" } th { "Error" } th.num { "Attempts" } th { "Failed" } } }
                        tbody {
                            @for f in &open {
                                tr {
                                    td { code { (f.subscription) } }
                                    td { a href=(format!("/console/audit/events/{}", f.position.global_position)) { (f.event_type) " " code { (f.position) } } }
                                    td { (badge(&f.status.to_string(), "bad")) }
                                    td.small { (f.error) }
                                    td.num { (f.attempts) }
                                    td.small { (time(f.failed_at)) }
                                }
                            }
                        }
                    } }
                }
            }
        };
        Ok(layout(&admin, Section::Operations, "Operations", body))
    }.await)
}
