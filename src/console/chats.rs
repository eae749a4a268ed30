//! Chats: the list, filtered by bot, Telegram user, blocked and failing; a conversation as a
//! messenger shows it (the person's messages on the left, the bot's and admins' answers on
//! the right, each answer with its model, tokens, cost and how long it took, failed attempts
//! inline with their class and error); an admin's message; resetting the conversation.

use std::collections::HashMap;

use aggregates::ids::{ChatId, TurnKey};
use maud::{html, Markup};
use poem::handler;
use poem::http::StatusCode;
use poem::web::{Path, Query};
use poem::{Request, Response};
use projections::chats::chats::ChatFilter;
use projections::chats::turn_attempts::{self, TurnAttemptRow};
use uuid::Uuid;

use crate::http::bots::{BotView, BotsApi, BotsDeps};
use crate::http::chats::{ChatView, ChatsApi, ChatsDeps, MessagePage, MessageView};
use crate::http::Wired;

use super::bots::parse_id;
use super::page::{
    badge, count, csrf_field, duration_ms, empty, html_response, layout, notice, pager,
    post_button, problem, query, see_other, time, usd, Page, PageError, PageResult, Section,
};
use super::session::{is_htmx, Admin, AdminForm};

const PAGE_SIZE: i64 = 25;

/// Messages a conversation page shows: the newest 200 (a hundred exchanges); earlier ones
/// are a link away.
const CONVERSATION_PAGE: i64 = 200;

fn api(admin: &Admin) -> ChatsApi {
    ChatsApi(Wired::new(ChatsDeps::of(&admin.state)))
}

/// The bots, for their names (a fleet has tens of bots, not thousands).
async fn all_bots(admin: &Admin) -> Result<Vec<BotView>, PageError> {
    Ok(BotsApi(Wired::new(BotsDeps::of(&admin.state)))
        .page(true, None, 500)
        .await?
        .items)
}

/// How a chat is named: its title, its @username, or its Telegram id.
pub fn chat_name(chat: &ChatView) -> String {
    chat.title
        .clone()
        .or_else(|| chat.username.as_ref().map(|u| format!("@{u}")))
        .unwrap_or_else(|| format!("chat {}", chat.telegram_chat_id))
}

fn bot_name(bots: &[BotView], id: Uuid) -> String {
    bots.iter()
        .find(|b| b.id == id)
        .map_or_else(|| id.to_string(), |b| b.name.clone())
}

/// A table of chats.
pub fn chat_rows(chats: &[ChatView], bots: &[BotView]) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th { "Chat" } th { "Bot" } th { "Telegram user" } th.num { "Messages" } th.num { "Cost" } th { "Last activity" } } }
            tbody {
                @for chat in chats {
                    tr {
                        td {
                            a href=(format!("/console/chats/{}", chat.id)) { (chat_name(chat)) }
                            " " span.muted.small { (chat.chat_type) }
                            @if chat.blocked { " " (badge("blocked", "bad")) }
                        }
                        td { a href=(format!("/console/bots/{}", chat.bot_id)) { (bot_name(bots, chat.bot_id)) } }
                        td { @match chat.telegram_user_id {
                            Some(user) => a href=(format!("/console/chats?user_id={user}")) { (user) },
                            None => span.muted { "—" },
                        } }
                        td.num { (count(chat.message_count)) }
                        td.num { (usd(chat.total_cost_micro_usd)) }
                        td.small { (time(chat.last_activity_at)) }
                    }
                }
            }
        } }
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    bot_id: Option<String>,
    user_id: Option<String>,
    blocked: Option<String>,
    failing: Option<String>,
    cursor: Option<String>,
}

/// `GET /console/chats`.
#[handler]
pub async fn list(admin: Admin, Query(q): Query<ListQuery>) -> Page {
    Page(render_list(&admin, q).await)
}

