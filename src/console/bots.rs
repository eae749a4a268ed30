//! Bots: the list; registering one; a bot's page (its state, settings, token, webhook, last
//! error, usage per day and chats); editing settings without resending the token; rotating
//! the token on its own; enabling, disabling, deleting (after a confirmation).

use aggregates::bot::BotCommand;
use chrono::{Days, Utc};
use maud::{html, Markup};
use poem::handler;
use poem::http::StatusCode;
use poem::web::{Path, Query};
use projections::chats::chats::ChatFilter;
use projections::usage::{self, UsageRange, UsageTotals};
use uuid::Uuid;

use crate::http::bots::{BotStatus, BotView, BotsApi, BotsDeps, CreateBotRequest, PatchBotRequest};
use crate::http::chats::{ChatsApi, ChatsDeps};
use crate::http::errors::ApiFailure;
use crate::http::Wired;

use super::charts;
use super::chats::chat_rows;
use super::overview::{status_badge, usage_chart};
use super::page::{
    count, csrf_field, empty, layout, notice, pager, post_button, query, see_other, time, usd,
    Page, PageError, PageResult, Section,
};
use super::session::{Admin, AdminForm, Fields};

const PAGE_SIZE: i64 = 25;

fn api(admin: &Admin) -> BotsApi {
    BotsApi(Wired::new(BotsDeps::of(&admin.state)))
}

/// A UUID from a path, or a 404 page.
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, PageError> {
    raw.parse().map_err(|_| PageError::not_found(what))
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    deleted: Option<String>,
    done: Option<String>,
}

/// `GET /console/bots`.
#[handler]
pub async fn list(admin: Admin, Query(q): Query<ListQuery>) -> Page {
    Page(render_list(&admin, q).await)
}

async fn render_list(admin: &Admin, q: ListQuery) -> PageResult {
    let include_deleted = q.deleted.is_some();
    let page = api(admin)
        .page(include_deleted, q.cursor.as_deref(), PAGE_SIZE)
        .await?;
    let deleted = include_deleted.then(|| "1".to_owned());
    let body = html! {
        div.actions {
            h1 { "Bots" }
        }
        (notice(q.done.as_deref()))
        div.actions {
            a.button.primary href="/console/bots/new" { "Register a bot" }
            @if include_deleted {
                a.button href="/console/bots" { "Hide deleted bots" }
            } @else {
                a.button href="/console/bots?deleted=1" { "Show deleted bots" }
            }
        }
        div.panel {
            @if page.items.is_empty() {
                (empty("No bots yet.", html! {
                    p { "Create a bot with @BotFather on Telegram, then " a href="/console/bots/new" { "register it here" } " with its token." }
                }))
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "Name" } th { "State" } th { "Model" } th { "Token" } th { "Delivery" } th { "Last error" } th { "Registered" } } }
                    tbody {
                        @for bot in &page.items {
                            tr {
                                td {
                                    a href=(format!("/console/bots/{}", bot.id)) { (bot.name) }
                                    @if let Some(username) = &bot.username { br; span.muted.small { "@" (username) } }
                                }
                                td { (status_badge(bot.status)) }
                                td { code { (bot.model) } }
                                td { code { (bot.token) } }
                                td.small { (delivery(bot)) }
                                td.small {
                                    @match &bot.last_error {
                                        Some(e) => { (super::page::badge(&e.kind, "bad")) " " (e.message) }
                                        None => span.muted { "none" },
                                    }
                                }
                                td.small { (time(bot.created_at)) }
                            }
                        }
                    }
                } }
                (pager(
                    q.cursor.as_ref().map(|_| if include_deleted { "/console/bots?deleted=1" } else { "/console/bots" }),
                    page.next_cursor.map(|c| format!("/console/bots{}", query(&[("cursor", Some(c)), ("deleted", deleted.clone())]))),
                ))
            }
        }
    };
    Ok(layout(admin, Section::Bots, "Bots", body))
}

