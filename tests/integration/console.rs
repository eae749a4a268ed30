//! The admin console in a real browser (Chromium through WebDriver), against the real app with
//! the fake Telegram and OpenAI servers. Few and broad: each test walks one group of
//! scenarios an admin goes through.

use std::time::Duration;

use aggregates::ids::{BotId, TurnKey, UpdateId};
use fantoccini::Locator;
use serde_json::Value;

use crate::browser::Browser;
use crate::fakes::telegram::{error, text_update};
use crate::helpers::{eventually, log_in, token, Fakes, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

const WAIT: Duration = Duration::from_secs(30);

/// The id at the end of the browser's current path (`/console/bots/<id>`).
async fn id_in_url(browser: &Browser) -> String {
    let url = browser.client.current_url().await.expect("a URL");
    url.path_segments()
        .and_then(|mut s| s.nth(2))
        .expect("an id in the path")
        .to_owned()
}

async fn login_status(base: &str, email: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .expect("POST /auth/login")
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_admin_signs_in_administers_admins_and_forms_need_the_csrf_token() {
    let app = TestApp::spawn().await;

    // The headers every console answer carries, and the cookie a console sign-in sets.
    let page = reqwest::get(app.url("/console/login")).await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/console/login"))
        .header("origin", &app.base)
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let forged = reqwest::Client::new()
        .post(app.url("/console/login"))
        .header("origin", "https://evil.example")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "a sign-in form posted from another site"
    );

    let browser = Browser::start("sign_in_and_admins", &app.base).await;
    browser
        .scenario(async {
            // The service's address opens the sign-in page.
            browser.open("/").await;
            browser.find("form[action='/console/login']").await;
            assert_eq!(
                browser.client.current_url().await.unwrap().path(),
                "/console/login"
            );

            // A wrong password is refused, saying so.
            browser.fill("input[name=email]", ADMIN_EMAIL).await;
            browser
                .fill("input[name=password]", "not the password at all")
                .await;
            browser.click("button[type=submit]").await;
            browser
                .wait_for_text("The email or password is wrong.")
                .await;

            // Signing in leads back to the page that asked for it.
            browser.open("/console/admins").await;
            browser.fill("input[name=email]", ADMIN_EMAIL).await;
            browser.fill("input[name=password]", ADMIN_PASSWORD).await;
            browser.click("button[type=submit]").await;
            browser.wait_for_text("Add an admin").await;
            assert_eq!(
                browser.client.current_url().await.unwrap().path(),
                "/console/admins"
            );

            // Add an admin, who can then log in.
            let add = "form[action='/console/admins']";
            browser
                .fill(&format!("{add} input[name=email]"), "ops@example.com")
                .await;
            browser
                .fill(
                    &format!("{add} input[name=password]"),
                    "another long passphrase",
                )
                .await;
            browser.click(&format!("{add} button")).await;
            browser.wait_for_text("The admin is added").await;
            browser.find("tr[data-email='ops@example.com']").await;
            log_in(&app.base, "ops@example.com", "another long passphrase").await;

            // Disable them: they can no longer log in.
            browser
                .click("tr[data-email='ops@example.com'] button")
                .await;
            browser.wait_for_text("The admin is disabled").await;
            assert_eq!(
                login_status(&app.base, "ops@example.com", "another long passphrase").await,
                401
            );
            assert!(browser.text().await.contains("disabled"));

            // A form without the session's CSRF token is refused, and changes nothing.
            browser
                .client
                .execute(
                    "document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove());\
                     document.body.removeAttribute('hx-headers');",
                    vec![],
                )
                .await
                .unwrap();
            browser
                .fill(&format!("{add} input[name=email]"), "third@example.com")
                .await;
            browser
                .fill(
                    &format!("{add} input[name=password]"),
                    "a third long passphrase",
                )
                .await;
            browser.click(&format!("{add} button")).await;
            browser
                .wait_for_text("did not carry this session's security token")
                .await;
            let third: i64 =
                sqlx::query_scalar("SELECT count(*) FROM admins WHERE email = 'third@example.com'")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            assert_eq!(third, 0, "the refused form added nobody");

            // Signing out ends the session on the server, not only in the browser.
            let session = browser
                .client
                .get_named_cookie("botfleet_session")
                .await
                .expect("the session cookie")
                .value()
                .to_owned();
            browser.open("/console/admins").await;
            browser.click("form[action='/console/logout'] button").await;
            browser.find("form[action='/console/login']").await;
            let me = reqwest::Client::new()
                .get(app.url("/auth/me"))
                .header("cookie", format!("botfleet_session={session}"))
                .send()
                .await
                .unwrap();
            assert_eq!(me.status(), 401, "the old cookie no longer opens a session");
        })
        .await;
    browser.finish().await;
    app.stop().await;
}

#[tokio::test]
async fn a_conversation_from_registration_to_the_admins_answer_in_a_browser() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let browser = Browser::start("conversation", &app.base).await;
    browser
        .scenario(async {
            browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;

            // Register a bot, and enable it.
            browser.open("/console/bots/new").await;
            browser.fill("input[name=name]", "Support").await;
            browser.fill("input[name=token]", &token(1)).await;
            browser
                .click("form[action='/console/bots'] button.primary")
                .await;
            browser.wait_for_text("The bot is registered").await;
            let bot_id = id_in_url(&browser).await;
            browser
                .click(&format!(
                    "form[action='/console/bots/{bot_id}/enable'] button"
                ))
                .await;
            browser.wait_for_text("The bot is enabled").await;
            eventually(WAIT, "the bot is live", || async {
                app.get(&format!("/bots/{bot_id}")).await.1["status"] == "enabled"
            })
            .await;

            // A Telegram user writes; the conversation shows the answer with its figures.
            app.deliver(&bot_id, &text_update(1, 42, "hello")).await;
            fakes.telegram.wait_for_calls("sendMessage", 1, WAIT).await;
            app.settle().await;
            browser.open("/console/chats").await;
            browser.click("td a[href^='/console/chats/']").await;
            let answer = browser.find(".bubble.bot").await.text().await.unwrap();
            for expected in [
                "echo: hello",
                "gpt-5-mini",
                "100 in (20 cached) / 50 out",
                "$0.000121",
                "took",
                "sent",
            ] {
                assert!(answer.contains(expected), "{expected:?} in {answer:?}");
            }
            assert!(browser
                .find(".bubble.user")
                .await
                .text()
                .await
                .unwrap()
                .contains("hello"));

            // The admin answers from the console; Telegram receives it exactly once.
            browser
                .fill("form.composer textarea", "Hi, this is the admin")
                .await;
            browser.click("form.composer button").await;
            let admin_bubble = browser.find(".bubble.admin").await;
            assert!(admin_bubble
                .text()
                .await
                .unwrap()
                .contains("Hi, this is the admin"));
            fakes.telegram.wait_for_calls("sendMessage", 2, WAIT).await;
            app.settle().await;
            let sent: Vec<_> = fakes
                .telegram
                .sent_messages()
                .into_iter()
                .filter(|(_, text)| text.contains("Hi, this is the admin"))
                .collect();
            assert_eq!(sent.len(), 1, "{:?}", fakes.telegram.sent_messages());
            assert_eq!(sent[0].0, 42);

            // A stranger's markup is shown as text and does nothing.
            let xss = "<img src=x onerror=alert(1)>";
            app.deliver(&bot_id, &text_update(2, 42, xss)).await;
            fakes.telegram.wait_for_calls("sendMessage", 3, WAIT).await;
            app.settle().await;
            browser.client.refresh().await.unwrap();
            browser.wait_for_text(xss).await;
            assert!(
                browser.find_all(".conversation img").await.is_empty(),
                "no image element"
            );
            assert!(
                browser.client.get_alert_text().await.is_err(),
                "no alert ran"
            );

            // The overview's chart shows today's turns (the admin's message is not a turn).
            browser.open("/console").await;
            let today = chrono::Utc::now().date_naive().to_string();
            let bars = browser
                .find_all(&format!(
                    "svg.chart[aria-label^='Turns'] rect[data-day='{today}']"
                ))
                .await;
            let mut turns = 0.0;
            for bar in bars {
                turns += bar
                    .attr("data-value")
                    .await
                    .unwrap()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap();
            }
            assert_eq!(turns, 2.0);
            assert!(browser.text().await.contains("Support"));

            // The audit page tells the turn's story in order.
            let correlation = botfleet::event_store::update_correlation_id(
                BotId(bot_id.parse().unwrap()),
                TurnKey::Update(UpdateId(1)),
            );
            browser
                .open(&format!("/console/audit/story/{correlation}"))
                .await;
            browser
                .reload_until("the turn's last step", |t| t.contains("ResponseSent"))
                .await;
            let mut steps = Vec::new();
            for step in browser.find_all("ol.timeline li").await {
                steps.push(step.attr("data-event-type").await.unwrap().unwrap());
            }
            assert_eq!(
                steps,
                ["MessageReceived", "ResponseGenerated", "ResponseSent"]
            );
            browser.click("ol.timeline li a").await;
            browser.wait_for_text("Payload").await;
        })
        .await;
    browser.finish().await;
    app.stop().await;
}