async fn render_list(admin: &Admin, q: ListQuery) -> PageResult {
    let bots = all_bots(admin).await?;
    let blank = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let bot_id = blank(&q.bot_id);
    let user_id = blank(&q.user_id);
    let (filter, problem_text) = {
        let mut problem_text = None;
        let bot = match bot_id.as_deref().map(str::parse::<Uuid>).transpose() {
            Ok(bot) => bot,
            Err(_) => {
                problem_text = Some("The bot filter is not a bot id.");
                None
            }
        };
        let user = match user_id
            .as_deref()
            .map(|u| u.trim().parse::<i64>())
            .transpose()
        {
            Ok(user) => user,
            Err(_) => {
                problem_text = Some("A Telegram user id is a number, like 123456789.");
                None
            }
        };
        let blocked = match q.blocked.as_deref() {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        };
        (
            ChatFilter {
                bot_id: bot,
                telegram_user_id: user,
                blocked,
                failing: q.failing.is_some(),
            },
            problem_text,
        )
    };
    let page = api(admin)
        .page(filter, q.cursor.as_deref(), PAGE_SIZE)
        .await?;
    let filters = [
        ("bot_id", bot_id.clone()),
        ("user_id", user_id.clone()),
        ("blocked", blank(&q.blocked)),
        ("failing", q.failing.as_ref().map(|_| "1".to_owned())),
    ];
    let first = format!("/console/chats{}", query(&filters));
    let next = page.next_cursor.map(|cursor| {
        let mut pairs = filters.to_vec();
        pairs.push(("cursor", Some(cursor)));
        format!("/console/chats{}", query(&pairs))
    });
    let filtered = filters.iter().any(|(_, v)| v.is_some());
    let body = html! {
        h1 { "Chats" }
        form.filters method="get" action="/console/chats" {
            label { "Bot" select name="bot_id" {
                option value="" { "Every bot" }
                @for bot in &bots {
                    option value=(bot.id) selected[bot_id.as_deref() == Some(bot.id.to_string().as_str())] { (bot.name) }
                }
            } }
            label { "Telegram user id" input type="search" name="user_id" value=(user_id.clone().unwrap_or_default()) inputmode="numeric"; }
            label { "Blocked" select name="blocked" {
                option value="" { "Either" }
                option value="yes" selected[q.blocked.as_deref() == Some("yes")] { "Blocked only" }
                option value="no" selected[q.blocked.as_deref() == Some("no")] { "Not blocked" }
            } }
            label.check { input type="checkbox" name="failing" value="1" checked[q.failing.is_some()]; "Failing only" }
            button type="submit" { "Filter" }
            @if filtered { a.button href="/console/chats" { "Clear" } }
        }
        @if let Some(text) = problem_text { (problem(text)) }
        div.panel {
            @if page.items.is_empty() {
                @if filtered {
                    (empty("No chat matches these filters.", html! { p { a href="/console/chats" { "Clear the filters" } " to see every chat." } }))
                } @else {
                    (empty("No chats yet.", html! { p { "Chats appear when someone writes to an enabled bot. " a href="/console/bots" { "Check your bots" } "." } }))
                }
            } @else {
                (chat_rows(&page.items, &bots))
                (pager(q.cursor.as_ref().map(|_| first.as_str()), next))
            }
        }
    };
    Ok(layout(admin, Section::Chats, "Chats", body))
}

