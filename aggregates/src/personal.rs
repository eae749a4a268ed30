//! Personal data in an append-only log.
//!
//! A person's names and message texts enter events only sealed under a key of that person's
//! own ([`PersonalText::Sealed`]); forgetting the person destroys the key, and every copy —
//! in events, snapshots and read models — becomes unreadable at once, while every other fact
//! (ids, counts, costs, timestamps) stays and still replays. Sealing and opening happen in
//! the application, which holds the keys; the domain only carries the values.

use serde::{Deserialize, Serialize};

/// A text that belongs to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalText {
    /// Sealed under the key of `subject` (a Telegram user id).
    Sealed { subject: i64, ciphertext: String },
    /// Not sealed: written before sealing existed (an upcast event), or not yet sealed at
    /// the edge. Cannot be forgotten.
    Plain(String),
}

/// The prefix of a sealed value in a read-model column.
const SEALED_COLUMN_PREFIX: &str = "pd1.";
/// The prefix of a plain value in a read-model column.
const PLAIN_COLUMN_PREFIX: &str = "plain.";

impl PersonalText {
    pub fn plain(text: impl Into<String>) -> Self {
        Self::Plain(text.into())
    }

    /// How read models store it: one unambiguous string.
    pub fn to_column(&self) -> String {
        match self {
            Self::Sealed {
                subject,
                ciphertext,
            } => format!("{SEALED_COLUMN_PREFIX}{subject}.{ciphertext}"),
            Self::Plain(text) => format!("{PLAIN_COLUMN_PREFIX}{text}"),
        }
    }

    /// Reads a value stored by [`PersonalText::to_column`].
    pub fn from_column(column: &str) -> Option<Self> {
        if let Some(text) = column.strip_prefix(PLAIN_COLUMN_PREFIX) {
            return Some(Self::Plain(text.to_owned()));
        }
        let rest = column.strip_prefix(SEALED_COLUMN_PREFIX)?;
        let (subject, ciphertext) = rest.split_once('.')?;
        Some(Self::Sealed {
            subject: subject.parse().ok()?,
            ciphertext: ciphertext.to_owned(),
        })
    }

    /// The plaintext when it is not sealed.
    pub fn as_plain(&self) -> Option<&str> {
        match self {
            Self::Plain(text) => Some(text),
            Self::Sealed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_form_round_trips_and_is_unambiguous() {
        for value in [
            PersonalText::plain("pd1.42.looks-sealed"),
            PersonalText::plain(""),
            PersonalText::Sealed {
                subject: -10_042,
                ciphertext: "abc.def".into(),
            },
        ] {
            assert_eq!(PersonalText::from_column(&value.to_column()), Some(value));
        }
        assert_eq!(PersonalText::from_column("neither"), None);
    }
}
