//! Request bodies parsed by serde, so that every error names the field at fault.
//!
//! poem-openapi's own parser reports a missing field as "found null" without saying which;
//! [`Strict`] keeps the type's OpenAPI schema but parses with serde and serde_path_to_error.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, Type};
use serde::de::DeserializeOwned;

/// Wrap a request type in it: `Json<Strict<CreateBotRequest>>`.
pub struct Strict<T>(pub T);

impl<T: Type> Type for Strict<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry)
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: Type + DeserializeOwned> ParseFromJSON for Strict<T> {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        // PostgreSQL cannot store NUL in text: refuse it here, naming the field, rather than
        // fail deep in a query.
        if let Some(field) = field_with_nul(&value, "") {
            return Err(ParseError::custom(format!(
                "field `{field}`: must not contain the NUL character"
            )));
        }
        serde_path_to_error::deserialize(value)
            .map(Strict)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner().to_string();
                if path == "." {
                    // serde already says "missing field `x`" when that is the problem.
                    ParseError::custom(inner)
                } else {
                    ParseError::custom(format!("field `{path}`: {inner}"))
                }
            })
    }
}

/// The path of the first string (or key) in `value` that holds a NUL character.
fn field_with_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) if text.contains('\0') => Some(if path.is_empty() {
            ".".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(n, item)| field_with_nul(item, &join(&n.to_string()))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(join(&key.replace('\0', "\\0")))
            } else {
                field_with_nul(item, &join(key))
            }
        }),
        _ => None,
    }
}