#[derive(serde::Deserialize, Default)]
pub struct ConversationQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /console/chats/{id}`.
#[handler]
pub async fn conversation(
    admin: Admin,
    Path(id): Path<String>,
    Query(q): Query<ConversationQuery>,
) -> Page {
    Page(render_conversation(&admin, &id, q, StatusCode::OK, None, "").await)
}

async fn render_conversation(
    admin: &Admin,
    id: &str,
    q: ConversationQuery,
    status: StatusCode,
    problem_text: Option<&str>,
    draft: &str,
) -> PageResult {
    let id = parse_id(id, "chat")?;
    let chats = api(admin);
    let chat = chats.read(id).await?;
    let bots = all_bots(admin).await?;
    let messages = chats
        .latest_messages(id, q.cursor.as_deref(), CONVERSATION_PAGE)
        .await?;
    let thread = thread(
        admin,
        &chat,
        &messages,
        q.cursor.is_none(),
        problem_text,
        draft,
    )
    .await?;
    let body = html! {
        h1 { (chat_name(&chat)) @if chat.blocked { " " (badge("blocked", "bad")) } }
        (notice(q.done.as_deref()))
        div.panel {
            dl.facts {
                dt { "Bot" } dd { a href=(format!("/console/bots/{}", chat.bot_id)) { (bot_name(&bots, chat.bot_id)) } }
                dt { "Telegram chat" } dd { code { (chat.telegram_chat_id) } " " span.muted { (chat.chat_type) } }
                dt { "Telegram user" } dd { @match chat.telegram_user_id {
                    Some(user) => { code { (user) } " · " a href=(format!("/console/chats?user_id={user}")) { "their chats" } }
                    None => span.muted { "—" },
                } }
                dt { "Messages" } dd { (count(chat.message_count)) " · cost " (usd(chat.total_cost_micro_usd)) }
                dt { "Conversation state" } dd { @match &chat.previous_response_id {
                    Some(r) => code { (r) },
                    None => span.muted { "fresh: the next message starts a new conversation" },
                } }
                dt { "Last activity" } dd { (time(chat.last_activity_at)) }
                dt { "History" } dd {
                    a href=(format!("/console/audit{}", query(&[("aggregate_type", Some("Chat".into())), ("aggregate_id", Some(chat.id.to_string()))]))) { "events" }
                    " · " a href=(format!("/console/audit/as-of?kind=chat&id={}", chat.id)) { "as it was at…" }
                }
            }
            div.actions {
                (post_button(admin, &format!("/console/chats/{}/reset", chat.id), "Reset the conversation", ""))
            }
        }
        div.pager {
            @if let Some(cursor) = &messages.next_cursor {
                a.button href=(format!("/console/chats/{}{}", chat.id, query(&[("cursor", Some(cursor.clone()))]))) { "« Earlier messages" }
            }
            @if q.cursor.is_some() { a.button href=(format!("/console/chats/{}", chat.id)) { "Latest messages »" } }
        }
        (thread)
    };
    let mut response = layout(admin, Section::Chats, &chat_name(&chat), body);
    response.set_status(status);
    Ok(response)
}

/// The conversation and the composer under it: what an admin's message replaces.
async fn thread(
    admin: &Admin,
    chat: &ChatView,
    messages: &MessagePage,
    latest: bool,
    problem_text: Option<&str>,
    draft: &str,
) -> Result<Markup, PageError> {
    let bubbles = bubbles(admin, chat, messages, latest).await?;
    Ok(html! {
        div #thread {
            (bubbles)
            @if let Some(text) = problem_text { (problem(text)) }
            form.composer method="post" action=(format!("/console/chats/{}/messages", chat.id))
                hx-post=(format!("/console/chats/{}/messages", chat.id)) hx-target="#thread" hx-swap="outerHTML" {
                (csrf_field(admin))
                textarea name="text" placeholder="Write to this chat as the admin…" required maxlength="4096" aria-label="Message" { (draft) }
                button.primary type="submit" { "Send" }
            }
        }
    })
}

/// The bubbles of a page of the conversation. The newest page refreshes itself every few
/// seconds (htmx), so answers appear as they are recorded.
async fn bubbles(
    admin: &Admin,
    chat: &ChatView,
    messages: &MessagePage,
    latest: bool,
) -> Result<Markup, PageError> {
    let update_ids: Vec<i64> = messages.items.iter().map(|m| m.update_id).collect();
    let attempts = turn_attempts::list_attempts(&admin.state.pool, chat.id, &update_ids)
        .await
        .map_err(|e| PageError::internal("reading failed attempts failed", &e))?;
    let mut attempts_of: HashMap<i64, Vec<TurnAttemptRow>> = HashMap::new();
    for attempt in attempts {
        attempts_of
            .entry(attempt.update_id)
            .or_default()
            .push(attempt);
    }
    let admins = crate::auth::admins::list(&admin.state.pool)
        .await
        .map_err(|e| PageError::internal("listing admins failed", &e))?;
    let admin_name = |actor: &str| {
        admins
            .iter()
            .find(|a| actor == format!("admin:{}", a.id))
            .map_or_else(|| actor.to_owned(), |a| a.email.clone())
    };
    let refresh = format!("/console/chats/{}/messages", chat.id);
    Ok(html! {
        div.conversation #conversation
            hx-get=[latest.then_some(refresh.as_str())] hx-trigger=[latest.then_some("every 3s")] hx-swap=[latest.then_some("outerHTML")] {
            @if messages.items.is_empty() {
                (empty("No messages yet.", html! { p { "What the person writes, and the bot's answers, appear here." } }))
            }
            @for message in &messages.items {
                @match message.role.as_str() {
                    "user" => {
                        div.bubble.user data-role="user" {
                            span.who-line { "Telegram user" @if let Some(user) = chat.telegram_user_id { " " (user) } }
                            @if let Some(media) = &message.media { span.muted { "[" (media) "] " } }
                            (message.text)
                            span.meta {
                                (time(message.created_at))
                                @if message.edited_at.is_some() { " · edited" }
                                " · " (message.status)
                            }
                        }
                        @for attempt in attempts_of.get(&message.update_id).map(Vec::as_slice).unwrap_or_default() {
                            div.attempt data-role="attempt" {
                                "Attempt " (attempt.attempt) " at " (attempt.step) " failed (" (attempt.class) "): " (attempt.error)
                                " · " (time(attempt.failed_at))
                                @if let Some(retry) = attempt.retry_at { " · next try " (time(retry)) }
                            }
                        }
                        @if message.status == "failed" {
                            div.failed-turn data-role="failed" {
                                "Failed for good"
                                @if let Some(class) = &message.failure_class { " (" (class) ")" }
                                @if let Some(error) = &message.last_error { ": " (error) }
                                form method="post" action="/console/failures/retry" {
                                    (csrf_field(admin))
                                    input type="hidden" name="turn" value=(TurnKey::from_stored(message.update_id).turn_id(ChatId(chat.id)));
                                    input type="hidden" name="back" value=(format!("/console/chats/{}", chat.id));
                                    button type="submit" { "Retry this turn" }
                                }
                            }
                        }
                    }
                    role => {
                        div class=(format!("bubble {}", if role == "admin" { "admin" } else { "bot" })) data-role=(role) {
                            @if role == "admin" {
                                span.who-line { (admin_name(message.model.as_deref().unwrap_or_default())) " · admin" }
                            }
                            (message.text)
                            span.meta { (answer_meta(message)) }
                        }
                    }
                }
            }
        }
    })
}

/// An answer's facts: model, tokens, cost, how long it took, when, whether it was sent.
fn answer_meta(message: &MessageView) -> Markup {
    let mut parts: Vec<Markup> = Vec::new();
    if message.response_kind.as_deref() == Some("llm") {
        if let Some(model) = &message.model {
            parts.push(html! { span data-field="model" { (model) } });
        }
        if message.stopped {
            parts.push(html! { span data-field="stopped" { "stopped by the person" } });
        }
        parts.push(html! {
            span data-field="tokens" {
                @if message.stopped { "about " }
                (count(message.input_tokens.unwrap_or(0))) " in"
                @if let Some(cached) = message.cached_input_tokens.filter(|c| *c > 0) { " (" (count(cached)) " cached)" }
                " / " (count(message.output_tokens.unwrap_or(0))) " out"
            }
        });
        parts.push(html! { span data-field="cost" { (usd(message.cost_micro_usd.unwrap_or(0))) } });
    } else if let Some(kind) = message.response_kind.as_deref().filter(|k| *k != "admin") {
        parts.push(html! { span { (kind.replace('_', " ")) } });
    }
    if let Some(ms) = message.response_ms {
        parts.push(html! { span data-field="took" { "took " (duration_ms(ms)) } });
    }
    parts.push(time(message.created_at));
    parts.push(html! { @if message.status == "sent" { "sent" } @else { "waiting to be sent" } });
    html! {
        @for (i, part) in parts.into_iter().enumerate() {
            @if i > 0 { " · " }
            (part)
        }
    }
}

/// `GET /console/chats/{id}/messages`: the newest page of the conversation alone, for htmx.
#[handler]
pub async fn conversation_fragment(admin: Admin, Path(id): Path<String>) -> Page {
    Page(
        async {
            let id = parse_id(&id, "chat")?;
            let chats = api(&admin);
            let chat = chats.read(id).await?;
            let page = chats.latest_messages(id, None, CONVERSATION_PAGE).await?;
            let markup = bubbles(&admin, &chat, &page, true).await?;
            Ok(html_response(StatusCode::OK, markup))
        }
        .await,
    )
}

/// `POST /console/chats/{id}/messages`: an admin's message, as `POST /chats/{id}/messages`.
#[handler]
pub async fn send(request: &Request, form: AdminForm, Path(id): Path<String>) -> Page {
    let htmx = is_htmx(request);
    Page(
        async {
            let admin = &form.admin;
            let chat_id = parse_id(&id, "chat")?;
            let text = form.fields.text("text");
            let result = api(admin)
                .send_message(admin.actor(), chat_id, text.clone())
                .await;
            let refused = match result {
                Ok(_) if !htmx => {
                    return Ok(see_other(&format!("/console/chats/{chat_id}?done=sent")))
                }
                Ok(_) => None,
                Err(failure) if matches!(failure.status(), 409 | 422) => Some(failure),
                Err(failure) => return Err(failure.into()),
            };
            let problem_text = refused.as_ref().map(|f| f.error().message.clone());
            let status = refused
                .as_ref()
                .and_then(|f| StatusCode::from_u16(f.status()).ok())
                .unwrap_or(StatusCode::OK);
            let draft = if refused.is_some() { text.as_str() } else { "" };
            if !htmx {
                return render_conversation(
                    admin,
                    &id,
                    ConversationQuery::default(),
                    status,
                    problem_text.as_deref(),
                    draft,
                )
                .await;
            }
            let chats = api(admin);
            let chat = chats.read(chat_id).await?;
            let page = chats
                .latest_messages(chat_id, None, CONVERSATION_PAGE)
                .await?;
            let markup = thread(admin, &chat, &page, true, problem_text.as_deref(), draft).await?;
            // htmx swaps only 2xx answers by default: a refusal is shown in place, as 200.
            Ok(html_response(StatusCode::OK, markup))
        }
        .await,
    )
}

/// `POST /console/chats/{id}/reset`.
#[handler]
pub async fn reset(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(
        async {
            let admin = &form.admin;
            let chat_id = parse_id(&id, "chat")?;
            api(admin)
                .reset_conversation(admin.actor(), chat_id)
                .await?;
            Ok::<Response, PageError>(see_other(&format!("/console/chats/{chat_id}?done=reset")))
        }
        .await,
    )
}
