//! What a step's outcome comes to: what to record, and whether the chat's next step follows
//! now or waits for a retry. Pure: the time and the backoff come in as [`Retries`], so every
//! row below is a plain unit test (at the bottom of this file).
//!
//! | step     | outcome                             | recorded, in order                         | next  |
//! |----------|-------------------------------------|--------------------------------------------|-------|
//! | generate | the model answered                  | (bot's LLM error cleared), the response    | go on |
//! | generate | retryable, attempts left            | AttemptFailed with its retry time          | pause |
//! | generate | retryable, attempts exhausted       | AttemptFailed terminal, bot error, err msg | go on |
//! | generate | fatal                               | AttemptFailed fatal, bot error, error msg  | go on |
//! | send     | sent                                | ResponseSent                               | go on |
//! | send     | the group became a supergroup       | the migration (sent again at once)         | go on |
//! | send     | retryable, attempts left            | (bot's sends paused), AttemptFailed        | pause |
//! | send     | retryable, attempts exhausted       | (bot's sends paused), TurnFailed terminal  | go on |
//! | send     | fatal                               | (invalid token: bot error), TurnFailed     | go on |
//! | send     | terminal: Telegram refuses the chat | TurnFailed terminal, blocking the chat     | go on |
//! | callback | answered / refused                  | CallbackAnswered / TurnFailed terminal     | go on |
//! | either   | bot gone, chat blocked, forgotten   | TurnFailed terminal                        | go on |
//!
//! "Bot's sends paused": Telegram's retry_after holds all of the bot's sends, and the retry
//! waits at least as long. "Error message": the bot's error message becomes the turn's
//! response, sent like any other, so the user learns once that something went wrong.
//!
//! The worker carries out a [`Decision`]'s effects in order.

use std::time::Duration;

use aggregates::chat::{ChatCommand, FailureClass, OpenTurn, ResponseKind, TurnStep};
use aggregates::ids::BotErrorKind;
use chrono::{DateTime, Utc};

use crate::llm::{ErrorClass, LlmError};
use crate::telegram::failures::TelegramFailure;

/// What to do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on with the chat's next step or turn.
    Continue,
    /// The chat waits (a retry is scheduled); give up the claim.
    Pause,
}

/// One thing to do about a step's outcome.
// A decision holds one to three effects for a moment: boxing the command would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Record this command on the chat.
    Record(ChatCommand),
    /// Seal `text` for the chat's person and record it as the turn's response.
    /// `reset_conversation` when the answer starts a new conversation (recorded before it).
    Respond {
        text: String,
        kind: ResponseKind,
        reset_conversation: bool,
    },
    /// Show on the bot what stops it from working.
    RecordBotError { kind: BotErrorKind, message: String },
    /// What caused the bot's error of this kind works again.
    ClearBotError { kind: BotErrorKind },
    /// Telegram asked that this bot send nothing for this long.
    PauseBotSends(Duration),
}

/// A step's outcome decided: the effects, carried out in this order, then what comes next.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    pub next: Next,
}

/// How failed attempts are tried again.
pub struct Retries<P> {
    /// Attempts at one step before the turn fails for good.
    pub max_attempts: u32,
    /// When the attempt failed.
    pub now: DateTime<Utc>,
    /// The pause after the n-th failed attempt (1-based), at least what the remote side asked
    /// for: the runner's jittered backoff, a fixed one in tests.
    pub pause: P,
}

/// The retry rule, the same for both steps.
enum Verdict {
    Retry {
        retry_at: DateTime<Utc>,
    },
    /// The class the turn fails with: a retryable failure out of attempts is terminal.
    GiveUp {
        class: FailureClass,
    },
}

impl<P: Fn(u32, Option<Duration>) -> Duration> Retries<P> {
    fn judge(&self, turn: &OpenTurn, class: FailureClass, requested: Option<Duration>) -> Verdict {
        let attempt = turn.attempts + 1;
        match class {
            FailureClass::Retryable if attempt < self.max_attempts => Verdict::Retry {
                retry_at: self.now + (self.pause)(attempt, requested),
            },
            FailureClass::Retryable => Verdict::GiveUp {
                class: FailureClass::Terminal,
            },
            class => Verdict::GiveUp { class },
        }
    }
}

/// What the generate step's model call came to.
pub enum LlmOutcome<'a> {
    /// The model answered: the reply's text and how it was made ([`ResponseKind::Llm`]);
    /// `new_conversation` when it was asked without the earlier context (idle too long).
    Answered {
        text: String,
        kind: ResponseKind,
        new_conversation: bool,
    },
    Failed(&'a LlmError),
}