fn delivery(bot: &BotView) -> Markup {
    html! {
        @match (&bot.webhook_url, bot.status) {
            (Some(url), _) => { "webhook " code { (url) } }
            (None, BotStatus::Enabled) => { "long polling" }
            (None, _) => span.muted { "none while disabled" },
        }
    }
}

/// The values of the settings form, as typed.
#[derive(Default)]
struct SettingsForm {
    name: String,
    token: String,
    model: String,
    start_message: String,
    error_message: String,
    instructions: String,
    /// A checkbox: sent only when ticked.
    streaming: bool,
}

impl SettingsForm {
    fn from_fields(fields: &Fields) -> Self {
        Self {
            name: fields.text("name"),
            token: fields.text("token"),
            model: fields.text("model"),
            start_message: fields.text("start_message"),
            error_message: fields.text("error_message"),
            instructions: fields.text("instructions"),
            streaming: fields.get("streaming").is_some(),
        }
    }

    fn of(bot: &BotView) -> Self {
        Self {
            name: bot.name.clone(),
            token: String::new(),
            model: bot.model.clone(),
            start_message: bot.start_message.clone(),
            error_message: bot.error_message.clone(),
            instructions: bot.instructions.clone(),
            streaming: bot.streaming,
        }
    }
}

/// A refusal the form can show next to what was typed (a value not accepted, a token in use),
/// or `None` for one that needs an error page.
fn form_problem(failure: &ApiFailure) -> Option<String> {
    matches!(failure.status(), 400 | 409 | 422 | 503).then(|| failure.error().message.clone())
}

fn settings_fields(values: &SettingsForm, with_token: bool) -> Markup {
    html! {
        label { "Name" span.hint { "1 to 64 characters, shown to admins" }
            input type="text" name="name" value=(values.name) required maxlength="64"; }
        @if with_token {
            label { "Token" span.hint { "from @BotFather: digits, a colon, 35 characters" }
                input type="password" name="token" value=(values.token) required autocomplete="off"; }
        }
        label { "Model" span.hint { "the LLM that answers, e.g. gpt-5-mini" }
            input type="text" name="model" value=(values.model) required; }
        label { "Start message" span.hint { "sent on /start" }
            textarea name="start_message" { (values.start_message) } }
        label { "Error message" span.hint { "sent when no answer can be produced" }
            textarea name="error_message" { (values.error_message) } }
        label { "Instructions" span.hint { "the model's system instructions" }
            textarea name="instructions" rows="6" { (values.instructions) } }
        label { input type="checkbox" name="streaming" value="on" checked[values.streaming];
            " Stream answers" span.hint { "show the answer as it is written: a growing draft in private chats, an edited message in groups" } }
    }
}

fn new_page(
    admin: &Admin,
    status: StatusCode,
    values: &SettingsForm,
    problem: Option<&str>,
) -> PageResult {
    let body = html! {
        h1 { "Register a bot" }
        p.muted { "The bot starts disabled: review its settings, then enable it." }
        @if let Some(problem) = problem { (super::page::problem(problem)) }
        div.panel {
            form.stack method="post" action="/console/bots" {
                (csrf_field(admin))
                (settings_fields(values, true))
                div.actions { button.primary type="submit" { "Register" } a.button href="/console/bots" { "Cancel" } }
            }
        }
    };
    let mut response = layout(admin, Section::Bots, "Register a bot", body);
    response.set_status(status);
    Ok(response)
}

/// `GET /console/bots/new`.
#[handler]
pub async fn new_form(admin: Admin) -> Page {
    let values = SettingsForm {
        model: "gpt-5-mini".to_owned(),
        start_message: "Hello! Ask me anything.".to_owned(),
        error_message: "Sorry, something went wrong. Please try again later.".to_owned(),
        streaming: true,
        ..SettingsForm::default()
    };
    Page(new_page(&admin, StatusCode::OK, &values, None))
}

