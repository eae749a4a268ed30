//! The LLM writes Markdown; Telegram renders a small HTML subset. The Markdown is parsed as
//! CommonMark (pulldown-cmark, with strikethrough) and rendered to that subset: bold, italic,
//! strikethrough, inline code, code blocks (with their language), links (http, https and tg
//! only), block quotes; headings become bold lines, list items get a bullet or their number,
//! and everything else is text with `<`, `>`, `&` and `"` escaped.
//!
//! A long answer becomes several messages of at most `limit` visible characters each (what
//! Telegram counts, after its own parsing of the HTML). Messages are cut between the blocks
//! of the document (paragraphs, lists, code blocks), and a block longer than a message is cut
//! at a line, sentence or word boundary of its text ([`super::split`]), with every open tag
//! closed at the cut and opened again in the next message: no tag is ever cut in two.
//!
//! Each message also carries a plain form, for when Telegram still refuses the HTML ("can't
//! parse entities"): the Markdown source of its blocks, or the visible text of a cut block.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::split::split_message;

/// One message of a rendered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPart {
    /// Telegram HTML (`parse_mode = HTML`), every tag closed.
    pub html: String,
    /// What to send instead when Telegram refuses the HTML.
    pub plain: String,
}

/// Renders `markdown` as one Telegram HTML text (no length limit).
pub fn to_telegram_html(markdown: &str) -> String {
    render_parts(markdown, usize::MAX)
        .into_iter()
        .map(|part| part.html)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Renders `markdown` as messages of at most `limit` visible characters each.
pub fn render_parts(markdown: &str, limit: usize) -> Vec<RenderedPart> {
    assert!(limit > 0, "a message limit is positive");
    let blocks = blocks(markdown);
    let mut parts = Vec::new();
    let mut current = PartBuilder::default();
    for block in blocks {
        let length = block.visible_len();
        let separator = if current.is_empty() {
            0
        } else {
            BLOCK_SEPARATOR.len()
        };
        if current.visible + separator + length <= limit {
            current.push_block(&block, &markdown[block.source.clone()]);
            continue;
        }
        if !current.is_empty() {
            parts.push(current.finish());
            current = PartBuilder::default();
        }
        if length <= limit {
            current.push_block(&block, &markdown[block.source.clone()]);
        } else {
            // One block longer than a message: cut its text, closing and reopening tags.
            let mut pieces = cut_block(&block, limit);
            let last = pieces.pop().expect("a block cuts into at least one piece");
            parts.extend(pieces);
            current.push_piece(last);
        }
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current.finish());
    }
    parts
}

/// Between two blocks of one message: an empty line.
const BLOCK_SEPARATOR: &str = "\n\n";

/// What rendering a document yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An element opens: its opening tag, and the tag that closes it.
    Open { open: String, close: &'static str },
    /// The innermost open element closes.
    Close,
    /// Text the reader sees.
    Text(String),
}

/// A top-level block of the document, rendered, with where it stands in the source.
#[derive(Debug)]
struct Block {
    tokens: Vec<Token>,
    source: Range<usize>,
}

impl Block {
    fn visible_len(&self) -> usize {
        self.tokens
            .iter()
            .map(|t| match t {
                Token::Text(text) => text.chars().count(),
                _ => 0,
            })
            .sum()
    }

