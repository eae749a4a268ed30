//! Schema conformance: every operation in the OpenAPI document, called with valid and hostile
//! inputs, answers with a status the document lists for it (never a 5xx, except a 503 the
//! operation documents) and with a body its schema for that status describes.
//!
//! The document comes from the code (`botfleet::http::spec_json`), so an operation is covered
//! the day it is added. The requests are derived from it, after real data is made (an enabled
//! bot, chats with messages, a failed turn, a person to forget):
//!
//! - each secured operation with the session, without one, with a forged cookie, and (writes)
//!   without the CSRF token;
//! - each path parameter naming something that exists, something that does not, and
//!   malformed (NUL, negative, past 2^63, not UTF-8, very long…);
//! - each query parameter alone: valid, out of range, of the wrong type, with a NUL, very
//!   long, negative, past 2^63, instants before 4713 BC and past chrono's range;
//! - each header parameter: right, wrong, absent, very long, not UTF-8;
//! - bodies built from the request schema: valid, then broken field by field (missing,
//!   `null`, the wrong type, NUL, very long, empty) and whole (unknown field, not JSON,
//!   nested past serde's limit, not UTF-8, past the size limit, the wrong content type);
//! - a seeded random mix of all of the above; the seed is printed, `CONFORMANCE_SEED=n`
//!   replays it.
//!
//! The validator knows the subset of JSON Schema poem-openapi emits and says so when it meets
//! a keyword it does not know, rather than pass it. Beyond JSON Schema, it reports a
//! property the document does not describe. Every mismatch is reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::fakes::telegram::{error, text_update};
use crate::helpers::{
    eventually, log_in, session_client, token, Fakes, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD,
};

/// Operations that cannot succeed on the data this pass makes, and why. Every other operation
/// must answer 2xx at least once, so that its success schema is checked too.
const NO_SUCCESS_EXPECTED: &[(&str, &str)] = &[
    ("POST /projections/{name}/retry", "no projection is paused"),
    (
        "POST /projections/{name}/skip",
        "no projection has a poison event",
    ),
    (
        "POST /auth/password",
        "a new password for the pass's own admin would end the sessions the pass runs on \
         (console_api.rs checks its success)",
    ),
    (
        "POST /auth/setup",
        "the set-up link works only while no admin exists; the pass signs in as one \
         (first_admin.rs checks its success)",
    ),
];

/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Random requests per operation, on top of the deterministic ones.
const RANDOM_PER_OPERATION: usize = 8;