/// `POST /console/bots`: registers the bot as `POST /bots` does.
#[handler]
pub async fn register(form: AdminForm) -> Page {
    let admin = &form.admin;
    let values = SettingsForm::from_fields(&form.fields);
    let request = CreateBotRequest {
        name: values.name.clone(),
        token: values.token.clone(),
        model: values.model.clone(),
        start_message: Some(values.start_message.clone()),
        error_message: Some(values.error_message.clone()),
        instructions: Some(values.instructions.clone()),
        streaming: Some(values.streaming),
    };
    Page(match api(admin).register(admin.actor(), request).await {
        Ok(bot) => Ok(see_other(&format!(
            "/console/bots/{}?done=registered",
            bot.id
        ))),
        Err(failure) => match form_problem(&failure) {
            Some(problem) => {
                let values = SettingsForm {
                    token: String::new(),
                    ..values
                };
                let status =
                    StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
                new_page(admin, status, &values, Some(&problem))
            }
            None => Err(failure.into()),
        },
    })
}

#[derive(serde::Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

/// `GET /console/bots/{id}`.
#[handler]
pub async fn detail(admin: Admin, Path(id): Path<String>, Query(q): Query<DetailQuery>) -> Page {
    Page(
        async {
            let id = parse_id(&id, "bot")?;
            let bot = api(&admin).read(id).await?;
            render_detail(
                &admin,
                &bot,
                StatusCode::OK,
                &SettingsForm::of(&bot),
                notice(q.done.as_deref()),
                None,
            )
            .await
        }
        .await,
    )
}

