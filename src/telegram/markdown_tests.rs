//! The conversion's cases, and the property that matters: whatever the Markdown and however
//! it is cut into messages, every message is well-formed HTML of Telegram's subset within the
//! limit, and the messages' visible text is the answer's text with its Markdown marks removed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;

#[test]
fn common_markdown_becomes_telegram_html() {
    assert_eq!(
        to_telegram_html("**bold** and *it*"),
        "<b>bold</b> and <i>it</i>"
    );
    assert_eq!(to_telegram_html("use `a < b`"), "use <code>a &lt; b</code>");
    assert_eq!(
        to_telegram_html("see [docs](https://example.com/?a=1&b=2)"),
        "see <a href=\"https://example.com/?a=1&amp;b=2\">docs</a>"
    );
    assert_eq!(to_telegram_html("~~old~~ new"), "<s>old</s> new");
    assert_eq!(to_telegram_html("# Title\ntext"), "<b>Title</b>\n\ntext");
    assert_eq!(
        to_telegram_html("```rust\nfn main() {}\n```\nafter"),
        "<pre><code class=\"language-rust\">fn main() {}</code></pre>\n\nafter"
    );
    assert_eq!(to_telegram_html("- one\n- two"), "• one\n• two");
    assert_eq!(to_telegram_html("1. one\n2. two"), "1. one\n2. two");
    assert_eq!(
        to_telegram_html("> quoted"),
        "<blockquote>quoted</blockquote>"
    );
}

#[test]
fn plain_text_is_escaped_and_stray_markers_stay() {
    assert_eq!(to_telegram_html("1 < 2 & 3 > 2"), "1 &lt; 2 &amp; 3 &gt; 2");
    assert_eq!(to_telegram_html("snake_case_name"), "snake_case_name");
    assert_eq!(to_telegram_html("a * b"), "a * b");
    assert_eq!(to_telegram_html("**unclosed"), "**unclosed");
    assert_eq!(
        to_telegram_html("<img src=x onerror=alert(1)>"),
        "&lt;img src=x onerror=alert(1)&gt;"
    );
}

#[test]
fn links_to_other_schemes_show_their_text_only() {
    assert_eq!(to_telegram_html("[x](javascript:alert(1))"), "x");
    assert_eq!(
        to_telegram_html("[t](tg://user?id=1)"),
        "<a href=\"tg://user?id=1\">t</a>"
    );
}

#[test]
fn the_cases_the_hand_written_scanner_got_wrong() {
    // A bracket that is not a link stays text; the link after it is one.
    assert_eq!(
        to_telegram_html("See [docs] and [link](http://x.y) now."),
        "See [docs] and <a href=\"http://x.y\">link</a> now."
    );
    // A fence in the middle of a line is inline code; nothing is lost.
    assert_eq!(
        to_telegram_html("run ```cargo test``` then relax"),
        "run <code>cargo test</code> then relax"
    );
    // No empty elements.
    assert_eq!(to_telegram_html("a `` b"), "a `` b");
    assert!(!to_telegram_html("** **").contains("<b></b>"));
}

#[test]
fn a_long_answer_is_cut_between_blocks_and_a_long_block_keeps_its_tags_whole() {
    let paragraph = "word ".repeat(30);
    let markdown = format!("**{}**\n\n`{}`", paragraph.trim(), paragraph.trim());
    let parts = render_parts(&markdown, 100);
    assert!(parts.len() > 2, "{parts:?}");
    for part in &parts {
        assert!(visible(&part.html).chars().count() <= 100, "{part:?}");
        assert_well_formed(&part.html);
    }
    assert!(parts[0].html.starts_with("<b>") && parts[0].html.ends_with("</b>"));
    assert!(parts.last().unwrap().html.starts_with("<code>"));
    // Short answers are one message, with their Markdown as the plain fallback.
    assert_eq!(
        render_parts("**Bold** answer with `code`", 4096),
        [RenderedPart {
            html: "<b>Bold</b> answer with <code>code</code>".into(),
            plain: "**Bold** answer with `code`".into(),
        }]
    );
}

/// The text a reader sees in Telegram HTML: tags dropped, entities decoded.
fn visible(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Every tag is one Telegram knows and every tag opened is closed, in order.
fn assert_well_formed(html: &str) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("a tag ends") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name), "{html}");
        } else {
            let name = tag.split_whitespace().next().unwrap().to_owned();
            assert!(
                ["b", "i", "s", "code", "pre", "a", "blockquote"].contains(&name.as_str()),
                "{name} in {html}"
            );
            open.push(name);
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "{html}");
}

