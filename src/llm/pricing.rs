//! What a model call cost, in integer micro-USD (1 USD = 1,000,000), so spend can be summed,
//! limited and compared exactly. No floats: prices from files are parsed from their decimal text.
//!
//! Prices are per 1,000,000 tokens, as OpenAI publishes them. The defaults are OpenAI's list
//! prices for standard processing; a JSON file can add models or replace prices.
//!
//! The table also knows what a model can do beyond text: whether it takes images (a file can
//! say so per model, `"images": true`), and what the transcription models cost (per token when
//! the server reports tokens, else per minute of audio).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

use super::TokenUsage;

/// Micro-USD per 1,000,000 tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
}

/// Prices by model name. See [`PriceTable::price`] for how dated snapshots find their model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
    /// Whether a model takes images, by model name (found like a price).
    images: BTreeMap<String, bool>,
    transcription: BTreeMap<String, TranscriptionPrice>,
}

/// What a transcription model costs, in micro-USD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranscriptionPrice {
    /// Per minute of audio: whisper-1's price, and the estimate used when no tokens are
    /// reported.
    pub per_minute: u64,
    /// Per 1,000,000 audio input tokens (0 when the model is priced by the minute only).
    pub input: u64,
    /// Per 1,000,000 text output tokens.
    pub output: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("cannot read the price file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the price file {path} is not an object of models to prices: {message}")]
    Format { path: PathBuf, message: String },
    #[error("price file {path}, model {model:?}: {message}")]
    Model {
        path: PathBuf,
        model: String,
        message: String,
    },
    #[error("price file {path}, model {model:?}, field {field:?}: {message}")]
    Field {
        path: PathBuf,
        model: String,
        field: String,
        message: String,
    },
}

const MICROS_PER_USD: u64 = 1_000_000;
const TOKENS_PER_PRICE_UNIT: u128 = 1_000_000;
const FIELDS: [&str; 3] = ["input", "cached_input", "output"];
/// The optional field of a model in a price file that says whether it takes images.
const IMAGES_FIELD: &str = "images";

/// Dollars and micro-dollars in micro-USD: `usd(1, 250_000)` is $1.25.
const fn usd(dollars: u64, micros: u64) -> u64 {
    dollars * MICROS_PER_USD + micros
}

const fn price(input: u64, cached_input: u64, output: u64) -> ModelPrice {
    ModelPrice {
        input,
        cached_input,
        output,
    }
}

impl PriceTable {
    /// OpenAI's standard prices for its current models.
    pub fn defaults() -> Self {
        let gpt_5 = price(usd(1, 250_000), usd(0, 125_000), usd(10, 0));
        let prices = [
            ("gpt-5", gpt_5),
            ("gpt-5.1", gpt_5),
            (
                "gpt-5-mini",
                price(usd(0, 250_000), usd(0, 25_000), usd(2, 0)),
            ),
            (
                "gpt-5-nano",
                price(usd(0, 50_000), usd(0, 5_000), usd(0, 400_000)),
            ),
            ("gpt-4.1", price(usd(2, 0), usd(0, 500_000), usd(8, 0))),
            (
                "gpt-4.1-mini",
                price(usd(0, 400_000), usd(0, 100_000), usd(1, 600_000)),
            ),
            (
                "gpt-4.1-nano",
                price(usd(0, 100_000), usd(0, 25_000), usd(0, 400_000)),
            ),
            (
                "gpt-4o",
                price(usd(2, 500_000), usd(1, 250_000), usd(10, 0)),
            ),
            (
                "gpt-4o-mini",
                price(usd(0, 150_000), usd(0, 75_000), usd(0, 600_000)),
            ),
            ("o3", price(usd(2, 0), usd(0, 500_000), usd(8, 0))),
            (
                "o4-mini",
                price(usd(1, 100_000), usd(0, 275_000), usd(4, 400_000)),
            ),
        ];
        // Every chat model above looks at images (OpenAI's vision-capable families).
        let images = prices.iter().map(|(model, _)| ((*model).to_owned(), true));
        let transcription = [
            (
                "whisper-1",
                TranscriptionPrice {
                    per_minute: 6_000,
                    input: 0,
                    output: 0,
                },
            ),
            (
                "gpt-4o-transcribe",
                TranscriptionPrice {
                    per_minute: 6_000,
                    input: usd(6, 0),
                    output: usd(10, 0),
                },
            ),
            (
                "gpt-4o-mini-transcribe",
                TranscriptionPrice {
                    per_minute: 3_000,
                    input: usd(3, 0),
                    output: usd(5, 0),
                },
            ),
        ];
        Self {
            images: images.collect(),
            prices: prices
                .into_iter()
                .map(|(model, price)| (model.to_owned(), price))
                .collect(),
            transcription: transcription
                .into_iter()
                .map(|(model, price)| (model.to_owned(), price))
                .collect(),
        }
    }

