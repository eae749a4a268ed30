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
