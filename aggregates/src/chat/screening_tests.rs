//! Given / when / then: every refusal decision a bot's policy can make about a turn.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use crate::bot::policy::{
    BotPolicy, GroupAccess, Limits, PeopleAccess, PeriodUse, RefusalReason, Usage,
};
use crate::chat::{
    Chat, ChatCommand, ChatEvent, ChatServices, Screening, TelegramChat, TelegramUser,
};
use crate::ids::{BotId, TurnKey, UpdateId};
use crate::personal::PersonalText;

type ChatTest = TestFramework<Chat>;

const ANN: i64 = 42;
const GROUP: i64 = -100_777;

fn bot() -> BotId {
    BotId(uuid::Uuid::from_u128(1))
}

/// 2026-12-01 12:00 UTC, and `seconds` after.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn chat(id: i64) -> TelegramChat {
    TelegramChat {
        id,
        kind: if id < 0 { "supergroup" } else { "private" }.into(),
        title: None,
        username: None,
    }
}

/// Ann's message `update_id`, sent `second` seconds after noon, in `chat_id`.
fn message_in(chat_id: i64, update_id: i64, second: i64) -> ChatEvent {
    ChatEvent::MessageReceived {
        bot_id: bot(),
        update_id: UpdateId(update_id),
        message_id: update_id,
        chat: chat(chat_id),
        from: Some(TelegramUser {
            id: ANN,
            is_bot: false,
            first_name: PersonalText::plain("Ann"),
            last_name: None,
            username: Some(PersonalText::plain("ann_w")),
            language_code: Some("ru".into()),
        }),
        text: PersonalText::plain("hi"),
        sent_at: at(second),
        media: None,
        files: Vec::new(),
    }
}

fn message(update_id: i64, second: i64) -> ChatEvent {
    message_in(ANN, update_id, second)
}

fn screen(update_id: i64, policy: BotPolicy, usage: Usage, now: DateTime<Utc>) -> ChatCommand {
    ChatCommand::ScreenTurn {
        update_id: TurnKey::Update(UpdateId(update_id)),
        screening: Screening {
            policy: Arc::new(policy),
            username: Some("ann_w".into()),
            asks_model: true,
            usage,
            now,
        },
    }
}

fn refused(
    update_id: i64,
    reason: RefusalReason,
    resets_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    notified: bool,
) -> ChatEvent {
    ChatEvent::TurnRefused {
        update_id: TurnKey::Update(UpdateId(update_id)),
        bot_id: bot(),
        person: Some(ANN),
        telegram_chat_id: ANN,
        reason,
        resets_at,
        at: now,
        notified,
        leave_chat: false,
    }
}

fn allow_list(ids: &[i64], usernames: &[&str]) -> BotPolicy {
    let mut policy = BotPolicy::default();
    policy.access.people = PeopleAccess::AllowList;
    policy.access.allowed_user_ids = ids.iter().copied().collect();
    policy.access.allowed_usernames = usernames.iter().map(|u| u.to_string()).collect();
    policy
}

fn daily_messages(limit: u32) -> BotPolicy {
    let mut policy = BotPolicy::default();
    policy.budgets.per_person = Limits {
        messages_per_day: Some(limit),
        ..Limits::default()
    };
    policy
}

fn used_today(messages: i64) -> Usage {
    Usage {
        person_day: PeriodUse {
            messages,
            ..PeriodUse::default()
        },
        person_month: PeriodUse {
            messages,
            ..PeriodUse::default()
        },
        bot_month_cost_micro_usd: 0,
    }
}

fn midnight_after(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(
        &(now.date_naive() + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap(),
    )
}

#[test]
fn a_stranger_to_an_allow_listed_bot_is_refused_and_told() {
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(
            1,
            allow_list(&[7], &["bob_b"]),
            Usage::default(),
            at(1),
        ))
        .then_expect_events(vec![refused(
            1,
            RefusalReason::NotAllowed,
            None,
            at(1),
            true,
        )]);
}

