//! The Chat Completions prompt for one turn: the bot's instructions, a bounded window of the
//! conversation so far, then the new message.
//!
//! Chat Completions servers keep no conversation state, so the history travels in every
//! request; the window keeps its cost and size bounded. Kept free of async-openai types so the
//! rules can be read and tested on their own.

use super::{HistoryTurn, ImageTurn, PromptImage};

/// At most this many earlier turns are sent.
pub const MAX_HISTORY_TURNS: usize = 20;
/// At most this many characters of earlier turns (user and assistant text) are sent.
pub const MAX_HISTORY_CHARS: usize = 24_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptMessage {
    pub role: Role,
    pub content: String,
    /// A user message's images, as data URLs.
    pub images: Vec<String>,
}

impl PromptMessage {
    fn new(role: Role, content: &str) -> Self {
        Self {
            role,
            content: content.to_owned(),
            images: Vec::new(),
        }
    }
}

/// At most this many images of earlier turns are sent again, the newest (an image is
/// hundreds to thousands of tokens each time; the question is usually about the last one).
pub const MAX_HISTORY_IMAGES: usize = 2;

/// [`chat_prompt`], with each image beside the user message it came with: the turn's own,
/// and those of earlier turns still in the window, at most [`MAX_HISTORY_IMAGES`] of them.
pub fn chat_prompt_with_images(
    instructions: &str,
    history: &[HistoryTurn],
    user_text: &str,
    images: &[PromptImage],
) -> Vec<PromptMessage> {
    let mut messages = chat_prompt(instructions, history, user_text);
    let first_kept = history.len() - history_window(history).len();
    let system = usize::from(messages.len() % 2 == 0);
    let mut earlier: Vec<(usize, &PromptImage)> = images
        .iter()
        .filter_map(|image| match image.turn {
            ImageTurn::History(index) if index >= first_kept && index < history.len() => {
                Some((index, image))
            }
            _ => None,
        })
        .collect();
    earlier.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
    for (index, image) in earlier.into_iter().take(MAX_HISTORY_IMAGES) {
        let message = system + 2 * (index - first_kept);
        messages[message].images.push(image.data_url.clone());
    }
    let last = messages.len() - 1;
    for image in images.iter().filter(|i| i.turn == ImageTurn::Current) {
        messages[last].images.push(image.data_url.clone());
    }
    messages
}

/// The newest turns of `history` (oldest first) within both bounds; the oldest go first.
pub fn history_window(history: &[HistoryTurn]) -> &[HistoryTurn] {
    let mut chars = 0;
    let mut kept = 0;
    for turn in history.iter().rev().take(MAX_HISTORY_TURNS) {
        chars += turn.user.chars().count() + turn.assistant.chars().count();
        if chars > MAX_HISTORY_CHARS {
            break;
        }
        kept += 1;
    }
    &history[history.len() - kept..]
}

/// The system message (when there are instructions), the history window as user/assistant
/// pairs, then `user_text`.
pub fn chat_prompt(
    instructions: &str,
    history: &[HistoryTurn],
    user_text: &str,
) -> Vec<PromptMessage> {
    let window = history_window(history);
    let mut messages = Vec::with_capacity(2 + 2 * window.len());
    if !instructions.trim().is_empty() {
        messages.push(PromptMessage::new(Role::System, instructions));
    }
    for turn in window {
        messages.push(PromptMessage::new(Role::User, &turn.user));
        messages.push(PromptMessage::new(Role::Assistant, &turn.assistant));
    }
    messages.push(PromptMessage::new(Role::User, user_text));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(n: usize) -> HistoryTurn {
        HistoryTurn {
            user: format!("q{n}"),
            assistant: format!("a{n}"),
        }
    }

    fn sized(user_chars: usize, assistant_chars: usize) -> HistoryTurn {
        HistoryTurn {
            user: "u".repeat(user_chars),
            assistant: "é".repeat(assistant_chars), // two bytes each: characters are counted
        }
    }

    #[test]
    fn system_then_history_pairs_then_the_new_message() {
        let messages = chat_prompt("Be brief.", &[turn(1), turn(2)], "hello");
        let got: Vec<(Role, &str)> = messages
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Role::System, "Be brief."),
                (Role::User, "q1"),
                (Role::Assistant, "a1"),
                (Role::User, "q2"),
                (Role::Assistant, "a2"),
                (Role::User, "hello"),
            ]
        );
    }

    #[test]
    fn no_system_message_without_instructions() {
        for instructions in ["", "  \n"] {
            let messages = chat_prompt(instructions, &[], "hello");
            assert_eq!(messages, vec![PromptMessage::new(Role::User, "hello")]);
        }
    }

    #[test]
    fn at_most_the_last_twenty_turns() {
        let history: Vec<_> = (1..=25).map(turn).collect();
        let window = history_window(&history);
        assert_eq!(window.len(), MAX_HISTORY_TURNS);
        assert_eq!(window.first(), Some(&turn(6)));
        assert_eq!(window.last(), Some(&turn(25)));

        let messages = chat_prompt("", &history, "now");
        assert_eq!(messages.len(), 2 * MAX_HISTORY_TURNS + 1);
        assert_eq!(messages[0], PromptMessage::new(Role::User, "q6"));
    }

    #[test]
    fn at_most_24000_characters_dropping_the_oldest() {
        // Three turns of 10,000 characters: only the newest two fit (20,000).
        let history = vec![
            sized(5_000, 5_000),
            sized(4_000, 6_000),
            sized(1_000, 9_000),
        ];
        let window = history_window(&history);
        assert_eq!(window, &history[1..]);

        // Exactly at the bound is kept.
        let history = vec![sized(1, 0), sized(12_000, 12_000)];
        assert_eq!(history_window(&history), &history[1..]);
        let history = vec![sized(12_000, 12_000)];
        assert_eq!(history_window(&history).len(), 1);
    }

    #[test]
    fn a_newest_turn_over_the_bound_leaves_no_history() {
        let history = vec![turn(1), sized(20_000, 4_001)];
        assert!(history_window(&history).is_empty());
        assert_eq!(chat_prompt("", &history, "hi").len(), 1);
    }

    #[test]
    fn images_go_with_their_messages_and_only_the_newest_earlier_ones() {
        let image = |turn, n: u8| PromptImage::new(turn, "image/png", &[n]);
        let history: Vec<_> = (1..=4).map(turn).collect();
        let images = [
            image(ImageTurn::History(0), 0),
            image(ImageTurn::History(2), 2),
            image(ImageTurn::History(3), 3),
            image(ImageTurn::Current, 9),
        ];
        let messages = chat_prompt_with_images("Be brief.", &history, "what is this?", &images);
        let with_images: Vec<(usize, usize)> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.images.is_empty())
            .map(|(i, m)| (i, m.images.len()))
            .collect();
        // System, then q1 a1 q2 a2 q3 a3 q4 a4, then the question: q3 is 5, q4 is 7.
        assert_eq!(with_images, vec![(5, 1), (7, 1), (9, 1)]);
        assert_eq!(messages[9].images[0], images[3].data_url);
        assert!(messages
            .iter()
            .all(|m| m.role == Role::User || m.images.is_empty()));
    }

    #[test]
    fn empty_history_is_fine() {
        assert!(history_window(&[]).is_empty());
    }
}
