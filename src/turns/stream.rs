//! An LLM answer shown while it is written, for a bot with `streaming` on: in a private chat
//! as a growing draft (`sendMessageDraft`), in a group as one preview message edited at a
//! paced rate and deleted once the answer is complete. "typing…" stays up until the first text.
//!
//! The preview is only a preview. The answer the chat records is the model's complete reply
//! (one `ResponseGenerated`, never an event per delta), and the send step delivers it as real
//! messages exactly as without streaming, so the guarantees of sending do not change:
//!
//! - a stream that breaks midway is an LLM failure like any other (retried on the backoff,
//!   the error message when attempts run out): nothing of a half answer is recorded or sent;
//! - a crash mid-stream leaves no record, so the next runner asks the model again and sends
//!   one final answer (a private chat's draft vanishes by itself; in a group the preview
//!   message of the interrupted attempt stays, marked unfinished with "…", see README);
//! - a 429 or any failure of a draft or an edit only delays or skips the preview (honouring
//!   `retry_after`), never the answer.
//!
//! A draft carries a stop button. When the person presses it (the stop reaches this process
//! through [`crate::runtime::answer_stops`]), the model's stream is dropped, which closes its
//! connection, and what it had written is the answer, recorded as stopped and sent like any.

use std::time::Duration;

use aggregates::chat::{Chat, FailureClass};
use projections::bots::BotRow;
use tokio::sync::watch;
use tokio::time::Instant;

use super::worker::TurnWorker;
use crate::llm::{LlmError, LlmReply, LlmRequest};
use crate::runtime::answer_stops::DraftKey;
use crate::telegram::drafts::{preview_text, LivePreview};

use super::group_previews;

/// At most one draft per this long in a private chat: the draft animates between calls.
pub const DRAFT_GAP: Duration = Duration::from_millis(300);

/// At least this long between two edits of a group's preview: Telegram allows about twenty
/// messages a minute in a group, and edits are where other bots earn their flood bans.
pub const GROUP_EDIT_GAP: Duration = Duration::from_secs(3);

/// A `retry_after` longer than this ends the preview (the answer still comes, in full:
/// its send waits out any flood control as every send does).
const LONGEST_PREVIEW_PAUSE: Duration = Duration::from_secs(30);

/// Where a preview goes.
enum Surface {
    Draft { draft_id: i64 },
    Group { message_id: Option<i64> },
}

/// What came of asking the model while showing its answer.
pub(super) enum LiveAnswer {
    /// The model's whole reply.
    Complete(LlmReply),
    /// The person pressed stop: what the model had written by then.
    Stopped { text: String },
}

impl TurnWorker {
    /// Asks the model for `request`'s answer, streamed into the chat when the bot streams and
    /// the chat can show it; `typing` (the indicator's task) is stopped at the first text.
    pub(super) async fn respond_live(
        &self,
        bot: &BotRow,
        chat: &Chat,
        draft_id: i64,
        request: &LlmRequest,
        typing: &Option<tokio::task::JoinHandle<()>>,
    ) -> Result<LiveAnswer, LlmError> {
        let target = chat.telegram_chat.as_ref().and_then(|telegram_chat| {
            let surface = match telegram_chat.kind.as_str() {
                "private" => Surface::Draft { draft_id },
                "group" | "supergroup" => Surface::Group { message_id: None },
                _ => return None,
            };
            Some((telegram_chat.id, surface))
        });
        let messenger = self.telegram.bot(bot.id, &bot.token_ciphertext).ok();
        let (Some((chat_id, surface)), Some(messenger), true) = (target, messenger, bot.streaming)
        else {
            return self.llm.respond(request).await.map(LiveAnswer::Complete);
        };
        let Some(calls) = messenger.live_preview() else {
            return self.llm.respond(request).await.map(LiveAnswer::Complete);
        };
        // Only a draft has a stop button; registered before the first draft can show it.
        let stop = match surface {
            Surface::Draft { draft_id } => Some(self.answer_stops.watch(DraftKey {
                bot_id: bot.id,
                chat_id,
                draft_id,
            })),
            Surface::Group { .. } => None,
        };
        let stopped = async {
            match &stop {
                Some(stop) => stop.stopped().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stopped);
        let mut preview = Preview {
            calls,
            pool: &self.pool,
            bot_id: bot.id,
            chat_id,
            surface,
            shown_chars: 0,
        };
        preview.clear_left_over().await;
        let (progress, mut written) = watch::channel(String::new());
        let answer = self.llm.respond_streaming(request, &progress);
        tokio::pin!(answer);
        // When the next preview may go; a preview in flight holds the loop, not the model:
        // the stream's events wait in their channel meanwhile.
        let mut next_at = Instant::now();
        let mut waiting = false;
        let mut open = true;
        let result = loop {
            tokio::select! {
                biased;
                result = &mut answer => break result.map(LiveAnswer::Complete),
                () = &mut stopped => {
                    let text = written.borrow().clone();
                    tracing::info!(chars = text.chars().count(), "the person stopped the answer");
                    break Ok(LiveAnswer::Stopped { text });
                }
                _ = tokio::time::sleep_until(next_at), if waiting => waiting = false,
                changed = written.changed(), if open && !waiting => {
                    if changed.is_err() {
                        open = false;
                        continue;
                    }
                    let text = written.borrow_and_update().clone();
                    if text.trim().is_empty() {
                        continue;
                    }
                    match preview.show(&text).await {
                        Shown::Next(wait) => {
                            // The text is up: "typing…" has done its job.
                            if let Some(typing) = typing {
                                typing.abort();
                            }
                            next_at = Instant::now() + wait;
                        }
                        Shown::Later(wait) => next_at = Instant::now() + wait,
                        Shown::Never => open = false,
                    }
                    waiting = true;
                }
            }
        };
        preview.finish().await;
        result
    }
}

/// When the next preview may go after one was tried.
enum Shown {
    /// It is up; the next after this pause.
    Next(Duration),
    /// It failed; try again after this pause.
    Later(Duration),
    /// No more previews for this answer.
    Never,
}

/// One answer's preview, as far as it has been shown.
struct Preview<'a> {
    calls: &'a dyn LivePreview,
    /// Where a group's preview is remembered while it is up ([`super::group_previews`]).
    pool: &'a sqlx::PgPool,
    bot_id: uuid::Uuid,
    chat_id: i64,
    surface: Surface,
    /// How much of the text the preview shows: a preview that holds all it can is not redone.
    shown_chars: usize,
}

