//! A bot's access and budgets: who may talk to it, how much each person and the bot may
//! spend, conversation limits and texts (the policy, saved as a whole as `PUT
//! /bots/{id}/policy` does); who was refused, with one button to let them in or give them more
//! for today; and who used the bot most this month.

use std::collections::BTreeMap;

use maud::{html, Markup};
use poem::handler;
use poem::http::StatusCode;
use poem::web::{Path, Query};
use uuid::Uuid;

use crate::http::allowances::{
    AllowancesApi, AllowancesDeps, GrantRequest, GroupAccessName, LanguageTexts, PeopleAccessName,
    PeriodName, PolicyDocument, RefusalReasonName,
};
use crate::http::bots::{BotsApi, BotsDeps};
use crate::http::errors::ApiFailure;
use crate::http::Wired;

use super::bots::parse_id;
use super::page::{
    count, csrf_field, empty, layout, problem, time, usd, Page, PageError, PageResult, Section,
};
use super::session::{Admin, AdminForm, Fields};

fn api(admin: &Admin) -> AllowancesApi {
    AllowancesApi(Wired::new(AllowancesDeps::of(&admin.state)))
}

#[derive(serde::Deserialize)]
pub struct AccessQuery {
    done: Option<String>,
}

/// `GET /console/bots/{id}/access`.
#[handler]
pub async fn page(admin: Admin, Path(id): Path<String>, Query(q): Query<AccessQuery>) -> Page {
    Page(
        async {
            let id = parse_id(&id, "bot")?;
            let policy = api(&admin).policy_of(id).await?;
            let flash = match q.done.as_deref() {
                Some("saved") => "The policy is saved: it applies from the next message.",
                Some("allowed") => "The person is on the allow-list now.",
                Some("granted") => "The person may send ten more messages today.",
                _ => "",
            };
            render(
                &admin,
                id,
                &PolicyForm::of(&policy),
                StatusCode::OK,
                flash,
                None,
            )
            .await
        }
        .await,
    )
}

/// `POST /console/bots/{id}/access`: saves the whole policy.
#[handler]
pub async fn save(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(
        async {
            let admin = &form.admin;
            let id = parse_id(&id, "bot")?;
            let typed = PolicyForm::from_fields(&form.fields);
            let outcome = match typed.document() {
                Ok(document) => api(admin)
                    .set_policy_as(admin.actor(), id, document)
                    .await
                    .map_err(|failure| match failure.status() {
                        400 | 409 | 422 | 503 => Refused::Form(failure.error().message.clone()),
                        _ => Refused::Page(failure),
                    }),
                Err(message) => Err(Refused::Form(message)),
            };
            match outcome {
                Ok(_) => Ok(super::page::see_other(&format!(
                    "/console/bots/{id}/access?done=saved"
                ))),
                Err(Refused::Form(message)) => {
                    render(
                        admin,
                        id,
                        &typed,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "",
                        Some(&message),
                    )
                    .await
                }
                Err(Refused::Page(failure)) => Err(failure.into()),
            }
        }
        .await,
    )
}

enum Refused {
    /// Shown above the form, next to what was typed.
    Form(String),
    Page(ApiFailure),
}

/// `POST /console/bots/{id}/access/allow`: adds the `person` to the allow-list.
#[handler]
pub async fn allow(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(
        async {
            let admin = &form.admin;
            let id = parse_id(&id, "bot")?;
            let person = person_field(&form.fields)?;
            let api = api(admin);
            let mut policy = api.policy_of(id).await?;
            if !policy.access.allowed_user_ids.contains(&person) {
                policy.access.allowed_user_ids.push(person);
            }
            api.set_policy_as(admin.actor(), id, policy).await?;
            Ok(super::page::see_other(&format!(
                "/console/bots/{id}/access?done=allowed"
            )))
        }
        .await,
    )
}

