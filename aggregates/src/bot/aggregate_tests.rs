//! Given / when / then: the Bot's rules, with a sealer that is deterministic so the expected
//! events can be written out in full.

use std::sync::Arc;

use cqrs_es::test::TestFramework;

use super::*;
use crate::bot::{
    BotMessage, BotName, BotServices, BotSettings, BotToken, Instructions, ModelName, SealedToken,
    SettingsChanges, TokenSealer,
};

use crate::ids::{BotErrorKind, BotId};

type BotTest = TestFramework<Bot>;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1";
const OTHER_TOKEN: &str = "123456789:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDzzzz";

struct ReversingSealer;

impl TokenSealer for ReversingSealer {
    fn seal(&self, token: &BotToken) -> SealedToken {
        SealedToken {
            ciphertext: token.expose().chars().rev().collect(),
            fingerprint: self.fingerprint(token),
            hint: token.hint(),
        }
    }

    fn fingerprint(&self, token: &BotToken) -> String {
        format!(
            "fp-{}",
            token.expose().len() + token.expose().bytes().map(usize::from).sum::<usize>()
        )
    }
}

fn services() -> BotServices {
    BotServices::new(Arc::new(ReversingSealer))
}

fn bot_id() -> BotId {
    BotId(uuid::Uuid::from_u128(7))
}

fn settings(name: &str) -> BotSettings {
    BotSettings {
        name: BotName::parse(name).unwrap(),
        start_message: BotMessage::parse("Hello!").unwrap(),
        error_message: BotMessage::parse("Sorry, something went wrong.").unwrap(),
        model: ModelName::parse("gpt-5-mini").unwrap(),
        instructions: Instructions::parse("Be brief.").unwrap(),
        streaming: None,
    }
}

fn sealed(token: &str) -> SealedToken {
    ReversingSealer.seal(&BotToken::parse(token).unwrap())
}

fn created() -> BotEvent {
    BotEvent::BotCreated {
        bot_id: bot_id(),
        name: "Support".into(),
        token: sealed(TOKEN),
        start_message: "Hello!".into(),
        error_message: "Sorry, something went wrong.".into(),
        model: "gpt-5-mini".into(),
        instructions: "Be brief.".into(),
    }
}

fn create_command() -> BotCommand {
    BotCommand::Create {
        bot_id: bot_id(),
        token: BotToken::parse(TOKEN).unwrap(),
        settings: settings("Support"),
    }
}

#[test]
fn creating_a_bot_records_its_settings_and_a_sealed_token() {
    BotTest::with(services())
        .given_no_previous_events()
        .when(create_command())
        .then_expect_events(vec![created()]);
}

#[test]
fn the_created_event_never_holds_the_plaintext_token() {
    let events = BotTest::with(services())
        .given_no_previous_events()
        .when(create_command())
        .inspect_result()
        .unwrap();
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains(TOKEN));
    assert!(json.contains("123456789:…saw1"));
}

#[test]
fn creating_twice_is_refused() {
    BotTest::with(services())
        .given(vec![created()])
        .when(create_command())
        .then_expect_error(BotError::AlreadyExists);
}

#[test]
fn updating_replaces_the_settings_and_keeps_the_token_when_none_is_given() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Update {
            token: None,
            settings: settings("Sales"),
        })
        .then_expect_events(vec![BotEvent::BotUpdated {
            name: "Sales".into(),
            token: None,
            start_message: "Hello!".into(),
            error_message: "Sorry, something went wrong.".into(),
            model: "gpt-5-mini".into(),
            instructions: "Be brief.".into(),
        }]);
}

#[test]
fn updating_with_a_new_token_seals_it() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Update {
            token: Some(BotToken::parse(OTHER_TOKEN).unwrap()),
            settings: settings("Support"),
        })
        .then_expect_events(vec![BotEvent::BotUpdated {
            name: "Support".into(),
            token: Some(sealed(OTHER_TOKEN)),
            start_message: "Hello!".into(),
            error_message: "Sorry, something went wrong.".into(),
            model: "gpt-5-mini".into(),
            instructions: "Be brief.".into(),
        }]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Update {
            token: Some(BotToken::parse(TOKEN).unwrap()),
            settings: settings("Support"),
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_change_keeps_every_setting_it_does_not_name() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Change {
            token: None,
            changes: SettingsChanges {
                model: Some(ModelName::parse("gpt-5").unwrap()),
                ..SettingsChanges::default()
            },
        })
        .then_expect_events(vec![BotEvent::BotUpdated {
            name: "Support".into(),
            token: None,
            start_message: "Hello!".into(),
            error_message: "Sorry, something went wrong.".into(),
            model: "gpt-5".into(),
            instructions: "Be brief.".into(),
        }]);
}

