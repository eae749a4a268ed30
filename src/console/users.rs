//! Telegram users: who wrote to the fleet's bots, their chats and what answering them cost;
//! forgetting a person (crypto-shredding), after a confirmation that says what it destroys.

use maud::html;
use poem::handler;
use poem::web::{Path, Query};

use crate::http::users::{UserView, UsersApi, UsersDeps};
use crate::http::Wired;

use super::page::{
    count, empty, layout, notice, pager, post_button, query, see_other, time, usd, Page, PageError,
    Section,
};
use super::session::{Admin, AdminForm};

const PAGE_SIZE: i64 = 25;

fn api(admin: &Admin) -> UsersApi {
    UsersApi(Wired::new(UsersDeps::of(&admin.state)))
}

fn full_name(user: &UserView) -> String {
    match &user.last_name {
        Some(last) => format!("{} {last}", user.first_name),
        None => user.first_name.clone(),
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /console/users`.
#[handler]
pub async fn list(admin: Admin, Query(q): Query<ListQuery>) -> Page {
    Page(async {
        let page = api(&admin).page(q.cursor.as_deref(), PAGE_SIZE).await?;
        let body = html! {
            h1 { "Telegram users" }
            (notice(q.done.as_deref()))
            div.panel {
                @if page.items.is_empty() {
                    (empty("Nobody has written to a bot yet.", html! { p { "People appear here with their first message to an enabled bot." } }))
                } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Person" } th { "Telegram id" } th.num { "Chats" } th.num { "Spend" } th { "Last seen" } th {} } }
                        tbody {
                            @for user in &page.items {
                                tr {
                                    td {
                                        (full_name(user))
                                        @if let Some(username) = &user.username { br; span.muted.small { "@" (username) } }
                                        @if user.is_bot { " " (super::page::badge("bot", "off")) }
                                    }
                                    td { code { (user.id) } @if let Some(lang) = &user.language_code { " " span.muted.small { (lang) } } }
                                    td.num { a href=(format!("/console/chats?user_id={}", user.id)) { (count(user.chat_ids.len() as i64)) } }
                                    td.num { (usd(user.spend_micro_usd)) }
                                    td.small { (time(user.last_seen_at)) }
                                    td { a.button href=(format!("/console/users/{}/forget", user.id)) { "Forget…" } }
                                }
                            }
                        }
                    } }
                    (pager(q.cursor.as_ref().map(|_| "/console/users"), page.next_cursor.map(|c| format!("/console/users{}", query(&[("cursor", Some(c))])))))
                }
            }
        };
        Ok(layout(&admin, Section::Users, "Telegram users", body))
    }.await)
}

fn parse_user(raw: &str) -> Result<i64, PageError> {
    raw.parse()
        .map_err(|_| PageError::not_found("Telegram user"))
}

/// `GET /console/users/{id}/forget`: what forgetting destroys and what it keeps.
#[handler]
pub async fn confirm_forget(admin: Admin, Path(id): Path<String>) -> Page {
    Page(async {
        let user = api(&admin).read(parse_user(&id)?).await?;
        let body = html! {
            h1 { "Forget " (full_name(&user)) "?" }
            div.panel {
                p { "Forgetting Telegram user " code { (user.id) } " destroys the key their personal data is sealed with. At once and everywhere (events, snapshots, read models, exports):" }
                ul {
                    li { "their first and last name and @username read " code { "[forgotten]" } ";" }
                    li { "every message they wrote in " (count(user.chat_ids.len() as i64)) " chat(s), and the bots' answers to them, read " code { "[forgotten]" } "." }
                }
                p { "What stays: their numeric id, the chats, message counts, timestamps, token usage and costs (" (usd(user.spend_micro_usd)) "), and an event recording that you forgot them." }
                p { strong { "This cannot be undone: no key, no backup of the events, brings the texts back." } }
                div.actions {
                    (post_button(&admin, &format!("/console/users/{}/forget", user.id), "Forget this person", "danger"))
                    a.button href="/console/users" { "Keep them" }
                }
            }
        };
        Ok(layout(&admin, Section::Users, "Forget a person", body))
    }.await)
}

/// `POST /console/users/{id}/forget`.
#[handler]
pub async fn forget(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(
        async {
            let admin = &form.admin;
            api(admin)
                .forget_person(admin.actor(), parse_user(&id)?)
                .await?;
            Ok(see_other("/console/users?done=forgotten"))
        }
        .await,
    )
}