#[tokio::test]
async fn every_operation_answers_as_the_openapi_document_says() {
    let seed: u64 = std::env::var("CONFORMANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let started = Instant::now();
    let spec: Value =
        serde_json::from_str(&botfleet::http::spec_json()).expect("the document is JSON");
    let schemas = Schemas(&spec);
    let mut report = Report::default();
    for problem in schemas.unknown_keywords() {
        report.problems.push(format!("the validator: {problem}"));
    }

    let fakes = Fakes::start().await;
    // The first answer fails for good (the user blocked the bot): a failed turn to list and
    // retry.
    fakes.telegram.fail_next(
        "sendMessage",
        1,
        403,
        error(403, "Forbidden: bot was blocked by the user", None),
    );
    let app = TestApp::spawn_with_fakes(&fakes, |_| {}).await;
    let fixtures = Fixtures::make(&app).await;
    let setup = started.elapsed();

    let clients = Clients {
        session: session_client(&fixtures.session),
        logout_session: session_client(&fixtures.logout_session),
        plain: reqwest::Client::new(),
    };
    let mut pass = Pass {
        app: &app,
        schemas,
        fixtures,
        clients,
        rng: StdRng::seed_from_u64(seed),
        report,
        harvest: BTreeMap::new(),
        next_token: 100,
        next_update: 1_000,
    };
    let mut operations = operations(&spec);
    // Logging out ends a session, deleting a bot and forgetting a person change what later
    // requests find: they run last, each with a session or data of its own.
    operations.sort_by_key(|op| (op.changes_a_lot(), op.id()));
    for op in &operations {
        pass.run_operation(op).await;
    }
    let report = pass.report;
    let elapsed = started.elapsed();
    eprintln!(
        "schema conformance: {} requests over {} operations in {:.1} s (setup {:.1} s), seed {seed}",
        report.requests,
        operations.len(),
        elapsed.as_secs_f64(),
        setup.as_secs_f64(),
    );
    for (operation, statuses) in &report.seen {
        eprintln!("  {operation}: {statuses:?}");
    }
    let mut problems = report.problems.clone();
    for op in &operations {
        let succeeded = report
            .seen
            .get(&op.id())
            .is_some_and(|s| s.keys().any(|status| (200..300).contains(status)));
        let excused = NO_SUCCESS_EXPECTED.iter().any(|(id, _)| *id == op.id());
        if !succeeded && !excused {
            problems.push(format!(
                "{}: no request succeeded, so its success answer was never checked; give it \
                 data in Fixtures (or list it in NO_SUCCESS_EXPECTED with the reason)",
                op.id()
            ));
        }
    }
    // Takes a few seconds: the runner is still sending the admin messages the pass queued,
    // paced at one a second per chat.
    app.stop().await;
    assert!(
        problems.is_empty(),
        "{} mismatches between the answers and the OpenAPI document (seed {seed}; replay with \
         CONFORMANCE_SEED={seed}):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// What exists before the pass starts, for path parameters to name.
struct Fixtures {
    /// Enabled, with chats.
    bot: String,
    /// Enabled; the one disabled and deleted.
    spare_bot: String,
    /// The private chat with person 42.
    chat: String,
    failed_turn: String,
    /// A person who wrote to the spare bot, and is forgotten.
    forgettable_person: i64,
    /// A locked-out login subject, for an admin to lift.
    lockout: String,
    /// A second admin, to disable and enable.
    other_admin: String,
    /// A session of its own for logging out.
    logout_session: crate::helpers::Login,
    /// The session every other request uses.
    session: crate::helpers::Login,
}

impl Fixtures {
    async fn make(app: &TestApp) -> Self {
        let bot = app.create_enabled_bot("Conformance", &token(1)).await;
        let spare_bot = app.create_enabled_bot("Spare", &token(2)).await;
        // Blocked on the first answer: a failed turn.
        app.deliver(&bot, &text_update(1, 42, "hello")).await;
        app.settle().await;
        let (status, failures) = app.get("/failures").await;
        assert_eq!(status, 200, "{failures}");
        let failed_turn = failures["items"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a failed turn: {failures}"))
            .to_owned();
        // Answered; then, in a group with a title, a person with no last name, username or
        // language addresses the bot; and someone to forget writes to the spare bot.
        app.deliver(&bot, &text_update(2, 42, "hello again")).await;
        eventually(
            Duration::from_secs(20),
            "the bot's username is learned",
            || async { app.get(&format!("/bots/{bot}")).await.1["username"] == "support_bot" },
        )
        .await;
        let group = json!({
            "update_id": 3,
            "message": {
                "message_id": 30, "date": 1_764_000_000,
                "chat": {"id": -1_001_234_567_890_i64, "type": "supergroup", "title": "Team"},
                "from": {"id": 43, "is_bot": false, "first_name": "Bo"},
                "text": "@support_bot hello"
            }
        });
        app.deliver(&bot, &group).await;
        app.deliver(&spare_bot, &text_update(1, 77, "forget me"))
            .await;
        app.settle().await;
        let (_, group_chats) = app.get("/chats?user_id=43").await;
        assert_eq!(
            group_chats["items"][0]["title"], "Team",
            "a group chat with a title, with person 43: {group_chats}"
        );
        let (status, chats) = app.get(&format!("/chats?bot_id={bot}&user_id=42")).await;
        assert_eq!(status, 200, "{chats}");
        let chat = chats["items"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a chat with 42: {chats}"))
            .to_owned();
        // Five failed logins would lock the pass's own address too: the lockout is written as
        // the throttle writes it.
        let lockout = "account:locked-out@example.com".to_owned();
        sqlx::query(
            "INSERT INTO login_throttle (subject, failures, window_started_at, locked_until)
             VALUES ($1, 5, now(), now() + interval '1 hour')",
        )
        .bind(&lockout)
        .execute(&app.pool)
        .await
        .unwrap();
        let (status, admin) = app
            .post(
                "/admins",
                json!({"email": "second@example.com", "password": "another long passphrase"}),
            )
            .await;
        assert_eq!(status, 201, "{admin}");
        let other_admin = admin["id"].as_str().unwrap().to_owned();
        Self {
            bot,
            spare_bot,
            chat,
            failed_turn,
            forgettable_person: 77,
            lockout,
            other_admin,
            logout_session: log_in(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await,
            session: log_in(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await,
        }
    }
}

/// One operation of the document.
struct Operation {
    method: Method,
    /// As the document writes it: `/bots/{id}`.
    template: String,
    spec: Value,
}

impl Operation {
    fn id(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn parameters(&self, location: &str) -> Vec<(String, Value)> {
        self.spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == location)
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    p["schema"].clone(),
                )
            })
            .collect()
    }

    fn secured(&self) -> bool {
        self.spec["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    }

    /// Whether the method changes state, so that the guard asks for the CSRF token.
    fn writes(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// The JSON request body's schema, if the operation takes one.
    fn body_schema(&self) -> Option<Value> {
        let content = self.spec["requestBody"]["content"].as_object()?;
        content
            .iter()
            .find(|(ct, _)| ct.starts_with("application/json"))
            .map(|(_, media)| media["schema"].clone())
    }

    fn first_segment(&self) -> &str {
        self.template
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
    }

    fn changes_a_lot(&self) -> bool {
        self.template == "/auth/logout"
            || self.template == "/users/{id}/forget"
            || (self.method == Method::DELETE && self.template == "/bots/{id}")
    }
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (template, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            found.push(Operation {
                method,
                template: template.clone(),
                spec: op.clone(),
            });
        }
    }
    assert!(!found.is_empty(), "the document lists operations");
    found
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    /// The admin session's cookie and CSRF token.
    Session,
    /// No cookie at all.
    Anonymous,
    /// A cookie that does not decrypt.
    ForgedCookie,
    /// The session's cookie without the CSRF token.
    NoCsrf,
    /// The session's cookie with another CSRF token.
    WrongCsrf,
}

#[derive(Clone, Debug)]
enum Body {
    None,
    Bytes {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
}

impl Body {
    fn json(value: &Value) -> Self {
        Self::raw("application/json", value.to_string().into_bytes())
    }

    fn raw(content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Self::Bytes {
            content_type: Some(content_type.to_owned()),
            bytes: bytes.into(),
        }
    }
}

/// One request to send, its parts already percent-encoded.
#[derive(Clone, Debug)]
struct Request {
    what: String,
    caller: Caller,
    path: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
}

impl Request {
    fn target(&self, op: &Operation) -> String {
        let mut target = op.template.clone();
        for (name, value) in &self.path {
            target = target.replace(&format!("{{{name}}}"), value);
        }
        if !self.query.is_empty() {
            target.push('?');
            let pairs: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            target.push_str(&pairs.join("&"));
        }
        target
    }

    fn with(&self, what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ..self.clone()
        }
    }
}

/// Percent-encodes everything but the unreserved characters.
fn enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Shortens a text for the report.
fn clip(text: &str) -> String {
    const MAX: usize = 400;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let head: String = text.chars().take(MAX).collect();
    format!("{head}… ({} bytes)", text.len())
}

/// Path parameter values that are malformed for any type, already encoded.
fn malformed_path_values() -> Vec<(&'static str, String)> {
    vec![
        ("a NUL", "%00".to_owned()),
        ("a NUL inside", "bots%00".to_owned()),
        ("negative", "-1".to_owned()),
        ("zero", "0".to_owned()),
        ("2^63", "9223372036854775808".to_owned()),
        ("-2^63 - 1", "-9223372036854775809".to_owned()),
        ("past 2^64", "99999999999999999999999".to_owned()),
        ("a fraction", "1.5".to_owned()),
        ("not UTF-8", "%FF%FE".to_owned()),
        ("a space", "%20".to_owned()),
        ("very long", "x".repeat(4096)),
        ("words", enc("not a uuid")),
        ("quotes", enc("' OR '1'='1")),
        ("an encoded slash", "a%2Fb".to_owned()),
        (
            "the nil UUID",
            "00000000-0000-0000-0000-000000000000".to_owned(),
        ),
    ]
}

/// Values for a query parameter of `schema`: what fits its type, then what is hostile to any.
fn query_values(schema: &Value, fixtures: &Fixtures) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = Vec::new();
    let mut add = |what: &str, value: String| values.push((what.to_owned(), value));
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("boolean"), _) => {
            add("true", "true".into());
            add("false", "false".into());
            add("not a boolean", "yes".into());
        }
        (Some("integer"), format) => {
            add("1", "1".into());
            add("a usual value", "50".into());
            add("zero", "0".into());
            add("negative", "-1".into());
            add("large", "100000".into());
            add("2^32", "4294967296".into());
            add("2^63", "9223372036854775808".into());
            add("past 2^64", "99999999999999999999999".into());
            add("a fraction", "1.5".into());
            add("an exponent", "1e3".into());
            add("not a number", "abc".into());
            if format == Some("int64") {
                add("-2^63", "-9223372036854775808".into());
            }
        }
        (Some("number"), _) => {
            add("1.5", "1.5".into());
            add("NaN", "NaN".into());
            add("1e400", "1e400".into());
        }
        (Some("string"), Some("uuid")) => {
            add("an existing bot", fixtures.bot.clone());
            add("an existing chat", fixtures.chat.clone());
            add("an unknown id", uuid::Uuid::now_v7().to_string());
            add("not a UUID", "not-a-uuid".into());
        }
        (Some("string"), Some("date-time")) => {
            for (what, at) in [
                ("now", chrono::Utc::now().to_rfc3339()),
                ("the year 1", "0001-01-01T00:00:00Z".into()),
                ("4713 BC", "-4712-01-01T00:00:00Z".into()),
                ("before 4713 BC", "-4713-12-31T23:59:59Z".into()),
                ("chrono's first year", "-262143-01-01T00:00:00Z".into()),
                ("chrono's last year", "+262142-12-31T23:59:59Z".into()),
                ("past chrono's range", "+999999-01-01T00:00:00Z".into()),
                ("a 13th month", "2025-13-01T00:00:00Z".into()),
                ("no time", "2025-01-01".into()),
                ("a far offset", "2025-01-01T00:00:00+23:59".into()),
                ("a leap second", "2016-12-31T23:59:60Z".into()),
            ] {
                add(what, enc(&at));
            }
        }
        (Some("string"), _) => {
            for (what, text) in [
                ("a name", "Bot"),
                ("a position", "1/1"),
                ("SQL", "'; DROP TABLE events; --"),
                ("unicode", "ünï😀\u{202E}"),
                ("a pattern", "%_%"),
            ] {
                add(what, enc(text));
            }
        }
        _ => add("a string", "x".into()),
    }
    for (what, value) in [
        ("empty", String::new()),
        ("a NUL", "%00".to_owned()),
        ("a NUL inside", "a%00b".to_owned()),
        ("not UTF-8", "%FF".to_owned()),
        ("very long", "9".repeat(8192)),
        ("an array", enc("[]")),
    ] {
        values.push((what.to_owned(), value));
    }
    values
}

/// A value of `schema`'s type that is not what it asks for.
fn wrong_type(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("string") => json!(12345),
        Some("integer") | Some("number") => json!("12"),
        Some("boolean") => json!("true"),
        Some("array") => json!({"a": 1}),
        Some("object") => json!("an object"),
        _ => json!([1, "two", {"three": null}]),
    }
}

/// The subset of JSON Schema poem-openapi emits, over the document's components.
#[derive(Clone, Copy)]
struct Schemas<'a>(&'a Value);

/// The keywords [`Schemas::check`] understands (or may ignore: annotations).
const KNOWN_KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "format",
    "title",
    "description",
    "required",
    "properties",
    "items",
    "enum",
    "allOf",
    "oneOf",
    "anyOf",
    "nullable",
    "readOnly",
    "writeOnly",
    "deprecated",
    "default",
    "example",
    "additionalProperties",
    "maxLength",
    "minLength",
    "maximum",
    "minimum",
    "maxItems",
    "minItems",
];

