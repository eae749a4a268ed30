//! The turn worker driven in-process: real PostgreSQL, the real intake and Chat aggregate, and
//! in-process fakes of Telegram ([`Messenger`]) and the model ([`LanguageModel`]), with no
//! runner and no leases. Each `work_chat` call is one claim of the chat, as the runner makes it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::bot::{
    BotCommand, BotMessage, BotName, BotSettings, BotToken, Instructions, ModelName,
};
use aggregates::ids::{BotId, ChatId};
use botfleet::event_store::{Actor, EventMetadata};
use botfleet::llm::{LanguageModel, LlmError, LlmReply, LlmRequest, TokenUsage};
use botfleet::runtime::backoff::Backoff;
use botfleet::secrets::UnsealError;
use botfleet::subscriptions::{ProjectionRunner, SubscriptionProgress};
use botfleet::telegram::failures::TelegramFailure;
use botfleet::telegram::pacing::SendPacer;
use botfleet::telegram::updates::{BotIdentity, Update};
use botfleet::telegram::{BotMessenger, Messenger};
use botfleet::turns::worker::TurnWorker;
use projections::bots::{find_bot, BotProjector};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::fakes::telegram::text_update;
use crate::helpers::{random_token_key, test_config, token, TestDb};
use botfleet::telegram::bot_api::AnswerParameters;
use botfleet::telegram::failures::classify_answer;

/// Telegram in-process, one line for every bot: each part handed to it, refused while
/// scripted failures are queued, else delivered.
#[derive(Default)]
struct FakeTelegram {
    refusals: Mutex<VecDeque<TelegramFailure>>,
    /// `(chat id, plain text)` of every part handed over, refused or not.
    attempts: Mutex<Vec<(i64, String)>>,
    /// `(chat id, HTML)` of every part delivered.
    delivered: Mutex<Vec<(i64, String)>>,
}

impl FakeTelegram {
    fn refuse_next(&self, failure: TelegramFailure) {
        self.refusals.lock().unwrap().push_back(failure);
    }

    fn attempts(&self) -> Vec<(i64, String)> {
        self.attempts.lock().unwrap().clone()
    }

    fn delivered(&self) -> Vec<(i64, String)> {
        self.delivered.lock().unwrap().clone()
    }
}

struct FakeMessenger(Arc<FakeTelegram>);

impl Messenger for FakeMessenger {
    fn bot(&self, _bot_id: Uuid, _token: &str) -> Result<Arc<dyn BotMessenger>, UnsealError> {
        Ok(self.0.clone())
    }
}

#[async_trait::async_trait]
impl BotMessenger for FakeTelegram {
    async fn send_part(
        &self,
        chat_id: i64,
        html: &str,
        plain: &str,
    ) -> Result<i64, TelegramFailure> {
        self.attempts
            .lock()
            .unwrap()
            .push((chat_id, plain.to_owned()));
        if let Some(failure) = self.refusals.lock().unwrap().pop_front() {
            return Err(failure);
        }
        let mut delivered = self.delivered.lock().unwrap();
        delivered.push((chat_id, html.to_owned()));
        Ok(5000 + delivered.len() as i64)
    }

    async fn send_typing(&self, _chat_id: i64) -> Result<(), TelegramFailure> {
        Ok(())
    }

    async fn answer_callback_query(
        &self,
        _query_id: &str,
        _text: &str,
    ) -> Result<(), TelegramFailure> {
        Ok(())
    }

    async fn leave_chat(&self, _chat_id: i64) -> Result<(), TelegramFailure> {
        Ok(())
    }
}

/// A model that echoes the user's text and counts its calls.
#[derive(Default)]
struct EchoModel {
    requests: Mutex<Vec<LlmRequest>>,
}

