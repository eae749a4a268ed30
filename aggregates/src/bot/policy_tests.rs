//! Every refusal decision, given a policy and who writes, then what the screening says.

use super::*;

fn person(id: i64, username: Option<&str>) -> Asker<'_> {
    Asker {
        user_id: Some(id),
        username,
        chat_id: id,
        in_group: false,
    }
}

fn in_group(id: i64, group: i64) -> Asker<'static> {
    Asker {
        user_id: Some(id),
        username: None,
        chat_id: group,
        in_group: true,
    }
}

fn allow_list() -> AccessPolicy {
    AccessPolicy {
        people: PeopleAccess::AllowList,
        allowed_user_ids: BTreeSet::from([42]),
        allowed_usernames: BTreeSet::from(["ann_lee".to_owned()]),
        admins: BTreeSet::from([7]),
        ..AccessPolicy::default()
    }
}

#[test]
fn an_open_bot_serves_anyone() {
    assert_eq!(
        screen_access(&AccessPolicy::default(), &person(1, None)),
        None
    );
    assert_eq!(
        screen_access(&AccessPolicy::default(), &in_group(1, -100)),
        None
    );
}

#[test]
fn an_allow_list_lets_in_listed_ids_and_usernames_and_refuses_strangers() {
    let policy = allow_list();
    assert_eq!(screen_access(&policy, &person(42, None)), None, "by id");
    assert_eq!(
        screen_access(&policy, &person(43, Some("Ann_Lee"))),
        None,
        "by username, whatever its case"
    );
    assert_eq!(
        screen_access(&policy, &person(44, Some("stranger"))),
        Some(RefusalReason::NotAllowed)
    );
    assert_eq!(
        screen_access(
            &policy,
            &Asker {
                user_id: None,
                ..person(0, None)
            }
        ),
        Some(RefusalReason::NotAllowed),
        "nobody known"
    );
    assert_eq!(screen_access(&policy, &person(7, None)), None, "an admin");
}

#[test]
fn groups_are_served_as_the_policy_says() {
    let none = AccessPolicy {
        groups: GroupAccess::None,
        ..AccessPolicy::default()
    };
    assert_eq!(
        screen_access(&none, &in_group(1, -100)),
        Some(RefusalReason::GroupNotAllowed)
    );
    assert_eq!(
        screen_access(&none, &person(1, None)),
        None,
        "private chats still"
    );
    let listed = AccessPolicy {
        groups: GroupAccess::AllowList,
        allowed_group_ids: BTreeSet::from([-100]),
        ..AccessPolicy::default()
    };
    assert_eq!(screen_access(&listed, &in_group(1, -100)), None);
    assert_eq!(
        screen_access(&listed, &in_group(1, -200)),
        Some(RefusalReason::GroupNotAllowed)
    );
    // An allowed group does not let strangers past a people allow-list.
    let both = AccessPolicy {
        groups: GroupAccess::AllowList,
        allowed_group_ids: BTreeSet::from([-100]),
        ..allow_list()
    };
    assert_eq!(
        screen_access(&both, &in_group(99, -100)),
        Some(RefusalReason::NotAllowed)
    );
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap()
}

fn budgets() -> Budgets {
    Budgets {
        per_person: Limits {
            messages_per_day: Some(10),
            messages_per_month: Some(100),
            cost_per_day_micro_usd: Some(5_000),
            cost_per_month_micro_usd: Some(50_000),
        },
        overrides: BTreeMap::from([(
            42,
            Limits {
                messages_per_day: Some(1_000),
                ..Limits::default()
            },
        )]),
        bot_cost_per_month_micro_usd: Some(1_000_000),
        messages_per_minute: Some(5),
    }
}

fn used(day_messages: i64, day_cost: i64, month_messages: i64, month_cost: i64) -> Usage {
    Usage {
        person_day: PeriodUse {
            messages: day_messages,
            cost_micro_usd: day_cost,
            ..PeriodUse::default()
        },
        person_month: PeriodUse {
            messages: month_messages,
            cost_micro_usd: month_cost,
            ..PeriodUse::default()
        },
        bot_month_cost_micro_usd: month_cost,
    }
}

fn reason(refusal: Option<Refusal>) -> Option<RefusalReason> {
    refusal.map(|r| r.reason)
}