/// `POST /console/bots/{id}/access/grant`: ten more messages today for the `person`.
#[handler]
pub async fn grant(form: AdminForm, Path(id): Path<String>) -> Page {
    Page(
        async {
            let admin = &form.admin;
            let id = parse_id(&id, "bot")?;
            let request = GrantRequest {
                person: person_field(&form.fields)?,
                period: PeriodName::Day,
                messages: 10,
                cost_micro_usd: 0,
                note: "granted from the console's refusals".to_owned(),
            };
            api(admin).grant_as(admin.actor(), id, request).await?;
            Ok(super::page::see_other(&format!(
                "/console/bots/{id}/access?done=granted"
            )))
        }
        .await,
    )
}

fn person_field(fields: &Fields) -> Result<i64, PageError> {
    fields
        .text("person")
        .trim()
        .parse()
        .map_err(|_| PageError::Status {
            status: StatusCode::BAD_REQUEST,
            message: "The form did not name a Telegram user id.".into(),
        })
}

/// The policy as the form shows and sends it: lists one entry per line, money in dollars.
#[derive(Default)]
struct PolicyForm {
    people: String,
    allowed_user_ids: String,
    allowed_usernames: String,
    groups: String,
    allowed_group_ids: String,
    admins: String,
    leave_refused_groups: bool,
    messages_per_day: String,
    messages_per_month: String,
    cost_per_day: String,
    cost_per_month: String,
    bot_cost_per_month: String,
    messages_per_minute: String,
    max_turns: String,
    max_input_tokens: String,
    idle_minutes: String,
    default_language: String,
    texts: String,
    /// Kept as they are: the form does not edit people's own limits.
    overrides: Vec<crate::http::allowances::LimitsOverride>,
}