#[async_trait::async_trait]
impl LanguageModel for EchoModel {
    async fn respond(&self, request: &LlmRequest) -> Result<LlmReply, LlmError> {
        self.requests.lock().unwrap().push(request.clone());
        Ok(LlmReply {
            text: format!("echo: {}", request.user_text),
            response_id: Some("resp_1".into()),
            model: request.model.clone(),
            usage: TokenUsage::default(),
        })
    }
}

/// A database with one enabled bot (its row projected, as the worker reads it) and a worker
/// over the fakes.
struct Setup {
    _db: TestDb,
    pool: PgPool,
    bot_id: Uuid,
    state: botfleet::http::AppState,
    telegram: Arc<FakeTelegram>,
    model: Arc<EchoModel>,
    worker: TurnWorker,
}

impl Setup {
    async fn new() -> Self {
        let db = TestDb::new();
        let pool = db.pool().await;
        let config = test_config(&db, &random_token_key());
        let ring = botfleet::secrets::KeyRing::single(config.token_key.clone());
        let state = botfleet::app::app_state(pool.clone(), &ring, &config);
        let bot_id = Uuid::now_v7();
        let metadata = EventMetadata::new_request(Actor::System("test"));
        let settings = BotSettings {
            name: BotName::parse("Support").unwrap(),
            start_message: BotMessage::parse("Hello!").unwrap(),
            error_message: BotMessage::parse("Sorry, something went wrong.").unwrap(),
            model: ModelName::parse("gpt-5-mini").unwrap(),
            instructions: Instructions::parse("Answer briefly.").unwrap(),
            streaming: None,
        };
        let create = BotCommand::Create {
            bot_id: BotId(bot_id),
            token: BotToken::parse(&token(1)).unwrap(),
            settings,
        };
        for command in [create, BotCommand::Enable] {
            state
                .bots
                .execute(&bot_id.to_string(), command, &metadata)
                .await
                .unwrap();
        }
        let bots = ProjectionRunner::new(
            pool.clone(),
            Arc::new(BotProjector),
            SubscriptionProgress::new(pool.clone()),
        );
        while !find_bot(&pool, bot_id)
            .await
            .unwrap()
            .is_some_and(|b| b.is_active)
        {
            bots.run_batch().await.unwrap();
        }
        let (telegram, model) = (
            Arc::new(FakeTelegram::default()),
            Arc::new(EchoModel::default()),
        );
        let worker = TurnWorker {
            pool: pool.clone(),
            chats: state.chats.clone(),
            bots: state.bots.clone(),
            telegram: Arc::new(FakeMessenger(telegram.clone())),
            llm: model.clone(),
            prices: Arc::new(config.prices.clone()),
            max_attempts: 5,
            // Longer than the worker's clock tolerance (250 ms), so a retry is seen waiting.
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(2),
            },
            pacer: Arc::new(SendPacer::default()),
            vault: state.vault.clone(),
            bot_rows: Default::default(),
            clock: Default::default(),
            answer_stops: Default::default(),
            media: botfleet::turns::media::MediaTools {
                settings: config.media.clone(),
                transcriber: botfleet::llm::transcriber(
                    &config.openai_base_url,
                    None,
                    Duration::from_secs(5),
                ),
            },
        };
        Self {
            _db: db,
            pool,
            bot_id,
            state,
            telegram,
            model,
            worker,
        }
    }

    /// Records a text message from Telegram chat `chat_id` through the real intake; returns
    /// the chat's aggregate id.
    async fn receive(&self, update_id: i64, chat_id: i64, text: &str) -> Uuid {
        let identity = BotIdentity {
            bot_id: BotId(self.bot_id),
            telegram_id: 100_001,
            username: None,
        };
        let update: Update = serde_json::from_value(text_update(update_id, chat_id, text)).unwrap();
        self.state.intake.accept(&identity, &update).await.unwrap();
        ChatId::of(BotId(self.bot_id), chat_id).0
    }

    async fn work(&self, chat: Uuid) -> Option<usize> {
        self.worker
            .work_chat(chat, None, &CancellationToken::new())
            .await
            .expect("the chat is worked")
    }

    async fn chat_events(&self) -> Vec<(String, Value)> {
        sqlx::query_as(
            "SELECT event_type, payload FROM events WHERE aggregate_type = 'Chat' ORDER BY sequence",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    async fn chat_event_types(&self) -> Vec<String> {
        self.chat_events()
            .await
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }
}

#[tokio::test]
async fn a_retryable_send_failure_records_the_attempt_with_its_retry_time_and_the_next_run_sends_once(
) {
    let setup = Setup::new().await;
    let chat = setup.receive(1, 42, "hi").await;
    setup.telegram.refuse_next(classify_answer(
        502,
        "Bad Gateway",
        &AnswerParameters::default(),
    ));

    // First claim: the model answers, Telegram refuses, the chat waits for its retry.
    let before = chrono::Utc::now();
    assert_eq!(setup.work(chat).await, None, "paused for the retry");
    assert_eq!(
        setup.chat_event_types().await,
        ["MessageReceived", "ResponseGenerated", "AttemptFailed"]
    );
    let (_, payload) = setup.chat_events().await.pop().unwrap();
    let failed = &payload["AttemptFailed"];
    assert_eq!(
        (&failed["step"], &failed["class"], &failed["attempt"]),
        (&"send".into(), &"retryable".into(), &1.into()),
        "{payload}"
    );
    assert_eq!(failed["error"], "Bad Gateway");
    let retry_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(failed["retry_at"].clone()).expect("a retry time");
    // The first backoff is 1 s with ±20% jitter.
    assert!(
        retry_at >= before + chrono::TimeDelta::milliseconds(800),
        "retry at {retry_at}, failed after {before}"
    );
    assert_eq!(setup.telegram.attempts(), [(42, "echo: hi".to_owned())]);
    assert!(setup.telegram.delivered().is_empty());

    // Claimed again before its time: nothing is tried.
    assert_eq!(setup.work(chat).await, None);
    assert_eq!(setup.chat_event_types().await.len(), 3);
    assert_eq!(setup.telegram.attempts().len(), 1);

    // Claimed when due: the recorded response is sent once, and the model is not asked again.
    let wait = (retry_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    assert!(
        setup.work(chat).await.is_some(),
        "no turn is left once it is sent"
    );
    assert_eq!(
        setup.chat_event_types().await,
        [
            "MessageReceived",
            "ResponseGenerated",
            "AttemptFailed",
            "ResponseSent"
        ]
    );
    let (_, payload) = setup.chat_events().await.pop().unwrap();
    assert_eq!(
        payload["ResponseSent"]["telegram_message_ids"],
        serde_json::json!([5001])
    );
    assert_eq!(setup.telegram.delivered(), [(42, "echo: hi".to_owned())]);
    assert_eq!(setup.telegram.attempts().len(), 2, "one refused, one sent");
    assert_eq!(setup.model.requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn telegram_refusing_the_chat_fails_the_turn_and_blocks_the_chat_without_a_retry() {
    let setup = Setup::new().await;
    let chat = setup.receive(1, 42, "hi").await;
    setup.telegram.refuse_next(classify_answer(
        403,
        "Forbidden: bot was blocked by the user",
        &AnswerParameters::default(),
    ));
    // A second message waits behind the first: once the chat is blocked, it fails unsent.
    setup.receive(2, 42, "are you there?").await;

    assert!(setup.work(chat).await.is_some(), "no turn is left");
    assert_eq!(
        setup.chat_event_types().await,
        [
            "MessageReceived",
            "MessageReceived",
            "ResponseGenerated",
            "TurnFailed",
            "ChatBlocked",
            "TurnFailed"
        ]
    );
    assert_eq!(setup.telegram.attempts().len(), 1, "one send, no retry");
    assert_eq!(setup.model.requests.lock().unwrap().len(), 1);
}