#[test]
fn a_token_alone_rotates_it_and_clears_an_invalid_token_error() {
    BotTest::with(services())
        .given(vec![
            created(),
            BotEvent::BotErrorRecorded {
                kind: BotErrorKind::TelegramInvalidToken,
                message: "Unauthorized".into(),
            },
        ])
        .when(BotCommand::Change {
            token: Some(BotToken::parse(OTHER_TOKEN).unwrap()),
            changes: SettingsChanges::default(),
        })
        .then_expect_events(vec![
            BotEvent::BotUpdated {
                name: "Support".into(),
                token: Some(sealed(OTHER_TOKEN)),
                start_message: "Hello!".into(),
                error_message: "Sorry, something went wrong.".into(),
                model: "gpt-5-mini".into(),
                instructions: "Be brief.".into(),
            },
            BotEvent::BotErrorCleared,
        ]);
}

#[test]
fn a_change_to_the_current_values_records_nothing() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Change {
            token: Some(BotToken::parse(TOKEN).unwrap()),
            changes: SettingsChanges {
                name: Some(BotName::parse("Support").unwrap()),
                ..SettingsChanges::default()
            },
        })
        .then_expect_events(vec![]);
}

#[test]
fn changing_a_deleted_bot_is_refused() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotDeleted])
        .when(BotCommand::Change {
            token: None,
            changes: SettingsChanges::default(),
        })
        .then_expect_error(BotError::Deleted("updated"));
}

#[test]
fn updating_an_unknown_bot_is_not_found() {
    BotTest::with(services())
        .given_no_previous_events()
        .when(BotCommand::Update {
            token: None,
            settings: settings("Sales"),
        })
        .then_expect_error(BotError::NotFound);
}

#[test]
fn updating_a_deleted_bot_is_refused() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotDeleted])
        .when(BotCommand::Update {
            token: None,
            settings: settings("Sales"),
        })
        .then_expect_error(BotError::Deleted("updated"));
}

#[test]
fn enabling_a_disabled_bot_enables_it() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Enable)
        .then_expect_events(vec![BotEvent::BotEnabled]);
}

#[test]
fn enabling_an_enabled_bot_is_a_no_op() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotEnabled])
        .when(BotCommand::Enable)
        .then_expect_events(vec![]);
}

#[test]
fn enabling_a_deleted_bot_is_refused() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotEnabled, BotEvent::BotDeleted])
        .when(BotCommand::Enable)
        .then_expect_error(BotError::Deleted("enabled"));
}

#[test]
fn enabling_an_unknown_bot_is_not_found() {
    BotTest::with(services())
        .given_no_previous_events()
        .when(BotCommand::Enable)
        .then_expect_error(BotError::NotFound);
}

#[test]
fn disabling_an_enabled_bot_disables_it() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotEnabled])
        .when(BotCommand::Disable)
        .then_expect_events(vec![BotEvent::BotDisabled]);
}

#[test]
fn disabling_a_disabled_bot_is_a_no_op() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::Disable)
        .then_expect_events(vec![]);
}

#[test]
fn disabling_a_deleted_bot_is_refused() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotDeleted])
        .when(BotCommand::Disable)
        .then_expect_error(BotError::Deleted("disabled"));
}

#[test]
fn deleting_a_bot_deletes_it_even_while_enabled() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotEnabled])
        .when(BotCommand::Delete)
        .then_expect_events(vec![BotEvent::BotDeleted]);
}

#[test]
fn deleting_twice_is_refused() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotDeleted])
        .when(BotCommand::Delete)
        .then_expect_error(BotError::Deleted("deleted"));
}

#[test]
fn deleting_an_unknown_bot_is_not_found() {
    BotTest::with(services())
        .given_no_previous_events()
        .when(BotCommand::Delete)
        .then_expect_error(BotError::NotFound);
}

