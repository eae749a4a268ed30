//! The committed `openapi.yaml` is the one the code generates.

#[tokio::test]
async fn the_committed_openapi_yaml_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let generated = botfleet::cli::openapi_yaml();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml` (or UPDATE_OPENAPI=1 cargo test openapi)"
    );
}

#[tokio::test]
async fn the_security_scheme_names_the_cookie_the_login_sets() {
    let spec = botfleet::cli::openapi_yaml();
    assert!(spec.contains(&format!(
        "name: {}",
        botfleet::http::session_cookie::SESSION_COOKIE
    )));
}