    /// Whether `model` takes images (a dated snapshot as its model; unknown models do not).
    pub fn takes_images(&self, model: &str) -> bool {
        by_model(&self.images, model).copied().unwrap_or(false)
    }

    /// Says whether `model` takes images.
    pub fn set_images(&mut self, model: impl Into<String>, takes_images: bool) {
        self.images.insert(model.into(), takes_images);
    }

    /// Adds or replaces one transcription model's price.
    pub fn set_transcription(&mut self, model: impl Into<String>, price: TranscriptionPrice) {
        self.transcription.insert(model.into(), price);
    }

    /// The cost of one transcription in micro-USD, rounded half up: by its tokens when the
    /// server reported them and the model has token prices, else by `seconds` of audio at
    /// the per-minute price; `None` for a model without a price.
    pub fn transcription_cost_micro_usd(
        &self,
        model: &str,
        input_tokens: u64,
        output_tokens: u64,
        seconds: u32,
    ) -> Option<i64> {
        let price = by_model(&self.transcription, model)?;
        let by_tokens = (input_tokens > 0 || output_tokens > 0) && price.input + price.output > 0;
        let rounded = if by_tokens {
            let total = u128::from(input_tokens) * u128::from(price.input)
                + u128::from(output_tokens) * u128::from(price.output);
            (total + TOKENS_PER_PRICE_UNIT / 2) / TOKENS_PER_PRICE_UNIT
        } else {
            (u128::from(seconds) * u128::from(price.per_minute) + 30) / 60
        };
        Some(i64::try_from(rounded).unwrap_or(i64::MAX))
    }

    /// Adds or replaces one model's price.
    pub fn set(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.prices.insert(model.into(), price);
    }

