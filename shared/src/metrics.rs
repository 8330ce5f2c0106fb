//! CloudWatch Embedded Metric Format (EMF): the one place metric lines are built and written.
//!
//! A [`Line`] is one JSON log line whose `_aws.CloudWatchMetrics` directives name the metrics
//! (namespace [`NAMESPACE`]) and their dimension sets; CloudWatch Logs extracts the metrics from
//! it, so neither alarms nor dashboards need an API call from the functions. Lines go where the
//! [`Emitter`] says: nowhere (off outside Lambda unless `ATHENA_EMF=true`), stdout (Lambda), or a
//! buffer the tests read.
//!
//! The lines written (every metric and alarm: `docs/operations.md`):
//! - per chat turn (`analytics::turn_metrics`): `Requests`, `Errors`, `Cancelled`, latency,
//!   tokens, `CostMicroUsd` by `solution` (and `model`);
//! - per API response ([`request`]): `ApiRequests`, `ApiErrors` by `code`, `AuthFailures`;
//! - per refused request ([`refusal`]): `Refusals` by `code` (and `plan`);
//! - hourly from housekeeping (`analytics::cost_growth`): `CostGrowthRatio`.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{json, Map, Value};

use crate::domain::Timestamp;

/// The namespace of every Athena metric.
pub const NAMESPACE: &str = "Athena";

/// The unit of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// A percentage.
    Percent,
    /// No unit (amounts of money, ratios).
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

/// One EMF record: dimensions and metric values at the root, the directives under `_aws`.
#[derive(Debug)]
pub struct Line {
    at: Timestamp,
    directives: Vec<Value>,
    root: Map<String, Value>,
}

impl Line {
    /// An empty record at `at`.
    pub fn new(at: Timestamp) -> Self {
        Self {
            at,
            directives: Vec::new(),
            root: Map::new(),
        }
    }

    /// Sets a dimension's value (a root member the directives' dimension sets name).
    pub fn dimension(mut self, key: &str, value: &str) -> Self {
        self.root.insert(key.to_owned(), Value::from(value));
        self
    }

    /// Starts a directive: the metrics added next are reported under each of these dimension
    /// sets (`&[&[]]`: no dimension).
    pub fn directive(mut self, dimension_sets: &[&[&str]]) -> Self {
        self.directives.push(json!({
            "Namespace": NAMESPACE,
            "Dimensions": dimension_sets,
            "Metrics": [],
        }));
        self
    }

    /// Adds a metric and its value to the current directive (starting one without dimensions if
    /// there is none).
    pub fn metric(mut self, name: &str, unit: Unit, value: impl Into<Value>) -> Self {
        if self.directives.is_empty() {
            self = self.directive(&[&[]]);
        }
        if let Some(Value::Array(metrics)) = self.directives.last_mut().and_then(|d| d.get_mut("Metrics")) {
            metrics.push(json!({"Name": name, "Unit": unit.as_str()}));
        }
        self.root.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a metric only when it has a value (a metric named without a value is not valid EMF).
    pub fn metric_if(self, name: &str, unit: Unit, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(v) => self.metric(name, unit, v),
            None => self,
        }
    }

    /// The JSON line.
    pub fn render(&self) -> String {
        let mut root = self.root.clone();
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": self.at.timestamp_millis(),
                "CloudWatchMetrics": self.directives,
            }),
        );
        Value::Object(root).to_string()
    }
}

/// Where EMF lines go.
#[derive(Clone, Debug, Default)]
pub enum Emitter {
    /// Nowhere (outside Lambda, unless `ATHENA_EMF=true`).
    #[default]
    Off,
    /// Standard output, which Lambda sends to the function's log group.
    Stdout,
    /// Kept in memory (tests).
    Capture(Arc<Mutex<Vec<String>>>),
}

impl Emitter {
    /// Stdout when `enabled` (`config.runtime.emf`), else off.
    pub fn from_flag(enabled: bool) -> Self {
        if enabled {
            Emitter::Stdout
        } else {
            Emitter::Off
        }
    }

    /// An emitter keeping its lines in memory.
    pub fn capture() -> Self {
        Emitter::Capture(Arc::default())
    }

    /// Writes a line.
    pub fn emit(&self, line: &Line) {
        match self {
            Emitter::Off => {}
            Emitter::Stdout => println!("{}", line.render()),
            Emitter::Capture(lines) => lines.lock().unwrap_or_else(PoisonError::into_inner).push(line.render()),
        }
    }