impl<'a> Schemas<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                let target = &self.0["components"]["schemas"][name];
                assert!(!target.is_null(), "an unresolved $ref {reference}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Keywords anywhere in the document's schemas that the validator would not enforce.
    fn unknown_keywords(&self) -> Vec<String> {
        fn walk(schema: &Value, at: &str, found: &mut Vec<String>) {
            let Some(fields) = schema.as_object() else {
                return;
            };
            for (key, value) in fields {
                if !KNOWN_KEYWORDS.contains(&key.as_str()) {
                    found.push(format!("{at} uses `{key}`, which it does not check"));
                }
                match key.as_str() {
                    "properties" => {
                        for (name, property) in value.as_object().into_iter().flatten() {
                            walk(property, &format!("{at}.{name}"), found);
                        }
                    }
                    "items" | "additionalProperties" => walk(value, &format!("{at}[]"), found),
                    "allOf" | "oneOf" | "anyOf" => {
                        for item in value.as_array().into_iter().flatten() {
                            walk(item, at, found);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(ty) = schema["type"].as_str() {
                if !["object", "array", "string", "integer", "number", "boolean"].contains(&ty) {
                    found.push(format!("{at} has type `{ty}`, which it does not check"));
                }
            }
        }
        let mut found = Vec::new();
        for (name, schema) in self.0["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            walk(schema, name, &mut found);
        }
        for (path, item) in self.0["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    for (ct, media) in response["content"].as_object().into_iter().flatten() {
                        walk(
                            &media["schema"],
                            &format!("{method} {path} {status} {ct}"),
                            &mut found,
                        );
                    }
                }
            }
        }
        found
    }

    /// Every way `value` (at `at`) departs from `schema`.
    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if schema["nullable"] == true && value.is_null() {
            return;
        }
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &self.0["components"]["schemas"][name];
            if target.is_null() {
                errors.push(format!(
                    "{at}: the schema refers to {reference}, which is not there"
                ));
            } else {
                self.check(target, value, at, errors);
            }
        }
        for item in schema["allOf"].as_array().into_iter().flatten() {
            self.check(item, value, at, errors);
        }
        for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(choices) = schema[keyword].as_array() {
                let fitting = choices
                    .iter()
                    .filter(|choice| {
                        let mut inner = Vec::new();
                        self.check(choice, value, at, &mut inner);
                        inner.is_empty()
                    })
                    .count();
                if fitting == 0 || (exactly_one && fitting > 1) {
                    errors.push(format!(
                        "{at}: {fitting} of the {keyword} schemas fit {}",
                        clip(&value.to_string())
                    ));
                }
            }
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let Some(ty) = schema["type"].as_str() else {
            return;
        };
        if value.is_null() {
            errors.push(format!(
                "{at}: null, but the schema says {ty} and not nullable"
            ));
            return;
        }
        match ty {
            "object" => self.check_object(schema, value, at, errors),
            "array" => {
                let Some(items) = value.as_array() else {
                    errors.push(format!(
                        "{at}: expected an array, got {}",
                        clip(&value.to_string())
                    ));
                    return;
                };
                if let Some(max) = schema["maxItems"].as_u64() {
                    if items.len() as u64 > max {
                        errors.push(format!("{at}: more than {max} items"));
                    }
                }
                if let Some(min) = schema["minItems"].as_u64() {
                    if (items.len() as u64) < min {
                        errors.push(format!("{at}: fewer than {min} items"));
                    }
                }
                for (n, item) in items.iter().enumerate() {
                    self.check(&schema["items"], item, &format!("{at}[{n}]"), errors);
                }
            }
            "string" => {
                let Some(text) = value.as_str() else {
                    errors.push(format!(
                        "{at}: expected a string, got {}",
                        clip(&value.to_string())
                    ));
                    return;
                };
                let length = text.chars().count() as u64;
                if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
                    errors.push(format!("{at}: longer than maxLength"));
                }
                if schema["minLength"].as_u64().is_some_and(|min| length < min) {
                    errors.push(format!("{at}: shorter than minLength"));
                }
                let well_formed = match schema["format"].as_str() {
                    Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                    Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
                    _ => true,
                };
                if !well_formed {
                    errors.push(format!(
                        "{at}: {text:?} is not a {}",
                        schema["format"].as_str().unwrap_or_default()
                    ));
                }
            }
            "integer" => {
                let fits = match schema["format"].as_str() {
                    Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    Some("uint32") => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
                    Some("uint64") => value.as_u64().is_some(),
                    Some("int64") => value.as_i64().is_some(),
                    _ => value.is_i64() || value.is_u64(),
                };
                if !fits {
                    errors.push(format!(
                        "{at}: {value} is not an integer of format {}",
                        schema["format"]
                    ));
                }
                self.check_range(schema, value, at, errors);
            }
            "number" => {
                if !value.is_number() {
                    errors.push(format!("{at}: {value} is not a number"));
                }
                self.check_range(schema, value, at, errors);
            }
            "boolean" => {
                if !value.is_boolean() {
                    errors.push(format!("{at}: {value} is not a boolean"));
                }
            }
            other => errors.push(format!("{at}: the validator does not know type {other}")),
        }
    }

    fn check_range(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(n) = value.as_f64() else { return };
        if schema["maximum"].as_f64().is_some_and(|max| n > max) {
            errors.push(format!("{at}: {value} is above the maximum"));
        }
        if schema["minimum"].as_f64().is_some_and(|min| n < min) {
            errors.push(format!("{at}: {value} is below the minimum"));
        }
    }

    fn check_object(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(fields) = value.as_object() else {
            errors.push(format!(
                "{at}: expected an object, got {}",
                clip(&value.to_string())
            ));
            return;
        };
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                errors.push(format!("{at}: the required field `{name}` is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in fields {
            let field_at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => self.check(property, field, &field_at, errors),
                None => match &schema["additionalProperties"] {
                    Value::Bool(false) => {
                        errors.push(format!("{field_at}: not allowed (additionalProperties)"))
                    }
                    Value::Object(_) => {
                        self.check(&schema["additionalProperties"], field, &field_at, errors)
                    }
                    // Not against JSON Schema, but the document should describe it.
                    _ if properties.is_some() => errors.push(format!(
                        "{field_at}: a field the document does not describe"
                    )),
                    _ => {}
                },
            }
        }
    }

    /// A valid value of `schema`, for a field called `name`.
    fn sample(&self, schema: &Value, name: &str, pass: &mut Samples) -> Value {
        let schema = self.resolve(schema);
        if let Some(first) = schema["allOf"].as_array().and_then(|items| items.first()) {
            return self.sample(first, name, pass);
        }
        if let Some(first) = schema["enum"].as_array().and_then(|items| items.first()) {
            return first.clone();
        }
        match schema["type"].as_str() {
            Some("object") => {
                let mut object = Map::new();
                for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                    object.insert(field.clone(), self.sample(property, field, pass));
                }
                Value::Object(object)
            }
            Some("array") => json!([self.sample(&schema["items"], name, pass)]),
            Some("integer") => json!(1),
            Some("number") => json!(1.5),
            Some("boolean") => json!(true),
            Some("string") => match (schema["format"].as_str(), name) {
                (Some("uuid"), _) => json!(uuid::Uuid::now_v7()),
                (Some("date-time"), _) => json!(chrono::Utc::now().to_rfc3339()),
                (_, "token") => {
                    pass.tokens += 1;
                    json!(token(pass.tokens))
                }
                (_, "email") => json!(ADMIN_EMAIL),
                (_, "password") => json!(ADMIN_PASSWORD),
                (_, "model") => json!("gpt-5-mini"),
                (_, "event") => json!("1/1"),
                (_, "text") => json!("a message from the conformance pass"),
                _ => json!(format!("conformance {name}")),
            },
            _ => json!({}),
        }
    }
}

