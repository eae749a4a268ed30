//! Given / when / then: the rules that make the effect runner idempotent.

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::chat::{
    BotCommandName, ChatCommand, FailureClass, IncomingMessage, ResponseKind, TelegramChat,
    TelegramUser, TokenUsage,
};
use crate::ids::{BotId, TurnKey, UpdateId};
use crate::personal::PersonalText;

type ChatTest = TestFramework<Chat>;

fn bot() -> BotId {
    BotId(uuid::Uuid::from_u128(1))
}

/// The turn a stored number stands for: an update id, or (negative) an admin message.
fn turn(stored: i64) -> TurnKey {
    TurnKey::from_stored(stored)
}

fn incoming(update_id: i64, text: &str) -> IncomingMessage {
    IncomingMessage {
        bot_id: bot(),
        update_id: UpdateId(update_id),
        message_id: update_id * 10,
        chat: TelegramChat {
            id: 42,
            kind: "private".into(),
            title: None,
            username: Some(PersonalText::plain("ann")),
        },
        from: Some(TelegramUser {
            id: 42,
            is_bot: false,
            first_name: PersonalText::plain("Ann"),
            last_name: None,
            username: Some(PersonalText::plain("ann")),
            language_code: Some("en".into()),
        }),
        text: PersonalText::plain(text),
        sent_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        media: None,
        files: Vec::new(),
    }
}

fn received(update_id: i64, text: &str) -> ChatEvent {
    let m = incoming(update_id, text);
    ChatEvent::MessageReceived {
        bot_id: m.bot_id,
        update_id: m.update_id,
        message_id: m.message_id,
        chat: m.chat,
        from: m.from,
        text: m.text,
        sent_at: m.sent_at,
        media: m.media,
        files: m.files,
    }
}

fn llm_response(text: &str, response_id: &str) -> GeneratedResponse {
    GeneratedResponse {
        text: PersonalText::plain(text),
        kind: ResponseKind::Llm {
            model: "gpt-5-mini".into(),
            response_id: Some(response_id.into()),
            usage: TokenUsage {
                input_tokens: 100,
                cached_input_tokens: 20,
                output_tokens: 50,
                reasoning_tokens: 10,
            },
            cost_micro_usd: 120,
            charged_to: None,
            context_turns: None,
            stopped: false,
        },
    }
}

fn generated(update_id: i64, text: &str, response_id: &str) -> ChatEvent {
    ChatEvent::ResponseGenerated {
        update_id: turn(update_id),
        response: llm_response(text, response_id),
    }
}

#[test]
fn a_new_message_is_received() {
    ChatTest::with(ChatServices)
        .given_no_previous_events()
        .when(ChatCommand::ReceiveMessage(incoming(7, "hi")))
        .then_expect_events(vec![received(7, "hi")]);
}

#[test]
fn a_redelivered_update_is_accepted_once() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::ReceiveMessage(incoming(7, "hi")))
        .then_expect_events(vec![]);
}

#[test]
fn a_redelivered_update_is_recognised_after_its_turn_is_over() {
    ChatTest::with(ChatServices)
        .given(vec![
            received(7, "hi"),
            generated(7, "hello", "resp_1"),
            ChatEvent::ResponseSent {
                update_id: turn(7),
                telegram_message_ids: vec![1],
            },
        ])
        .when(ChatCommand::ReceiveMessage(incoming(7, "hi")))
        .then_expect_events(vec![]);
}

#[test]
fn a_response_is_recorded_for_an_open_turn() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::RecordResponse {
            update_id: turn(7),
            response: llm_response("hello", "resp_1"),
            reset_conversation: false,
        })
        .then_expect_events(vec![generated(7, "hello", "resp_1")]);
}

#[test]
fn a_second_response_for_the_same_turn_is_refused() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi"), generated(7, "hello", "resp_1")])
        .when(ChatCommand::RecordResponse {
            update_id: turn(7),
            response: llm_response("hello again", "resp_2"),
            reset_conversation: false,
        })
        .then_expect_error(ChatError::AlreadyResponded(turn(7)));
}

#[test]
fn a_response_for_an_unknown_turn_is_refused() {
    ChatTest::with(ChatServices)
        .given_no_previous_events()
        .when(ChatCommand::RecordResponse {
            update_id: turn(7),
            response: llm_response("hello", "resp_1"),
            reset_conversation: false,
        })
        .then_expect_error(ChatError::NoOpenTurn(turn(7)));
}

