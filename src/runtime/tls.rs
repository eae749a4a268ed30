//! The process-wide TLS set-up the HTTP clients (Telegram, the LLM, alerts) share.

/// Installs the process-wide TLS crypto provider that the HTTP clients use (ring). Safe to
/// call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
