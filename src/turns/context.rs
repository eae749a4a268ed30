//! How much of a conversation the model is given for a turn, under the bot's conversation
//! limits. Pure: the worker opens the chosen exchanges and builds the request.
//!
//! - After `idle_minutes` without a message, the turn starts a new conversation (announced).
//! - Where the provider keeps the conversation (Responses), a turn continues the chain while
//!   it holds at most `max_turns` exchanges and its last input stayed under
//!   `max_input_tokens`; then a new chain
//!   starts from the newest exchanges that fit half the limits, so the context stays bounded
//!   and the chain's cache stays useful for a while.
//! - Where the history travels with each request (Chat Completions), the newest exchanges
//!   that fit the limits are sent.

use std::ops::Range;

use aggregates::bot::policy::ConversationLimits;
use aggregates::chat::Conversation;
use chrono::{DateTime, TimeDelta, Utc};

/// The context chosen for one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPlan {
    /// The conversation starts afresh (idle too long): recorded, and announced to the user.
    pub new_conversation: bool,
    /// The chain to continue, if any.
    pub previous_response_id: Option<String>,
    /// Which of the conversation's exchanges are sent along.
    pub history: Range<usize>,
    /// How many earlier exchanges the model will have as context.
    pub context_turns: u32,
}

/// A rough token count for text: four characters a token, as OpenAI's rule of thumb has it.
pub fn estimated_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

/// Chooses the context for a turn of `conversation` sent at `sent_at`, whose own text and the
/// bot's instructions come to `prompt_chars`; `exchange_chars` gives each exchange's length.
pub fn plan(
    conversation: &Conversation,
    limits: &ConversationLimits,
    sent_at: Option<DateTime<Utc>>,
    keeps_conversation: bool,
    prompt_chars: usize,
    exchange_chars: impl Fn(usize) -> usize,
) -> ContextPlan {
    let exchanges = conversation.history.len();
    let idle = limits
        .idle_minutes
        .zip(conversation.last_message_at)
        .zip(sent_at)
        .is_some_and(|((minutes, last), now)| now - last >= TimeDelta::minutes(i64::from(minutes)));
    let started = conversation.previous_response_id.is_some() || exchanges > 0;
    if idle && started {
        return ContextPlan {
            new_conversation: true,
            previous_response_id: None,
            history: exchanges..exchanges,
            context_turns: 0,
        };
    }
    let token_room = |share: u64| {
        limits
            .max_input_tokens
            .map(|max| (max / share).saturating_sub(estimated_tokens(prompt_chars)))
    };
    let newest_fitting = |max_turns: Option<u32>, max_tokens: Option<u64>| {
        let mut kept = 0;
        let mut tokens = 0;
        for index in (0..exchanges).rev() {
            if max_turns.is_some_and(|max| kept >= max as usize) {
                break;
            }
            tokens += estimated_tokens(exchange_chars(index));
            if max_tokens.is_some_and(|max| tokens > max) {
                break;
            }
            kept += 1;
        }
        exchanges - kept..exchanges
    };
    if keeps_conversation {
        if let Some(previous) = &conversation.previous_response_id {
            // Continuing gives the model the chain's exchanges: allowed up to `max_turns`.
            let full = limits
                .max_turns
                .is_some_and(|max| conversation.context_turns > max)
                || limits
                    .max_input_tokens
                    .is_some_and(|max| conversation.last_input_tokens >= max);
            if !full {
                return ContextPlan {
                    new_conversation: false,
                    previous_response_id: Some(previous.clone()),
                    history: exchanges..exchanges,
                    context_turns: conversation.context_turns,
                };
            }
            let seed = newest_fitting(limits.max_turns.map(|max| max / 2), token_room(2));
            return ContextPlan {
                new_conversation: false,
                previous_response_id: None,
                context_turns: seed.len() as u32,
                history: seed,
            };
        }
    }
    let window = newest_fitting(limits.max_turns, token_room(1));
    ContextPlan {
        new_conversation: false,
        previous_response_id: None,
        context_turns: window.len() as u32,
        history: window,
    }
}

#[cfg(test)]
mod tests {
    use aggregates::personal::PersonalText;
    use chrono::TimeZone;