#[test]
fn sending_is_recorded_once() {
    let given = vec![received(7, "hi"), generated(7, "hello", "resp_1")];
    ChatTest::with(ChatServices)
        .given(given.clone())
        .when(ChatCommand::RecordSent {
            update_id: turn(7),
            telegram_message_ids: vec![100],
        })
        .then_expect_events(vec![ChatEvent::ResponseSent {
            update_id: turn(7),
            telegram_message_ids: vec![100],
        }]);
    let mut sent = given;
    sent.push(ChatEvent::ResponseSent {
        update_id: turn(7),
        telegram_message_ids: vec![100],
    });
    ChatTest::with(ChatServices)
        .given(sent)
        .when(ChatCommand::RecordSent {
            update_id: turn(7),
            telegram_message_ids: vec![101],
        })
        .then_expect_error(ChatError::NoOpenTurn(turn(7)));
}

#[test]
fn nothing_is_sent_before_it_is_generated() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::RecordSent {
            update_id: turn(7),
            telegram_message_ids: vec![100],
        })
        .then_expect_error(ChatError::NotGenerated(turn(7)));
}

#[test]
fn refresh_resets_the_conversation_before_its_reply() {
    let reply = GeneratedResponse {
        text: PersonalText::plain("Started afresh."),
        kind: ResponseKind::Command {
            command: BotCommandName::Refresh,
        },
    };
    ChatTest::with(ChatServices)
        .given(vec![received(7, "/refresh")])
        .when(ChatCommand::RecordResponse {
            update_id: turn(7),
            response: reply.clone(),
            reset_conversation: true,
        })
        .then_expect_events(vec![
            ChatEvent::ConversationReset { update_id: turn(7) },
            ChatEvent::ResponseGenerated {
                update_id: turn(7),
                response: reply,
            },
        ]);
}

#[test]
fn failed_attempts_are_counted_per_step() {
    ChatTest::with(ChatServices)
        .given(vec![
            received(7, "hi"),
            ChatEvent::AttemptFailed {
                update_id: turn(7),
                step: TurnStep::Generate,
                attempt: 1,
                class: FailureClass::Retryable,
                error: "HTTP 500".into(),
                retry_at: None,
            },
        ])
        .when(ChatCommand::RecordAttemptFailure {
            update_id: turn(7),
            step: TurnStep::Generate,
            class: FailureClass::Retryable,
            error: "HTTP 500".into(),
            retry_at: None,
        })
        .then_expect_events(vec![ChatEvent::AttemptFailed {
            update_id: turn(7),
            step: TurnStep::Generate,
            attempt: 2,
            class: FailureClass::Retryable,
            error: "HTTP 500".into(),
            retry_at: None,
        }]);
}

#[test]
fn a_turn_waits_for_its_backoff_until_a_step_succeeds() {
    let retry_at = chrono::Utc::now() + chrono::TimeDelta::seconds(30);
    let mut chat = Chat::default();
    chat.apply(received(7, "hi"));
    chat.apply(ChatEvent::AttemptFailed {
        update_id: turn(7),
        step: TurnStep::Generate,
        attempt: 1,
        class: FailureClass::Retryable,
        error: "HTTP 500".into(),
        retry_at: Some(retry_at),
    });
    assert_eq!(chat.next_turn().unwrap().retry_at, Some(retry_at));
    chat.apply(generated(7, "hello", "resp_1"));
    assert_eq!(chat.next_turn().unwrap().retry_at, None);
}

#[test]
fn a_generate_failure_after_the_response_is_refused() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi"), generated(7, "hello", "resp_1")])
        .when(ChatCommand::RecordAttemptFailure {
            update_id: turn(7),
            step: TurnStep::Generate,
            class: FailureClass::Retryable,
            error: "late".into(),
            retry_at: None,
        })
        .then_expect_error(ChatError::AlreadyResponded(turn(7)));
}

#[test]
fn a_chat_cannot_change_bots() {
    let mut other = incoming(8, "hi");
    other.bot_id = BotId(uuid::Uuid::from_u128(2));
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::ReceiveMessage(other))
        .then_expect_error(ChatError::OtherBot);
}

#[test]
fn the_state_follows_turns_in_order_and_keeps_the_conversation() {
    let mut chat = Chat::default();
    for event in [
        received(7, "first"),
        received(8, "second"),
        generated(7, "answer one", "resp_1"),
        ChatEvent::ResponseSent {
            update_id: turn(7),
            telegram_message_ids: vec![1],
        },
    ] {
        chat.apply(event);
    }
    assert_eq!(chat.next_turn().unwrap().update_id, turn(8));
    assert_eq!(
        chat.conversation.previous_response_id.as_deref(),
        Some("resp_1")
    );
    assert_eq!(
        chat.conversation.history,
        [(
            PersonalText::plain("first"),
            PersonalText::plain("answer one")
        )]
    );
    chat.apply(ChatEvent::ConversationReset { update_id: turn(8) });
    assert_eq!(chat.conversation, Conversation::default());
}

