//! Admins: the list, adding one, disabling or enabling one, changing your own password,
//! lifting a login lockout. The same operations as `/admins`, `/auth/password`, `/lockouts`.

use maud::{html, Markup};
use poem::handler;
use poem::http::StatusCode;
use poem::web::{Path, Query};

use crate::http::admins::AdminsApi;
use crate::http::errors::ApiFailure;
use crate::http::Wired;
use crate::secrets::Redacted;

use super::bots::parse_id;
use super::page::{
    badge, csrf_field, layout, notice, post_button, problem, see_other, time, Page, PageError,
    PageResult, Section,
};
use super::session::{Admin, AdminForm};

fn api(admin: &Admin) -> AdminsApi {
    AdminsApi(Wired::new(admin.state.pool.clone()))
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    done: Option<String>,
}

/// `GET /console/admins`.
#[handler]
pub async fn page(admin: Admin, Query(q): Query<PageQuery>) -> Page {
    Page(render(&admin, StatusCode::OK, notice(q.done.as_deref()), None, "").await)
}

async fn render(
    admin: &Admin,
    status: StatusCode,
    flash: Markup,
    refusal: Option<&str>,
    typed_email: &str,
) -> PageResult {
    let admins = api(admin);
    let accounts = admins.accounts().await?;
    let lockouts = admins.locked().await?;
    let me = admin.session.admin_id;
    let body = html! {
        h1 { "Admins" }
        (flash)
        @if let Some(text) = refusal { (problem(text)) }
        div.panel {
            div.table-wrap { table {
                thead { tr { th { "Email" } th { "State" } th { "Added" } th { "Sessions" } th {} } }
                tbody {
                    @for account in &accounts {
                        tr data-email=(account.email) {
                            td { (account.email) @if account.id == me { " " span.muted.small { "(you)" } } }
                            td { @match account.disabled_at {
                                Some(at) => { (badge("disabled", "bad")) br; span.small.muted { (time(at)) } }
                                None => (badge("active", "ok")),
                            } }
                            td.small { (time(account.created_at)) @if let Some(by) = &account.created_by { br; span.muted { "by " (by) } } }
                            td { (account.live_sessions) }
                            td { @if account.id != me {
                                @if account.disabled_at.is_some() {
                                    (post_button(admin, &format!("/console/admins/{}/enable", account.id), "Enable", ""))
                                } @else {
                                    (post_button(admin, &format!("/console/admins/{}/disable", account.id), "Disable", "danger"))
                                }
                            } }
                        }
                    }
                }
            } }
        }
        div.grid2 {
            div.panel {
                h2 { "Add an admin" }
                form.stack method="post" action="/console/admins" {
                    (csrf_field(admin))
                    label { "Email" input type="email" name="email" value=(typed_email) required autocomplete="off"; }
                    label { "Password" span.hint { "at least 12 characters; tell it to them in person" }
                        input type="password" name="password" required minlength="12" autocomplete="new-password"; }
                    div.actions { button.primary type="submit" { "Add the admin" } }
                }
            }
            div.panel {
                h2 { "Change your password" }
                form.stack method="post" action="/console/admins/password" {
                    (csrf_field(admin))
                    label { "Current password" input type="password" name="current_password" required autocomplete="current-password"; }
                    label { "New password" span.hint { "at least 12 characters; your other sessions end" }
                        input type="password" name="new_password" required minlength="12" autocomplete="new-password"; }
                    div.actions { button type="submit" { "Change the password" } }
                }
            }
        }
        div.panel {
            h2 { "Login lockouts" }
            @if lockouts.is_empty() {
                p.muted { "No account or address is locked out. After five failed sign-ins within fifteen minutes, one is, for fifteen minutes; it shows here to lift early." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "Account or address" } th { "Locked until" } th {} } }
                    tbody {
                        @for lock in &lockouts {
                            tr {
                                td { code { (lock.subject) } }
                                td { (time(lock.locked_until)) }
                                td { form method="post" action="/console/admins/lockouts/lift" {
                                    (csrf_field(admin))
                                    input type="hidden" name="subject" value=(lock.subject);
                                    button type="submit" { "Lift" }
                                } }
                            }
                        }
                    }
                } }
            }
        }
    };
    let mut response = layout(admin, Section::Admins, "Admins", body);
    response.set_status(status);
    Ok(response)
}

/// The page again with a refusal the admin can act on, or an error page for the rest.
async fn refused(admin: &Admin, failure: ApiFailure, typed_email: &str) -> PageResult {
    if failure.status() >= 500 || failure.status() == 404 {
        return Err(PageError::from(failure));
    }
    let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
    render(
        admin,
        status,
        html! {},
        Some(&failure.error().message),
        typed_email,
    )
    .await
}

/// `POST /console/admins`.
#[handler]
pub async fn add(form: AdminForm) -> Page {
    let admin = &form.admin;
    let email = form.fields.text("email");
    let password = Redacted::new(form.fields.text("password"));
    Page(
        match api(admin)
            .add_admin(&admin.api_session(), &email, password)
            .await
        {
            Ok(_) => Ok(see_other("/console/admins?done=admin-added")),
            Err(failure) => refused(admin, failure, &email).await,
        },
    )
}

/// `POST /console/admins/{id}/disable`.
#[handler]
pub async fn disable(form: AdminForm, Path(id): Path<String>) -> Page {
    let admin = &form.admin;
    Page(match parse_id(&id, "admin") {
        Err(e) => Err(e),
        Ok(id) => match api(admin).disable_admin(&admin.api_session(), id).await {
            Ok(_) => Ok(see_other("/console/admins?done=admin-disabled")),
            Err(failure) => refused(admin, failure, "").await,
        },
    })
}

/// `POST /console/admins/{id}/enable`.
#[handler]
pub async fn enable(form: AdminForm, Path(id): Path<String>) -> Page {
    let admin = &form.admin;
    Page(match parse_id(&id, "admin") {
        Err(e) => Err(e),
        Ok(id) => match api(admin).enable_admin(&admin.api_session(), id).await {
            Ok(_) => Ok(see_other("/console/admins?done=admin-enabled")),
            Err(failure) => refused(admin, failure, "").await,
        },
    })
}

/// `POST /console/admins/password`: your own password.
#[handler]
pub async fn change_password(form: AdminForm) -> Page {
    let admin = &form.admin;
    let current = Redacted::new(form.fields.text("current_password"));
    let new = Redacted::new(form.fields.text("new_password"));
    Page(
        match api(admin)
            .change_password(&admin.api_session(), current, new)
            .await
        {
            Ok(()) => Ok(see_other("/console/admins?done=password")),
            Err(failure) => refused(admin, failure, "").await,
        },
    )
}

/// `POST /console/admins/lockouts/lift`.
#[handler]
pub async fn lift_lockout(form: AdminForm) -> Page {
    let admin = &form.admin;
    let subject = form.fields.text("subject");
    Page(
        match api(admin)
            .lift_lockout(&admin.api_session(), &subject)
            .await
        {
            Ok(()) => Ok(see_other("/console/admins?done=lifted")),
            Err(failure) => refused(admin, failure, "").await,
        },
    )
}
