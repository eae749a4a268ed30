//! One Bot API endpoint per bot, made on demand from the bot's sealed token.
//!
//! The token lives in the event store only sealed; an endpoint is made by opening it, and is
//! cached per bot (keyed by the ciphertext, so a changed token gets a new endpoint). Every
//! endpoint shares one HTTP connection pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;
use uuid::Uuid;

use super::bot_api::{BotApi, BotEndpoint};
use crate::secrets::{TokenCipher, UnsealError};

pub struct TelegramClients {
    api: BotApi,
    cipher: Arc<TokenCipher>,
    cache: Mutex<HashMap<Uuid, (String, BotEndpoint)>>,
}

impl TelegramClients {
    /// `call_timeout`: how long one call may take (`TELEGRAM_SEND_TIMEOUT_SECS`).
    pub fn new(api_url: Url, cipher: Arc<TokenCipher>, call_timeout: Duration) -> Self {
        Self {
            api: BotApi::new(api_url, call_timeout),
            cipher,
            cache: Mutex::default(),
        }
    }

    /// The endpoint of `bot_id`, whose sealed token is `token_ciphertext`.
    pub fn client(&self, bot_id: Uuid, token_ciphertext: &str) -> Result<BotEndpoint, UnsealError> {
        let mut cache = self.cache.lock().expect("telegram client cache");
        if let Some((ciphertext, endpoint)) = cache.get(&bot_id) {
            if ciphertext == token_ciphertext {
                return Ok(endpoint.clone());
            }
        }
        let token = self.cipher.open(token_ciphertext)?;
        let endpoint = self
            .api
            .endpoint(crate::secrets::Redacted::new(token.expose().to_owned()));
        cache.insert(bot_id, (token_ciphertext.to_owned(), endpoint.clone()));
        Ok(endpoint)
    }
}