#[test]
fn the_history_window_is_bounded() {
    let mut chat = Chat::default();
    for n in 0..(HISTORY_WINDOW as i64 + 5) {
        chat.apply(received(n, &format!("q{n}")));
        chat.apply(generated(n, &format!("a{n}"), &format!("resp_{n}")));
    }
    assert_eq!(chat.conversation.history.len(), HISTORY_WINDOW);
    assert_eq!(
        chat.conversation.history.front().unwrap().0,
        PersonalText::plain("q5")
    );
}

fn failed(update_id: i64) -> ChatEvent {
    ChatEvent::TurnFailed {
        update_id: turn(update_id),
        step: TurnStep::Send,
        class: FailureClass::Terminal,
        error: "Forbidden: bot was blocked by the user".into(),
    }
}

#[test]
fn a_blocking_failure_blocks_the_chat_until_its_user_writes_again() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi"), generated(7, "hello", "resp_1")])
        .when(ChatCommand::FailTurn {
            update_id: turn(7),
            step: TurnStep::Send,
            class: FailureClass::Terminal,
            error: "Forbidden: bot was blocked by the user".into(),
            blocks_chat: true,
        })
        .then_expect_events(vec![
            failed(7),
            ChatEvent::ChatBlocked {
                update_id: turn(7),
                reason: "Forbidden: bot was blocked by the user".into(),
            },
        ]);
    let mut chat = Chat::default();
    chat.apply(received(7, "hi"));
    chat.apply(failed(7));
    chat.apply(ChatEvent::ChatBlocked {
        update_id: turn(7),
        reason: "blocked".into(),
    });
    assert!(chat.blocked);
    chat.apply(received(8, "hello again"));
    assert!(!chat.blocked);
}

#[test]
fn only_a_failed_turn_can_be_retried_and_it_reopens() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::RetryTurn { update_id: turn(7) })
        .then_expect_error(ChatError::NotFailed(turn(7)));
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi"), failed(7)])
        .when(ChatCommand::RetryTurn { update_id: turn(7) })
        .then_expect_events(vec![ChatEvent::TurnRetried { update_id: turn(7) }]);
    let mut chat = Chat::default();
    for event in [
        received(7, "hi"),
        failed(7),
        ChatEvent::TurnRetried { update_id: turn(7) },
    ] {
        chat.apply(event);
    }
    assert_eq!(chat.next_turn().unwrap().update_id, turn(7));
    assert!(chat.failed_turns.is_empty());
}

#[test]
fn a_callback_query_is_accepted_once_and_answered() {
    let callback = crate::chat::IncomingCallback {
        bot_id: bot(),
        update_id: UpdateId(9),
        query_id: "q1".into(),
        data: Some("refresh".into()),
        chat: incoming(9, "").chat,
        from: None,
    };
    let event = ChatEvent::CallbackQueryReceived {
        bot_id: bot(),
        update_id: UpdateId(9),
        query_id: "q1".into(),
        data: Some("refresh".into()),
        chat: incoming(9, "").chat,
        from: None,
    };
    ChatTest::with(ChatServices)
        .given_no_previous_events()
        .when(ChatCommand::ReceiveCallback(callback.clone()))
        .then_expect_events(vec![event.clone()]);
    ChatTest::with(ChatServices)
        .given(vec![event.clone()])
        .when(ChatCommand::ReceiveCallback(callback))
        .then_expect_events(vec![]);
    ChatTest::with(ChatServices)
        .given(vec![event])
        .when(ChatCommand::RecordCallbackAnswered {
            update_id: turn(9),
            text: "Started afresh.".into(),
            reset_conversation: true,
        })
        .then_expect_events(vec![
            ChatEvent::ConversationReset { update_id: turn(9) },
            ChatEvent::CallbackAnswered {
                update_id: turn(9),
                text: "Started afresh.".into(),
            },
        ]);
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::RecordCallbackAnswered {
            update_id: turn(7),
            text: "x".into(),
            reset_conversation: false,
        })
        .then_expect_error(ChatError::NotACallback(turn(7)));
}

