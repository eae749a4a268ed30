//! The HTTP API: the admin endpoints (poem-openapi), the OpenAPI document and its viewer.

pub mod bots;
pub mod errors;
pub mod guard;
pub mod strict_json;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use aggregates::bot::Bot;
use aggregates::chat::Chat;
use poem::endpoint::make_sync;
use poem::middleware::Tracing;
use poem::{EndpointExt, IntoEndpoint, Route};
use poem_openapi::{OpenApiService, Tags};
use sqlx::PgPool;

use crate::event_store::CommandGateway;
use crate::secrets::TokenCipher;
use crate::subscriptions::SubscriptionProgress;

/// What every handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub bots: Arc<CommandGateway<Bot>>,
    pub chats: Arc<CommandGateway<Chat>>,
    pub intake: crate::intake::Intake,
    pub cipher: Arc<TokenCipher>,
    /// Lets a write wait until the read model it answers from includes it.
    pub progress: SubscriptionProgress,
    pub read_model_wait: Duration,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Registering and administering bots
    Bots,
    /// Called by Telegram
    Telegram,
}

pub type ApiService = OpenApiService<(bots::BotsApi, webhook::WebhookApi), ()>;

/// The OpenAPI service; also what `botfleet openapi` prints.
pub fn service(state: AppState) -> ApiService {
    let webhook = webhook::WebhookApi {
        pool: state.pool.clone(),
        intake: state.intake.clone(),
        cipher: state.cipher.clone(),
    };
    OpenApiService::new(
        (bots::BotsApi { state }, webhook),
        "Botfleet",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Admin API of Botfleet, a self-hosted platform for a fleet of LLM-answered Telegram bots. \
         Errors share one JSON shape: `error` (a stable code), `message`, and `field` when a \
         request field is at fault.",
    )
}

/// The OpenAPI document as committed in `openapi.yaml`.
pub fn spec_yaml(state: AppState) -> String {
    service(state).spec_yaml()
}

/// Every route the server answers.
pub fn routes(state: AppState) -> impl poem::Endpoint {
    let api = service(state);
    let docs = api.swagger_ui();
    let spec = api.spec_yaml();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at(
            "/openapi.yaml",
            make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/yaml")
                    .body(spec.clone())
            }),
        )
        .catch_all_error(errors::render_framework_error)
        .with(Tracing)
        .into_endpoint()
}
