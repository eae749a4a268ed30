//! The admin session cookie: the session token, encrypted and authenticated with a key
//! derived from COOKIE_SECRET (poem's private cookie jar, AES-256-GCM), HttpOnly so scripts
//! cannot read it, SameSite=Strict so other sites cannot make the browser send it, and
//! Secure when PUBLIC_URL is https.

use std::time::Duration;

use poem::web::cookie::{Cookie, CookieKey, SameSite};
use poem::Request;

use crate::auth::SessionToken;

/// The cookie's name; the guard's security scheme names it too (a test keeps them equal).
pub const SESSION_COOKIE: &str = "botfleet_session";

/// The key the cookie jar encrypts with, derived from COOKIE_SECRET for this purpose only
/// (the CSRF tokens use another derivation), then stretched by the jar's HKDF.
pub fn cookie_key(secret: &[u8]) -> CookieKey {
    CookieKey::derive_from(&crate::auth::derive_key(secret, "botfleet cookie v1"))
}

fn cookie(value: String, secure: bool) -> Cookie {
    let mut cookie = Cookie::new_with_str(SESSION_COOKIE, value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Strict);
    cookie.set_secure(secure);
    cookie.set_path("/");
    cookie
}

/// Sets the cookie on the response being built for `request`.
pub fn set(request: &Request, token: &SessionToken, ttl: Duration, secure: bool) {
    let mut cookie = cookie(token.encode(), secure);
    cookie.set_max_age(ttl);
    request.cookie().private().add(cookie);
}

/// Tells the browser to drop the cookie (the session itself is ended server-side).
pub fn clear(request: &Request, secure: bool) {
    let mut cookie = cookie(String::new(), secure);
    cookie.make_removal();
    request.cookie().add(cookie);
}

/// The token in the request's cookie, if there is one that decrypts.
pub fn read(request: &Request) -> Option<SessionToken> {
    request
        .cookie()
        .private()
        .get(SESSION_COOKIE)
        .and_then(|cookie| SessionToken::decode(cookie.value_str()))
}
