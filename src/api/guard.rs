//! Who is calling an admin endpoint.
//!
//! This is the one place authentication sits: every admin operation asks for an
//! [`AdminActor`], and the actor ends up in its events' metadata.

use poem::Request;

use super::errors::ApiFailure;
use crate::event_store::Actor;

/// The admin behind a request.
pub struct AdminActor(pub Actor);

impl AdminActor {
    /// Authentication arrives with the admin-surface work; until then every caller of the
    /// admin API acts as an unidentified admin, so bind Botfleet to a private address.
    pub fn from_request(_request: &Request) -> Result<Self, ApiFailure> {
        Ok(Self(Actor::Admin(None)))
    }
}
