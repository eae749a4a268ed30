//! The Bot API over HTTP: one call, one request, one classified answer.
//!
//! Botfleet sends its own requests (reqwest) and uses teloxide-core for what it is good at,
//! the Bot API's payloads and types. teloxide-core's own client sleeps ten seconds before it
//! reads any 5xx answer, which held a runner slot for those seconds and pushed every retry
//! off its backoff; and it lags behind the newest methods. Here:
//!
//! - a 5xx answer is classified the moment it arrives (retryable, on our backoff);
//! - a call waits up to `TELEGRAM_SEND_TIMEOUT_SECS` (longer than Telegram itself takes on
//!   a bad day), so a slow `sendMessage` is awaited rather than abandoned and sent again;
//! - a call that timed out *after* its request was written is *ambiguous*: Telegram may have
//!   acted on it. It is retried like any transient failure (a reply is worth more than the
//!   small chance of a double), marked, logged and counted
//!   (`botfleet_telegram_ambiguous_calls_total`);
//! - the token is part of the URL, so transport errors are reported without it.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use teloxide_core::requests::Payload;
use url::Url;

use super::failures::{classify_answer, TelegramFailure};
use crate::secrets::Redacted;

/// How long a connection may take to open: nothing has been sent until it is.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client every bot's calls share (one connection pool).
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    base: Url,
    /// How long a call may take, unless it says otherwise (long polling does).
    call_timeout: Duration,
}

/// One bot's end of the Bot API: the client and the bot's token.
#[derive(Clone)]
pub struct BotEndpoint {
    api: BotApi,
    token: Redacted,
}

/// Telegram's envelope around every answer.
#[derive(Deserialize)]
struct Answer<T> {
    ok: bool,
    result: Option<T>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<AnswerParameters>,
}

/// What Telegram adds to some errors.
#[derive(Deserialize, Default)]
pub struct AnswerParameters {
    /// Flood control: wait this many seconds.
    pub retry_after: Option<u64>,
    /// The group became a supergroup with this id.
    pub migrate_to_chat_id: Option<i64>,
}

impl BotApi {
    pub fn new(base: Url, call_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("the Telegram HTTP client builds");
        Self {
            http,
            base,
            call_timeout,
        }
    }

    /// `token`'s end of the API.
    pub fn endpoint(&self, token: Redacted) -> BotEndpoint {
        BotEndpoint {
            api: self.clone(),
            token,
        }
    }
}

impl BotEndpoint {
    /// The shared HTTP client and the download address of `file_path` for this bot. The
    /// address holds the token: it must never be logged, recorded or shown to a model.
    pub(super) fn file_download(&self, file_path: &str) -> (&reqwest::Client, String) {
        let url = format!(
            "{}/file/bot{}/{}",
            self.api.base.as_str().trim_end_matches('/'),
            self.token.expose(),
            file_path.trim_start_matches('/')
        );
        (&self.api.http, url)
    }

    /// How long a call may take unless it says otherwise.
    pub fn call_timeout(&self) -> Duration {
        self.api.call_timeout
    }

    /// Calls the method of a teloxide-core payload and reads its typed result.
    pub async fn call<P>(&self, payload: &P) -> Result<P::Output, TelegramFailure>
    where
        P: Payload + Serialize,
        P::Output: DeserializeOwned,
    {
        // teloxide names methods like types (`SendMessage`); the Bot API documents (and
        // the metrics label) them as `sendMessage`. Telegram takes either.
        let mut method = P::NAME.to_owned();
        if let Some(first) = method.get_mut(..1) {
            first.make_ascii_lowercase();
        }
        self.call_method(&method, payload, self.api.call_timeout)
            .await
    }

    /// Calls `method` with `params` as JSON, waiting up to `timeout`, and reads its result.
    pub async fn call_method<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &(impl Serialize + ?Sized),
        timeout: Duration,
    ) -> Result<T, TelegramFailure> {
        let url = format!(
            "{}/bot{}/{method}",
            self.api.base.as_str().trim_end_matches('/'),
            self.token.expose()
        );
        let sent = self
            .api
            .http
            .post(url)
            .json(params)
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Err(transport_failure(method, error)),
        };
        let status = response.status().as_u16();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Err(transport_failure(method, error)),
        };
        let outcome = read_answer(status, &body);
        crate::metrics::telegram_call(method, outcome.as_ref().map_or_else(|f| f.code, |_| 200));
        outcome
    }
}

/// An answer as Telegram sent it: the result, or the failure its status, description and
/// parameters say.
fn read_answer<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, TelegramFailure> {
    match serde_json::from_slice::<Answer<T>>(body) {
        Ok(Answer {
            ok: true,
            result: Some(result),
            ..
        }) => Ok(result),
        Ok(answer) => Err(classify_answer(
            answer.error_code.unwrap_or(status),
            answer.description.as_deref().unwrap_or("no description"),
            &answer.parameters.unwrap_or_default(),
        )),
        // Not Telegram's envelope (a proxy's error page, a truncated body): the status tells.
        Err(error) => Err(classify_answer(
            status,
            &format!("unreadable answer ({error})"),
            &AnswerParameters::default(),
        )),
    }
}

/// A call that got no answer. Before the request was written (no connection), nothing
/// happened; after, Telegram may have acted on it.
fn transport_failure(method: &str, error: reqwest::Error) -> TelegramFailure {
    // The URL holds the token: it never reaches a log line or an event.
    let error = error.without_url();
    let ambiguous = !error.is_connect();
    if ambiguous {
        tracing::warn!(method, error = %error, "a Telegram call got no answer after it was sent: it may have taken effect");
        crate::metrics::telegram_ambiguous_call(method);
    }
    crate::metrics::telegram_call(method, 0);
    TelegramFailure::transport(format!("no answer from Telegram: {error}"), ambiguous)
}

#[cfg(test)]
mod tests {
    use aggregates::chat::FailureClass;

    use super::read_answer;

    #[test]
    fn an_answer_is_its_result_or_the_failure_it_describes() {
        let ok: i64 = read_answer(200, br#"{"ok": true, "result": 5}"#).unwrap();
        assert_eq!(ok, 5);
        let blocked = read_answer::<i64>(
            403,
            br#"{"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}"#,
        )
        .unwrap_err();
        assert_eq!(blocked.class, FailureClass::Terminal);
        let flood = read_answer::<i64>(
            429,
            br#"{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}}"#,
        )
        .unwrap_err();
        assert_eq!(flood.retry_after, Some(std::time::Duration::from_secs(7)));
        let bad_gateway = read_answer::<i64>(502, b"<html>Bad Gateway</html>").unwrap_err();
        assert_eq!(bad_gateway.class, FailureClass::Retryable);
        assert_eq!(bad_gateway.code, 502);
    }
}