#[tokio::test]
async fn a_failed_turn_is_retried_and_a_person_forgotten_in_a_browser() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot = app.create_enabled_bot("Support", &token(1)).await;
    // The send is rate limited once, then refused for good.
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        429,
        error(429, "Too Many Requests: retry after 1", Some(1)),
    );
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        403,
        error(403, "Forbidden: bot was blocked by the user", None),
    );
    app.deliver(&bot, &text_update(1, 42, "hello")).await;
    eventually(WAIT, "the turn fails for good", || async {
        app.get("/failures").await.1["items"]
            .as_array()
            .is_some_and(|i| i.len() == 1)
    })
    .await;
    app.settle().await;

    let browser = Browser::start("failures_and_forget", &app.base).await;
    browser
        .scenario(async {
            browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;

            // The conversation shows the failed attempt inline, and the failure.
            browser.open("/console/chats").await;
            browser.click("td a[href^='/console/chats/']").await;
            let attempt = browser.find(".attempt").await.text().await.unwrap();
            assert!(
                attempt.contains("retryable") && attempt.contains("send"),
                "{attempt}"
            );
            let failed = browser.find(".failed-turn").await.text().await.unwrap();
            assert!(
                failed.contains("terminal") && failed.contains("blocked by the user"),
                "{failed}"
            );

            // Retried from the Failures page, the turn is answered.
            browser.open("/console/failures").await;
            browser.wait_for_text("blocked by the user").await;
            browser.click("input[name=turn]").await;
            browser
                .click("form[action='/console/failures/retry'] button.primary")
                .await;
            browser.wait_for_text("The turns are queued again").await;
            fakes.telegram.wait_for_calls("sendMessage", 3, WAIT).await;
            app.settle().await;
            browser
                .reload_until("no failed turn", |t| t.contains("No failed turns."))
                .await;

            // Forget the person: the confirmation says what goes, and then it is gone.
            browser.open("/console/users").await;
            browser.wait_for_text("Ann Lee").await;
            browser.click("a[href='/console/users/42/forget']").await;
            browser.wait_for_text("cannot be undone").await;
            assert!(browser.text().await.contains("[forgotten]"));
            browser.click("button.danger").await;
            browser.wait_for_text("The person is forgotten").await;
            assert!(!browser.text().await.contains("Ann Lee"));
            browser.open("/console/chats").await;
            browser.click("td a[href^='/console/chats/']").await;
            let said = browser.find(".bubble.user").await.text().await.unwrap();
            assert!(
                said.contains("[forgotten]") && !said.contains("hello"),
                "{said}"
            );
        })
        .await;
    browser.finish().await;
    app.stop().await;
}

