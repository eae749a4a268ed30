pub mod openai;
pub mod openai_stream;
pub mod telegram;
pub mod webhook;
