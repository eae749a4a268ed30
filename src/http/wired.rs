//! Wiring an API to what it uses, or to nothing when it only describes itself.

/// An API's dependencies, or none at all when the API is built only to describe itself
/// (`botfleet openapi`, the `/openapi.yaml` document): describing the API needs no database,
/// key or setting.
pub struct Wired<T>(Option<T>);

impl<T> Wired<T> {
    pub fn new(deps: T) -> Self {
        Self(Some(deps))
    }

    /// For the OpenAPI document only: a handler of an unwired API must never run.
    pub fn unwired() -> Self {
        Self(None)
    }
}

impl<T> std::ops::Deref for Wired<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0
            .as_ref()
            .expect("an API built only for its OpenAPI document was asked to handle a request")
    }
}
