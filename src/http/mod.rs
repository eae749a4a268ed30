//! The HTTP API: the admin endpoints (poem-openapi), the OpenAPI document and its viewer.
//!
//! Admin operations take a [`guard::AdminSession`] (see there); `/auth/login`, the first
//! admin's set-up (`/setup`, `/auth/setup`: its token is the credential), the Telegram
//! webhook, `/health*`, `/metrics`, `/docs` and `/openapi.yaml` are open. [`routes`] wraps
//! everything, and the pages served beside the API (the admin console, wired by `app`), in
//! the request log (request id, metrics), the body size and per-address limits, and the
//! cookie jar.
//!
//! Each API's work is also a plain method (`BotsApi::register`, `ChatsApi::page`…) that the
//! operation wraps, so the admin console does exactly what the API does, in process.
//!
//! Every answer's `Object` is `#[oai(skip_serializing_if_is_none)]`: an optional field with
//! no value is left out, never `null`. poem-openapi documents an `Option` field as merely not
//! required, so leaving it out is what the document already says; marking the fields
//! `nullable` instead would need a patch on each (and on a `$ref` field, such as
//! `BotView.last_error`, an `allOf` wrapper whose `nullable` OpenAPI 3.0 tools read
//! differently), and it would be a second convention next to the absent `next_cursor` and
//! `field` clients already handle. A new answer type takes the same attribute; the
//! schema-conformance test (tests/integration/schema_conformance.rs) finds a `null` the
//! document does not allow.

pub mod admins;
pub mod allowances;
pub mod auth;
pub mod bots;
pub mod chats;
pub mod consistency;
pub mod errors;
pub mod events;
pub mod failures;
pub mod guard;
pub mod health;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod observe;
pub mod paging;
pub mod projections;
pub mod session_cookie;
pub mod setup;
pub mod strict_json;
pub mod usage;
pub mod users;
pub mod webhook;
pub mod wired;

pub use wired::Wired;

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::Bot;
use aggregates::chat::Chat;
use poem::endpoint::make_sync;
use poem::middleware::CookieJarManager;
use poem::web::cookie::CookieKey;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route};
use poem_openapi::{OpenApiService, Tags};
use sqlx::PgPool;

use crate::event_store::CommandGateway;
use crate::secrets::TokenCipher;
use crate::subscriptions::SubscriptionProgress;

/// What the router is built from: every API takes its own part of it. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub chats: Arc<CommandGateway<Chat>>,
    pub intake: crate::intake::Intake,
    pub cipher: Arc<TokenCipher>,
    /// Seals and opens people's names and texts; forgets people.
    pub vault: Arc<crate::personal_data::PersonalDataVault>,
    /// Lets a write wait until the read model it answers from includes it.
    pub progress: SubscriptionProgress,
    pub read_model_wait: Duration,
    /// Admin accounts, sessions and the login throttle.
    pub auth: crate::auth::Auth,
    /// Encrypts the session cookie (derived from COOKIE_SECRET).
    pub cookie_key: CookieKey,
    /// Whether the session cookie is marked Secure (PUBLIC_URL is https).
    pub secure_cookies: bool,
    /// The rate and size limits.
    pub limits: Arc<limits::Limits>,
    /// When /health/queue reports trouble.
    pub health: crate::health::HealthThresholds,
    /// The time budgets are judged by (the effect runner's and `/usage`'s); tests move it.
    pub clock: crate::runtime::clock::Clock,
    /// The bots' rows as this process's effect runner last read them: a change made here is
    /// dropped from it, so the next turn sees it at once.
    pub bot_rows: Arc<crate::turns::bot_rows::BotCache>,
    /// The models answers can be priced for (the built-in table and `PRICING_FILE`).
    pub prices: Arc<crate::llm::pricing::PriceTable>,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Admin login and sessions
    Auth,
    /// Registering and administering bots
    Bots,
    /// Called by Telegram
    Telegram,
    /// Chats, their messages, and the Telegram users in them
    Chats,
    /// Turns that failed for good, and manual retries
    Failures,
    /// What each bot did and cost, per day
    Usage,
    /// The event log, for auditors
    Audit,
    /// Health checks and metrics, for operators and their tools (no authentication)
    Operations,
}

pub type ApiService = OpenApiService<
    (
        auth::AuthApi,
        bots::BotsApi,
        allowances::AllowancesApi,
        chats::ChatsApi,
        users::UsersApi,
        events::EventsApi,
        failures::FailuresApi,
        webhook::WebhookApi,
        health::HealthApi,
        metrics::MetricsApi,
        projections::ProjectionsApi,
        setup::SetupApi,
        usage::UsageApi,
        admins::AdminsApi,
        media::MediaApi,
    ),
    (),
>;