#[test]
fn an_edit_is_recorded_once_and_opens_no_turn() {
    let edit = ChatCommand::RecordEdit {
        update_id: UpdateId(8),
        message_id: 70,
        text: PersonalText::plain("hi!"),
    };
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(edit.clone())
        .then_expect_events(vec![ChatEvent::MessageEdited {
            update_id: UpdateId(8),
            message_id: 70,
            text: PersonalText::plain("hi!"),
        }]);
    ChatTest::with(ChatServices)
        .given(vec![
            received(7, "hi"),
            ChatEvent::MessageEdited {
                update_id: UpdateId(8),
                message_id: 70,
                text: PersonalText::plain("hi!"),
            },
        ])
        .when(edit)
        .then_expect_events(vec![]);
}

#[test]
fn a_migration_moves_the_chat_to_its_new_id() {
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::RecordMigration {
            to_chat_id: -10_042,
        })
        .then_expect_events(vec![ChatEvent::ChatMigrated {
            to_chat_id: -10_042,
        }]);
    let mut chat = Chat::default();
    chat.apply(received(7, "hi"));
    chat.apply(ChatEvent::ChatMigrated {
        to_chat_id: -10_042,
    });
    assert_eq!(chat.telegram_chat.unwrap().id, -10_042);
}

#[test]
fn an_admin_message_is_queued_as_a_turn_ready_to_send() {
    ChatTest::with(ChatServices)
        .given_no_previous_events()
        .when(ChatCommand::SendAdminMessage {
            text: PersonalText::plain("hello"),
            admin: "admin:1".into(),
        })
        .then_expect_error(ChatError::NotStarted);
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi")])
        .when(ChatCommand::SendAdminMessage {
            text: PersonalText::plain("hello"),
            admin: "admin:1".into(),
        })
        .then_expect_events(vec![ChatEvent::AdminMessageQueued {
            update_id: turn(-1),
            text: PersonalText::plain("hello"),
            admin: "admin:1".into(),
        }]);
    let mut chat = Chat::default();
    chat.apply(received(7, "hi"));
    chat.apply(ChatEvent::AdminMessageQueued {
        update_id: turn(-1),
        text: PersonalText::plain("hello"),
        admin: "admin:1".into(),
    });
    let turn = &chat.open_turns[1];
    assert_eq!(turn.step(), TurnStep::Send);
    assert_eq!(chat.admin_messages, 1);
}

#[test]
fn a_turn_answered_with_the_error_message_can_be_retried_and_asks_the_model_again() {
    let error_message = ChatEvent::ResponseGenerated {
        update_id: turn(7),
        response: GeneratedResponse {
            text: PersonalText::plain("Sorry, something went wrong."),
            kind: ResponseKind::ErrorMessage {
                class: FailureClass::Terminal,
                error: "the model is away".into(),
            },
        },
    };
    let sent = ChatEvent::ResponseSent {
        update_id: turn(7),
        telegram_message_ids: vec![70],
    };
    let history = vec![received(7, "hi"), error_message, sent];
    ChatTest::with(ChatServices)
        .given(history.clone())
        .when(ChatCommand::RetryTurn { update_id: turn(7) })
        .then_expect_events(vec![ChatEvent::TurnRetried { update_id: turn(7) }]);
    let mut chat = Chat::default();
    for event in history {
        chat.apply(event);
    }
    chat.apply(ChatEvent::TurnRetried { update_id: turn(7) });
    let next = chat.next_turn().expect("the turn is open again");
    assert_eq!(next.step(), TurnStep::Generate, "the model is asked again");

    // A turn answered by the model is not a failure: nothing to retry.
    ChatTest::with(ChatServices)
        .given(vec![
            received(8, "hi"),
            generated(8, "hello", "resp_1"),
            ChatEvent::ResponseSent {
                update_id: turn(8),
                telegram_message_ids: vec![80],
            },
        ])
        .when(ChatCommand::RetryTurn { update_id: turn(8) })
        .then_expect_error(ChatError::NotFailed(turn(8)));
}

#[test]
fn an_admin_resets_the_conversation_of_a_started_chat() {
    ChatTest::with(ChatServices)
        .given_no_previous_events()
        .when(ChatCommand::ResetConversation {
            admin: "admin:1".into(),
        })
        .then_expect_error(ChatError::NotStarted);
    ChatTest::with(ChatServices)
        .given(vec![received(7, "hi"), generated(7, "hello", "resp_1")])
        .when(ChatCommand::ResetConversation {
            admin: "admin:1".into(),
        })
        .then_expect_events(vec![ChatEvent::ConversationResetByAdmin {
            admin: "admin:1".into(),
        }]);
    let mut chat = Chat::default();
    chat.apply(received(7, "hi"));
    chat.apply(generated(7, "hello", "resp_1"));
    chat.apply(ChatEvent::ConversationResetByAdmin {
        admin: "admin:1".into(),
    });
    assert_eq!(chat.conversation, Conversation::default());
}