#[test]
fn a_refused_person_is_told_once_a_day_per_chat() {
    let told = refused(1, RefusalReason::NotAllowed, None, at(1), true);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0), told.clone(), message(2, 60)])
        .when(screen(2, allow_list(&[7], &[]), Usage::default(), at(61)))
        .then_expect_events(vec![refused(
            2,
            RefusalReason::NotAllowed,
            None,
            at(61),
            false,
        )]);
    let a_day_later = at(1) + Duration::days(1);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0), told, message(2, 86_401)])
        .when(screen(
            2,
            allow_list(&[7], &[]),
            Usage::default(),
            a_day_later,
        ))
        .then_expect_events(vec![refused(
            2,
            RefusalReason::NotAllowed,
            None,
            a_day_later,
            true,
        )]);
}

#[test]
fn an_allowed_id_or_username_passes() {
    for policy in [allow_list(&[ANN], &[]), allow_list(&[], &["ann_w"])] {
        ChatTest::with(ChatServices)
            .given(vec![message(1, 0)])
            .when(screen(1, policy, Usage::default(), at(1)))
            .then_expect_events(vec![]);
    }
}

#[test]
fn the_bots_admins_pass_every_list_and_limit() {
    let mut policy = allow_list(&[], &[]);
    policy.access.admins.insert(ANN);
    policy.access.groups = GroupAccess::None;
    policy.budgets = daily_messages(1).budgets;
    policy.budgets.bot_cost_per_month_micro_usd = Some(0);
    ChatTest::with(ChatServices)
        .given(vec![message_in(GROUP, 1, 0)])
        .when(screen(1, policy, used_today(50), at(1)))
        .then_expect_events(vec![]);
}

#[test]
fn a_group_not_in_the_list_is_refused_once_and_left_when_the_bot_should_leave() {
    let mut policy = BotPolicy::default();
    policy.access.groups = GroupAccess::AllowList;
    policy.access.allowed_group_ids.insert(-100_001);
    policy.access.leave_refused_groups = true;
    let first = ChatEvent::TurnRefused {
        update_id: TurnKey::Update(UpdateId(1)),
        bot_id: bot(),
        person: Some(ANN),
        telegram_chat_id: GROUP,
        reason: RefusalReason::GroupNotAllowed,
        resets_at: None,
        at: at(1),
        notified: true,
        leave_chat: true,
    };
    ChatTest::with(ChatServices)
        .given(vec![message_in(GROUP, 1, 0)])
        .when(screen(1, policy.clone(), Usage::default(), at(1)))
        .then_expect_events(vec![first.clone()]);
    // Said once: a year later the group hears nothing more (and the bot leaves again).
    let later = at(1) + Duration::days(365);
    ChatTest::with(ChatServices)
        .given(vec![
            message_in(GROUP, 1, 0),
            first,
            message_in(GROUP, 2, 100),
        ])
        .when(screen(2, policy, Usage::default(), later))
        .then_expect_events(vec![ChatEvent::TurnRefused {
            update_id: TurnKey::Update(UpdateId(2)),
            bot_id: bot(),
            person: Some(ANN),
            telegram_chat_id: GROUP,
            reason: RefusalReason::GroupNotAllowed,
            resets_at: None,
            at: later,
            notified: false,
            leave_chat: true,
        }]);
}

#[test]
fn groups_none_refuses_every_group_but_not_private_chats() {
    let mut policy = BotPolicy::default();
    policy.access.groups = GroupAccess::None;
    ChatTest::with(ChatServices)
        .given(vec![message_in(GROUP, 1, 0)])
        .when(screen(1, policy.clone(), Usage::default(), at(1)))
        .then_expect_events(vec![ChatEvent::TurnRefused {
            update_id: TurnKey::Update(UpdateId(1)),
            bot_id: bot(),
            person: Some(ANN),
            telegram_chat_id: GROUP,
            reason: RefusalReason::GroupNotAllowed,
            resets_at: None,
            at: at(1),
            notified: true,
            leave_chat: false,
        }]);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, policy, Usage::default(), at(1)))
        .then_expect_events(vec![]);
}