#[test]
fn replaying_the_events_rebuilds_the_state() {
    let mut bot = Bot::default();
    for event in [created(), BotEvent::BotEnabled] {
        cqrs_es::Aggregate::apply(&mut bot, event);
    }
    assert_eq!(bot.lifecycle, BotLifecycle::Enabled);
    assert_eq!(bot.id, Some(bot_id()));
    assert_eq!(bot.token.unwrap().hint, "123456789:…saw1");
}

#[test]
fn a_webhook_is_recorded_only_for_an_enabled_bot() {
    let set = BotCommand::RecordWebhookSet {
        url: "https://bots.example/telegram/7/webhook".into(),
        allowed_updates: vec!["message".into()],
    };
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotEnabled])
        .when(set.clone())
        .then_expect_events(vec![BotEvent::WebhookSet {
            url: "https://bots.example/telegram/7/webhook".into(),
            allowed_updates: vec!["message".into()],
        }]);
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotEnabled, BotEvent::BotDisabled])
        .when(set.clone())
        .then_expect_error(BotError::NotEnabled);
    BotTest::with(services())
        .given(vec![
            created(),
            BotEvent::BotEnabled,
            BotEvent::WebhookSet {
                url: "https://bots.example/telegram/7/webhook".into(),
                allowed_updates: vec!["message".into()],
            },
        ])
        .when(set.clone())
        .then_expect_events(vec![]);
    // A webhook set by an earlier version, before the kinds were recorded, is set again.
    BotTest::with(services())
        .given(vec![
            created(),
            BotEvent::BotEnabled,
            BotEvent::WebhookSet {
                url: "https://bots.example/telegram/7/webhook".into(),
                allowed_updates: Vec::new(),
            },
        ])
        .when(set)
        .then_expect_events(vec![BotEvent::WebhookSet {
            url: "https://bots.example/telegram/7/webhook".into(),
            allowed_updates: vec!["message".into()],
        }]);
}

#[test]
fn deleting_a_webhook_that_is_not_set_records_nothing() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::RecordWebhookDeleted)
        .then_expect_events(vec![]);
    BotTest::with(services())
        .given(vec![
            created(),
            BotEvent::BotEnabled,
            BotEvent::WebhookSet {
                url: "u".into(),
                allowed_updates: Vec::new(),
            },
            BotEvent::BotDeleted,
        ])
        .when(BotCommand::RecordWebhookDeleted)
        .then_expect_events(vec![BotEvent::WebhookDeleted]);
}

#[test]
fn an_error_is_recorded_once_until_cleared() {
    let error = BotCommand::RecordError {
        kind: BotErrorKind::TelegramConflict,
        message: "terminated by other getUpdates request".into(),
    };
    let recorded = BotEvent::BotErrorRecorded {
        kind: BotErrorKind::TelegramConflict,
        message: "terminated by other getUpdates request".into(),
    };
    BotTest::with(services())
        .given(vec![created()])
        .when(error.clone())
        .then_expect_events(vec![recorded.clone()]);
    BotTest::with(services())
        .given(vec![created(), recorded.clone()])
        .when(error)
        .then_expect_events(vec![]);
    BotTest::with(services())
        .given(vec![created(), recorded.clone()])
        .when(BotCommand::ClearError {
            kind: BotErrorKind::TelegramConflict,
        })
        .then_expect_events(vec![BotEvent::BotErrorCleared]);
    BotTest::with(services())
        .given(vec![created(), recorded])
        .when(BotCommand::ClearError {
            kind: BotErrorKind::Llm,
        })
        .then_expect_events(vec![]);
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::ClearError {
            kind: BotErrorKind::Llm,
        })
        .then_expect_events(vec![]);
}

#[test]
fn a_new_token_clears_an_invalid_token_error() {
    let invalid = BotEvent::BotErrorRecorded {
        kind: BotErrorKind::TelegramInvalidToken,
        message: "Invalid bot token".into(),
    };
    BotTest::with(services())
        .given(vec![created(), invalid])
        .when(BotCommand::Update {
            token: Some(BotToken::parse(OTHER_TOKEN).unwrap()),
            settings: settings("Support"),
        })
        .then_expect_events(vec![
            BotEvent::BotUpdated {
                name: "Support".into(),
                token: Some(sealed(OTHER_TOKEN)),
                start_message: "Hello!".into(),
                error_message: "Sorry, something went wrong.".into(),
                model: "gpt-5-mini".into(),
                instructions: "Be brief.".into(),
            },
            BotEvent::BotErrorCleared,
        ]);
}