impl PolicyForm {
    fn of(policy: &PolicyDocument) -> Self {
        let lines = |values: &[i64]| {
            values
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let number = |value: Option<u64>| value.map(|n| n.to_string()).unwrap_or_default();
        let dollars = |micros: Option<i64>| micros.map(dollars).unwrap_or_default();
        let a = &policy.access;
        let b = &policy.budgets;
        let c = &policy.conversation;
        Self {
            people: match a.people {
                PeopleAccessName::Open => "open",
                PeopleAccessName::AllowList => "allow_list",
            }
            .into(),
            allowed_user_ids: lines(&a.allowed_user_ids),
            allowed_usernames: a.allowed_usernames.join("\n"),
            groups: match a.groups {
                GroupAccessName::Any => "any",
                GroupAccessName::None => "none",
                GroupAccessName::AllowList => "allow_list",
            }
            .into(),
            allowed_group_ids: lines(&a.allowed_group_ids),
            admins: lines(&a.admins),
            leave_refused_groups: a.leave_refused_groups,
            messages_per_day: number(b.per_person.messages_per_day.map(u64::from)),
            messages_per_month: number(b.per_person.messages_per_month.map(u64::from)),
            cost_per_day: dollars(b.per_person.cost_per_day_micro_usd),
            cost_per_month: dollars(b.per_person.cost_per_month_micro_usd),
            bot_cost_per_month: dollars(b.bot_cost_per_month_micro_usd),
            messages_per_minute: number(b.messages_per_minute.map(u64::from)),
            max_turns: number(c.max_turns.map(u64::from)),
            max_input_tokens: number(c.max_input_tokens),
            idle_minutes: number(c.idle_minutes.map(u64::from)),
            default_language: policy.texts.default_language.clone(),
            texts: if policy.texts.by_language.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&policy.texts.by_language).unwrap_or_default()
            },
            overrides: b.overrides.clone(),
        }
    }

    fn from_fields(fields: &Fields) -> Self {
        Self {
            people: fields.text("people"),
            allowed_user_ids: fields.text("allowed_user_ids"),
            allowed_usernames: fields.text("allowed_usernames"),
            groups: fields.text("groups"),
            allowed_group_ids: fields.text("allowed_group_ids"),
            admins: fields.text("admins"),
            leave_refused_groups: fields.get("leave_refused_groups").is_some(),
            messages_per_day: fields.text("messages_per_day"),
            messages_per_month: fields.text("messages_per_month"),
            cost_per_day: fields.text("cost_per_day"),
            cost_per_month: fields.text("cost_per_month"),
            bot_cost_per_month: fields.text("bot_cost_per_month"),
            messages_per_minute: fields.text("messages_per_minute"),
            max_turns: fields.text("max_turns"),
            max_input_tokens: fields.text("max_input_tokens"),
            idle_minutes: fields.text("idle_minutes"),
            default_language: fields.text("default_language"),
            texts: fields.text("texts"),
            overrides: serde_json::from_str(&fields.text("overrides")).unwrap_or_default(),
        }
    }

    /// The policy typed, or what is wrong with it (naming the field as the form labels it).
    fn document(&self) -> Result<PolicyDocument, String> {
        let mut document = PolicyDocument::default();
        let a = &mut document.access;
        a.people = match self.people.as_str() {
            "allow_list" => PeopleAccessName::AllowList,
            _ => PeopleAccessName::Open,
        };
        a.allowed_user_ids = ids("Allowed user ids", &self.allowed_user_ids)?;
        a.allowed_usernames = entries(&self.allowed_usernames);
        a.groups = match self.groups.as_str() {
            "none" => GroupAccessName::None,
            "allow_list" => GroupAccessName::AllowList,
            _ => GroupAccessName::Any,
        };
        a.allowed_group_ids = ids("Allowed groups", &self.allowed_group_ids)?;
        a.admins = ids("The bot's admins", &self.admins)?;
        a.leave_refused_groups = self.leave_refused_groups;
        let b = &mut document.budgets;
        b.per_person.messages_per_day = optional("Messages per day", &self.messages_per_day)?;
        b.per_person.messages_per_month = optional("Messages per month", &self.messages_per_month)?;
        b.per_person.cost_per_day_micro_usd = micros("Cost per day", &self.cost_per_day)?;
        b.per_person.cost_per_month_micro_usd = micros("Cost per month", &self.cost_per_month)?;
        b.bot_cost_per_month_micro_usd = micros("The bot's monthly cap", &self.bot_cost_per_month)?;
        b.messages_per_minute = optional("Messages per minute", &self.messages_per_minute)?;
        b.overrides = self.overrides.clone();
        let c = &mut document.conversation;
        c.max_turns = optional("Turns kept", &self.max_turns)?;
        c.max_input_tokens = optional("Input tokens kept", &self.max_input_tokens)?;
        c.idle_minutes = optional("Idle minutes", &self.idle_minutes)?;
        let t = &mut document.texts;
        t.default_language = self.default_language.trim().to_owned();
        t.by_language = if self.texts.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_str::<BTreeMap<String, LanguageTexts>>(&self.texts)
                .map_err(|e| format!("Texts: not a JSON object of languages and texts ({e})."))?
        };
        Ok(document)
    }
}

fn entries(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ids(label: &str, text: &str) -> Result<Vec<i64>, String> {
    entries(text)
        .iter()
        .map(|entry| {
            entry
                .parse()
                .map_err(|_| format!("{label}: {entry:?} is not a Telegram id (a number)."))
        })
        .collect()
}

fn optional<T: std::str::FromStr>(label: &str, text: &str) -> Result<Option<T>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{label}: {text:?} is not a whole number (leave it empty for none)."))
}

/// Dollars as typed (`12`, `0.5`, `$1.25`) in micro-USD.
fn micros(label: &str, text: &str) -> Result<Option<i64>, String> {
    let text = text.trim().trim_start_matches('$');
    if text.is_empty() {
        return Ok(None);
    }
    let wrong = || format!("{label}: {text:?} is not an amount of dollars, e.g. 2.50.");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.is_empty() && fraction.is_empty()
    {
        return Err(wrong());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| wrong())?
    };
    let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| wrong())?;
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(fraction))
        .map(Some)
        .ok_or_else(wrong)
}

/// Micro-USD as the form shows dollars: `2.5`.
fn dollars(micros: i64) -> String {
    let fraction = format!("{:06}", micros % 1_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        (micros / 1_000_000).to_string()
    } else {
        format!("{}.{fraction}", micros / 1_000_000)
    }
}