/// What samples need to be valid more than once.
struct Samples {
    tokens: u32,
}

/// What the pass found.
#[derive(Default)]
struct Report {
    requests: usize,
    problems: Vec<String>,
    /// Per operation, how many answers of each status.
    seen: BTreeMap<String, BTreeMap<u16, usize>>,
}

/// The clients the requests go out with.
struct Clients {
    session: reqwest::Client,
    /// The session `POST /auth/logout` ends.
    logout_session: reqwest::Client,
    /// No cookie, no CSRF token.
    plain: reqwest::Client,
}

struct Pass<'a> {
    app: &'a TestApp,
    schemas: Schemas<'a>,
    fixtures: Fixtures,
    clients: Clients,
    rng: StdRng,
    report: Report,
    /// Cursors the answers gave out, by the query parameter that takes them back.
    harvest: BTreeMap<String, Vec<String>>,
    next_token: u32,
    next_update: i64,
}

impl Pass<'_> {
    async fn run_operation(&mut self, op: &Operation) {
        let base = self.base_request(op);
        let mut first = vec![base.with("valid")];
        if op
            .parameters("query")
            .iter()
            .any(|(name, _)| name == "limit")
        {
            let mut request = base.with("limit 1 (for a cursor)");
            request.query.push(("limit".into(), "1".into()));
            first.push(request);
        }
        for request in first {
            self.send(op, &request).await;
        }
        for request in self.requests(op, &base) {
            self.send(op, &request).await;
        }
    }

    /// The valid request: the session, path parameters that exist, required headers, a valid
    /// body.
    fn base_request(&mut self, op: &Operation) -> Request {
        let mut path = BTreeMap::new();
        for (name, schema) in op.parameters("path") {
            path.insert(name.clone(), self.existing(op, &name, &schema));
        }
        let headers = op
            .parameters("header")
            .into_iter()
            .filter_map(|(name, _)| self.valid_header(op, &path, &name).map(|v| (name, v)))
            .collect();
        let body = match op.body_schema() {
            Some(schema) => Body::json(&self.valid_body(op, &schema)),
            None => Body::None,
        };
        Request {
            what: String::new(),
            caller: if op.secured() {
                Caller::Session
            } else {
                Caller::Anonymous
            },
            path,
            query: Vec::new(),
            headers,
            body,
        }
    }

    /// A path parameter value naming something that exists.
    fn existing(&self, op: &Operation, name: &str, schema: &Value) -> String {
        let f = &self.fixtures;
        match op.first_segment() {
            "bots" if op.method == Method::DELETE || op.template.ends_with("/disable") => {
                f.spare_bot.clone()
            }
            "bots" | "telegram" => f.bot.clone(),
            "chats" => f.chat.clone(),
            "failures" => f.failed_turn.clone(),
            "users" => f.forgettable_person.to_string(),
            "projections" => projections::bots::NAME.to_owned(),
            "lockouts" => f.lockout.clone(),
            "admins" => f.other_admin.clone(),
            _ => self.nonexistent(name, schema),
        }
    }

    fn nonexistent(&self, _name: &str, schema: &Value) -> String {
        match (schema["type"].as_str(), schema["format"].as_str()) {
            (_, Some("uuid")) => uuid::Uuid::now_v7().to_string(),
            (Some("integer"), _) => "987654321".to_owned(),
            _ => "no_such_thing".to_owned(),
        }
    }

    fn valid_header(
        &self,
        op: &Operation,
        path: &BTreeMap<String, String>,
        name: &str,
    ) -> Option<Vec<u8>> {
        if name.eq_ignore_ascii_case("X-Telegram-Bot-Api-Secret-Token") {
            let bot = path.get("bot_id")?;
            return Some(self.app.webhook_secret(bot).into_bytes());
        }
        let _ = op;
        None
    }

    fn valid_body(&mut self, op: &Operation, schema: &Value) -> Value {
        if op.first_segment() == "telegram" {
            // The schema is any JSON: an update as Telegram sends it.
            self.next_update += 1;
            return text_update(self.next_update, 42, "a message from the conformance pass");
        }
        let mut samples = Samples {
            tokens: self.next_token,
        };
        let mut body = self.schemas.sample(schema, "", &mut samples);
        self.next_token = samples.tokens;
        if op.id() == "POST /admins" {
            // A new admin needs an email no admin has.
            body["email"] = json!(format!("admin{}@example.com", self.next_token));
            self.next_token += 1;
        }
        body
    }

    /// Every request for `op` but the valid ones.
    fn requests(&mut self, op: &Operation, base: &Request) -> Vec<Request> {
        let mut requests = Vec::new();
        if op.secured() {
            let mut r = base.with("no session");
            r.caller = Caller::Anonymous;
            requests.push(r);
            let mut r = base.with("a forged session cookie");
            r.caller = Caller::ForgedCookie;
            requests.push(r);
            if op.writes() {
                let mut r = base.with("no CSRF token");
                r.caller = Caller::NoCsrf;
                requests.push(r);
                let mut r = base.with("a wrong CSRF token");
                r.caller = Caller::WrongCsrf;
                requests.push(r);
            }
        }
        for (name, schema) in op.parameters("path") {
            let mut r = base.with(format!("path {name}: nothing has it"));
            r.path
                .insert(name.clone(), self.nonexistent(&name, &schema));
            requests.push(r);
            if schema["format"] == "uuid" {
                let mut r = base.with(format!("path {name}: upper case"));
                let upper = base.path[&name].to_ascii_uppercase();
                r.path.insert(name.clone(), upper);
                requests.push(r);
            }
            for (what, value) in malformed_path_values() {
                let mut r = base.with(format!("path {name}: {what}"));
                r.path.insert(name.clone(), value);
                requests.push(r);
            }
        }
        let query = op.parameters("query");
        for (name, schema) in &query {
            let mut values = query_values(schema, &self.fixtures);
            let harvested_from = match name.as_str() {
                "cursor" => Some("next_cursor"),
                "after" => Some("next_after"),
                "before" => Some("next_before"),
                _ => None,
            };
            if let Some(key) = harvested_from {
                for cursor in self.harvest.get(key).into_iter().flatten() {
                    values.push((format!("a {key} given out"), enc(cursor)));
                }
            }
            for (what, value) in values {
                let mut r = base.with(format!("query {name}: {what}"));
                r.query.push((name.clone(), value));
                requests.push(r);
            }
        }
        if query.len() > 1 {
            let mut r = base.with("every query parameter, valid");
            for (name, schema) in &query {
                let values = query_values(schema, &self.fixtures);
                r.query.push((name.clone(), values[0].1.clone()));
            }
            requests.push(r);
        }
        if let Some(first) = query.first() {
            let mut r = base.with(format!("query {}: twice", first.0));
            let values = query_values(&first.1, &self.fixtures);
            r.query.push((first.0.clone(), values[0].1.clone()));
            r.query.push((first.0.clone(), values[1].1.clone()));
            requests.push(r);
        }
        for (what, value) in [("", "1"), (" with a NUL", "a%00b"), (" not UTF-8", "%FF")] {
            let mut r = base.with(format!("an unknown query parameter{what}"));
            r.query.push(("unknown".into(), value.into()));
            requests.push(r);
        }
        for (name, _) in op.parameters("header") {
            let mut r = base.with(format!("header {name}: absent"));
            r.headers.retain(|(n, _)| n != &name);
            requests.push(r);
            for (what, value) in [
                ("wrong", b"wrong".to_vec()),
                ("very long", vec![b'x'; 8192]),
                ("not UTF-8", vec![0xff, 0xfe, b'a']),
                ("empty", Vec::new()),
            ] {
                let mut r = base.with(format!("header {name}: {what}"));
                r.headers.retain(|(n, _)| n != &name);
                r.headers.push((name.clone(), value));
                requests.push(r);
            }
        }
        match op.body_schema() {
            Some(schema) => requests.extend(self.body_requests(op, base, &schema)),
            None if op.writes() => {
                requests.push(
                    base.with("a stray JSON body")
                        .tap_body(Body::json(&json!({"x": 1}))),
                );
                requests.push(
                    base.with("a stray text body")
                        .tap_body(Body::raw("text/plain", "hi")),
                );
            }
            None => {}
        }
        requests.extend(self.random_requests(op, base));
        requests
    }

    fn body_requests(&mut self, op: &Operation, base: &Request, schema: &Value) -> Vec<Request> {
        let mut requests = Vec::new();
        let valid = self.valid_body(op, schema);
        let schema = self.schemas.resolve(schema);
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let body = |value: &Value| Body::json(value);
        if let (Some(fields), Some(properties)) =
            (valid.as_object(), schema["properties"].as_object())
        {
            for (name, property) in properties {
                let property = self.schemas.resolve(property);
                let mut variants: Vec<(String, Option<Value>)> = vec![
                    ("null".into(), Some(Value::Null)),
                    ("the wrong type".into(), Some(wrong_type(property))),
                ];
                if required.contains(name.as_str()) {
                    variants.push(("missing".into(), None));
                }
                match property["type"].as_str() {
                    Some("string") if property["format"].is_null() => {
                        variants.push(("a NUL".into(), Some(json!("a\u{0}b"))));
                        variants.push(("very long".into(), Some(json!("x".repeat(100_000)))));
                        variants.push(("empty".into(), Some(json!(""))));
                        variants.push(("blank".into(), Some(json!(" \t\n"))));
                        variants.push(("unicode".into(), Some(json!("ünï😀\u{202E}\u{FEFF}"))));
                    }
                    Some("string") => {
                        variants.push(("malformed".into(), Some(json!("not-a-value"))));
                    }
                    Some("integer") => {
                        variants.push(("2^63".into(), Some(json!(9_223_372_036_854_775_808_u64))));
                        variants.push(("negative".into(), Some(json!(-1))));
                        variants.push(("a fraction".into(), Some(json!(1.5))));
                    }
                    _ => {}
                }
                for (what, value) in variants {
                    let mut changed = fields.clone();
                    match value {
                        Some(value) => changed.insert(name.clone(), value),
                        None => changed.remove(name),
                    };
                    let mut r = base.with(format!("body field {name}: {what}"));
                    r.body = body(&Value::Object(changed));
                    requests.push(r);
                }
            }
            let mut with_unknown = fields.clone();
            with_unknown.insert("unexpected".into(), json!(1));
            requests.push(
                base.with("body: an unknown field")
                    .tap_body(body(&Value::Object(with_unknown))),
            );
            let mut with_nul_key = fields.clone();
            with_nul_key.insert("a\u{0}key".into(), json!(1));
            requests.push(
                base.with("body: a NUL in a key")
                    .tap_body(body(&Value::Object(with_nul_key))),
            );
            let required_only: Map<String, Value> = fields
                .iter()
                .filter(|(k, _)| required.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            requests.push(
                base.with("body: only the required fields")
                    .tap_body(body(&Value::Object(required_only))),
            );
            let text = Value::Object(fields.clone()).to_string();
            if let Some(first) = fields.keys().next() {
                let duplicated = format!("{{\"{first}\":null,{}", &text[1..]);
                requests.push(
                    base.with("body: a field twice")
                        .tap_body(Body::raw("application/json", duplicated)),
                );
            }
        }
        if op.first_segment() == "telegram" {
            requests.extend(self.update_requests(base));
        }
        let valid_text = valid.to_string();
        let too_large = format!("{{\"x\":\"{}\"}}", "x".repeat(1_100_000));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let mut not_utf8 = br#"{"name":""#.to_vec();
        not_utf8.extend([0xff, 0xfe, 0xfd]);
        not_utf8.extend(br#""}"#);
        for (what, body) in [
            ("{}", Body::json(&json!({}))),
            ("null", Body::raw("application/json", "null")),
            ("an array", Body::raw("application/json", "[]")),
            ("a string", Body::raw("application/json", "\"text\"")),
            ("a number", Body::raw("application/json", "12")),
            ("empty", Body::raw("application/json", "")),
            ("not JSON", Body::raw("application/json", "{not json")),
            (
                "cut short",
                Body::raw("application/json", &valid_text[..valid_text.len() / 2]),
            ),
            (
                "trailing garbage",
                Body::raw("application/json", format!("{valid_text} trailing")),
            ),
            (
                "nested past serde's limit",
                Body::raw("application/json", deep),
            ),
            ("not UTF-8", Body::raw("application/json", not_utf8)),
            (
                "past the size limit",
                Body::raw("application/json", too_large),
            ),
            ("no body", Body::None),
            ("text/plain", Body::raw("text/plain", valid_text.clone())),
            (
                "a form",
                Body::raw("application/x-www-form-urlencoded", "a=b"),
            ),
            (
                "multipart",
                Body::raw("multipart/form-data; boundary=x", "--x--"),
            ),
            (
                "application/json; charset=utf-8",
                Body::raw("application/json; charset=utf-8", valid_text.clone()),
            ),
            (
                "a +json type",
                Body::raw("application/vnd.botfleet+json", valid_text.clone()),
            ),
            (
                "a malformed content type",
                Body::raw(";;;", valid_text.clone()),
            ),
            (
                "no content type",
                Body::Bytes {
                    content_type: None,
                    bytes: valid_text.clone().into_bytes(),
                },
            ),
        ] {
            requests.push(base.with(format!("body: {what}")).tap_body(body));
        }
        requests
    }

    /// Updates Telegram would never send, for the webhook.
    fn update_requests(&mut self, base: &Request) -> Vec<Request> {
        self.next_update += 1;
        let n = self.next_update;
        let update = text_update(n, 42, "hi");
        let mut variants: Vec<(&str, Value)> = Vec::new();
        let mut with = |what: &'static str, pointer: &str, value: Value| {
            let mut changed = update.clone();
            if let Some(slot) = changed.pointer_mut(pointer) {
                *slot = value;
            }
            variants.push((what, changed));
        };
        with(
            "update_id 2^63",
            "/update_id",
            json!(9_223_372_036_854_775_808_u64),
        );
        with("update_id negative", "/update_id", json!(-5));
        with("update_id a string", "/update_id", json!("1"));
        with("update_id a fraction", "/update_id", json!(1.5));
        with(
            "chat id 2^63",
            "/message/chat/id",
            json!(9_223_372_036_854_775_808_u64),
        );
        with("chat id -2^63", "/message/chat/id", json!(i64::MIN));
        with(
            "user id 2^63",
            "/message/from/id",
            json!(9_223_372_036_854_775_808_u64),
        );
        with("no chat", "/message/chat", Value::Null);
        with("date negative", "/message/date", json!(-1));
        with("date 2^62", "/message/date", json!(1_i64 << 62));
        with("text with a NUL", "/message/text", json!("a\u{0}b"));
        with(
            "text very long",
            "/message/text",
            json!("x".repeat(200_000)),
        );
        with("text an object", "/message/text", json!({"a": 1}));
        with("a message that is an array", "/message", json!([]));
        let mut requests: Vec<Request> = variants
            .into_iter()
            .map(|(what, update)| {
                base.with(format!("update: {what}"))
                    .tap_body(Body::json(&update))
            })
            .collect();
        requests.push(base.with("update: an unknown kind").tap_body(Body::json(
            &json!({"update_id": n + 1, "something_new": {"x": 1}}),
        )));
        requests.push(
            base.with("update: only an id")
                .tap_body(Body::json(&json!({"update_id": n + 2}))),
        );
        self.next_update += 2;
        requests
    }

    /// A seeded random mix of the values above.
    fn random_requests(&mut self, op: &Operation, base: &Request) -> Vec<Request> {
        let mut requests = Vec::new();
        let path = op.parameters("path");
        let query = op.parameters("query");
        for round in 0..RANDOM_PER_OPERATION {
            let mut r = base.with(format!("random #{round}"));
            for (name, schema) in &path {
                match self.rng.gen_range(0..4) {
                    0 => {
                        r.path.insert(name.clone(), self.nonexistent(name, schema));
                    }
                    1 => {
                        let values = malformed_path_values();
                        let (_, value) = values.choose(&mut self.rng).expect("values");
                        r.path.insert(name.clone(), value.clone());
                    }
                    _ => {}
                }
            }
            for (name, schema) in &query {
                if self.rng.gen_bool(0.5) {
                    let values = query_values(schema, &self.fixtures);
                    let (_, value) = values.choose(&mut self.rng).expect("values");
                    r.query.push((name.clone(), value.clone()));
                }
            }
            if let Body::Bytes { bytes, .. } = &base.body {
                if let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(bytes) {
                    let keys: Vec<String> = fields.keys().cloned().collect();
                    if let Some(key) = keys.choose(&mut self.rng) {
                        fields.insert(key.clone(), random_json(&mut self.rng, 3));
                    }
                    r.body = Body::json(&Value::Object(fields));
                }
            }
            requests.push(r);
        }
        requests
    }

    async fn send(&mut self, op: &Operation, request: &Request) {
        let target = request.target(op);
        let url = self.app.url(&target);
        let client = match request.caller {
            Caller::Session if op.template == "/auth/logout" => &self.clients.logout_session,
            Caller::Session => &self.clients.session,
            Caller::Anonymous | Caller::ForgedCookie | Caller::NoCsrf | Caller::WrongCsrf => {
                &self.clients.plain
            }
        };
        let mut builder = client
            .request(op.method.clone(), &url)
            .timeout(REQUEST_TIMEOUT);
        match request.caller {
            Caller::ForgedCookie => {
                builder = builder.header(COOKIE, "botfleet_session=bm90IGEgc2Vzc2lvbg");
            }
            Caller::NoCsrf => {
                builder = builder.header(COOKIE, self.fixtures.session.cookie.clone());
            }
            Caller::WrongCsrf => {
                builder = builder
                    .header(COOKIE, self.fixtures.session.cookie.clone())
                    .header("X-CSRF-Token", "not-the-token");
            }
            Caller::Session | Caller::Anonymous => {}
        }
        for (name, value) in &request.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) else {
                continue;
            };
            builder = builder.header(name, value);
        }
        if let Body::Bytes {
            content_type,
            bytes,
        } = &request.body
        {
            if let Some(content_type) = content_type {
                builder = builder.header(CONTENT_TYPE, content_type.as_str());
            }
            builder = builder.body(bytes.clone());
        }
        self.report.requests += 1;
        let sent = describe(op, request, &target);
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => {
                self.report
                    .problems
                    .push(format!("{sent}\n  no answer: {e}"));
                return;
            }
        };
        let status = response.status().as_u16();
        *self
            .report
            .seen
            .entry(op.id())
            .or_default()
            .entry(status)
            .or_default() += 1;
        let headers = response.headers().clone();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut wrong = Vec::new();
        let declared = &op.spec["responses"][status.to_string()];
        let documented_unavailable = status == 503 && !declared.is_null();
        if status >= 500 && !documented_unavailable {
            wrong.push(format!("a server error ({status})"));
        }
        if declared.is_null() && op.spec["responses"]["default"].is_null() {
            let listed: Vec<&String> = op.spec["responses"]
                .as_object()
                .map(|r| r.keys().collect())
                .unwrap_or_default();
            wrong.push(format!(
                "status {status} is not one the operation lists ({listed:?})"
            ));
        } else {
            let declared = if declared.is_null() {
                &op.spec["responses"]["default"]
            } else {
                declared
            };
            self.check_answer(declared, &headers, &content_type, &bytes, &mut wrong);
        }
        if (200..300).contains(&status) && content_type.starts_with("application/json") {
            if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&bytes) {
                for key in ["next_cursor", "next_after", "next_before"] {
                    if let Some(cursor) = fields.get(key).and_then(Value::as_str) {
                        let known = self.harvest.entry(key.to_owned()).or_default();
                        if !known.iter().any(|c| c == cursor) && known.len() < 3 {
                            known.push(cursor.to_owned());
                        }
                    }
                }
            }
        }
        if !wrong.is_empty() {
            self.report.problems.push(format!(
                "{sent}\n  answer: {status} {}\n  wrong: {}",
                clip(&text),
                wrong.join("; ")
            ));
        }
    }

    /// Checks an answer against its declared response: content type, schema, headers.
    fn check_answer(
        &self,
        declared: &Value,
        headers: &reqwest::header::HeaderMap,
        content_type: &str,
        bytes: &[u8],
        wrong: &mut Vec<String>,
    ) {
        for (name, header) in declared["headers"].as_object().into_iter().flatten() {
            if header["required"] == true
                && !headers.contains_key(name.to_ascii_lowercase().as_str())
            {
                wrong.push(format!("the required header {name} is missing"));
            }
        }
        let Some(content) = declared["content"].as_object() else {
            if !bytes.is_empty() {
                wrong.push("a body where the document declares none".into());
            }
            return;
        };
        let essence = |ct: &str| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        };
        let Some((_, media)) = content
            .iter()
            .find(|(ct, _)| essence(ct) == essence(content_type))
        else {
            wrong.push(format!(
                "content type {content_type:?}, but the document declares {:?}",
                content.keys().collect::<Vec<_>>()
            ));
            return;
        };
        if essence(content_type) != "application/json" {
            return;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => self.schemas.check(&media["schema"], &value, "body", wrong),
            Err(e) => wrong.push(format!("the body is not JSON: {e}")),
        }
    }
}

