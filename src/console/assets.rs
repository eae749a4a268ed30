//! The console's static files, compiled into the binary: the vendored htmx and the
//! stylesheet. Each is served under a name that carries a hash of its content, with a cache
//! lifetime of a year: a new release changes the name, so a browser never runs a stale copy.

use std::sync::LazyLock;

use poem::http::StatusCode;
use poem::web::Path;
use poem::{handler, Response};
use sha2::{Digest, Sha256};

/// htmx 2.0.11 from its npm package, with its licence header (Zero-Clause BSD).
const HTMX: &[u8] = include_bytes!("assets/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("assets/console.css");

pub struct Asset {
    /// The name it is served under: `htmx-2.0.11.<hash>.js`.
    pub name: String,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static [u8]) -> Self {
        let hash = Sha256::digest(body);
        let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            name: format!("{stem}.{short}.{extension}"),
            content_type,
            body,
        }
    }

    /// The asset's URL.
    pub fn url(&self) -> String {
        format!("/console/assets/{}", self.name)
    }
}

pub static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("htmx-2.0.11", "js", "text/javascript; charset=utf-8", HTMX));
pub static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("console", "css", "text/css; charset=utf-8", CSS));

/// `GET /console/assets/{name}`: an asset by its hashed name; any other name is 404 (an old
/// page asking for a previous release's file gets nothing stale).
#[handler]
pub fn serve(Path(name): Path<String>) -> Response {
    match [&*SCRIPT, &*STYLE].into_iter().find(|a| a.name == name) {
        Some(asset) => Response::builder()
            .content_type(asset.content_type)
            .header("cache-control", "public, max-age=31536000, immutable")
            .header("x-content-type-options", "nosniff")
            .body(asset.body),
        None => Response::builder().status(StatusCode::NOT_FOUND).finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_content_hash() {
        assert!(SCRIPT.name.starts_with("htmx-2.0.11.") && SCRIPT.name.ends_with(".js"));
        assert_eq!(SCRIPT.name.len(), "htmx-2.0.11.".len() + 12 + 3);
        assert!(STYLE.url().starts_with("/console/assets/console."));
    }
}