    /// Adds or replaces prices from a JSON file of USD per 1M tokens:
    /// `{"model": {"input": "1.25", "cached_input": "0.125", "output": "10"}}`.
    /// Values are JSON strings or numbers with at most 6 decimals; all three fields are required.
    pub fn with_overrides_from_file(mut self, path: &Path) -> Result<Self, PricingError> {
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Raw values keep a number's decimal text, which `f64` would round.
        let file: BTreeMap<String, BTreeMap<String, Box<RawValue>>> =
            serde_json::from_str(&text).map_err(|e| PricingError::Format {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        for (model, fields) in file {
            let model_error = |message: String| PricingError::Model {
                path: path.to_owned(),
                model: model.clone(),
                message,
            };
            if let Some(unknown) = fields
                .keys()
                .find(|f| !FIELDS.contains(&f.as_str()) && f.as_str() != IMAGES_FIELD)
            {
                return Err(model_error(format!(
                    "unknown field {unknown:?}; expected input, cached_input and output"
                )));
            }
            let field = |name: &str| -> Result<u64, PricingError> {
                let field_error = |message: String| PricingError::Field {
                    path: path.to_owned(),
                    model: model.clone(),
                    field: name.to_owned(),
                    message,
                };
                let raw = fields
                    .get(name)
                    .ok_or_else(|| field_error("is missing".to_owned()))?;
                let text = match serde_json::from_str::<String>(raw.get()) {
                    Ok(text) => text,
                    Err(_) => raw.get().to_owned(),
                };
                parse_micros(&text).map_err(field_error)
            };
            let price = ModelPrice {
                input: field("input")?,
                cached_input: field("cached_input")?,
                output: field("output")?,
            };
            if let Some(raw) = fields.get(IMAGES_FIELD) {
                let takes_images: bool =
                    serde_json::from_str(raw.get()).map_err(|_| PricingError::Field {
                        path: path.to_owned(),
                        model: model.clone(),
                        field: IMAGES_FIELD.to_owned(),
                        message: "is not true or false".to_owned(),
                    })?;
                self.images.insert(model.clone(), takes_images);
            }
            self.prices.insert(model, price);
        }
        Ok(self)
    }

    /// The price of `model`: its own, else that of the longest known name it extends with
    /// `-` (`gpt-5-mini-2025-08-07` is priced as `gpt-5-mini`, `gpt-4o-2024-08-06` as `gpt-4o`).
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(price) = self.prices.get(model) {
            return Some(price);
        }
        self.prices
            .iter()
            .filter(|(known, _)| {
                model
                    .strip_prefix(known.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|(known, _)| known.len())
            .map(|(_, price)| price)
    }

    /// The cost of one call in micro-USD, rounded half up; `None` for an unknown model.
    /// Cached input tokens are part of `input_tokens` and reasoning tokens part of
    /// `output_tokens`, so each token is counted once.
    pub fn cost_micro_usd(&self, model: &str, usage: &TokenUsage) -> Option<i64> {
        let price = self.price(model)?;
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        let total = u128::from(uncached) * u128::from(price.input)
            + u128::from(cached) * u128::from(price.cached_input)
            + u128::from(usage.output_tokens) * u128::from(price.output);
        let rounded = (total + TOKENS_PER_PRICE_UNIT / 2) / TOKENS_PER_PRICE_UNIT;
        Some(i64::try_from(rounded).unwrap_or(i64::MAX))
    }
}

/// The entry of `model`: its own, else that of the longest known name it extends with `-`.
fn by_model<'a, T>(table: &'a BTreeMap<String, T>, model: &str) -> Option<&'a T> {
    if let Some(entry) = table.get(model) {
        return Some(entry);
    }
    table
        .iter()
        .filter(|(known, _)| {
            model
                .strip_prefix(known.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|(known, _)| known.len())
        .map(|(_, entry)| entry)
}

/// `"1.25"` (USD) as `1_250_000` (micro-USD): digits, optionally a point and up to 6 more.
fn parse_micros(text: &str) -> Result<u64, String> {
    let invalid = || format!("{text:?} is not a decimal number of USD with at most 6 decimals");
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') {
        return Err(invalid());
    }
    if fraction.len() > 6 {
        return Err(invalid());
    }
    let whole: u64 = whole.parse().map_err(|_| invalid())?;
    let fraction: u64 = format!("{fraction:0<6}").parse().map_err(|_| invalid())?;
    whole
        .checked_mul(MICROS_PER_USD)
        .and_then(|micros| micros.checked_add(fraction))
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcription_is_priced_by_tokens_when_reported_else_by_the_minute() {
        let table = PriceTable::defaults();
        // gpt-4o-mini-transcribe: $3 per 1M audio tokens, $5 per 1M output tokens.
        assert_eq!(
            table.transcription_cost_micro_usd("gpt-4o-mini-transcribe", 1_000, 200, 60),
            Some(3_000 + 1_000)
        );
        // No tokens reported: $0.003 a minute.
        assert_eq!(
            table.transcription_cost_micro_usd("gpt-4o-mini-transcribe", 0, 0, 90),
            Some(4_500)
        );
        // whisper-1 is priced by the minute even when tokens come back.
        assert_eq!(
            table.transcription_cost_micro_usd("whisper-1", 10, 10, 30),
            Some(3_000)
        );
        assert_eq!(table.transcription_cost_micro_usd("unknown", 1, 1, 1), None);
    }

    #[test]
    fn the_known_chat_models_take_images_and_unknown_ones_do_not() {
        let mut table = PriceTable::defaults();
        assert!(table.takes_images("gpt-5-mini"));
        assert!(table.takes_images("gpt-4o-2024-08-06"));
        assert!(!table.takes_images("llama3"));
        table.set_images("gpt-5-mini", false);
        assert!(!table.takes_images("gpt-5-mini-2025-08-07"));
    }

    fn usage(input: u64, cached: u64, output: u64, reasoning: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            cached_input_tokens: cached,
            output_tokens: output,
            reasoning_tokens: reasoning,
        }
    }

    /// A price file under the system temp directory, removed on drop.
    struct PriceFile(PathBuf);

    impl PriceFile {
        fn new(contents: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("botfleet-prices-{}.json", uuid::Uuid::new_v4()));
            std::fs::write(&path, contents).expect("write the price file");
            Self(path)
        }
    }