/// The bot, as the generate step's policy needs it.
pub struct LlmBot<'a> {
    /// The bot shows an LLM error, which an answer proves gone.
    pub shows_llm_error: bool,
    /// What the user is told when the model fails for good.
    pub error_message: &'a str,
}

/// The generate step after asking the model. A final failure is answered with the bot's
/// error message, once, as the turn's response: the user learns something went wrong.
pub fn after_llm(
    turn: &OpenTurn,
    outcome: LlmOutcome<'_>,
    bot: &LlmBot<'_>,
    retries: &Retries<impl Fn(u32, Option<Duration>) -> Duration>,
) -> Decision {
    let error = match outcome {
        LlmOutcome::Answered {
            text,
            kind,
            new_conversation,
        } => {
            let mut effects = Vec::with_capacity(2);
            if bot.shows_llm_error {
                effects.push(Effect::ClearBotError {
                    kind: BotErrorKind::Llm,
                });
            }
            effects.push(Effect::Respond {
                text,
                kind,
                reset_conversation: new_conversation,
            });
            return continue_with(effects);
        }
        LlmOutcome::Failed(error) => error,
    };
    let class = match error.class {
        ErrorClass::Fatal => FailureClass::Fatal,
        ErrorClass::Retryable => FailureClass::Retryable,
    };
    let message = error.to_string();
    match retries.judge(turn, class, error.retry_after) {
        Verdict::Retry { retry_at } => Decision {
            effects: vec![attempt_failed(
                turn,
                TurnStep::Generate,
                FailureClass::Retryable,
                message,
                Some(retry_at),
            )],
            next: Next::Pause,
        },
        Verdict::GiveUp { class } => {
            let mut effects = vec![attempt_failed(
                turn,
                TurnStep::Generate,
                class,
                message.clone(),
                None,
            )];
            // Whether the model refused for good or kept failing until the attempts ran out,
            // the bot shows it (`last_error`) until an answer clears it.
            effects.push(Effect::RecordBotError {
                kind: BotErrorKind::Llm,
                message: message.clone(),
            });
            effects.push(Effect::Respond {
                text: bot.error_message.to_owned(),
                kind: ResponseKind::ErrorMessage {
                    class,
                    error: message,
                },
                reset_conversation: false,
            });
            continue_with(effects)
        }
    }
}

/// The send step after sending every part (their message ids), or after the first part
/// Telegram refused.
pub fn after_send(
    turn: &OpenTurn,
    outcome: Result<Vec<i64>, TelegramFailure>,
    retries: &Retries<impl Fn(u32, Option<Duration>) -> Duration>,
) -> Decision {
    let failure = match outcome {
        // The window in which a crash makes a resend: between the last send and this record.
        Ok(telegram_message_ids) => {
            return continue_with(vec![Effect::Record(ChatCommand::RecordSent {
                update_id: turn.update_id,
                telegram_message_ids,
            })])
        }
        Err(failure) => failure,
    };
    if let Some(to_chat_id) = failure.migrated_to {
        // The group is a supergroup now: move the chat and send again at once.
        return continue_with(vec![Effect::Record(ChatCommand::RecordMigration {
            to_chat_id,
        })]);
    }
    let mut effects = Vec::with_capacity(2);
    if let Some(pause) = failure.retry_after {
        effects.push(Effect::PauseBotSends(pause));
    }
    match retries.judge(turn, failure.class, failure.retry_after) {
        Verdict::Retry { retry_at } => {
            effects.push(attempt_failed(
                turn,
                TurnStep::Send,
                FailureClass::Retryable,
                failure.message,
                Some(retry_at),
            ));
            Decision {
                effects,
                next: Next::Pause,
            }
        }
        Verdict::GiveUp { class } => {
            if failure.invalid_token {
                effects.push(Effect::RecordBotError {
                    kind: BotErrorKind::TelegramInvalidToken,
                    message: failure.message.clone(),
                });
            }
            // Blocked, kicked, deactivated, not found: the chat itself is out of reach.
            let blocks_chat = failure.class == FailureClass::Terminal;
            effects.push(fail_turn(
                turn,
                TurnStep::Send,
                class,
                failure.message,
                blocks_chat,
            ));
            continue_with(effects)
        }
    }
}

