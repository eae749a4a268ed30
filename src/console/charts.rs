//! Charts drawn on the server as SVG: stacked bars per day. No script draws them, so they
//! show under the Content-Security-Policy and without JavaScript; colours are SVG attributes,
//! not styles. Each bar carries its day, series and value (`data-*` and a `<title>` that a
//! browser shows on hover), so the numbers behind a chart are never only a picture.

use chrono::NaiveDate;
use maud::{html, Markup};

/// Colours for series, in order (a bot keeps its colour across the overview's charts).
pub const PALETTE: [&str; 8] = [
    "#2f6fed", "#7b5cff", "#1f9d55", "#e0892b", "#d64545", "#11a3b5", "#a3478f", "#6b7a99",
];

/// One stacked layer of a chart.
pub struct Series {
    pub label: String,
    pub color: &'static str,
    /// One value per day of the chart.
    pub values: Vec<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// The top of the axis: four round steps (1, 2, 2.5 or 5 times a power of ten) that reach
/// `max`, so every gridline reads as a round number.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 4.0;
    }
    let quarter = max / 4.0;
    let magnitude = 10f64.powf(quarter.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if magnitude * step >= quarter {
            return magnitude * step * 4.0;
        }
    }
    magnitude * 40.0
}

/// Stacked bars, one per day, one layer per series; `unit` formats an axis value or a bar's.
pub fn stacked_bars(
    label: &str,
    days: &[NaiveDate],
    series: &[Series],
    unit: fn(f64) -> String,
) -> Markup {
    let totals: Vec<f64> = (0..days.len())
        .map(|d| {
            series
                .iter()
                .map(|s| s.values.get(d).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let top = nice_ceiling(totals.iter().copied().fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.72).max(1.0);
    let y = |value: f64| TOP + plot_h - value / top * plot_h;
    let label_every = (days.len() / 6).max(1);
    // Each bar's layers: the series, its value, and the stack below it.
    let layers: Vec<Vec<(&Series, f64, f64)>> = (0..days.len())
        .map(|d| {
            let mut base = 0.0;
            series
                .iter()
                .filter_map(|s| {
                    let value = s.values.get(d).copied().unwrap_or(0.0);
                    let layer = (value > 0.0).then_some((s, value, base));
                    base += value;
                    layer
                })
                .collect()
        })
        .collect();
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label)
            xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            @for step in 0..=4 {
                @let value = top * f64::from(step) / 4.0;
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(value)) y2=(y(value))
                    stroke="#e3e6ec" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(y(value) + 4.0) text-anchor="end" font-size="11"
                    fill="#667085" { (unit(value)) }
            }
            @for (d, day) in days.iter().enumerate() {
                @let x = LEFT + slot * d as f64 + (slot - bar) / 2.0;
                @for (s, value, base) in &layers[d] {
                    @let (y0, y1) = (y(*base), y(base + value));
                    rect x=(format!("{x:.2}")) y=(format!("{y1:.2}")) width=(format!("{bar:.2}"))
                        height=(format!("{:.2}", (y0 - y1).max(0.5))) fill=(s.color)
                        data-day=(day.to_string()) data-series=(s.label) data-value=(value) {
                        title { (day.format("%Y-%m-%d")) " · " (s.label) ": " (unit(*value)) }
                    }
                }
                @if d % label_every == 0 || d + 1 == days.len() {
                    text x=(format!("{:.2}", x + bar / 2.0)) y=(HEIGHT - 8.0) text-anchor="middle"
                        font-size="11" fill="#667085" { (day.format("%m-%d")) }
                }
            }
        }
        div.legend {
            @for s in series {
                span {
                    svg width="10" height="10" aria-hidden="true" { rect width="10" height="10" rx="2" fill=(s.color) {} }
                    (s.label)
                }
            }
        }
    }
}

/// An axis or bar value as a whole count.
pub fn whole(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// An axis or bar value in dollars (the series hold micro-USD).
pub fn dollars(micros: f64) -> String {
    let dollars = micros / 1_000_000.0;
    if dollars == 0.0 {
        "$0".to_owned()
    } else if dollars >= 100.0 {
        format!("${dollars:.0}")
    } else if dollars >= 1.0 {
        format!("${dollars:.2}")
    } else {
        format!("${dollars:.4}")
    }
}

/// Every day from `from` to `to`, inclusive.
pub fn days_between(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days().take_while(|d| *d <= to).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_day_and_value_and_labels_are_escaped() {
        let days = days_between(
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
        );
        let svg = stacked_bars(
            "Turns",
            &days,
            &[Series {
                label: "<b>bot</b>".into(),
                color: PALETTE[0],
                values: vec![0.0, 3.0, 1.0],
            }],
            whole,
        )
        .into_string();
        assert!(svg.contains(r#"data-day="2026-12-02""#), "{svg}");
        assert!(svg.contains(r#"data-value="3""#), "{svg}");
        assert!(!svg.contains("<b>bot"), "{svg}");
        assert_eq!(
            svg.matches("<rect").count(),
            2 + 1,
            "two bars and a legend swatch"
        );
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 4.0);
        assert_eq!(nice_ceiling(5.0), 8.0);
        assert_eq!(nice_ceiling(7.0), 8.0);
        assert_eq!(nice_ceiling(23.0), 40.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
        assert_eq!(nice_ceiling(3.0), 4.0);
        assert_eq!(dollars(121.0), "$0.0001");
        assert_eq!(whole(12_500.0), "12k");
    }
}