    /// The lines captured so far, parsed (empty unless capturing).
    pub fn captured(&self) -> Vec<Value> {
        match self {
            Emitter::Capture(lines) => lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What an API response was, for [`request`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome<'a> {
    /// The error's machine code, when the response is an error.
    pub error_code: Option<&'a str>,
    /// Whether the caller failed authentication (a 401).
    pub auth_failure: bool,
}

/// One API response: `ApiRequests` (no dimension) always, so an error rate can be computed;
/// `ApiErrors` by `code` for an error response; `AuthFailures` (no dimension) when
/// authentication failed.
pub fn request(emitter: &Emitter, at: Timestamp, outcome: Outcome<'_>) {
    if matches!(emitter, Emitter::Off) {
        return;
    }
    let mut line = Line::new(at).metric("ApiRequests", Unit::Count, 1);
    if outcome.auth_failure {
        line = line.metric("AuthFailures", Unit::Count, 1);
    }
    if let Some(code) = outcome.error_code {
        line = line
            .dimension("code", code)
            .directive(&[&["code"]])
            .metric("ApiErrors", Unit::Count, 1);
    }
    emitter.emit(&line);
}

/// A request refused by a limit (`RATE_LIMIT`, `TOO_MANY_STREAMS`, `BUDGET`, ...): `Refusals` by
/// `code`, and by `code` and `plan` when the caller's plan is known.
pub fn refusal(emitter: &Emitter, at: Timestamp, code: &str, plan: Option<&str>) {
    if matches!(emitter, Emitter::Off) {
        return;
    }
    let line = Line::new(at).dimension("code", code);
    let line = match plan {
        Some(plan) => line.dimension("plan", plan).directive(&[&["code"], &["code", "plan"]]),
        None => line.directive(&[&["code"]]),
    };
    emitter.emit(&line.metric("Refusals", Unit::Count, 1));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks `line` is a valid EMF record: every directive in namespace `Athena`, every
    /// dimension it names present as a string at the root, every metric it names present as a
    /// number. Returns the directives' `(dimension sets, metric names)`.
    pub(crate) fn valid(line: &Value) -> Vec<(Vec<Vec<String>>, Vec<String>)> {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_i64().is_some(), "Timestamp: {line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
        assert!(!directives.is_empty(), "{line}");
        directives
            .iter()
            .map(|d| {
                assert_eq!(d["Namespace"], NAMESPACE, "{line}");
                let sets: Vec<Vec<String>> = serde_json::from_value(d["Dimensions"].clone()).expect("Dimensions");
                assert!(!sets.is_empty(), "{line}");
                for key in sets.iter().flatten() {
                    assert!(line[key].is_string(), "dimension {key} has no value: {line}");
                }
                let metrics = d["Metrics"].as_array().expect("Metrics");
                assert!(!metrics.is_empty(), "{line}");
                let names: Vec<String> = metrics
                    .iter()
                    .map(|m| {
                        let name = m["Name"].as_str().expect("Name").to_owned();
                        assert!(m["Unit"].is_string(), "{line}");
                        assert!(line[&name].is_number(), "metric {name} has no value: {line}");
                        name
                    })
                    .collect();
                (sets, names)
            })
            .collect()
    }

    fn captured_one(emitter: &Emitter) -> Value {
        let lines = emitter.captured();
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.into_iter().next().unwrap_or_default()
    }

    fn set(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    fn at() -> Timestamp {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_successful_request_counts_one_request_and_nothing_else() {
        let emitter = Emitter::capture();
        request(&emitter, at(), Outcome::default());
        let line = captured_one(&emitter);
        assert_eq!(valid(&line), vec![(vec![vec![]], set(&["ApiRequests"]))]);
        assert_eq!(line["ApiRequests"], 1);
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_i64);
    }

    #[test]
    fn an_error_response_counts_its_code_and_an_auth_failure_its_own_metric() {
        let emitter = Emitter::capture();
        request(
            &emitter,
            at(),
            Outcome {
                error_code: Some("AUTH"),
                auth_failure: true,
            },
        );
        let line = captured_one(&emitter);
        assert_eq!(
            valid(&line),
            vec![
                (vec![vec![]], set(&["ApiRequests", "AuthFailures"])),
                (vec![set(&["code"])], set(&["ApiErrors"])),
            ]
        );
        assert_eq!((line["code"].as_str(), &line["ApiErrors"]), (Some("AUTH"), &json!(1)));
    }

    #[test]
    fn a_refusal_has_its_code_and_its_plan_when_known() {
        let emitter = Emitter::capture();
        refusal(&emitter, at(), "BUDGET", None);
        let line = captured_one(&emitter);
        assert_eq!(valid(&line), vec![(vec![set(&["code"])], set(&["Refusals"]))]);
        assert_eq!((line["code"].as_str(), line.get("plan")), (Some("BUDGET"), None));

        let emitter = Emitter::capture();
        refusal(&emitter, at(), "RATE_LIMIT", Some("free"));
        let line = captured_one(&emitter);
        assert_eq!(
            valid(&line),
            vec![(vec![set(&["code"]), set(&["code", "plan"])], set(&["Refusals"]))]
        );
        assert_eq!(line["plan"], "free");
    }

    #[test]
    fn nothing_is_written_when_off() {
        let emitter = Emitter::Off;
        request(&emitter, at(), Outcome::default());
        refusal(&emitter, at(), "BUDGET", None);
        assert!(emitter.captured().is_empty());
    }

    #[test]
    fn a_metric_without_a_value_is_left_out() {
        let line = Line::new(at())
            .metric("A", Unit::Count, 1)
            .metric_if("B", Unit::Milliseconds, None::<u64>);
        let parsed: Value = serde_json::from_str(&line.render()).unwrap_or_default();
        assert_eq!(valid(&parsed), vec![(vec![vec![]], set(&["A"]))]);
    }
}
