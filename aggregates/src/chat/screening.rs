//! Whether a turn may go ahead under its bot's policy: access for every turn; budgets and
//! the per-person rate for a turn that asks the model. The Chat decides, so that a refusal
//! is recorded with the turn (`TurnRefused`) and replays the same.

use chrono::{DateTime, Utc};

use super::aggregate::{Chat, OpenTurn, RecentMessage, RATE_WINDOW};
use super::commands::Screening;
use crate::bot::policy::{screen_access, screen_budget, Asker, Refusal, RefusalReason};
use crate::ids::TurnKey;

/// Most messages the rate remembers (a flood is refused long before this many).
const RECENT_MESSAGES_KEPT: usize = 512;

impl Chat {
    /// Why `turn` is refused, if it is.
    pub(super) fn screen(&self, turn: &OpenTurn, screening: &Screening) -> Option<Refusal> {
        let chat = self.telegram_chat.as_ref()?;
        let policy = &screening.policy;
        let asker = Asker {
            user_id: turn.from_user_id,
            username: screening.username.as_deref(),
            chat_id: chat.id,
            in_group: chat.kind != "private",
        };
        if let Some(reason) = screen_access(&policy.access, &asker) {
            return Some(Refusal {
                reason,
                resets_at: None,
            });
        }
        if !screening.asks_model {
            return None;
        }
        screen_budget(
            &policy.budgets,
            &policy.access.admins,
            turn.from_user_id,
            &screening.usage,
            self.too_fast(turn, policy.budgets.messages_per_minute),
            screening.now,
        )
    }

    /// Whether the person already sent `per_minute` messages (not refused) in this chat in
    /// the minute before this one, by the times Telegram gives.
    fn too_fast(&self, turn: &OpenTurn, per_minute: Option<u32>) -> bool {
        let (Some(limit), Some(sent_at), TurnKey::Update(this)) =
            (per_minute, turn.sent_at, turn.update_id)
        else {
            return false;
        };
        let since = sent_at - RATE_WINDOW;
        let earlier = self
            .recent_messages
            .iter()
            .filter(|m| m.from == turn.from_user_id && m.update_id < this && m.sent_at > since)
            .count();
        earlier >= limit as usize
    }

    /// Whether a notice of this kind may be sent in this chat now.
    pub(super) fn notice_due(&self, reason: RefusalReason, now: DateTime<Utc>) -> bool {
        match (self.last_notices.get(&reason), reason.notice_spacing()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(last), Some(spacing)) => now >= *last + spacing,
        }
    }

    /// Remembers a message for the rate, forgetting those out of its window.
    pub(super) fn note_recent(&mut self, message: RecentMessage) {
        self.recent_messages.push_back(message);
        let since = message.sent_at - RATE_WINDOW;
        self.recent_messages.retain(|m| m.sent_at > since);
        while self.recent_messages.len() > RECENT_MESSAGES_KEPT {
            self.recent_messages.pop_front();
        }
    }
}

#[cfg(test)]
#[path = "screening_tests.rs"]
mod tests;
