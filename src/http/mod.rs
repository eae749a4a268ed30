//! The HTTP API: the admin endpoints (poem-openapi), the OpenAPI document and its viewer.
//!
//! Admin operations take a [`guard::AdminSession`] (see there); `/auth/login`, the first
//! admin's set-up (`/setup`, `/auth/setup`: its token is the credential), the Telegram
//! webhook, `/health*`, `/metrics`, `/docs` and `/openapi.yaml` are open. [`routes`] wraps
//! everything in the request log (request id, metrics), the body size and per-address
//! limits, and the cookie jar.
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
pub mod metrics;
pub mod observe;
pub mod paging;
pub mod projections;
pub mod session_cookie;
pub mod setup;
pub mod strict_json;
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
use poem::{EndpointExt, IntoEndpoint, Route};
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
    ),
    (),
>;

/// The APIs, each holding its dependencies (or none, for the document alone).
fn apis(state: Option<&AppState>) -> <ApiService as ApiTuple>::Apis {
    fn wire<T>(state: Option<&AppState>, deps: impl FnOnce(&AppState) -> T) -> Wired<T> {
        state.map_or_else(Wired::unwired, |state| Wired::new(deps(state)))
    }
    let pipeline_watch = |s: &AppState| health::PipelineWatch {
        pool: s.pool.clone(),
        thresholds: s.health,
    };
    let read_your_writes = |s: &AppState| consistency::ReadYourWrites {
        progress: s.progress.clone(),
        wait: s.read_model_wait,
    };
    (
        auth::AuthApi(wire(state, |s| auth::AuthDeps {
            auth: s.auth.clone(),
            secure_cookies: s.secure_cookies,
        })),
        bots::BotsApi(wire(state, |s| bots::BotsDeps {
            pool: s.pool.clone(),
            bots: s.bots.clone(),
            read_your_writes: read_your_writes(s),
        })),
        allowances::AllowancesApi(wire(state, |s| allowances::AllowancesDeps {
            pool: s.pool.clone(),
            bots: s.bots.clone(),
            vault: s.vault.clone(),
            read_your_writes: read_your_writes(s),
            clock: s.clock.clone(),
        })),
        chats::ChatsApi(wire(state, |s| chats::ChatsDeps {
            pool: s.pool.clone(),
            chats: s.chats.clone(),
            vault: s.vault.clone(),
            read_your_writes: read_your_writes(s),
        })),
        users::UsersApi(wire(state, |s| users::UsersDeps {
            pool: s.pool.clone(),
            vault: s.vault.clone(),
        })),
        events::EventsApi(wire(state, |s| s.pool.clone())),
        failures::FailuresApi(wire(state, |s| failures::FailuresDeps {
            pool: s.pool.clone(),
            chats: s.chats.clone(),
        })),
        webhook::WebhookApi(wire(state, |s| webhook::WebhookDeps {
            pool: s.pool.clone(),
            intake: s.intake.clone(),
            cipher: s.cipher.clone(),
            limits: s.limits.clone(),
        })),
        health::HealthApi(wire(state, pipeline_watch)),
        metrics::MetricsApi(wire(state, pipeline_watch)),
        projections::ProjectionsApi(wire(state, pipeline_watch)),
        setup::SetupApi(wire(state, |s| s.pool.clone())),
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
    service_of(apis(None)).spec_yaml()
}

/// The same document as JSON, as a test reads it.
pub fn spec_json() -> String {
    service_of(apis(None)).spec()
}

/// Every route the server answers, inside its middleware (outermost last).
pub fn routes(state: AppState) -> impl poem::Endpoint {
    let cookie_key = state.cookie_key.clone();
    let limits = state.limits.clone();
    let api = service(state.clone());
    let docs = api.swagger_ui();
    let spec = api.spec_yaml();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
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