impl Preview<'_> {
    /// Shows `text`, and says when the next preview may go.
    async fn show(&mut self, text: &str) -> Shown {
        let chars = text.chars().count();
        if self.shown_chars >= crate::telegram::drafts::PREVIEW_CHARS || chars <= self.shown_chars {
            return Shown::Next(DRAFT_GAP);
        }
        let shown = preview_text(text);
        let (outcome, gap) = match &mut self.surface {
            Surface::Draft { draft_id } => (
                self.calls.send_draft(self.chat_id, *draft_id, &shown).await,
                DRAFT_GAP,
            ),
            Surface::Group { message_id } => {
                let outcome = match *message_id {
                    Some(id) => self.calls.edit_preview(self.chat_id, id, &shown).await,
                    None => match self.calls.send_preview(self.chat_id, &shown).await {
                        Ok(id) => {
                            *message_id = Some(id);
                            let remembered =
                                group_previews::remember(self.pool, self.bot_id, self.chat_id, id)
                                    .await;
                            if let Err(e) = remembered {
                                tracing::warn!(error = %e, "a group preview could not be remembered; a crash now would leave it up");
                            }
                            Ok(())
                        }
                        Err(failure) => Err(failure),
                    },
                };
                (outcome, GROUP_EDIT_GAP)
            }
        };
        let failure = match outcome {
            Ok(()) => {
                self.shown_chars = chars;
                return Shown::Next(gap);
            }
            Err(failure) => failure,
        };
        tracing::info!(error = %failure.message, retry_after = ?failure.retry_after, "a preview of the answer failed; the answer is unaffected");
        match failure.retry_after {
            // Flood control: the preview waits as long as Telegram asks, or ends.
            Some(wait) if wait <= LONGEST_PREVIEW_PAUSE => Shown::Later(wait.max(gap)),
            Some(_) => Shown::Never,
            // A passing failure skips one preview; a refusal (no drafts on this server, a
            // chat that takes none) ends them for this answer.
            None if failure.class == FailureClass::Retryable => Shown::Later(gap),
            None => Shown::Never,
        }
    }

    /// Clears what the preview left in the chat before the answer is recorded: a group's
    /// preview message is deleted (a draft goes by itself when the answer is sent).
    async fn finish(&self) {
        if let Surface::Group {
            message_id: Some(id),
        } = self.surface
        {
            self.delete(id).await;
        }
    }

    /// Deletes the previews an attempt that died mid-stream left in this group.
    async fn clear_left_over(&self) {
        if !matches!(self.surface, Surface::Group { .. }) {
            return;
        }
        match group_previews::left_over(self.pool, self.bot_id, self.chat_id).await {
            Ok(ids) => {
                for id in ids {
                    self.delete(id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the group's left-over previews"),
        }
    }

    /// Deletes preview `id`, and forgets it once it is gone or cannot go (a transient failure
    /// keeps it remembered, for the next attempt in this chat).
    async fn delete(&self, id: i64) {
        let mut gone = false;
        for _ in 0..2 {
            match self.calls.delete_preview(self.chat_id, id).await {
                Ok(()) => {
                    gone = true;
                    break;
                }
                Err(failure) => {
                    tracing::info!(error = %failure.message, "the answer's preview could not be deleted");
                    gone =
                        failure.class != FailureClass::Retryable && failure.retry_after.is_none();
                    match failure.retry_after {
                        Some(wait) if wait <= LONGEST_PREVIEW_PAUSE => {
                            tokio::time::sleep(wait).await;
                        }
                        _ => break,
                    }
                }
            }
        }
        if gone {
            if let Err(e) = group_previews::forget(self.pool, self.bot_id, self.chat_id, id).await {
                tracing::warn!(error = %e, "a deleted group preview could not be forgotten");
            }
        }
    }
}

/// The draft id of a turn's answer: stable for the turn, never 0.
pub(super) fn draft_id(turn: aggregates::ids::TurnKey) -> i64 {
    (turn.stored().rem_euclid(i64::from(i32::MAX - 1))) + 1
}

#[cfg(test)]
mod tests {
    use aggregates::ids::{TurnKey, UpdateId};

    use super::draft_id;

    #[test]
    fn a_turns_draft_id_is_stable_and_never_zero() {
        for turn in [
            TurnKey::Update(UpdateId(0)),
            TurnKey::Update(UpdateId(i64::MAX)),
            TurnKey::Update(UpdateId(i64::from(i32::MAX) - 2)),
            TurnKey::AdminMessage(7),
        ] {
            assert_ne!(draft_id(turn), 0, "{turn:?}");
            assert!(draft_id(turn) <= i64::from(i32::MAX), "{turn:?}");
            assert_eq!(draft_id(turn), draft_id(turn));
        }
    }
}
