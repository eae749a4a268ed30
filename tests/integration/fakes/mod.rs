pub mod openai;
pub mod telegram;
