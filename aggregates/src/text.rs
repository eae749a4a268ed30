//! Validation helpers shared by the aggregates' parsed newtypes.

use serde::{Deserialize, Serialize};

/// Why a value was refused at the edge: which field, and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Checks a text's length in characters (not bytes: Telegram counts characters).
pub fn bounded(
    field: &str,
    value: &str,
    min_chars: usize,
    max_chars: usize,
) -> Result<(), InvalidField> {
    let chars = value.chars().count();
    if chars < min_chars {
        return Err(if min_chars == 1 {
            InvalidField::new(field, "must not be empty")
        } else {
            InvalidField::new(field, format!("must be at least {min_chars} characters"))
        });
    }
    if chars > max_chars {
        return Err(InvalidField::new(
            field,
            format!("must be at most {max_chars} characters (got {chars})"),
        ));
    }
    Ok(())
}