fn reason_label(reason: RefusalReasonName) -> &'static str {
    match reason {
        RefusalReasonName::NotAllowed => "not on the list",
        RefusalReasonName::GroupNotAllowed => "group not served",
        RefusalReasonName::DailyLimit => "daily limit",
        RefusalReasonName::MonthlyLimit => "monthly limit",
        RefusalReasonName::BotMonthlyCap => "the bot's monthly cap",
        RefusalReasonName::TooFast => "too fast",
    }
}

async fn render(
    admin: &Admin,
    id: Uuid,
    form: &PolicyForm,
    status: StatusCode,
    flash: &str,
    refused: Option<&str>,
) -> PageResult {
    let bot = BotsApi(Wired::new(BotsDeps::of(&admin.state)))
        .read(id)
        .await?;
    let api = api(admin);
    let refusals = api.refusal_page(id, None, 50).await?;
    let usage = api.bot_usage(id, PeriodName::Month, 10).await?;
    let action = format!("/console/bots/{id}/access");
    let selected = |value: &str, current: &str| value == current;
    let body = html! {
        h1 { "Access and budgets · " a href=(format!("/console/bots/{id}")) { (bot.name) } }
        @if !flash.is_empty() { div.notice.ok role="status" { (flash) } }
        @if let Some(message) = refused { (problem(message)) }
        form.stack method="post" action=(action) {
            (csrf_field(admin))
            input type="hidden" name="overrides" value=(serde_json::to_string(&form.overrides).unwrap_or_default());
            div.grid2 {
                div.panel {
                    h2 { "Who may write" }
                    label { "People"
                        select name="people" {
                            option value="open" selected[selected("open", &form.people)] { "anyone" }
                            option value="allow_list" selected[selected("allow_list", &form.people)] { "only those listed" }
                        }
                    }
                    label { "Allowed user ids" span.hint { "Telegram user ids, one per line" }
                        textarea name="allowed_user_ids" rows="3" { (form.allowed_user_ids) } }
                    label { "Allowed usernames" span.hint { "@usernames, one per line" }
                        textarea name="allowed_usernames" rows="3" { (form.allowed_usernames) } }
                    label { "Groups"
                        select name="groups" {
                            option value="any" selected[selected("any", &form.groups)] { "any group" }
                            option value="none" selected[selected("none", &form.groups)] { "no group" }
                            option value="allow_list" selected[selected("allow_list", &form.groups)] { "only those listed" }
                        }
                    }
                    label { "Allowed groups" span.hint { "Telegram group ids (negative), one per line" }
                        textarea name="allowed_group_ids" rows="2" { (form.allowed_group_ids) } }
                    label.check { input type="checkbox" name="leave_refused_groups" value="1" checked[form.leave_refused_groups];
                        " leave a group it may not serve, after saying so once" }
                    label { "The bot's admins" span.hint { "Telegram user ids never refused or limited" }
                        textarea name="admins" rows="2" { (form.admins) } }
                }
                div.panel {
                    h2 { "Budgets" }
                    p.small.muted { "Per person unless said; days and months are UTC; empty is no limit." }
                    label { "Messages per day" input type="text" inputmode="numeric" name="messages_per_day" value=(form.messages_per_day); }
                    label { "Messages per month" input type="text" inputmode="numeric" name="messages_per_month" value=(form.messages_per_month); }
                    label { "Cost per day" span.hint { "dollars" } input type="text" inputmode="decimal" name="cost_per_day" value=(form.cost_per_day); }
                    label { "Cost per month" span.hint { "dollars" } input type="text" inputmode="decimal" name="cost_per_month" value=(form.cost_per_month); }
                    label { "The bot's monthly cap" span.hint { "dollars, for everyone together" } input type="text" inputmode="decimal" name="bot_cost_per_month" value=(form.bot_cost_per_month); }
                    label { "Messages per minute" span.hint { "per person, in one chat" } input type="text" inputmode="numeric" name="messages_per_minute" value=(form.messages_per_minute); }
                    h2 { "Conversation" }
                    label { "Turns kept" span.hint { "earlier exchanges the model sees" } input type="text" inputmode="numeric" name="max_turns" value=(form.max_turns); }
                    label { "Input tokens kept" input type="text" inputmode="numeric" name="max_input_tokens" value=(form.max_input_tokens); }
                    label { "Idle minutes" span.hint { "then the next message starts a new conversation" } input type="text" inputmode="numeric" name="idle_minutes" value=(form.idle_minutes); }
                }
            }
            div.panel {
                h2 { "Texts" }
                label { "Default language" span.hint { "two letters; built-in texts exist in en and ru" }
                    input type="text" name="default_language" value=(form.default_language) maxlength="2"; }
                label { "The bot's own texts" span.hint { "JSON by language, e.g. {\"ru\": {\"start\": \"Здравствуйте!\"}}; keys: start, help, refresh, media_notice, refusal, group_refusal, limit_reached, bot_limit_reached, slow_down, error, new_conversation, usage, unknown_button" }
                    textarea name="texts" rows="6" { (form.texts) } }
                div.actions { button.primary type="submit" { "Save the policy" } }
            }
        }
        div.grid2 {
            div.panel {
                h2 { "Who was refused" }
                @if refusals.items.is_empty() {
                    (empty("Nobody was refused.", html! {}))
                } @else {
                    table.refusals {
                        thead { tr { th { "Person" } th { "Why" } th { "Times" } th { "Last" } th {} } }
                        tbody {
                            @for r in &refusals.items {
                                tr data-person=(r.person) {
                                    td {
                                        @if let Some(name) = &r.first_name { (name) " " }
                                        @if let Some(username) = &r.username { span.muted { "@" (username) " " } }
                                        span.small.muted { (r.person) }
                                    }
                                    td { (reason_label(r.reason)) }
                                    td { (count(r.attempts)) }
                                    td { (time(r.last_at)) }
                                    td {
                                        @match r.reason {
                                            RefusalReasonName::NotAllowed => {
                                                (person_button(admin, &format!("{action}/allow"), r.person, "Allow"))
                                            }
                                            RefusalReasonName::DailyLimit | RefusalReasonName::MonthlyLimit => {
                                                (person_button(admin, &format!("{action}/grant"), r.person, "+10 today"))
                                            }
                                            _ => {}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.panel {
                h2 { "Use this month" }
                @if usage.rows.is_empty() {
                    (empty("Nothing used this month yet.", html! {}))
                } @else {
                    table {
                        thead { tr { th { "Who" } th { "Messages" } th { "Cost" } } }
                        tbody {
                            @for row in &usage.rows {
                                tr {
                                    td { @if row.person == 0 { strong { "the whole bot" } } @else { (row.person) } }
                                    td { (count(row.messages)) }
                                    td { (usd(row.cost_micro_usd)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut response = layout(
        admin,
        Section::Bots,
        &format!("Access · {}", bot.name),
        body,
    );
    response.set_status(status);
    Ok(response)
}

fn person_button(admin: &Admin, action: &str, person: i64, label: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(admin))
            input type="hidden" name="person" value=(person);
            button type="submit" { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_read_to_the_micro_dollar_and_shown_back_alike() {
        assert_eq!(micros("x", "2.5"), Ok(Some(2_500_000)));
        assert_eq!(micros("x", "$0.000001"), Ok(Some(1)));
        assert_eq!(micros("x", "12"), Ok(Some(12_000_000)));
        assert_eq!(micros("x", ""), Ok(None));
        assert!(micros("x", "1.2345678").is_err());
        assert!(micros("x", "-1").is_err());
        assert!(micros("x", "one").is_err());
        assert!(micros("x", ".").is_err());
        assert_eq!(dollars(2_500_000), "2.5");
        assert_eq!(dollars(12_000_000), "12");
        assert_eq!(dollars(1), "0.000001");
    }

    #[test]
    fn lists_take_lines_commas_and_spaces() {
        assert_eq!(ids("x", "1\n2, 3  4"), Ok(vec![1, 2, 3, 4]));
        assert!(ids("Allowed user ids", "12\nann")
            .unwrap_err()
            .contains("\"ann\""));
    }
}
