//! Splitting a reply into Telegram messages of at most 4096 characters, never cutting a word
//! when a paragraph, sentence or word boundary is near.

/// Telegram's limit on one message, in characters.
pub const TELEGRAM_MESSAGE_LIMIT: usize = 4096;

/// Splits `text` into parts of at most `limit` characters whose concatenation is `text`.
/// A part ends, in order of preference, after a blank line, after a line break, after a
/// sentence's end, or after a space, as late as fits; a word longer than `limit` is cut.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    assert!(limit > 0, "a message limit is positive");
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        // The byte index just past the `limit`-th character.
        let window_end = rest
            .char_indices()
            .nth(limit)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let window = &rest[..window_end];
        let cut = best_cut(window).unwrap_or(window_end);
        parts.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

/// The byte index after the best boundary in `window`, if any lies in its second half
/// (cutting earlier would make needlessly many messages).
fn best_cut(window: &str) -> Option<usize> {
    let floor = window.len() / 2;
    let after = |pattern: &str| {
        window
            .rmatch_indices(pattern)
            .map(|(i, m)| i + m.len())
            .find(|&end| end > floor && end < window.len() + 1)
    };
    after("\n\n")
        .or_else(|| after("\n"))
        .or_else(|| {
            [". ", "! ", "? ", "… ", "。"]
                .iter()
                .filter_map(|p| after(p))
                .max()
        })
        .or_else(|| after(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split_message("hello", 4096), ["hello"]);
        assert_eq!(split_message("", 4096), [""]);
    }

    #[test]
    fn parts_fit_and_join_to_the_whole() {
        let text = "Lorem ipsum dolor sit amet. ".repeat(400) + "\n\n" + &"word ".repeat(2000);
        let parts = split_message(&text, TELEGRAM_MESSAGE_LIMIT);
        assert!(parts.len() > 1);
        assert!(parts
            .iter()
            .all(|p| p.chars().count() <= TELEGRAM_MESSAGE_LIMIT));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn paragraphs_are_preferred_then_sentences_then_words() {
        let parts = split_message("aaaa bbbb.\n\ncccc dddd. eeee", 16);
        assert_eq!(parts[0], "aaaa bbbb.\n\n");
        let parts = split_message("aaaa bbbb. cccc dddd eeee", 16);
        assert_eq!(parts[0], "aaaa bbbb. ");
        let parts = split_message("aaaa bbbb cccc dddd eeee", 16);
        assert_eq!(parts[0], "aaaa bbbb cccc ");
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_and_multibyte_text_is_safe() {
        let text = "ж".repeat(10);
        let parts = split_message(&text, 4);
        assert_eq!(parts, ["жжжж", "жжжж", "жж"]);
    }
}