/// Random Markdown and the text it shows: words with marks around some, in paragraphs,
/// headings, lists, quotes and code blocks.
fn random_document(rng: &mut StdRng) -> (String, String) {
    const WORDS: &[&str] = &[
        "alpha",
        "beta",
        "gamma",
        "delta",
        "épsilon",
        "ζήτα",
        "émoji🙂",
        "a<b",
        "x&y",
        "\"q\"",
        "long-wordwithoutanybreaksinsideitatall",
    ];
    let mut markdown = Vec::new();
    let mut shown = Vec::new();
    for _ in 0..rng.gen_range(1..12) {
        let words: Vec<&str> = (0..rng.gen_range(1..25))
            .map(|_| *WORDS.choose(rng).unwrap())
            .collect();
        let inline: Vec<String> = words
            .iter()
            .map(|w| match rng.gen_range(0..8) {
                0 => format!("**{w}**"),
                1 => format!("*{w}*"),
                2 if !w.contains('"') => format!("`{w}`"),
                3 => format!("~~{w}~~"),
                4 => format!("[{w}](https://example.com/{})", rng.gen_range(0..100)),
                _ => w.replace('&', "&amp;").replace('<', "&lt;"),
            })
            .collect();
        let text = words.join(" ");
        match rng.gen_range(0..5) {
            0 => {
                markdown.push(format!("# {}", inline.join(" ")));
                shown.push(text);
            }
            1 => {
                let items: Vec<String> = inline
                    .chunks(3)
                    .map(|c| format!("- {}", c.join(" ")))
                    .collect();
                markdown.push(items.join("\n"));
                shown.push(
                    words
                        .chunks(3)
                        .map(|c| format!("• {}", c.join(" ")))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            2 => {
                markdown.push(format!("```\n{text}\n```"));
                shown.push(text);
            }
            3 => {
                markdown.push(format!("> {}", inline.join(" ")));
                shown.push(text);
            }
            _ => {
                markdown.push(inline.join(" "));
                shown.push(text);
            }
        }
    }
    (markdown.join("\n\n"), shown.join("\n\n"))
}

/// The text without its white space: a message may end inside a word (when the word is
/// nowhere near a boundary) or between blocks (where the blank line between them goes).
fn letters_of(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn any_answer_cut_anywhere_shows_exactly_its_text_in_well_formed_messages() {
    let seed: u64 = std::env::var("MARKDOWN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..300 {
        let (markdown, shown) = random_document(&mut rng);
        let limit = *[40usize, 64, 100, 257, 4096].choose(&mut rng).unwrap();
        let parts = render_parts(&markdown, limit);
        let mut seen = String::new();
        for part in &parts {
            let text = visible(&part.html);
            assert!(
                text.chars().count() <= limit,
                "case {case}, seed {seed} (MARKDOWN_SEED repeats it): a message over {limit}: {text:?}"
            );
            assert_well_formed(&part.html);
            seen.push_str(&text);
        }
        assert_eq!(
            letters_of(&seen),
            letters_of(&shown),
            "case {case}, seed {seed} (MARKDOWN_SEED repeats it)\n{markdown}"
        );
    }
}

#[test]
fn a_message_holds_exactly_4096_visible_characters_and_not_one_more() {
    use super::super::split::TELEGRAM_MESSAGE_LIMIT;
    // Markup does not count, only what the reader sees.
    let exactly = format!("**{}**", "ж".repeat(TELEGRAM_MESSAGE_LIMIT));
    let parts = render_parts(&exactly, TELEGRAM_MESSAGE_LIMIT);
    assert_eq!(parts.len(), 1);
    assert_eq!(
        visible(&parts[0].html).chars().count(),
        TELEGRAM_MESSAGE_LIMIT
    );
    let one_more = format!("**{}**", "ж".repeat(TELEGRAM_MESSAGE_LIMIT + 1));
    let parts = render_parts(&one_more, TELEGRAM_MESSAGE_LIMIT);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        visible(&parts[0].html).chars().count(),
        TELEGRAM_MESSAGE_LIMIT
    );
    assert_eq!(
        parts[1].html, "<b>ж</b>",
        "the bold goes on in the next message"
    );
}
