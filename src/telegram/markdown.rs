//! The LLM writes Markdown; Telegram renders a small HTML subset. This converts one to the
//! other: bold, italic, strikethrough, inline code, fenced code blocks, links and headings,
//! with every other `<`, `>` and `&` escaped. Markers that are not closed stay as they are.
//! When Telegram still refuses the result ("can't parse entities"), the sender falls back to
//! plain text.

/// Converts LLM Markdown to Telegram HTML (`parse_mode = HTML`).
pub fn to_telegram_html(markdown: &str) -> String {
    let mut html = String::with_capacity(markdown.len() + 32);
    let mut lines = markdown.split_inclusive('\n').peekable();
    let mut paragraph = String::new();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            html.push_str(&inline(&paragraph));
            paragraph.clear();
            let language = info.trim();
            let mut code = String::new();
            let mut closed = false;
            for code_line in lines.by_ref() {
                if code_line.trim_start().starts_with("```") {
                    closed = true;
                    break;
                }
                code.push_str(code_line);
            }
            let code = code.strip_suffix('\n').unwrap_or(&code);
            if language.is_empty() {
                html.push_str(&format!("<pre>{}</pre>", escape(code)));
            } else {
                html.push_str(&format!(
                    "<pre><code class=\"language-{}\">{}</code></pre>",
                    escape(language),
                    escape(code)
                ));
            }
            if closed && lines.peek().is_some() {
                html.push('\n');
            }
            continue;
        }
        if let Some(heading) = heading_text(trimmed) {
            html.push_str(&inline(&paragraph));
            paragraph.clear();
            let ends_line = heading.ends_with('\n');
            html.push_str(&format!("<b>{}</b>", inline(heading.trim_end())));
            if ends_line {
                html.push('\n');
            }
            continue;
        }
        paragraph.push_str(line);
    }
    html.push_str(&inline(&paragraph));
    html
}

fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        Some(line[hashes..].trim_start())
    } else {
        None
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Inline Markdown of one block of text.
fn inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some((html, next)) = span_at(&chars, i) {
            out.push_str(&html);
            i = next;
        } else {
            out.push_str(&escape(&chars[i].to_string()));
            i += 1;
        }
    }
    out
}

fn find(chars: &[char], from: usize, marker: &[char]) -> Option<usize> {
    (from..chars.len().saturating_sub(marker.len() - 1)).find(|&j| chars[j..].starts_with(marker))
}

fn word_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

/// A Markdown span starting at `i`: its HTML and the index after it.
fn span_at(chars: &[char], i: usize) -> Option<(String, usize)> {
    let rest = &chars[i..];
    let collect = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    if rest[0] == '`' {
        let end = find(chars, i + 1, &['`'])?;
        return Some((
            format!("<code>{}</code>", escape(&collect(i + 1, end))),
            end + 1,
        ));
    }
    if rest[0] == '[' {
        let close = find(chars, i + 1, &[']', '('])?;
        let end = find(chars, close + 2, &[')'])?;
        let url = collect(close + 2, end);
        if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("tg://"))
        {
            return None;
        }
        return Some((
            format!(
                "<a href=\"{}\">{}</a>",
                escape(&url),
                inline(&collect(i + 1, close))
            ),
            end + 1,
        ));
    }
    for (marker, tag) in [("**", "b"), ("__", "b"), ("~~", "s")] {
        let marker: Vec<char> = marker.chars().collect();
        if rest.starts_with(&marker) {
            let end = find(chars, i + 2, &marker)?;
            if end == i + 2 || chars[i + 2].is_whitespace() {
                return None;
            }
            return Some((
                format!("<{tag}>{}</{tag}>", inline(&collect(i + 2, end))),
                end + 2,
            ));
        }
    }
    if rest[0] == '*' || rest[0] == '_' {
        let marker = rest[0];
        // snake_case and 2*3*4 are not emphasis.
        if word_char(i.checked_sub(1).and_then(|p| chars.get(p))) {
            return None;
        }
        let end = find(chars, i + 1, &[marker])?;
        if end == i + 1 || chars[i + 1].is_whitespace() || chars[end - 1].is_whitespace() {
            return None;
        }
        if marker == '_' && word_char(chars.get(end + 1)) {
            return None;
        }
        return Some((format!("<i>{}</i>", inline(&collect(i + 1, end))), end + 1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::to_telegram_html;

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
        assert_eq!(to_telegram_html("# Title\ntext"), "<b>Title</b>\ntext");
        assert_eq!(
            to_telegram_html("```rust\nfn main() {}\n```\nafter"),
            "<pre><code class=\"language-rust\">fn main() {}</code></pre>\nafter"
        );
    }

    #[test]
    fn plain_text_is_escaped_and_stray_markers_stay() {
        assert_eq!(to_telegram_html("1 < 2 & 3 > 2"), "1 &lt; 2 &amp; 3 &gt; 2");
        assert_eq!(
            to_telegram_html("snake_case_name and 2*3*4"),
            "snake_case_name and 2*3*4"
        );
        assert_eq!(to_telegram_html("a * b"), "a * b");
        assert_eq!(to_telegram_html("**unclosed"), "**unclosed");
        assert_eq!(
            to_telegram_html("[x](javascript:alert(1))"),
            "[x](javascript:alert(1))"
        );
    }
}
