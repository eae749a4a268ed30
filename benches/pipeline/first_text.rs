//! Time to first visible text (issue 16): how long a person waits before the answer starts
//! to show, with streaming off (the whole answer at once) and on (a draft as it is written).
//!
//! The fake LLM thinks for `BENCH_LLM_DELAY_MS`, then writes `BENCH_TOKENS` tokens one every
//! `BENCH_TOKEN_PACE_MS`: streamed when asked to stream, otherwise answered whole once the
//! last token would have been written. Each answer starts with `#seq`, so a draft's text names
//! its update. Updates (each to a new private chat) arrive at `BENCH_FIRST_TEXT_RATE` per
//! second for `BENCH_FIRST_TEXT_SECS`, on a fresh process per setting; times count from the
//! webhook's 200 to the fake Telegram receiving the first `sendMessageDraft` (or, without
//! streaming, the answer's `sendMessage`) and to the final `sendMessage`.

use std::time::Duration;

use poem::{Body, Response};
use serde_json::{json, Value};

use crate::fakes::{response_body, Writing};
use crate::measure::Percentiles;
use crate::timeline::Timeline;

/// Telegram chat ids of this phase: a new chat per update, `FIRST_TEXT_CHATS + seq`.
pub const FIRST_TEXT_CHATS: i64 = 20_000_000;

/// The phase's figures for one setting.
#[derive(Debug, Clone)]
pub struct FirstTextFigures {
    pub streaming: bool,
    pub turns: usize,
    /// Webhook 200 → the first text shown (a draft, or the answer itself).
    pub first_text: Option<Percentiles>,
    /// Webhook 200 → the final answer's sendMessage.
    pub answered: Option<Percentiles>,
    pub drafts: u64,
}

impl FirstTextFigures {
    pub fn measure(
        streaming: bool,
        seqs: std::ops::Range<usize>,
        timeline: &Timeline,
        drafts: u64,
    ) -> Self {
        let since_ack = |column: &crate::timeline::Column, seq| {
            Some(Duration::from_nanos(
                column.get(seq)?.saturating_sub(timeline.acked.get(seq)?),
            ))
        };
        let (mut first, mut answered) = (Vec::new(), Vec::new());
        for seq in seqs.clone() {
            first.extend(since_ack(&timeline.first_text, seq));
            answered.extend(since_ack(&timeline.sent, seq));
        }
        Self {
            streaming,
            turns: answered.len(),
            first_text: Percentiles::of(first),
            answered: Percentiles::of(answered),
            drafts,
        }
    }
}

/// The update an answer or a draft of this phase belongs to: `#seq …`.
pub fn leading_seq(text: &str) -> Option<usize> {
    let digits: String = text
        .strip_prefix('#')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The answer to `seq`, as tokens: `#seq`, then words, each with its leading space.
fn tokens(seq: Option<usize>, count: usize) -> Vec<String> {
    let first = seq.map_or_else(|| "#0".to_owned(), |seq| format!("#{seq}"));
    std::iter::once(first)
        .chain((1..count).map(|i| format!(" word{i}")))
        .collect()
}

/// Answers with a written answer: streamed as Responses API events, or whole at the end.
pub async fn written_answer(
    timeline: &std::sync::Arc<Timeline>,
    seq: Option<usize>,
    n: u64,
    request: &Value,
    writing: Writing,
    streamed: bool,
) -> Response {
    let tokens = tokens(seq, writing.tokens);
    let text: String = tokens.concat();
    if !streamed {
        tokio::time::sleep(writing.pace * writing.tokens as u32).await;
        if let Some(seq) = seq {
            timeline.llm_out.mark(seq, timeline.now());
        }
        return Response::builder()
            .content_type("application/json")
            .body(response_body(n, request, &text).to_string());
    }
    let mut events: Vec<String> = tokens
        .iter()
        .enumerate()
        .map(|(index, token)| {
            let delta = json!({"type": "response.output_text.delta", "sequence_number": index + 1,
                "item_id": format!("msg_{n}"), "output_index": 0, "content_index": 0,
                "delta": token, "logprobs": []});
            format!("event: response.output_text.delta\ndata: {delta}\n\n")
        })
        .collect();
    let completed = json!({"type": "response.completed", "sequence_number": tokens.len() + 1,
        "response": response_body(n, request, &text)});
    events.push(format!("event: response.completed\ndata: {completed}\n\n"));
    let timeline = timeline.clone();
    let token_count = tokens.len();
    let body = futures::stream::unfold(events.into_iter().enumerate(), move |mut events| {
        let timeline = timeline.clone();
        async move {
            let (index, event) = events.next()?;
            if index < token_count {
                tokio::time::sleep(writing.pace).await;
            } else if let Some(seq) = seq {
                timeline.llm_out.mark(seq, timeline.now());
            }
            Some((Ok::<_, std::io::Error>(event), events))
        }
    });
    Response::builder()
        .content_type("text/event-stream")
        .body(Body::from_bytes_stream(body))
}