    impl Drop for PriceFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn defaults_are_openai_list_prices_in_micro_usd() {
        let table = PriceTable::defaults();
        let gpt_5 = ModelPrice {
            input: 1_250_000,
            cached_input: 125_000,
            output: 10_000_000,
        };
        assert_eq!(table.price("gpt-5"), Some(&gpt_5));
        assert_eq!(table.price("gpt-5.1"), Some(&gpt_5));
        assert_eq!(
            table.price("gpt-5-nano"),
            Some(&ModelPrice {
                input: 50_000,
                cached_input: 5_000,
                output: 400_000
            })
        );
        assert_eq!(
            table.price("o4-mini"),
            Some(&ModelPrice {
                input: 1_100_000,
                cached_input: 275_000,
                output: 4_400_000
            })
        );
        assert_eq!(
            table.price("gpt-4o").map(|p| p.cached_input),
            Some(1_250_000)
        );
    }

    #[test]
    fn snapshots_find_the_longest_model_they_extend() {
        let table = PriceTable::defaults();
        let input = |model: &str| table.price(model).map(|p| p.input);
        assert_eq!(input("gpt-5-mini"), Some(250_000));
        assert_eq!(input("gpt-5-mini-2025-08-07"), Some(250_000));
        assert_eq!(input("gpt-5-2025-08-07"), Some(1_250_000));
        assert_eq!(input("gpt-5.1-2025-11-13"), Some(1_250_000));
        assert_eq!(input("gpt-4o-mini-2024-07-18"), Some(150_000));
        assert_eq!(input("gpt-4o-2024-08-06"), Some(2_500_000));
        assert_eq!(input("gpt-4.1-nano-2025-04-14"), Some(100_000));
        // Not a `-` extension, or nothing known.
        assert_eq!(input("gpt-5x"), None);
        assert_eq!(input("gpt-4"), None);
        assert_eq!(input("llama-3.1-8b"), None);
    }

    #[test]
    fn cost_counts_cached_input_at_its_price_and_rounds_half_up() {
        let table = PriceTable::defaults();
        // gpt-5-mini: 80 × 250,000 + 20 × 25,000 + 50 × 2,000,000 = 120,500,000 → 120.5 → 121.
        assert_eq!(
            table.cost_micro_usd("gpt-5-mini", &usage(100, 20, 50, 10)),
            Some(121)
        );
        // Reasoning tokens are inside output tokens: they change nothing.
        assert_eq!(
            table.cost_micro_usd("gpt-5-mini", &usage(100, 20, 50, 0)),
            Some(121)
        );
        // One million input tokens of gpt-5 cost exactly $1.25.
        assert_eq!(
            table.cost_micro_usd("gpt-5", &usage(1_000_000, 0, 0, 0)),
            Some(1_250_000)
        );
        // gpt-5: 1,200 × 1,250,000 + 800 × 125,000 + 300 × 10,000,000 = 4,600,000,000 → 4,600.
        assert_eq!(
            table.cost_micro_usd("gpt-5-2025-08-07", &usage(2_000, 800, 300, 120)),
            Some(4_600)
        );
        // gpt-5-nano: 9 × 50,000 = 450,000 → 0.45 → 0; 10 × 50,000 = 500,000 → 0.5 → 1.
        assert_eq!(
            table.cost_micro_usd("gpt-5-nano", &usage(9, 0, 0, 0)),
            Some(0)
        );
        assert_eq!(
            table.cost_micro_usd("gpt-5-nano", &usage(10, 0, 0, 0)),
            Some(1)
        );
        assert_eq!(
            table.cost_micro_usd("gpt-5", &TokenUsage::default()),
            Some(0)
        );
    }

