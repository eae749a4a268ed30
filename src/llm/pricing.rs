//! What a model call cost, in integer micro-USD (1 USD = 1,000,000), so spend can be summed,
//! limited and compared exactly. No floats: prices from files are parsed from their decimal text.
//!
//! Prices are per 1,000,000 tokens, as OpenAI publishes them. The defaults are OpenAI's list
//! prices for standard processing; a JSON file can add models or replace prices.

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
        Self {
            prices: prices
                .into_iter()
                .map(|(model, price)| (model.to_owned(), price))
                .collect(),
        }
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
            if let Some(unknown) = fields.keys().find(|f| !FIELDS.contains(&f.as_str())) {
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