trait TapBody {
    fn tap_body(self, body: Body) -> Self;
}

impl TapBody for Request {
    fn tap_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

/// A random JSON value, `depth` levels deep at most.
fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    let strings = [
        String::new(),
        "\u{0}".to_owned(),
        "x".repeat(5000),
        "ünï😀\u{202E}".to_owned(),
        "12345".to_owned(),
        "2025-01-01T00:00:00Z".to_owned(),
        uuid::Uuid::now_v7().to_string(),
        "123:abc".to_owned(),
    ];
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(*[i64::MIN, -1, 0, 1, i64::MAX].choose(rng).expect("ints")),
        3 => json!(rng.gen::<f64>() * 1e300),
        4 => json!(strings.choose(rng).expect("strings")),
        5 => Value::Array(
            (0..rng.gen_range(0..3))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut object = Map::new();
            for n in 0..rng.gen_range(0..3) {
                object.insert(format!("k{n}"), random_json(rng, depth - 1));
            }
            Value::Object(object)
        }
    }
}

/// The request, for the report.
fn describe(op: &Operation, request: &Request, target: &str) -> String {
    let mut out = format!(
        "{} [{}] as {:?}: {} {}",
        op.id(),
        request.what,
        request.caller,
        op.method,
        clip(target)
    );
    for (name, value) in &request.headers {
        let _ = write!(
            out,
            "\n  header {name}: {}",
            clip(&String::from_utf8_lossy(value))
        );
    }
    if let Body::Bytes {
        content_type,
        bytes,
    } = &request.body
    {
        let _ = write!(
            out,
            "\n  body ({}): {}",
            content_type.as_deref().unwrap_or("no content type"),
            clip(&String::from_utf8_lossy(bytes))
        );
    }
    out
}