async fn render_detail(
    admin: &Admin,
    bot: &BotView,
    status: StatusCode,
    values: &SettingsForm,
    flash: Markup,
    problem: Option<&str>,
) -> PageResult {
    let state = &admin.state;
    let today = Utc::now().date_naive();
    let from = today.checked_sub_days(Days::new(29)).unwrap_or(today);
    let range = UsageRange {
        bot_id: Some(bot.id),
        from,
        to: today,
    };
    let days = usage::list_days(&state.pool, range)
        .await
        .map_err(|e| PageError::internal("reading usage failed", &e))?;
    let mut total = UsageTotals::default();
    days.iter().for_each(|d| total.add(d));
    let chats = ChatsApi(Wired::new(ChatsDeps::of(state)))
        .page(
            ChatFilter {
                bot_id: Some(bot.id),
                ..ChatFilter::default()
            },
            None,
            10,
        )
        .await?;
    let live = bot.status != BotStatus::Deleted;
    let calendar = charts::days_between(from, today);
    let token_series = vec![
        charts::Series {
            label: "input (uncached)".into(),
            color: charts::PALETTE[0],
            values: per_day(&calendar, &days, |d| {
                (d.input_tokens - d.cached_input_tokens) as f64
            }),
        },
        charts::Series {
            label: "cached input".into(),
            color: charts::PALETTE[5],
            values: per_day(&calendar, &days, |d| d.cached_input_tokens as f64),
        },
        charts::Series {
            label: "output".into(),
            color: charts::PALETTE[1],
            values: per_day(&calendar, &days, |d| d.output_tokens as f64),
        },
    ];
    let bots = std::slice::from_ref(bot);
    let body = html! {
        h1 { (bot.name) " " (status_badge(bot.status)) }
        (flash)
        @if let Some(problem) = problem { (super::page::problem(problem)) }
        div.grid2 {
            div.panel {
                h2 { "State" }
                dl.facts {
                    dt { "Telegram" } dd { @match &bot.username { Some(u) => { "@" (u) }, None => span.muted { "not identified yet" } } }
                    dt { "Token" } dd { code { (bot.token) } }
                    dt { "Delivery" } dd { (delivery(bot)) }
                    dt { "Last error" } dd {
                        @match &bot.last_error {
                            Some(e) => { (super::page::badge(&e.kind, "bad")) " " (e.message) br; span.small.muted { (time(e.at)) } }
                            None => span.muted { "none" },
                        }
                    }
                    dt { "Registered" } dd { (time(bot.created_at)) }
                    dt { "Changed" } dd { (time(bot.updated_at)) " · version " (bot.version) }
                    dt { "Access" } dd {
                        a href=(format!("/console/bots/{}/access", bot.id)) { "who may write, budgets, texts »" }
                    }
                    dt { "History" } dd {
                        a href=(format!("/console/audit{}", query(&[("aggregate_type", Some("Bot".into())), ("aggregate_id", Some(bot.id.to_string()))]))) { "events" }
                        " · " a href=(format!("/console/audit/as-of?kind=bot&id={}", bot.id)) { "as it was at…" }
                    }
                }
                @if live {
                    div.actions {
                        @if bot.status == BotStatus::Enabled {
                            (post_button(admin, &format!("/console/bots/{}/disable", bot.id), "Disable", ""))
                        } @else {
                            (post_button(admin, &format!("/console/bots/{}/enable", bot.id), "Enable", "primary"))
                        }
                        a.button.danger href=(format!("/console/bots/{}/delete", bot.id)) { "Delete…" }
                    }
                }
            }
            div.panel {
                h2 { "Last 30 days" }
                div.cards {
                    div.card { div.label { "Turns" } div.value { (count(total.turns)) } div.sub { (count(total.failed_turns)) " failed" } }
                    div.card { div.label { "Spend" } div.value { (usd(total.cost_micro_usd)) } div.sub { (count(total.messages)) " messages" } }
                }
                (usage_chart("Turns per day, last 30 days (UTC)", bots, &days, from, today, |d| d.turns as f64, charts::whole))
            }
        }
        div.grid2 {
            div.panel {
                h2 { "Tokens per day" }
                @if days.is_empty() {
                    (empty("No tokens used yet.", html! { p { "They appear once the model answers someone." } }))
                } @else {
                    (charts::stacked_bars("Tokens per day, last 30 days (UTC)", &calendar, &token_series, charts::whole))
                }
            }
            div.panel {
                h2 { "Cost per day" }
                (usage_chart("Cost per day, last 30 days (UTC)", bots, &days, from, today, |d| d.cost_micro_usd as f64, charts::dollars))
            }
        }
        div.panel {
            h2 { "Chats" }
            @if chats.items.is_empty() {
                (empty("Nobody has written to this bot yet.", html! { p { "Enable it and write to it on Telegram." } }))
            } @else {
                (chat_rows(&chats.items, bots))
                p { a href=(format!("/console/chats?bot_id={}", bot.id)) { "All chats of this bot »" } }
            }
        }
        @if live {
            div.grid2 {
                div.panel {
                    h2 { "Settings" }
                    p.small.muted { "Saving keeps the token as it is." }
                    form.stack method="post" action=(format!("/console/bots/{}", bot.id)) {
                        (csrf_field(admin))
                        (settings_fields(values, false))
                        div.actions { button.primary type="submit" { "Save settings" } }
                    }
                }
                div.panel {
                    h2 { "Rotate the token" }
                    p.small.muted { "After /revoke in @BotFather, paste the new token. The settings stay as they are." }
                    form.stack method="post" action=(format!("/console/bots/{}/token", bot.id)) {
                        (csrf_field(admin))
                        label { "New token" input type="password" name="token" required autocomplete="off"; }
                        div.actions { button type="submit" { "Replace the token" } }
                    }
                }
            }
        }
    };
    let mut response = layout(admin, Section::Bots, &bot.name, body);
    response.set_status(status);
    Ok(response)
}

fn per_day(
    calendar: &[chrono::NaiveDate],
    days: &[projections::usage::UsageDayRow],
    figure: fn(&projections::usage::UsageDayRow) -> f64,
) -> Vec<f64> {
    calendar
        .iter()
        .map(|day| days.iter().filter(|d| d.day == *day).map(figure).sum())
        .collect()
}

