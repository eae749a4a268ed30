//! Fetching what a person sent (a voice message, a photo) with the bot's own token:
//! `getFile` says where the file is, and `{TELEGRAM_API_URL}/file/bot<token>/<path>` serves it.
//!
//! That address carries the token, so it is built here, used once, and dropped: it never
//! reaches a log line, an event, an error message or a model (images go to the model as
//! data URLs of the bytes). The Bot API serves files of up to 20 MB; a file over the
//! caller's limit is refused before or while it is read, never held whole.

use serde::Deserialize;
use serde_json::json;

use super::bot_api::BotEndpoint;
use super::failures::TelegramFailure;

/// Why a file could not be fetched.
#[derive(Debug, Clone)]
pub enum DownloadError {
    /// The file is larger than the limit (as getFile says, or as it turned out).
    TooLarge,
    /// Telegram refused or did not answer, classified like any call.
    Failed(TelegramFailure),
}

impl std::fmt::Display for DownloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => f.write_str("the file is over the size limit"),
            Self::Failed(failure) => write!(f, "cannot fetch the file: {}", failure.message),
        }
    }
}

/// getFile's answer: where the file is, and how big.
#[derive(Deserialize)]
struct FileInfo {
    file_path: Option<String>,
    file_size: Option<u64>,
}

/// The bytes of `file_id`, at most `max_bytes` of them.
pub async fn download(
    bot: &BotEndpoint,
    file_id: &str,
    max_bytes: u64,
) -> Result<Vec<u8>, DownloadError> {
    let info: FileInfo = bot
        .call_method(
            "getFile",
            &json!({ "file_id": file_id }),
            bot.call_timeout(),
        )
        .await
        .map_err(|failure| {
            // Telegram's own 20 MB limit: "Bad Request: file is too big".
            if failure
                .message
                .to_ascii_lowercase()
                .contains("file is too big")
            {
                DownloadError::TooLarge
            } else {
                DownloadError::Failed(failure)
            }
        })?;
    if info.file_size.is_some_and(|size| size > max_bytes) {
        return Err(DownloadError::TooLarge);
    }
    let Some(path) = info.file_path else {
        // Telegram gives no path for a file over its own 20 MB limit.
        return Err(DownloadError::TooLarge);
    };
    let (http, url) = bot.file_download(&path);
    let failed = |error: reqwest::Error| {
        // `without_url`: the address holds the token.
        let error = error.without_url();
        DownloadError::Failed(TelegramFailure::transport(
            format!("no file from Telegram: {error}"),
            false,
        ))
    };
    let mut response = http
        .get(url)
        .timeout(bot.call_timeout())
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    crate::metrics::telegram_call("file", status.as_u16());
    if !status.is_success() {
        let failure = if status.is_server_error() || status.as_u16() == 429 {
            TelegramFailure::transport(format!("file download answered {status}"), false)
        } else {
            TelegramFailure::fatal(format!("file download answered {status}"))
        };
        return Err(DownloadError::Failed(failure));
    }
    let mut bytes = Vec::with_capacity(info.file_size.unwrap_or(0).min(max_bytes) as usize);
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(DownloadError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