#[test]
fn a_person_below_every_limit_is_served() {
    let no_admins = BTreeSet::new();
    assert_eq!(
        screen_budget(
            &budgets(),
            &no_admins,
            Some(1),
            &used(9, 4_999, 99, 49_999),
            false,
            now()
        ),
        None
    );
    assert_eq!(
        screen_budget(
            &Budgets::default(),
            &no_admins,
            Some(1),
            &used(1_000, 10_000_000, 1_000, 10_000_000),
            false,
            now()
        ),
        None,
        "no limits set"
    );
}

#[test]
fn each_limit_refuses_with_when_it_lifts() {
    let no_admins = BTreeSet::new();
    let daily = screen_budget(
        &budgets(),
        &no_admins,
        Some(1),
        &used(10, 0, 10, 0),
        false,
        now(),
    )
    .unwrap();
    assert_eq!(daily.reason, RefusalReason::DailyLimit);
    assert_eq!(
        daily.resets_at,
        Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
    );
    assert_eq!(
        reason(screen_budget(
            &budgets(),
            &no_admins,
            Some(1),
            &used(0, 5_000, 0, 5_000),
            false,
            now()
        )),
        Some(RefusalReason::DailyLimit),
        "the day's cost"
    );
    let monthly = screen_budget(
        &budgets(),
        &no_admins,
        Some(1),
        &used(0, 0, 100, 0),
        false,
        now(),
    )
    .unwrap();
    assert_eq!(monthly.reason, RefusalReason::MonthlyLimit);
    assert_eq!(
        monthly.resets_at,
        Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
    );
    let mut capped = used(0, 0, 0, 0);
    capped.bot_month_cost_micro_usd = 1_000_000;
    assert_eq!(
        reason(screen_budget(
            &budgets(),
            &no_admins,
            Some(1),
            &capped,
            false,
            now()
        )),
        Some(RefusalReason::BotMonthlyCap)
    );
    assert_eq!(
        reason(screen_budget(
            &budgets(),
            &no_admins,
            Some(1),
            &used(0, 0, 0, 0),
            true,
            now()
        )),
        Some(RefusalReason::TooFast)
    );
}

#[test]
fn an_override_replaces_the_default_limits_and_a_grant_adds_to_them() {
    let no_admins = BTreeSet::new();
    assert_eq!(
        screen_budget(
            &budgets(),
            &no_admins,
            Some(42),
            &used(500, 0, 500, 0),
            false,
            now()
        ),
        None,
        "person 42's own limits"
    );
    let mut granted = used(10, 0, 10, 0);
    granted.person_day.granted_messages = 5;
    assert_eq!(
        screen_budget(&budgets(), &no_admins, Some(1), &granted, false, now()),
        None,
        "five more today"
    );
    granted.person_day.messages = 15;
    assert_eq!(
        reason(screen_budget(
            &budgets(),
            &no_admins,
            Some(1),
            &granted,
            false,
            now()
        )),
        Some(RefusalReason::DailyLimit)
    );
}

#[test]
fn the_bots_admins_are_never_limited() {
    let admins = BTreeSet::from([1]);
    let mut everything = used(1_000, 1_000_000, 1_000, 1_000_000);
    everything.bot_month_cost_micro_usd = 10_000_000;
    assert_eq!(
        screen_budget(&budgets(), &admins, Some(1), &everything, true, now()),
        None
    );
}

#[test]
fn a_policy_with_impossible_values_is_refused_naming_the_field() {
    let mut policy = BotPolicy::default();
    assert!(policy.validate().is_ok());
    policy.access.allowed_group_ids.insert(5);
    assert_eq!(
        policy.validate().unwrap_err().field,
        "access.allowed_group_ids"
    );
    let mut policy = BotPolicy::default();
    policy.access.allowed_usernames.insert("@ann".into());
    assert_eq!(
        policy.validate().unwrap_err().field,
        "access.allowed_usernames"
    );
    let mut policy = BotPolicy::default();
    policy.budgets.per_person.cost_per_day_micro_usd = Some(-1);
    assert_eq!(policy.validate().unwrap_err().field, "budgets");
    let mut policy = BotPolicy::default();
    policy.texts.by_language.insert(
        "ru".into(),
        BTreeMap::from([(TextKey::Help, "x".repeat(4097))]),
    );
    assert_eq!(
        policy.validate().unwrap_err().field,
        "texts.by_language.ru.help"
    );
    let mut policy = BotPolicy::default();
    policy.texts.default_language = "english".into();
    assert_eq!(
        policy.validate().unwrap_err().field,
        "texts.default_language"
    );
}