/// Applies a change to a bot, or shows its page again with the refusal.
async fn change(form: &AdminForm, id: &str, request: PatchBotRequest, done: &str) -> PageResult {
    let admin = &form.admin;
    let id = parse_id(id, "bot")?;
    let bots = api(admin);
    match bots.change(admin.actor(), id, request).await {
        Ok(bot) => Ok(see_other(&format!("/console/bots/{}?done={done}", bot.id))),
        Err(failure) => match form_problem(&failure) {
            Some(problem) => {
                let bot = bots.read(id).await?;
                let values = SettingsForm::from_fields(&form.fields);
                let values = if values.name.is_empty() {
                    SettingsForm::of(&bot)
                } else {
                    values
                };
                let status =
                    StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
                render_detail(admin, &bot, status, &values, html! {}, Some(&problem)).await
            }
            None => Err(failure.into()),
        },
    }
}

/// `POST /console/bots/{id}`: saves the settings (the token is left alone).
#[handler]
pub async fn save(form: AdminForm, Path(id): Path<String>) -> Page {
    let values = SettingsForm::from_fields(&form.fields);
    let request = PatchBotRequest {
        name: Some(values.name),
        token: None,
        model: Some(values.model),
        start_message: Some(values.start_message),
        error_message: Some(values.error_message),
        instructions: Some(values.instructions),
        streaming: Some(values.streaming),
    };
    Page(change(&form, &id, request, "saved").await)
}

/// `POST /console/bots/{id}/token`: replaces the token alone.
#[handler]
pub async fn rotate_token(form: AdminForm, Path(id): Path<String>) -> Page {
    let request = PatchBotRequest {
        token: Some(form.fields.text("token")),
        ..PatchBotRequest::default()
    };
    Page(change(&form, &id, request, "token").await)
}

async fn act(form: &AdminForm, id: &str, command: BotCommand, done: &str) -> PageResult {
    let admin = &form.admin;
    let id = parse_id(id, "bot")?;
    api(admin).command(id, command, admin.actor()).await?;
    Ok(see_other(&format!("/console/bots/{id}?done={done}")))
}

/// `POST /console/bots/{id}/enable`.
#[handler]
pub async fn enable(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(act(&form, &id, BotCommand::Enable, "enabled").await)
}

/// `POST /console/bots/{id}/disable`.
#[handler]
pub async fn disable(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(act(&form, &id, BotCommand::Disable, "disabled").await)
}

/// `GET /console/bots/{id}/delete`: what deleting does, and the button that does it.
#[handler]
pub async fn confirm_delete(admin: Admin, Path(id): Path<String>) -> Page {
    Page(async {
        let id = parse_id(&id, "bot")?;
        let bot = api(&admin).read(id).await?;
        let body = html! {
            h1 { "Delete " (bot.name) "?" }
            div.panel {
                p { "Deleting the bot:" }
                ul {
                    li { "stops it answering on Telegram at once (its webhook is removed, polling stops);" }
                    li { "frees its token for another bot;" }
                    li { "keeps its chats, messages and every event, for auditors." }
                }
                p { strong { "A deleted bot cannot be enabled again." } }
                div.actions {
                    (post_button(&admin, &format!("/console/bots/{}/delete", bot.id), "Delete the bot", "danger"))
                    a.button href=(format!("/console/bots/{}", bot.id)) { "Keep it" }
                }
            }
        };
        Ok(layout(&admin, Section::Bots, "Delete a bot", body))
    }.await)
}

/// `POST /console/bots/{id}/delete`.
#[handler]
pub async fn delete(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(
        async {
            let admin = &form.admin;
            let id = parse_id(&id, "bot")?;
            api(admin)
                .command(id, BotCommand::Delete, admin.actor())
                .await?;
            Ok(see_other("/console/bots?done=deleted"))
        }
        .await,
    )
}