    #[test]
    fn cost_of_an_unknown_model_is_unknown() {
        let table = PriceTable::defaults();
        assert_eq!(table.cost_micro_usd("llama3", &usage(10, 0, 10, 0)), None);
    }

    #[test]
    fn cached_tokens_above_input_are_capped() {
        let table = PriceTable::defaults();
        // 10 cached × 125,000 = 1,250,000 → 1.25 → 1.
        assert_eq!(table.cost_micro_usd("gpt-5", &usage(10, 50, 0, 0)), Some(1));
    }

    #[test]
    fn huge_usage_does_not_overflow() {
        let table = PriceTable::defaults();
        let cost = table.cost_micro_usd("gpt-5", &usage(u64::MAX, 0, u64::MAX, 0));
        assert_eq!(cost, Some(i64::MAX));
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_micros("1.25"), Ok(1_250_000));
        assert_eq!(parse_micros("0.125"), Ok(125_000));
        assert_eq!(parse_micros("10"), Ok(10_000_000));
        assert_eq!(parse_micros("0.000001"), Ok(1));
        assert_eq!(parse_micros("0.1"), Ok(100_000));
        assert_eq!(parse_micros("123456789.123456"), Ok(123_456_789_123_456));
        for bad in [
            "",
            ".5",
            "1.",
            "1.2345678",
            "-1",
            "1e3",
            "1,5",
            " 1",
            "abc",
            "1.2.3",
        ] {
            assert!(parse_micros(bad).is_err(), "{bad:?}");
        }
        assert!(parse_micros("99999999999999999999").is_err());
    }

    #[test]
    fn overrides_add_and_replace_prices_from_strings_or_numbers() {
        let file = PriceFile::new(
            r#"{
                "gpt-5": {"input": "1.5", "cached_input": 0.15, "output": 12},
                "my-local-model": {"input": "0", "cached_input": "0", "output": "0.000001"},
                "big": {"input": 123456789.123456, "cached_input": "0.1", "output": 0.3}
            }"#,
        );
        let table = PriceTable::defaults()
            .with_overrides_from_file(&file.0)
            .expect("valid overrides");
        assert_eq!(
            table.price("gpt-5"),
            Some(&ModelPrice {
                input: 1_500_000,
                cached_input: 150_000,
                output: 12_000_000
            })
        );
        assert_eq!(
            table.price("my-local-model-q4"),
            Some(&ModelPrice {
                input: 0,
                cached_input: 0,
                output: 1
            })
        );
        assert_eq!(
            table.price("big"),
            Some(&ModelPrice {
                input: 123_456_789_123_456,
                cached_input: 100_000,
                output: 300_000
            })
        );
        // Untouched defaults stay.
        assert_eq!(table.price("gpt-5-mini").map(|p| p.input), Some(250_000));
    }

    #[test]
    fn override_errors_name_the_model_and_field() {
        let cases = [
            (
                r#"{"gpt-x": {"input": "1.2345678", "cached_input": "0", "output": "1"}}"#,
                "model \"gpt-x\", field \"input\"",
            ),
            (
                r#"{"gpt-x": {"input": "1", "cached_input": -1, "output": "1"}}"#,
                "model \"gpt-x\", field \"cached_input\"",
            ),
            (
                r#"{"gpt-x": {"input": "1", "cached_input": "0"}}"#,
                "model \"gpt-x\", field \"output\": is missing",
            ),
            (
                r#"{"gpt-x": {"input": "1", "cached_input": "0", "output": 1e2}}"#,
                "model \"gpt-x\", field \"output\"",
            ),
            (
                r#"{"gpt-x": {"input": "1", "cachedinput": "0", "output": "1"}}"#,
                "model \"gpt-x\": unknown field \"cachedinput\"",
            ),
            (
                r#"{"gpt-x": "1.25"}"#,
                "is not an object of models to prices",
            ),
        ];
        for (json, expected) in cases {
            let file = PriceFile::new(json);
            let error = PriceTable::defaults()
                .with_overrides_from_file(&file.0)
                .expect_err(json)
                .to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let missing = PriceTable::defaults()
            .with_overrides_from_file(Path::new("/nonexistent/prices.json"))
            .expect_err("no such file");
        assert!(matches!(missing, PricingError::Read { .. }));
    }
}