impl auth::AuthDeps {
    pub fn of(s: &AppState) -> Self {
        Self {
            auth: s.auth.clone(),
            secure_cookies: s.secure_cookies,
        }
    }
}

impl bots::BotsDeps {
    pub fn of(s: &AppState) -> Self {
        Self {
            pool: s.pool.clone(),
            bots: s.bots.clone(),
            read_your_writes: consistency::ReadYourWrites::of(s),
            bot_rows: s.bot_rows.clone(),
            prices: s.prices.clone(),
        }
    }
}

impl chats::ChatsDeps {
    pub fn of(s: &AppState) -> Self {
        Self {
            pool: s.pool.clone(),
            chats: s.chats.clone(),
            vault: s.vault.clone(),
            read_your_writes: consistency::ReadYourWrites::of(s),
        }
    }
}

impl allowances::AllowancesDeps {
    pub fn of(s: &AppState) -> Self {
        Self {
            pool: s.pool.clone(),
            bots: s.bots.clone(),
            vault: s.vault.clone(),
            read_your_writes: consistency::ReadYourWrites::of(s),
            clock: s.clock.clone(),
            bot_rows: s.bot_rows.clone(),
        }
    }
}

impl users::UsersDeps {
    pub fn of(s: &AppState) -> Self {
        Self {
            pool: s.pool.clone(),
            vault: s.vault.clone(),
        }
    }
}

impl failures::FailuresDeps {
    pub fn of(s: &AppState) -> Self {
        Self {
            pool: s.pool.clone(),
            chats: s.chats.clone(),
        }
    }
}

impl health::PipelineWatch {
    pub fn of(s: &AppState) -> Self {
        Self {
            pool: s.pool.clone(),
            thresholds: s.health,
        }
    }
}

impl consistency::ReadYourWrites {
    pub fn of(s: &AppState) -> Self {
        Self {
            progress: s.progress.clone(),
            wait: s.read_model_wait,
        }
    }
}

/// The APIs, each holding its dependencies (or none, for the document alone).
fn apis(state: Option<&AppState>) -> <ApiService as ApiTuple>::Apis {
    fn wire<T>(state: Option<&AppState>, deps: impl FnOnce(&AppState) -> T) -> Wired<T> {
        state.map_or_else(Wired::unwired, |state| Wired::new(deps(state)))
    }
    (
        auth::AuthApi(wire(state, auth::AuthDeps::of)),
        bots::BotsApi(wire(state, bots::BotsDeps::of)),
        allowances::AllowancesApi(wire(state, allowances::AllowancesDeps::of)),
        chats::ChatsApi(wire(state, chats::ChatsDeps::of)),
        users::UsersApi(wire(state, users::UsersDeps::of)),
        events::EventsApi(wire(state, |s| s.pool.clone())),
        failures::FailuresApi(wire(state, failures::FailuresDeps::of)),
        webhook::WebhookApi(wire(state, |s| webhook::WebhookDeps {
            pool: s.pool.clone(),
            intake: s.intake.clone(),
            cipher: s.cipher.clone(),
            limits: s.limits.clone(),
            bot_rows: s.bot_rows.clone(),
        })),
        health::HealthApi(wire(state, health::PipelineWatch::of)),
        metrics::MetricsApi(wire(state, health::PipelineWatch::of)),
        projections::ProjectionsApi(wire(state, health::PipelineWatch::of)),
        setup::SetupApi(wire(state, |s| s.pool.clone())),
        usage::UsageApi(wire(state, |s| s.pool.clone())),
        admins::AdminsApi(wire(state, |s| s.pool.clone())),
        media::MediaApi(wire(state, allowances::AllowancesDeps::of)),
    )
}

/// Names the tuple of APIs an [`ApiService`] serves.
trait ApiTuple {
    type Apis;
}

impl<T, W> ApiTuple for OpenApiService<T, W> {
    type Apis = T;
}

fn service_of(apis: <ApiService as ApiTuple>::Apis) -> ApiService {
    OpenApiService::new(apis, "Botfleet", env!("CARGO_PKG_VERSION")).description(
        "Admin API of Botfleet, a self-hosted platform for a fleet of LLM-answered Telegram bots. \
         Admin operations need the session cookie from `POST /auth/login`, and writes also \
         the session's CSRF token in `X-CSRF-Token`. Errors share one JSON shape: `error` (a \
         stable code), `message`, and `field` when a request field is at fault. An optional \
         field without a value is left out of an answer, never `null`. Each operation lists \
         the statuses it can answer with.",
    )
}

/// The OpenAPI service the server runs.
pub fn service(state: AppState) -> ApiService {
    service_of(apis(Some(&state)))
}

/// The OpenAPI document as committed in `openapi.yaml`: built from the code alone, with no
/// configuration, database or key.
pub fn spec_yaml() -> String {
    let document = document(&service_of(apis(None)));
    serde_yaml::to_string(&document).expect("the OpenAPI document serializes")
}