/// Pictures of the console for the README: `docs/console-overview.png`,
/// `docs/console-conversation.png` and `docs/console-phone.png` (a conversation on a
/// phone-sized screen). Run with `docs/screenshots` (it runs this test).
#[tokio::test]
async fn an_admin_lets_a_refused_person_in_from_the_access_page() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let bot_id = app.create_enabled_bot("Private", &token(1)).await;
    let browser = Browser::start("access", &app.base).await;
    browser
        .scenario(async {
            browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
            browser.open(&format!("/console/bots/{bot_id}")).await;
            browser
                .click(&format!("a[href='/console/bots/{bot_id}/access']"))
                .await;

            // A typo is refused next to the form, and nothing is saved.
            browser
                .find("select[name=people]")
                .await
                .select_by_value("allow_list")
                .await
                .unwrap();
            browser
                .fill("textarea[name=allowed_user_ids]", "7\nann")
                .await;
            browser.click("form.stack button.primary").await;
            browser
                .wait_for_text("Allowed user ids: \"ann\" is not a Telegram id")
                .await;
            let (_, policy) = app.get(&format!("/bots/{bot_id}/policy")).await;
            assert_eq!(policy["access"]["people"], "open");

            // Only user 7 may write; the daily cap is typed in dollars.
            browser.fill("textarea[name=allowed_user_ids]", "7").await;
            browser.fill("input[name=cost_per_day]", "0.5").await;
            browser.click("form.stack button.primary").await;
            browser.wait_for_text("The policy is saved").await;
            let (_, policy) = app.get(&format!("/bots/{bot_id}/policy")).await;
            assert_eq!(policy["access"]["allowed_user_ids"], serde_json::json!([7]));
            assert_eq!(
                policy["budgets"]["per_person"]["cost_per_day_micro_usd"],
                500_000
            );

            // Person 42 writes and is refused; the page lists them with a button to let them in.
            app.deliver(&bot_id, &text_update(1, 42, "hello?")).await;
            app.settle().await;
            assert!(fakes.openai.requests().is_empty());
            browser
                .reload_until("the refused person", |t| t.contains("not on the list"))
                .await;
            browser.click("tr[data-person='42'] button").await;
            browser
                .wait_for_text("The person is on the allow-list now")
                .await;

            // Now they are answered.
            app.deliver(&bot_id, &text_update(2, 42, "and now?")).await;
            app.settle().await;
            assert_eq!(
                fakes.telegram.sent_messages().last().unwrap().1,
                "echo: and now?"
            );
        })
        .await;
    browser.finish().await;
    app.stop().await;
}

