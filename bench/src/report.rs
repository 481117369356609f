//! The results: one row per scenario, judged against issue 8's targets.

use serde_json::{Value, json};

use crate::Measured;
use crate::raw::Kind;

/// Open-loop p99 at the offered rate must stay below this.
const P99_MS: f64 = 10.0;
/// A deep history page may cost this much more than the first.
const SAME_COST: f64 = 0.9;
/// "Flat" peak memory: the district export may grow the server by at most this much more
/// than the one-community export.
const FLAT_MIB: f64 = 10.0;

pub struct Export {
    pub rows: i64,
    pub seconds: f64,
    pub first_byte: f64,
    pub peak_mib: f64,
    pub growth_mib: f64,
}

#[derive(Clone, Copy)]
pub enum Target {
    /// At least this share of the raw reference's rate.
    Raw(Kind, f64),
    /// At least this many requests per second.
    Absolute(f64),
    /// Only the latency target.
    Latency,
    /// About the rate of the named row.
    SameAs(&'static str),
    /// At least this many rows per second; the memory growth no more than the smaller export's.
    Export { floor: f64, small_growth: Option<f64> },
}

pub struct Row {
    pub name: String,
    /// Closed-loop requests per second, or rows per second of an export.
    pub rate: f64,
    pub export: Option<(i64, f64, f64)>,
    pub offered: Option<f64>,
    pub percentiles: Option<(f64, f64, f64)>,
    pub closed_p99: Option<f64>,
    pub answered: Option<(u64, u64)>,
    pub peak_mib: f64,
    pub raw: Option<f64>,
    pub target: Target,
    pub target_text: String,
    pub pass: bool,
}

impl Row {
    pub fn requests(name: &str, measured: &Measured, target: Target) -> Row {
        let (closed, open, peak_mib) = (&measured.closed, &measured.open, measured.peak_mib);
        Row {
            name: name.to_owned(),
            rate: closed.per_second(),
            export: None,
            offered: Some(measured.offered),
            percentiles: Some((open.ms(0.5), open.ms(0.99), open.ms(0.999))),
            closed_p99: Some(closed.ms(0.99)),
            answered: Some((closed.ok + open.ok, closed.refused + open.refused)),
            peak_mib,
            raw: None,
            target,
            target_text: String::new(),
            pass: false,
        }
    }

    pub fn export(name: &str, export: &Export, floor: f64, small: Option<&Export>) -> Row {
        Row {
            name: format!("{name} ({} rows)", export.rows),
            rate: export.rows as f64 / export.seconds,
            export: Some((export.rows, export.first_byte, export.growth_mib)),
            offered: None,
            percentiles: None,
            closed_p99: None,
            answered: None,
            peak_mib: export.peak_mib,
            raw: None,
            target: Target::Export { floor, small_growth: small.map(|small| small.growth_mib) },
            target_text: String::new(),
            pass: false,
        }
    }