#[test]
fn at_the_daily_limit_a_turn_is_refused_until_midnight_utc() {
    let now = at(1);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, daily_messages(3), used_today(3), now))
        .then_expect_events(vec![refused(
            1,
            RefusalReason::DailyLimit,
            Some(midnight_after(now)),
            now,
            true,
        )]);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, daily_messages(3), used_today(2), now))
        .then_expect_events(vec![]);
}

#[test]
fn a_grant_lifts_the_limit_by_what_was_granted() {
    let mut usage = used_today(3);
    usage.person_day.granted_messages = 1;
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, daily_messages(3), usage, at(1)))
        .then_expect_events(vec![]);
    usage.person_day.messages = 4;
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, daily_messages(3), usage, at(1)))
        .then_expect_events(vec![refused(
            1,
            RefusalReason::DailyLimit,
            Some(midnight_after(at(1))),
            at(1),
            true,
        )]);
}

#[test]
fn at_the_monthly_cost_limit_a_turn_is_refused_until_the_first_of_next_month() {
    let mut policy = BotPolicy::default();
    policy.budgets.per_person.cost_per_month_micro_usd = Some(1_000_000);
    let mut usage = Usage::default();
    usage.person_month.cost_micro_usd = 1_000_000;
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, policy, usage, at(1)))
        .then_expect_events(vec![refused(
            1,
            RefusalReason::MonthlyLimit,
            Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()),
            at(1),
            true,
        )]);
}

#[test]
fn a_persons_override_replaces_the_bots_default_limits() {
    let mut policy = daily_messages(1);
    policy.budgets.overrides.insert(
        ANN,
        Limits {
            messages_per_day: Some(10),
            ..Limits::default()
        },
    );
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, policy, used_today(5), at(1)))
        .then_expect_events(vec![]);
}

#[test]
fn the_bots_monthly_cap_stops_everyone() {
    let mut policy = BotPolicy::default();
    policy.budgets.bot_cost_per_month_micro_usd = Some(5_000_000);
    let usage = Usage {
        bot_month_cost_micro_usd: 5_000_000,
        ..Usage::default()
    };
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(1, policy, usage, at(1)))
        .then_expect_events(vec![refused(
            1,
            RefusalReason::BotMonthlyCap,
            Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()),
            at(1),
            true,
        )]);
}

#[test]
fn budgets_do_not_apply_to_a_turn_that_does_not_ask_the_model_but_access_does() {
    let command = |policy: BotPolicy| match screen(1, policy, used_today(99), at(1)) {
        ChatCommand::ScreenTurn {
            update_id,
            mut screening,
        } => {
            screening.asks_model = false;
            ChatCommand::ScreenTurn {
                update_id,
                screening,
            }
        }
        _ => unreachable!(),
    };
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(command(daily_messages(1)))
        .then_expect_events(vec![]);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(command(allow_list(&[7], &[])))
        .then_expect_events(vec![refused(
            1,
            RefusalReason::NotAllowed,
            None,
            at(1),
            true,
        )]);
}

fn per_minute(limit: u32) -> BotPolicy {
    let mut policy = BotPolicy::default();
    policy.budgets.messages_per_minute = Some(limit);
    policy
}

#[test]
fn a_person_over_the_rate_is_told_to_slow_down_once() {
    // Three messages within twenty seconds, two a minute allowed: the third is too fast.
    let given = vec![message(1, 0), message(2, 10), message(3, 20)];
    ChatTest::with(ChatServices)
        .given(given.clone())
        .when(screen(3, per_minute(2), Usage::default(), at(21)))
        .then_expect_events(vec![refused(3, RefusalReason::TooFast, None, at(21), true)]);
    // The second is not: only one came before it.
    ChatTest::with(ChatServices)
        .given(given.clone())
        .when(screen(2, per_minute(2), Usage::default(), at(21)))
        .then_expect_events(vec![]);
    // A fourth right after is refused without another notice.
    let mut more = given;
    more.push(refused(3, RefusalReason::TooFast, None, at(21), true));
    more.push(message(4, 25));
    ChatTest::with(ChatServices)
        .given(more)
        .when(screen(4, per_minute(2), Usage::default(), at(26)))
        .then_expect_events(vec![refused(
            4,
            RefusalReason::TooFast,
            None,
            at(26),
            false,
        )]);
}