    use super::*;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    /// A conversation of `exchanges` exchanges, its chain `chain` long, last answered at noon.
    fn conversation(exchanges: usize, chain: Option<u32>) -> Conversation {
        Conversation {
            previous_response_id: chain.map(|_| "resp_9".to_owned()),
            history: (0..exchanges)
                .map(|i| {
                    (
                        PersonalText::plain(format!("q{i}")),
                        PersonalText::plain(format!("a{i}")),
                    )
                })
                .collect(),
            context_turns: chain.unwrap_or(exchanges as u32),
            last_input_tokens: 0,
            last_message_at: Some(noon()),
            exchanges: exchanges as u64,
            images: Default::default(),
        }
    }

    fn limits(max_turns: Option<u32>, max_input_tokens: Option<u64>) -> ConversationLimits {
        ConversationLimits {
            max_turns,
            max_input_tokens,
            idle_minutes: Some(30),
        }
    }

    /// Every exchange 400 characters: 100 tokens.
    fn hundred_tokens(_: usize) -> usize {
        400
    }

    #[test]
    fn a_chain_within_its_limits_is_continued() {
        let plan = plan(
            &conversation(10, Some(6)),
            &limits(Some(6), None),
            Some(noon() + TimeDelta::minutes(29)),
            true,
            0,
            hundred_tokens,
        );
        assert_eq!(plan.previous_response_id.as_deref(), Some("resp_9"));
        assert!(plan.history.is_empty());
        assert_eq!(plan.context_turns, 6);
        assert!(!plan.new_conversation);
    }

    #[test]
    fn a_full_chain_starts_anew_from_half_its_turns() {
        let plan = plan(
            &conversation(10, Some(7)),
            &limits(Some(6), None),
            Some(noon()),
            true,
            0,
            hundred_tokens,
        );
        assert_eq!(plan.previous_response_id, None);
        assert_eq!(plan.history, 7..10);
        assert_eq!(plan.context_turns, 3);
    }

    #[test]
    fn a_chain_whose_input_reached_the_token_limit_starts_anew_within_half_of_it() {
        let mut long = conversation(10, Some(4));
        long.last_input_tokens = 2_000;
        let plan = plan(
            &long,
            &limits(None, Some(2_000)),
            Some(noon()),
            true,
            0,
            hundred_tokens,
        );
        assert_eq!(plan.previous_response_id, None);
        // Half of 2,000 tokens holds ten exchanges of 100: all ten.
        assert_eq!(plan.history, 0..10);
        let plan = plan_tokens(&long, 1_000);
        assert_eq!(plan.history, 5..10);
    }

    fn plan_tokens(conversation: &Conversation, max: u64) -> ContextPlan {
        let mut conversation = conversation.clone();
        conversation.last_input_tokens = max;
        plan(
            &conversation,
            &limits(None, Some(max)),
            Some(noon()),
            true,
            0,
            hundred_tokens,
        )
    }

    #[test]
    fn without_provider_state_the_newest_exchanges_within_the_limits_are_sent() {
        let plan = plan(
            &conversation(10, None),
            &limits(Some(4), Some(1_000)),
            Some(noon()),
            false,
            400,
            hundred_tokens,
        );
        // Four turns allowed; 1,000 tokens less the prompt's 100 hold nine: four it is.
        assert_eq!(plan.history, 6..10);
        assert_eq!(plan.context_turns, 4);
        let plan = plan_with(&conversation(10, None), limits(None, Some(350)));
        assert_eq!(plan.history, 7..10);
        let plan = plan_with(&conversation(10, None), limits(None, None));
        assert_eq!(plan.history, 0..10);
    }

    fn plan_with(conversation: &Conversation, limits: ConversationLimits) -> ContextPlan {
        plan(
            conversation,
            &limits,
            Some(noon()),
            false,
            0,
            hundred_tokens,
        )
    }

    #[test]
    fn after_the_idle_time_the_conversation_starts_anew_and_says_so() {
        for keeps in [true, false] {
            let plan = plan(
                &conversation(10, Some(2)),
                &limits(None, None),
                Some(noon() + TimeDelta::minutes(30)),
                keeps,
                0,
                hundred_tokens,
            );
            assert!(plan.new_conversation);
            assert_eq!(plan.previous_response_id, None);
            assert!(plan.history.is_empty());
            assert_eq!(plan.context_turns, 0);
        }
    }

    #[test]
    fn a_first_message_after_a_long_silence_is_no_new_conversation() {
        let empty = Conversation {
            last_message_at: Some(noon()),
            ..Conversation::default()
        };
        let plan = plan(
            &empty,
            &limits(None, None),
            Some(noon() + TimeDelta::days(3)),
            true,
            0,
            hundred_tokens,
        );
        assert!(!plan.new_conversation);
    }
}