    fn visible(&self) -> String {
        self.tokens
            .iter()
            .filter_map(|t| match t {
                Token::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[derive(Default)]
struct PartBuilder {
    html: String,
    plain: String,
    visible: usize,
}

impl PartBuilder {
    fn is_empty(&self) -> bool {
        self.html.is_empty() && self.plain.is_empty()
    }

    fn push_block(&mut self, block: &Block, source: &str) {
        if !self.is_empty() {
            self.html.push_str(BLOCK_SEPARATOR);
            self.plain.push_str(BLOCK_SEPARATOR);
            self.visible += BLOCK_SEPARATOR.len();
        }
        self.html.push_str(&to_html(&block.tokens));
        self.plain.push_str(source.trim_end());
        self.visible += block.visible_len();
    }

    fn push_piece(&mut self, piece: RenderedPart) {
        self.visible += piece.plain.chars().count();
        self.html = piece.html;
        self.plain = piece.plain;
    }

    fn finish(self) -> RenderedPart {
        RenderedPart {
            html: self.html,
            plain: self.plain,
        }
    }
}

/// Cuts a block too long for one message into messages of at most `limit` visible
/// characters, at the boundaries [`split_message`] prefers.
fn cut_block(block: &Block, limit: usize) -> Vec<RenderedPart> {
    let visible = block.visible();
    let mut cuts = Vec::new();
    let mut offset = 0;
    for piece in split_message(&visible, limit) {
        offset += piece.chars().count();
        cuts.push(offset);
    }
    // Walk the tokens, starting a new message at each cut (in characters of visible text).
    let mut parts = Vec::new();
    let mut open: Vec<(String, &'static str)> = Vec::new();
    let mut html = String::new();
    let mut plain = String::new();
    let mut seen = 0;
    let mut next_cut = cuts.iter().copied();
    let mut cut_at = next_cut.next().unwrap_or(usize::MAX);
    for token in &block.tokens {
        match token {
            Token::Open { open: tag, close } => {
                html.push_str(tag);
                open.push((tag.clone(), close));
            }
            Token::Close => {
                if let Some((_, close)) = open.pop() {
                    html.push_str(close);
                }
            }
            Token::Text(text) => {
                let mut rest = text.as_str();
                while !rest.is_empty() {
                    let room = cut_at - seen;
                    let take = rest.char_indices().nth(room).map_or(rest.len(), |(i, _)| i);
                    let (now, later) = rest.split_at(take);
                    html.push_str(&escape(now));
                    plain.push_str(now);
                    seen += now.chars().count();
                    rest = later;
                    if seen == cut_at && (!rest.is_empty() || cuts.last() != Some(&cut_at)) {
                        // Close what is open, end the message, open it all again.
                        for (_, close) in open.iter().rev() {
                            html.push_str(close);
                        }
                        parts.push(RenderedPart {
                            html: std::mem::take(&mut html),
                            plain: std::mem::take(&mut plain),
                        });
                        for (tag, _) in &open {
                            html.push_str(tag);
                        }
                        cut_at = next_cut.next().unwrap_or(usize::MAX);
                    }
                }
            }
        }
    }
    for (_, close) in open.iter().rev() {
        html.push_str(close);
    }
    if !plain.is_empty() || parts.is_empty() {
        parts.push(RenderedPart { html, plain });
    }
    parts
}

fn to_html(tokens: &[Token]) -> String {
    let mut html = String::new();
    let mut open: Vec<&'static str> = Vec::new();
    for token in tokens {
        match token {
            Token::Open { open: tag, close } => {
                html.push_str(tag);
                open.push(close);
            }
            Token::Close => {
                if let Some(close) = open.pop() {
                    html.push_str(close);
                }
            }
            Token::Text(text) => html.push_str(&escape(text)),
        }
    }
    html
}

/// The document's top-level blocks, rendered.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut renderer = Renderer::default();
    let mut blocks = Vec::new();
    let mut start = None;
    for (event, range) in Parser::new_ext(markdown, options).into_offset_iter() {
        let top_level = renderer.depth == 0;
        if top_level && start.is_none() {
            start = Some(range.start);
        }
        renderer.event(event);
        if renderer.depth == 0 && !renderer.tokens.is_empty() {
            let tokens = std::mem::take(&mut renderer.tokens);
            // A block that shows nothing (an empty code span, a bare HTML comment…) is left out.
            let block = Block {
                tokens,
                source: start.take().unwrap_or(range.start)..range.end,
            };
            if block.visible_len() > 0 {
                blocks.push(block);
            }
            renderer.pending_break = false;
        } else if renderer.depth == 0 {
            start = None;
        }
    }
    blocks
}

/// Turns pulldown-cmark's events into tokens, one top-level block at a time.
#[derive(Default)]
struct Renderer {
    tokens: Vec<Token>,
    /// Block nesting: 0 between top-level blocks.
    depth: usize,
    /// Open lists: the next item's number, or `None` for bullets.
    lists: Vec<Option<u64>>,
    /// Open links whose tag was written (a link to another scheme shows its text only).
    links: Vec<bool>,
    /// A block inside a list item or a quote has ended: the next one starts on a new line.
    pending_break: bool,
}

/// Link schemes Telegram opens safely.
const LINK_SCHEMES: &[&str] = &["http://", "https://", "tg://"];

impl Renderer {
    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.pending_break {
            self.pending_break = false;
            self.push_text("\n");
        }
        self.push_text(text);
    }

    fn push_text(&mut self, text: &str) {
        if let Some(Token::Text(last)) = self.tokens.last_mut() {
            last.push_str(text);
        } else {
            self.tokens.push(Token::Text(text.to_owned()));
        }
    }

    fn open(&mut self, open: impl Into<String>, close: &'static str) {
        if self.pending_break {
            self.pending_break = false;
            self.push_text("\n");
        }
        self.tokens.push(Token::Open {
            open: open.into(),
            close,
        });
    }

    fn close(&mut self) {
        // An element that showed nothing is dropped whole (no `<code></code>`).
        if matches!(self.tokens.last(), Some(Token::Open { .. })) {
            self.tokens.pop();
        } else {
            self.tokens.push(Token::Close);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) => self.text(&text),
            Event::Code(code) => {
                if !code.is_empty() {
                    self.open("<code>", "</code>");
                    self.text(&code);
                    self.close();
                }
            }
            Event::InlineMath(text) | Event::DisplayMath(text) => self.text(&text),
            // Raw HTML in the Markdown is shown as written, never interpreted.
            Event::Html(html) | Event::InlineHtml(html) => self.text(&html),
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => {
                self.depth += 1;
                self.text("———");
                self.depth -= 1;
            }
            Event::FootnoteReference(name) => self.text(&format!("[{name}]")),
            Event::TaskListMarker(done) => self.text(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.depth += 1,
            Tag::Heading { .. } => {
                self.depth += 1;
                self.open("<b>", "</b>");
            }
            Tag::BlockQuote(_) => {
                self.depth += 1;
                self.open("<blockquote>", "</blockquote>");
            }
            Tag::CodeBlock(kind) => {
                self.depth += 1;
                match kind {
                    CodeBlockKind::Fenced(language) if !language.trim().is_empty() => {
                        let language = language.split_whitespace().next().unwrap_or_default();
                        self.open(
                            format!("<pre><code class=\"language-{}\">", escape(language)),
                            "</code></pre>",
                        );
                    }
                    _ => self.open("<pre>", "</pre>"),
                }
            }
            Tag::List(first) => {
                self.depth += 1;
                if !self.lists.is_empty() {
                    self.pending_break = true;
                }
                self.lists.push(first);
            }
            Tag::Item => {
                let indent = "  ".repeat(self.lists.len().saturating_sub(1));
                let marker = match self.lists.last_mut() {
                    Some(Some(number)) => {
                        let marker = format!("{number}. ");
                        *number += 1;
                        marker
                    }
                    _ => "• ".to_owned(),
                };
                self.text(&format!("{indent}{marker}"));
            }
            Tag::Emphasis => self.open("<i>", "</i>"),
            Tag::Strong => self.open("<b>", "</b>"),
            Tag::Strikethrough => self.open("<s>", "</s>"),
            Tag::Link { dest_url, .. } => {
                let safe = LINK_SCHEMES
                    .iter()
                    .any(|scheme| dest_url.to_ascii_lowercase().starts_with(scheme));
                if safe {
                    self.open(format!("<a href=\"{}\">", escape(&dest_url)), "</a>");
                }
                self.links.push(safe);
            }
            // Images and the rest show their text.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => {
                self.depth -= 1;
                if self.depth > 0 {
                    self.pending_break = true;
                }
            }
            TagEnd::Heading(_) | TagEnd::BlockQuote(_) => {
                self.close();
                self.depth -= 1;
                if self.depth > 0 {
                    self.pending_break = true;
                }
            }
            TagEnd::CodeBlock => {
                // The fence's closing line break is not part of the code.
                if let Some(Token::Text(text)) = self.tokens.last_mut() {
                    if text.ends_with('\n') {
                        text.pop();
                    }
                }
                self.close();
                self.depth -= 1;
                if self.depth > 0 {
                    self.pending_break = true;
                }
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.depth -= 1;
                self.pending_break = self.depth > 0;
            }
            TagEnd::Item => self.pending_break = true,
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.close(),
            TagEnd::Link if self.links.pop() == Some(true) => self.close(),
            _ => {}
        }
    }
}

/// Escapes text for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
#[path = "markdown_tests.rs"]
mod tests;