#[test]
fn the_rate_window_is_one_minute_and_refused_messages_do_not_count() {
    // Messages at 0 and 10 s; one at 61 s has only the one at 10 s within its minute.
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0), message(2, 10), message(3, 61)])
        .when(screen(3, per_minute(2), Usage::default(), at(62)))
        .then_expect_events(vec![]);
    // The second was refused, so the third has only the first before it.
    ChatTest::with(ChatServices)
        .given(vec![
            message(1, 0),
            message(2, 10),
            refused(2, RefusalReason::TooFast, None, at(11), true),
            message(3, 20),
        ])
        .when(screen(3, per_minute(2), Usage::default(), at(21)))
        .then_expect_events(vec![]);
}

#[test]
fn a_refused_turn_is_screened_once_and_an_unknown_one_is_an_error() {
    ChatTest::with(ChatServices)
        .given(vec![
            message(1, 0),
            refused(1, RefusalReason::NotAllowed, None, at(1), true),
        ])
        .when(screen(1, allow_list(&[7], &[]), Usage::default(), at(2)))
        .then_expect_events(vec![]);
    ChatTest::with(ChatServices)
        .given(vec![message(1, 0)])
        .when(screen(9, allow_list(&[7], &[]), Usage::default(), at(2)))
        .then_expect_error(crate::chat::ChatError::NoOpenTurn(TurnKey::Update(
            UpdateId(9),
        )));
}

#[test]
fn a_silent_refusal_closes_the_turn_and_a_told_one_waits_for_its_notice() {
    let silent = refused(2, RefusalReason::NotAllowed, None, at(61), false);
    let told = refused(1, RefusalReason::NotAllowed, None, at(1), true);
    let mut chat = Chat::default();
    for event in [message(1, 0), told, message(2, 60), silent] {
        cqrs_es::Aggregate::apply(&mut chat, event);
    }
    let open: Vec<_> = chat.open_turns.iter().map(|t| t.update_id).collect();
    assert_eq!(open, [TurnKey::Update(UpdateId(1))]);
    assert!(chat.open_turns[0].refusal.is_some_and(|r| r.notified));
    assert!(chat.failed_turns.is_empty(), "a refusal is no failure");
}

#[test]
fn the_bot_records_leaving_a_group_once_until_someone_writes_there_again() {
    // The turn is still open: it was refused without a notice (here: never screened).
    let left = ChatEvent::ChatLeft {
        update_id: TurnKey::Update(UpdateId(1)),
        ends_turn: true,
    };
    ChatTest::with(ChatServices)
        .given(vec![message_in(GROUP, 1, 0)])
        .when(ChatCommand::RecordLeft {
            update_id: TurnKey::Update(UpdateId(1)),
        })
        .then_expect_events(vec![left.clone()]);
    ChatTest::with(ChatServices)
        .given(vec![message_in(GROUP, 1, 0), left.clone()])
        .when(ChatCommand::RecordLeft {
            update_id: TurnKey::Update(UpdateId(1)),
        })
        .then_expect_events(vec![]);
    ChatTest::with(ChatServices)
        .given(vec![message_in(GROUP, 1, 0), left, message_in(GROUP, 2, 9)])
        .when(ChatCommand::RecordLeft {
            update_id: TurnKey::Update(UpdateId(1)),
        })
        .then_expect_events(vec![ChatEvent::ChatLeft {
            update_id: TurnKey::Update(UpdateId(1)),
            ends_turn: false,
        }]);
}
