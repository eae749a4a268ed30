//! Pagination shared by the list endpoints: page sizes, and opaque cursors made of the last
//! row's sort key.

use std::str::FromStr;

use aggregates::text::InvalidField;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

use super::errors::ApiFailure;

/// How many rows a page holds: `default` when not asked, at most `max`.
pub struct PageSize {
    pub default: u32,
    pub max: u32,
}

/// Bots, chats, messages, users, failures.
pub const ADMIN_PAGES: PageSize = PageSize {
    default: 50,
    max: 500,
};

/// The event log: auditors read it in bulk.
pub const EVENT_PAGES: PageSize = PageSize {
    default: 100,
    max: 1000,
};

impl PageSize {
    /// The `limit` parameter, checked.
    pub fn limit(&self, requested: Option<u32>) -> Result<i64, ApiFailure> {
        let limit = requested.unwrap_or(self.default);
        if !(1..=self.max).contains(&limit) {
            return Err(ApiFailure::invalid(InvalidField::new(
                "limit",
                format!("must be between 1 and {}", self.max),
            )));
        }
        Ok(i64::from(limit))
    }
}

fn invalid_cursor() -> ApiFailure {
    ApiFailure::invalid(InvalidField::new(
        "cursor",
        "is not a cursor this API gave out",
    ))
}

/// An opaque cursor from the parts of the last row's sort key.
pub fn encode_cursor(parts: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join("|"))
}

/// The `parts` parts of a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str, parts: usize) -> Result<Vec<String>, ApiFailure> {
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid_cursor)?;
    let fields: Vec<String> = text.split('|').map(str::to_owned).collect();
    if fields.len() != parts {
        return Err(invalid_cursor());
    }
    Ok(fields)
}

/// One part of a decoded cursor, parsed.
pub fn cursor_part<T: FromStr>(part: &str) -> Result<T, ApiFailure> {
    part.parse().map_err(|_| invalid_cursor())
}

/// An instant as a cursor part (microseconds, as PostgreSQL keeps it).
pub fn micros(at: &DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}

pub fn cursor_instant(part: &str) -> Result<DateTime<Utc>, ApiFailure> {
    let at = DateTime::from_timestamp_micros(cursor_part(part)?).ok_or_else(invalid_cursor)?;
    checked_instant("cursor", at).map_err(|_| invalid_cursor())
}

/// An instant a query may name: PostgreSQL's timestamps start in 4713 BC (and end after
/// chrono's), so an earlier one is refused here rather than fail in SQL.
pub fn checked_instant(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, ApiFailure> {
    use chrono::Datelike;
    if at.year() < -4712 {
        return Err(ApiFailure::invalid(InvalidField::new(
            field,
            "must be an instant after 4713 BC",
        )));
    }
    Ok(at)
}
