pub mod openai;
pub mod telegram;
pub mod webhook;