/// The validator itself: if it let through what a schema does not allow, the pass above would
/// prove nothing.
#[test]
fn the_validator_refuses_what_a_schema_does_not_allow() {
    let spec = json!({"components": {"schemas": {
        "Thing": {
            "type": "object",
            "required": ["id", "at"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "at": {"type": "string", "format": "date-time"},
                "n": {"type": "integer", "format": "int32"},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "maybe": {"type": "string", "nullable": true},
                "tags": {"type": "array", "items": {"type": "string"}},
                "inner": {"allOf": [{"$ref": "#/components/schemas/Inner"}, {"description": "x"}]},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "any": {}
            }
        },
        "Inner": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    }}});
    let schemas = Schemas(&spec);
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    let errors = |value: &Value| {
        let mut found = Vec::new();
        schemas.check(&thing, value, "body", &mut found);
        found
    };
    let good = json!({
        "id": uuid::Uuid::now_v7(), "at": "2025-01-01T00:00:00Z", "n": 5, "kind": "a",
        "maybe": null, "tags": ["x"], "inner": {"ok": true}, "either": 3, "any": [1, {"x": null}]
    });
    assert!(errors(&good).is_empty(), "{:?}", errors(&good));
    for (key, bad, expected) in [
        ("id", json!("not-a-uuid"), "is not a uuid"),
        ("at", json!("yesterday"), "is not a date-time"),
        ("n", json!(1_i64 << 40), "is not an integer of format"),
        ("n", Value::Null, "null, but the schema says integer"),
        ("kind", json!("c"), "is not one of"),
        ("tags", json!([1]), "expected a string"),
        ("inner", json!({"ok": "yes"}), "is not a boolean"),
        ("inner", json!({}), "`ok` is missing"),
        ("either", json!(true), "0 of the oneOf schemas fit"),
        ("extra", json!(1), "a field the document does not describe"),
    ] {
        let mut value = good.clone();
        value[key] = bad;
        let found = errors(&value);
        assert!(
            found.iter().any(|e| e.contains(expected)),
            "{key}: {found:?}"
        );
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("id");
    assert!(errors(&missing)
        .iter()
        .any(|e| e.contains("`id` is missing")));
}