#[tokio::test]
#[ignore = "writes the README's screenshots; run it with docs/screenshots"]
async fn screenshots_for_the_readme() {
    let fakes = Fakes::start().await;
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let support = app.create_enabled_bot("Support desk", &token(1)).await;
    let sales = app.create_enabled_bot("Sales assistant", &token(2)).await;
    fakes.openai.set_reply(Some(
        "Our opening hours are 9:00 to 18:00 CET, Monday to Friday. Outside them you can \
         leave a message here and we answer the next working day."
            .to_owned(),
    ));
    let mut sent = 0;
    for (n, (bot, chat, text)) in [
        (&support, 42, "Hi! When are you open?"),
        (&support, 43, "Do you ship to Norway?"),
        (&sales, 44, "What does the premium plan cost?"),
        (&support, 42, "And on public holidays?"),
        (&sales, 45, "Can I get an invoice for my order?"),
    ]
    .into_iter()
    .enumerate()
    {
        app.deliver(bot, &text_update(n as i64 + 1, chat, text))
            .await;
        sent += 1;
        fakes
            .telegram
            .wait_for_calls("sendMessage", sent, WAIT)
            .await;
    }
    app.settle().await;
    let chat: Value = app
        .get(&format!("/chats?bot_id={support}&user_id=42"))
        .await
        .1;
    let chat_id = chat["items"][0]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/chats/{chat_id}/messages"), serde_json::json!({"text": "Hello Ann, this is Maria from the support team: on public holidays we are closed."})).await;
    fakes
        .telegram
        .wait_for_calls("sendMessage", sent + 1, WAIT)
        .await;
    app.settle().await;

    let browser = Browser::start("screenshots", &app.base).await;
    browser
        .scenario(async {
            let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
            std::fs::create_dir_all(&docs).unwrap();
            browser.client.set_window_size(1280, 1060).await.unwrap();
            browser.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
            browser.open("/console").await;
            browser.find("svg.chart").await;
            browser
                .screenshot_to(&docs.join("console-overview.png"))
                .await;
            browser.client.set_window_size(1100, 1200).await.unwrap();
            browser.open(&format!("/console/chats/{chat_id}")).await;
            browser.find(".bubble.admin").await;
            browser
                .client
                .find(Locator::Css("#thread"))
                .await
                .unwrap()
                .screenshot()
                .await
                .map(|png| std::fs::write(docs.join("console-conversation.png"), png).unwrap())
                .unwrap();
            browser.client.set_window_size(390, 844).await.unwrap();
            browser.open(&format!("/console/chats/{chat_id}")).await;
            browser.find(".bubble.admin").await;
            browser.screenshot_to(&docs.join("console-phone.png")).await;
        })
        .await;
    browser.finish().await;
    app.stop().await;
}