/// The answer a button press gets.
pub struct CallbackAnswer<'a> {
    pub text: &'a str,
    /// The `refresh` button: the conversation starts again.
    pub reset_conversation: bool,
}

/// After answering a button press (answerCallbackQuery).
pub fn after_callback(
    turn: &OpenTurn,
    answer: &CallbackAnswer<'_>,
    outcome: Result<(), TelegramFailure>,
) -> Decision {
    let effect = match outcome {
        Ok(()) => Effect::Record(ChatCommand::RecordCallbackAnswered {
            update_id: turn.update_id,
            text: answer.text.to_owned(),
            reset_conversation: answer.reset_conversation,
        }),
        // A callback query expires within seconds: a late retry would only fail again.
        Err(failure) => fail_turn(
            turn,
            TurnStep::Send,
            FailureClass::Terminal,
            failure.message,
            false,
        ),
    };
    continue_with(vec![effect])
}

/// Why a turn ends before its step is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unanswerable {
    /// Nothing is answered for a disabled or deleted bot, now or later.
    BotGone,
    /// Telegram refused this chat; nothing more is attempted until its user writes.
    ChatBlocked,
    /// The person asked to be forgotten while the turn waited: nothing is left to answer.
    Forgotten,
    /// The bot's sealed token cannot be opened (why): nothing can be sent as the bot.
    TokenUnreadable(String),
}

/// Ends a turn that cannot be answered.
pub fn unanswerable(turn: &OpenTurn, why: Unanswerable) -> Decision {
    let (class, error) = match why {
        Unanswerable::BotGone => (
            FailureClass::Terminal,
            "the bot is disabled or deleted".into(),
        ),
        Unanswerable::ChatBlocked => (
            FailureClass::Terminal,
            "the chat is blocked: Telegram refuses messages to it".into(),
        ),
        Unanswerable::Forgotten => (
            FailureClass::Terminal,
            "the person's data was forgotten".into(),
        ),
        Unanswerable::TokenUnreadable(why) => (FailureClass::Fatal, why),
    };
    continue_with(vec![fail_turn(turn, turn.step(), class, error, false)])
}

fn continue_with(effects: Vec<Effect>) -> Decision {
    Decision {
        effects,
        next: Next::Continue,
    }
}

/// The one place a failed attempt is written.
fn attempt_failed(
    turn: &OpenTurn,
    step: TurnStep,
    class: FailureClass,
    error: String,
    retry_at: Option<DateTime<Utc>>,
) -> Effect {
    Effect::Record(ChatCommand::RecordAttemptFailure {
        update_id: turn.update_id,
        step,
        class,
        error,
        retry_at,
    })
}

/// The one place a turn is failed for good.
fn fail_turn(
    turn: &OpenTurn,
    step: TurnStep,
    class: FailureClass,
    error: String,
    blocks_chat: bool,
) -> Effect {
    Effect::Record(ChatCommand::FailTurn {
        update_id: turn.update_id,
        step,
        class,
        error,
        blocks_chat,
    })
}

#[cfg(test)]
mod tests {
    //! The table above, row by row. Telegram's failures are made by the real classifier from
    //! the answers Telegram sends, so a row reads as "Telegram says X, the turn does Y".

    use aggregates::chat::{GeneratedResponse, TurnKind};
    use aggregates::ids::{TurnKey, UpdateId};
    use aggregates::personal::PersonalText;
    use chrono::TimeZone;

    use super::*;
    use crate::telegram::bot_api::AnswerParameters;
    use crate::telegram::failures::classify_answer;