/// The same document as JSON, as a test reads it.
pub fn spec_json() -> String {
    let document = document(&service_of(apis(None)));
    serde_json::to_string(&document).expect("the OpenAPI document serializes")
}

/// The name of the security scheme that stands for the `X-CSRF-Token` header.
const CSRF_SCHEME: &str = "CsrfToken";

/// The OpenAPI document: poem-openapi's, with the CSRF header declared. poem-openapi lists
/// each security scheme of an operation as an alternative; a write needs the session cookie
/// *and* its CSRF token, so every operation the guard checks the token on (any method but
/// GET) requires both schemes together. Swagger's "Try it out" then sends the header once the
/// token from the login answer is entered under "Authorize" (the browser sends the cookie
/// itself).
fn document(service: &ApiService) -> serde_yaml::Value {
    use serde_yaml::{Mapping, Value};
    let mut document: Value =
        serde_yaml::from_str(&service.spec_yaml()).expect("poem-openapi's document is YAML");
    let session_only = Value::Sequence(vec![Value::Mapping(Mapping::from_iter([(
        Value::from(guard::SESSION_SCHEME),
        Value::Sequence(vec![]),
    )]))]);
    let session_and_csrf = Value::Sequence(vec![Value::Mapping(Mapping::from_iter([
        (Value::from(guard::SESSION_SCHEME), Value::Sequence(vec![])),
        (Value::from(CSRF_SCHEME), Value::Sequence(vec![])),
    ]))]);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_mapping_mut) {
        for (_, operations) in paths.iter_mut() {
            let Some(operations) = operations.as_mapping_mut() else {
                continue;
            };
            for (method, operation) in operations.iter_mut() {
                let writes = !matches!(method.as_str(), Some("get" | "head" | "options"));
                if let Some(security) = operation.get_mut("security") {
                    if writes && *security == session_only {
                        *security = session_and_csrf.clone();
                    }
                }
            }
        }
    }
    if let Some(schemes) = document
        .get_mut("components")
        .and_then(|c| c.get_mut("securitySchemes"))
        .and_then(Value::as_mapping_mut)
    {
        schemes.insert(
            Value::from(CSRF_SCHEME),
            Value::Mapping(Mapping::from_iter([
                (Value::from("type"), Value::from("apiKey")),
                (Value::from("name"), Value::from(guard::CSRF_HEADER)),
                (Value::from("in"), Value::from("header")),
                (
                    Value::from("description"),
                    Value::from(format!(
                        "The session's CSRF token (`csrf_token` in the answers of `POST \
                         /auth/login` and `GET /auth/me`). Every admin request other than GET \
                         sends it in `{}`, with the session cookie.",
                        guard::CSRF_HEADER
                    )),
                ),
            ])),
        );
    }
    document
}

/// Every route the server answers, inside its middleware (outermost last): the API, its
/// document and viewer, and `pages` (the admin console, which handles its own errors).
pub fn routes<P>(state: AppState, pages: P) -> impl poem::Endpoint
where
    P: Endpoint<Output = Response> + 'static,
{
    let cookie_key = state.cookie_key.clone();
    let limits = state.limits.clone();
    let api = service(state.clone());
    let document = document(&api);
    let spec = serde_yaml::to_string(&document).expect("the OpenAPI document serializes");
    let docs = api.swagger_ui_html().replace(
        &api.spec(),
        &serde_json::to_string_pretty(&document).expect("the OpenAPI document serializes"),
    );
    Route::new()
        .nest("/", api)
        .nest(
            "/docs",
            Route::new().at("/", make_sync(move |_| Html(docs.clone()))),
        )
        // The first admin's set-up page, for the one-time link a start prints.
        .at("/setup", make_sync(|_| setup::page()))
        .at(
            "/openapi.yaml",
            make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/yaml")
                    .body(spec.clone())
            }),
        )
        .nest("/console", pages)
        // The service's own address opens the console (the API owns every other path at
        // the root, so this is decided before routing).
        .around(|endpoint, request| async move {
            if request.uri().path() == "/" {
                return Ok(poem::Response::builder()
                    .status(poem::http::StatusCode::SEE_OTHER)
                    .header("location", "/console")
                    .finish());
            }
            endpoint
                .call(request)
                .await
                .map(poem::IntoResponse::into_response)
        })
        // Sees the matched route pattern, for the metrics' labels.
        .with(observe::RecordRoute)
        .catch_all_error(errors::render_framework_error)
        // The guard's checker reads the state from the request.
        .data(state)
        .with(CookieJarManager::with_key(cookie_key))
        .with(limits::RequestLimits(limits))
        .with(observe::RequestLog)
        .into_endpoint()
}