#[test]
fn the_username_is_recorded_when_it_changes() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::RecordIdentity {
            username: "support_bot".into(),
        })
        .then_expect_events(vec![BotEvent::BotIdentified {
            username: "support_bot".into(),
        }]);
    BotTest::with(services())
        .given(vec![
            created(),
            BotEvent::BotIdentified {
                username: "support_bot".into(),
            },
        ])
        .when(BotCommand::RecordIdentity {
            username: "support_bot".into(),
        })
        .then_expect_events(vec![]);
}

fn allow_ann() -> crate::bot::policy::BotPolicy {
    let mut policy = crate::bot::policy::BotPolicy::default();
    policy.access.people = crate::bot::policy::PeopleAccess::AllowList;
    policy.access.allowed_user_ids.insert(42);
    policy
}

#[test]
fn a_policy_is_set_as_a_whole_and_an_equal_one_is_no_change() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::SetPolicy {
            policy: allow_ann(),
        })
        .then_expect_events(vec![BotEvent::PolicySet {
            policy: allow_ann(),
        }]);
    BotTest::with(services())
        .given(vec![
            created(),
            BotEvent::PolicySet {
                policy: allow_ann(),
            },
        ])
        .when(BotCommand::SetPolicy {
            policy: allow_ann(),
        })
        .then_expect_events(vec![]);
}

#[test]
fn an_invalid_policy_is_refused_naming_the_field() {
    let mut policy = allow_ann();
    policy.access.allowed_usernames.insert("@ann".into());
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::SetPolicy { policy })
        .then_expect_error_message(
            "access.allowed_usernames: \"@ann\" is not a Telegram username (5 to 32 of a-z, 0-9 and _, without @)",
        );
}

fn grant(messages: u32, cost_micro_usd: i64) -> crate::bot::ExtraGrant {
    crate::bot::ExtraGrant {
        person: 42,
        period: crate::bot::policy::GrantPeriod::Day,
        period_start: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        messages,
        cost_micro_usd,
        note: "exam week".into(),
    }
}

#[test]
fn an_admin_grants_extra_use_and_an_empty_grant_is_refused() {
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::GrantExtra(grant(5, 0)))
        .then_expect_events(vec![BotEvent::ExtraGranted(grant(5, 0))]);
    BotTest::with(services())
        .given(vec![created()])
        .when(BotCommand::GrantExtra(grant(0, 0)))
        .then_expect_error_message(
            "messages: grant some messages or some cost (micro-USD), or both",
        );
    BotTest::with(services())
        .given(vec![created(), BotEvent::BotDeleted])
        .when(BotCommand::GrantExtra(grant(5, 0)))
        .then_expect_error(BotError::Deleted("granted extra use"));
}

// Streaming is a setting of its own event, so bots made before it existed (no event) keep
// answering as they did, and a new bot asked to stream says so right after it is created.
#[test]
fn a_bot_created_to_stream_records_it_after_its_creation() {
    let mut command = create_command();
    if let BotCommand::Create { settings, .. } = &mut command {
        settings.streaming = Some(true);
    }
    BotTest::with(services())
        .given_no_previous_events()
        .when(command)
        .then_expect_events(vec![created(), BotEvent::StreamingSet { on: true }]);
}

#[test]
fn streaming_changes_only_when_it_differs() {
    let change = |on| BotCommand::Change {
        token: None,
        changes: SettingsChanges {
            streaming: Some(on),
            ..SettingsChanges::default()
        },
    };
    BotTest::with(services())
        .given(vec![created(), BotEvent::StreamingSet { on: true }])
        .when(change(true))
        .then_expect_events(vec![]);
    BotTest::with(services())
        .given(vec![created(), BotEvent::StreamingSet { on: true }])
        .when(change(false))
        .then_expect_events(vec![BotEvent::StreamingSet { on: false }]);
    // Without the event a bot does not stream.
    BotTest::with(services())
        .given(vec![created()])
        .when(change(false))
        .then_expect_events(vec![]);
}

#[test]
fn a_whole_update_without_a_streaming_choice_keeps_it() {
    BotTest::with(services())
        .given(vec![created(), BotEvent::StreamingSet { on: true }])
        .when(BotCommand::Update {
            token: None,
            settings: settings("Support"),
        })
        .then_expect_events(vec![]);
}
