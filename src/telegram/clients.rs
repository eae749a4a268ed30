//! A Telegram client per bot, created on demand from the bot's sealed token.
//!
//! The token lives in the event store only sealed; a client is built by opening it, and is
//! cached per bot (keyed by the ciphertext, so a changed token gets a new client). teloxide's
//! client sleeps 10 s before reading any 5xx reply: a failed send can take that long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use teloxide_core::Bot;
use url::Url;
use uuid::Uuid;

use crate::secrets::{TokenCipher, UnsealError};

pub struct TelegramClients {
    api_url: Url,
    cipher: Arc<TokenCipher>,
    /// One HTTP connection pool for every bot.
    http: reqwest::Client,
    cache: Mutex<HashMap<Uuid, (String, Bot)>>,
}

impl TelegramClients {
    pub fn new(api_url: Url, cipher: Arc<TokenCipher>) -> Self {
        let http = teloxide_core::net::default_reqwest_settings()
            .build()
            .expect("the Telegram HTTP client builds");
        Self {
            api_url,
            cipher,
            http,
            cache: Mutex::default(),
        }
    }

    /// The client of `bot_id`, whose sealed token is `token_ciphertext`.
    pub fn client(&self, bot_id: Uuid, token_ciphertext: &str) -> Result<Bot, UnsealError> {
        let mut cache = self.cache.lock().expect("telegram client cache");
        if let Some((ciphertext, bot)) = cache.get(&bot_id) {
            if ciphertext == token_ciphertext {
                return Ok(bot.clone());
            }
        }
        let token = self.cipher.open(token_ciphertext)?;
        let bot =
            Bot::with_client(token.expose(), self.http.clone()).set_api_url(self.api_url.clone());
        cache.insert(bot_id, (token_ciphertext.to_owned(), bot.clone()));
        Ok(bot)
    }
}