    const MAX_ATTEMPTS: u32 = 3;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
    }

    /// A deterministic backoff: ten seconds per attempt, or what the remote side asked for.
    fn pause(attempt: u32, requested: Option<Duration>) -> Duration {
        requested.unwrap_or(Duration::from_secs(10 * u64::from(attempt)))
    }

    fn retries() -> Retries<fn(u32, Option<Duration>) -> Duration> {
        Retries {
            max_attempts: MAX_ATTEMPTS,
            now: now(),
            pause,
        }
    }

    /// A message turn that has failed `attempts` times at its step; `sending` once it has a
    /// response.
    fn turn(attempts: u32, sending: bool) -> OpenTurn {
        OpenTurn {
            update_id: TurnKey::Update(UpdateId(7)),
            message_id: 70,
            user_text: PersonalText::plain("hi"),
            from_user_id: Some(42),
            response: sending.then(|| GeneratedResponse {
                text: PersonalText::plain("hello"),
                kind: ResponseKind::Notice,
            }),
            attempts,
            kind: TurnKind::Message,
            retry_at: None,
            sent_at: None,
            language: None,
            from_username: None,
            refusal: None,
            files: Vec::new(),
            transcription: None,
            image: None,
        }
    }

    fn generating(attempts: u32) -> OpenTurn {
        turn(attempts, false)
    }

    fn sending(attempts: u32) -> OpenTurn {
        turn(attempts, true)
    }

    fn llm_error(class: ErrorClass, retry_after: Option<Duration>) -> LlmError {
        LlmError {
            class,
            status: Some(500),
            code: Some("server_error".into()),
            message: "the model is away".into(),
            retry_after,
        }
    }

    fn bot(shows_llm_error: bool) -> LlmBot<'static> {
        LlmBot {
            shows_llm_error,
            error_message: "Sorry, something went wrong.",
        }
    }

    fn llm_answer() -> LlmOutcome<'static> {
        LlmOutcome::Answered {
            text: "echo: hi".into(),
            kind: llm_kind(),
            new_conversation: false,
        }
    }

    fn llm_kind() -> ResponseKind {
        ResponseKind::Llm {
            model: "gpt-5-mini".into(),
            response_id: Some("resp_1".into()),
            usage: aggregates::chat::TokenUsage::default(),
            cost_micro_usd: 121,
            charged_to: None,
            context_turns: None,
            stopped: false,
        }
    }

    /// Telegram's answer: its status and description.
    fn telegram(code: u16, description: &str) -> TelegramFailure {
        classify_answer(code, description, &AnswerParameters::default())
    }

    fn server_trouble() -> TelegramFailure {
        telegram(500, "Internal Server Error")
    }

    fn flood_control() -> TelegramFailure {
        classify_answer(
            429,
            "Too Many Requests: retry after 30",
            &AnswerParameters {
                retry_after: Some(30),
                migrate_to_chat_id: None,
            },
        )
    }

    fn attempt_failed_at(
        step: TurnStep,
        class: FailureClass,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Effect {
        Effect::Record(ChatCommand::RecordAttemptFailure {
            update_id: TurnKey::Update(UpdateId(7)),
            step,
            class,
            error: error.into(),
            retry_at,
        })
    }

    fn failed(step: TurnStep, class: FailureClass, error: &str, blocks_chat: bool) -> Effect {
        Effect::Record(ChatCommand::FailTurn {
            update_id: TurnKey::Update(UpdateId(7)),
            step,
            class,
            error: error.into(),
            blocks_chat,
        })
    }

    fn seconds(n: i64) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(n)
    }

    // The generate step.

    #[test]
    fn generate_ok_records_the_answer_and_continues() {
        let decision = after_llm(&generating(0), llm_answer(), &bot(false), &retries());
        assert_eq!(
            decision,
            Decision {
                effects: vec![Effect::Respond {
                    text: "echo: hi".into(),
                    kind: llm_kind(),
                    reset_conversation: false,
                }],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn generate_ok_first_clears_the_llm_error_the_bot_shows() {
        let decision = after_llm(&generating(2), llm_answer(), &bot(true), &retries());
        assert_eq!(
            decision.effects[0],
            Effect::ClearBotError {
                kind: BotErrorKind::Llm
            }
        );
        assert!(matches!(decision.effects[1], Effect::Respond { .. }));
        assert_eq!(decision.next, Next::Continue);
    }

    #[test]
    fn generate_retryable_with_attempts_left_records_the_attempt_and_pauses_until_the_backoff() {
        let error = llm_error(ErrorClass::Retryable, None);
        let decision = after_llm(
            &generating(1),
            LlmOutcome::Failed(&error),
            &bot(false),
            &retries(),
        );
        assert_eq!(
            decision,
            Decision {
                // The second attempt failed: twenty seconds.
                effects: vec![attempt_failed_at(
                    TurnStep::Generate,
                    FailureClass::Retryable,
                    &error.to_string(),
                    Some(now() + seconds(20)),
                )],
                next: Next::Pause,
            }
        );
    }

    #[test]
    fn generate_retryable_honours_the_providers_retry_after() {
        let error = llm_error(ErrorClass::Retryable, Some(Duration::from_secs(45)));
        let decision = after_llm(
            &generating(0),
            LlmOutcome::Failed(&error),
            &bot(false),
            &retries(),
        );
        assert_eq!(
            decision.effects,
            [attempt_failed_at(
                TurnStep::Generate,
                FailureClass::Retryable,
                &error.to_string(),
                Some(now() + seconds(45)),
            )]
        );
    }

    #[test]
    fn generate_retryable_exhausted_is_terminal_and_answers_with_the_error_message() {
        let error = llm_error(ErrorClass::Retryable, None);
        let decision = after_llm(
            &generating(MAX_ATTEMPTS - 1),
            LlmOutcome::Failed(&error),
            &bot(false),
            &retries(),
        );
        assert_eq!(
            decision,
            Decision {
                effects: vec![
                    attempt_failed_at(
                        TurnStep::Generate,
                        FailureClass::Terminal,
                        &error.to_string(),
                        None
                    ),
                    Effect::RecordBotError {
                        kind: BotErrorKind::Llm,
                        message: error.to_string(),
                    },
                    Effect::Respond {
                        text: "Sorry, something went wrong.".into(),
                        kind: ResponseKind::ErrorMessage {
                            class: FailureClass::Terminal,
                            error: error.to_string(),
                        },
                        reset_conversation: false,
                    },
                ],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn generate_fatal_is_not_retried_shows_the_bots_error_and_answers_with_the_error_message() {
        let error = llm_error(ErrorClass::Fatal, None);
        let decision = after_llm(
            &generating(0),
            LlmOutcome::Failed(&error),
            &bot(false),
            &retries(),
        );
        assert_eq!(
            decision,
            Decision {
                effects: vec![
                    attempt_failed_at(
                        TurnStep::Generate,
                        FailureClass::Fatal,
                        &error.to_string(),
                        None
                    ),
                    Effect::RecordBotError {
                        kind: BotErrorKind::Llm,
                        message: error.to_string(),
                    },
                    Effect::Respond {
                        text: "Sorry, something went wrong.".into(),
                        kind: ResponseKind::ErrorMessage {
                            class: FailureClass::Fatal,
                            error: error.to_string(),
                        },
                        reset_conversation: false,
                    },
                ],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn generate_terminal_when_the_bot_is_gone_or_the_person_forgotten() {
        for (why, error) in [
            (Unanswerable::BotGone, "the bot is disabled or deleted"),
            (Unanswerable::Forgotten, "the person's data was forgotten"),
        ] {
            assert_eq!(
                unanswerable(&generating(0), why),
                Decision {
                    effects: vec![failed(
                        TurnStep::Generate,
                        FailureClass::Terminal,
                        error,
                        false
                    )],
                    next: Next::Continue,
                }
            );
        }
    }

    #[test]
    fn generate_in_a_blocked_chat_fails_terminal_without_blocking_it_again() {
        assert_eq!(
            unanswerable(&generating(0), Unanswerable::ChatBlocked).effects,
            [failed(
                TurnStep::Generate,
                FailureClass::Terminal,
                "the chat is blocked: Telegram refuses messages to it",
                false
            )]
        );
    }

    // The send step.

    #[test]
    fn send_ok_records_the_message_ids_and_continues() {
        assert_eq!(
            after_send(&sending(1), Ok(vec![1001, 1002]), &retries()),
            Decision {
                effects: vec![Effect::Record(ChatCommand::RecordSent {
                    update_id: TurnKey::Update(UpdateId(7)),
                    telegram_message_ids: vec![1001, 1002],
                })],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_retryable_with_attempts_left_records_the_attempt_and_pauses_until_the_backoff() {
        let failure = server_trouble();
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(0), Err(failure), &retries()),
            Decision {
                effects: vec![attempt_failed_at(
                    TurnStep::Send,
                    FailureClass::Retryable,
                    &message,
                    Some(now() + seconds(10)),
                )],
                next: Next::Pause,
            }
        );
    }

    #[test]
    fn send_retry_after_is_honoured_the_bots_sends_pause_and_the_retry_waits_as_long() {
        let failure = flood_control();
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(0), Err(failure), &retries()),
            Decision {
                effects: vec![
                    Effect::PauseBotSends(Duration::from_secs(30)),
                    attempt_failed_at(
                        TurnStep::Send,
                        FailureClass::Retryable,
                        &message,
                        Some(now() + seconds(30)),
                    ),
                ],
                next: Next::Pause,
            }
        );
    }

    #[test]
    fn send_retry_after_still_pauses_the_bots_sends_when_the_turn_gives_up() {
        let failure = flood_control();
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(MAX_ATTEMPTS - 1), Err(failure), &retries()).effects,
            [
                Effect::PauseBotSends(Duration::from_secs(30)),
                failed(TurnStep::Send, FailureClass::Terminal, &message, false),
            ]
        );
    }

    #[test]
    fn send_retryable_exhausted_fails_the_turn_terminal_without_blocking_the_chat() {
        let failure = server_trouble();
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(MAX_ATTEMPTS - 1), Err(failure), &retries()),
            Decision {
                effects: vec![failed(
                    TurnStep::Send,
                    FailureClass::Terminal,
                    &message,
                    false
                )],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_fatal_fails_the_turn_at_once() {
        let failure = telegram(400, "Bad Request: message text is empty");
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(0), Err(failure), &retries()),
            Decision {
                effects: vec![failed(TurnStep::Send, FailureClass::Fatal, &message, false)],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_terminal_telegram_refuses_the_chat_and_the_chat_is_blocked() {
        let failure = telegram(403, "Forbidden: bot was blocked by the user");
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(0), Err(failure), &retries()),
            Decision {
                effects: vec![failed(
                    TurnStep::Send,
                    FailureClass::Terminal,
                    &message,
                    true
                )],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_in_a_chat_already_blocked_fails_terminal_without_blocking_it_again() {
        assert_eq!(
            unanswerable(&sending(0), Unanswerable::ChatBlocked).effects,
            [failed(
                TurnStep::Send,
                FailureClass::Terminal,
                "the chat is blocked: Telegram refuses messages to it",
                false
            )]
        );
    }

    #[test]
    fn send_migrated_group_records_the_migration_and_sends_again_at_once_whatever_the_attempts() {
        let failure = classify_answer(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            &AnswerParameters {
                retry_after: None,
                migrate_to_chat_id: Some(-100_123),
            },
        );
        assert_eq!(
            after_send(&sending(MAX_ATTEMPTS - 1), Err(failure), &retries()),
            Decision {
                effects: vec![Effect::Record(ChatCommand::RecordMigration {
                    to_chat_id: -100_123
                })],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_invalid_token_shows_the_bots_error_then_fails_the_turn_fatal() {
        let failure = telegram(401, "Unauthorized");
        let message = failure.message.clone();
        assert_eq!(
            after_send(&sending(0), Err(failure), &retries()),
            Decision {
                effects: vec![
                    Effect::RecordBotError {
                        kind: BotErrorKind::TelegramInvalidToken,
                        message: message.clone(),
                    },
                    failed(TurnStep::Send, FailureClass::Fatal, &message, false),
                ],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_with_a_token_that_cannot_be_opened_fails_the_turn_fatal() {
        assert_eq!(
            unanswerable(&sending(0), Unanswerable::TokenUnreadable("no key".into())),
            Decision {
                effects: vec![failed(TurnStep::Send, FailureClass::Fatal, "no key", false)],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn send_terminal_when_the_bot_is_gone_or_the_person_forgotten() {
        for (why, error) in [
            (Unanswerable::BotGone, "the bot is disabled or deleted"),
            (Unanswerable::Forgotten, "the person's data was forgotten"),
        ] {
            assert_eq!(
                unanswerable(&sending(0), why).effects,
                [failed(TurnStep::Send, FailureClass::Terminal, error, false)]
            );
        }
    }

    // The callback step: answerCallbackQuery.

    fn button_press() -> OpenTurn {
        OpenTurn {
            kind: TurnKind::Callback {
                query_id: "q1".into(),
                data: Some("refresh".into()),
            },
            ..generating(0)
        }
    }

    fn refresh() -> CallbackAnswer<'static> {
        CallbackAnswer {
            text: "Done.",
            reset_conversation: true,
        }
    }

    #[test]
    fn callback_answered_records_the_answer_and_its_reset() {
        assert_eq!(
            after_callback(&button_press(), &refresh(), Ok(())),
            Decision {
                effects: vec![Effect::Record(ChatCommand::RecordCallbackAnswered {
                    update_id: TurnKey::Update(UpdateId(7)),
                    text: "Done.".into(),
                    reset_conversation: true,
                })],
                next: Next::Continue,
            }
        );
    }

    #[test]
    fn callback_failure_fails_the_turn_terminal_at_once_even_when_retryable() {
        let failure = server_trouble();
        let message = failure.message.clone();
        assert_eq!(
            after_callback(&button_press(), &refresh(), Err(failure)),
            Decision {
                effects: vec![failed(
                    TurnStep::Send,
                    FailureClass::Terminal,
                    &message,
                    false
                )],
                next: Next::Continue,
            }
        );
    }
}