    fn p99_ok(&self) -> bool {
        self.percentiles.is_some_and(|(_, p99, _)| p99 < P99_MS)
    }
}

/// Fills in the raw rates and whether each row meets its target.
pub fn judge(rows: &mut [Row], raw: &[(Kind, f64)]) {
    let rates: Vec<(String, f64)> = rows.iter().map(|row| (row.name.clone(), row.rate)).collect();
    for row in rows.iter_mut() {
        let (pass, text) = match row.target {
            Target::Raw(kind, share) => {
                let reference = raw.iter().find(|(k, _)| std::mem::discriminant(k) == std::mem::discriminant(&kind));
                row.raw = reference.map(|(_, rate)| *rate);
                let ratio_ok = row.raw.is_some_and(|rate| row.rate >= share * rate);
                (ratio_ok && row.p99_ok(), format!("≥ {share:.1}× raw, p99 < {P99_MS} ms"))
            }
            Target::Absolute(floor) => {
                (row.rate >= floor && row.p99_ok(), format!("≥ {floor:.0}/s, p99 < {P99_MS} ms"))
            }
            Target::Latency => (row.p99_ok(), format!("p99 < {P99_MS} ms")),
            Target::SameAs(other) => {
                let first = rates.iter().find(|(name, _)| name == other).map_or(f64::NAN, |(_, rate)| *rate);
                (
                    row.rate >= SAME_COST * first && row.p99_ok(),
                    format!("≥ {SAME_COST}× page 1 ({first:.0}/s), p99 < {P99_MS} ms"),
                )
            }
            Target::Export { floor, small_growth } => {
                let growth = row.export.map_or(f64::NAN, |(_, _, growth)| growth);
                match small_growth {
                    None => (row.rate >= floor, format!("≥ {}k rows/s", floor / 1000.0)),
                    Some(small) => (
                        row.rate >= floor && growth <= small + FLAT_MIB,
                        format!(
                            "≥ {}k rows/s, memory growth ≤ 1 community's (+{small:.1} MiB) + {FLAT_MIB} MiB",
                            floor / 1000.0
                        ),
                    ),
                }
            }
        };
        row.pass = pass;
        row.target_text = text;
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

/// A Markdown table.
pub fn table(backend: &str, rows: &[Row]) -> String {
    let mut out = format!(
        "{backend}\n\n| scenario | max (closed loop) | offered (open loop) | p50 ms | p99 ms | p99.9 ms | closed-loop p99 ms | \
         answered (ok / 409) | server peak RSS MiB | raw | API ÷ raw | target | result |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n"
    );
    for row in rows {
        let dash = || "—".to_owned();
        let (max, p50, p99, p999, peak) = match (row.export, row.percentiles) {
            (Some((_, first_byte, growth)), _) => (
                format!("{} rows/s", number(row.rate)),
                format!("first byte {:.0}", first_byte * 1000.0),
                dash(),
                dash(),
                format!("{:.1} (+{growth:.1})", row.peak_mib),
            ),
            (None, Some((p50, p99, p999))) => (
                format!("{}/s", number(row.rate)),
                number(p50),
                number(p99),
                number(p999),
                format!("{:.1}", row.peak_mib),
            ),
            (None, None) => (dash(), dash(), dash(), dash(), dash()),
        };
        out.push_str(&format!(
            "| {} | {max} | {} | {p50} | {p99} | {p999} | {} | {} | {peak} | {} | {} | {} | {} |\n",
            row.name,
            row.offered.map_or_else(dash, |rate| format!("{}/s", number(rate))),
            row.closed_p99.map_or_else(dash, number),
            row.answered.map_or_else(dash, |(ok, refused)| format!("{ok} / {refused}")),
            row.raw.map_or_else(dash, |rate| format!("{}/s", number(rate))),
            row.raw.map_or_else(dash, |rate| format!("{:.2}", row.rate / rate)),
            row.target_text,
            if row.pass { "pass" } else { "MISS" },
        ));
    }
    out
}

pub fn json(reports: &[(String, Vec<Row>)]) -> Value {
    let backends: Vec<Value> = reports
        .iter()
        .map(|(backend, rows)| {
            let rows: Vec<Value> = rows
                .iter()
                .map(|row| {
                    json!({
                        "scenario": row.name,
                        "rate_per_second": row.rate,
                        "export_rows": row.export.map(|(rows, _, _)| rows),
                        "export_first_byte_seconds": row.export.map(|(_, first_byte, _)| first_byte),
                        "export_memory_growth_mib": row.export.map(|(_, _, growth)| growth),
                        "offered_per_second": row.offered,
                        "open_loop_ms": row.percentiles.map(|(p50, p99, p999)| json!({"p50": p50, "p99": p99, "p99_9": p999})),
                        "closed_loop_p99_ms": row.closed_p99,
                        "answered": row.answered.map(|(ok, refused)| json!({"ok": ok, "refused": refused})),
                        "server_peak_rss_mib": row.peak_mib,
                        "raw_per_second": row.raw,
                        "ratio": row.raw.map(|rate| row.rate / rate),
                        "target": row.target_text,
                        "pass": row.pass,
                    })
                })
                .collect();
            json!({"backend": backend, "scenarios": rows})
        })
        .collect();
    json!({"backends": backends})
}
