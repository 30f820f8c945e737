//! The workload specification (YAML), its variables and its validation.
//!
//! A malformed file fails before anything starts, naming the file, the field
//! and the reason. Loading resolves it once into typed values: durations
//! are [`Duration`]s, every number written as `${var}` becomes the number
//! (after `--scale`), and `${var}` in SQL is substituted, so the runner
//! reads a workload that can no longer fail to resolve, and the report keeps
//! exactly what ran. See `docs/workload-spec.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod load;
mod vars;

pub use vars::{Vars, parse_duration};

/// A number that may be written as `${var}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Num {
    /// A literal integer.
    Int(i64),
    /// A literal float.
    Float(f64),
    /// Text, usually `${var}` or an arithmetic-free reference.
    Text(String),
}

/// A whole workload file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Workload name (also the report directory suffix).
    pub name: String,
    /// Version of the workload definition.
    #[serde(default = "default_version")]
    pub version: u32,
    /// What the workload exercises.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice (per client: seed + client index).
    #[serde(default)]
    pub seed: u64,
    /// Variables usable as `${name}` in SQL and numbers.
    #[serde(default)]
    pub vars: BTreeMap<String, Num>,
    /// Variables multiplied by `--scale`.
    #[serde(default)]
    pub scaled: Vec<String>,
    /// Schema and setup SQL, run in order before loading.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Data generation steps.
    #[serde(default)]
    pub load: Vec<LoadStep>,
    /// Named parameter generators.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Measured phases, in order.
    pub phases: Vec<Phase>,
    /// SQL assertions run at the end.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Fault schedule (kill, restart, partition, split): reserved; a non-empty
    /// schedule is rejected until fault injection exists.
    #[serde(default)]
    pub faults: Vec<serde_yaml::Value>,
}

fn default_version() -> u32 {
    1
}

/// A data generation step: `sql` runs once per batch with `{start}` and
/// `{end}` replaced by the batch's first and last row number (1-based).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadStep {
    /// SQL with `{start}` / `{end}`.
    pub sql: String,
    /// Total rows.
    pub rows: Num,
    /// Rows per statement (default: all at once).
    #[serde(default)]
    pub batch: Option<Num>,
}

/// How integer parameters are distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    /// Every value in `[min, max]` equally likely.
    Uniform,
    /// Zipf over `[min, max]` (`theta` skew, rank 1 = `min`).
    Zipfian,
    /// `start`, `start + step`, ... shared by all clients of a run.
    Sequential,
}

/// A typed parameter generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ParamSpec {
    /// 64-bit integers.
    Int {
        /// Distribution.
        dist: Dist,
        /// Smallest value (uniform, zipfian).
        #[serde(default)]
        min: Option<Num>,
        /// Largest value (uniform, zipfian).
        #[serde(default)]
        max: Option<Num>,
        /// Zipf exponent (default 0.99).
        #[serde(default)]
        theta: Option<f64>,
        /// First value (sequential).
        #[serde(default)]
        start: Option<Num>,
        /// Increment (sequential, default 1).
        #[serde(default)]
        step: Option<Num>,
    },
    /// Floats uniform in `[min, max)`.
    Float {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Random alphanumeric text.
    Text {
        /// Length in characters.
        len: usize,
        /// Fixed prefix.
        #[serde(default)]
        prefix: String,
    },
    /// One of the given strings, uniformly.
    Choice {
        /// The choices.
        values: Vec<String>,
    },
}

/// A measured phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// How long to run (e.g. `30s`), after warm-up.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Or: how many operations to run in total.
    #[serde(default)]
    pub operations: Option<Num>,
    /// Unmeasured warm-up before the measured part.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub warmup: Option<Duration>,
    /// Concurrent clients (connections).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Target rate in operations per second over all clients (absent =
    /// as fast as possible). Latency then counts from the intended start
    /// (coordinated omission correction).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Weighted operations.
    pub ops: Vec<Operation>,
}

fn default_concurrency() -> usize {
    4
}

/// One SQL statement of an operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// SQL with `$1..$n`.
    pub sql: String,
    /// Parameter generator names for `$1..$n`.
    #[serde(default)]
    pub params: Vec<String>,
    /// Exact number of rows the statement must affect.
    #[serde(default)]
    pub expect_rows: Option<Num>,
}

/// Database flavour an operation or check applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// HoloFusion (embedded or docker).
    Holofusion,
    /// PostgreSQL (or any other server reached by URL).
    Postgres,
}

/// A weighted operation: one statement, or several (optionally in a
/// transaction) sharing one draw of parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// Name in reports.
    pub name: String,
    /// Relative weight.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Single statement shorthand.
    #[serde(default)]
    pub sql: Option<String>,
    /// Parameters of `sql`.
    #[serde(default)]
    pub params: Vec<String>,
    /// Rows `sql` must affect.
    #[serde(default)]
    pub expect_rows: Option<Num>,
    /// Several statements.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Run the steps in one transaction (BEGIN ... COMMIT).
    #[serde(default)]
    pub transaction: bool,
    /// For parameterless queries: the first column of the first row must
    /// equal this (after `${var}` substitution) on every execution.
    #[serde(default)]
    pub expect: Option<String>,
    /// SQLSTATEs that make the whole operation retry (e.g. `40001`).
    #[serde(default)]
    pub retry_on: Vec<String>,
    /// Attempts including the first (default 10 with retry_on, else 1).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Targets the operation runs on (default: all).
    #[serde(default)]
    pub targets: Vec<Flavor>,
}

fn default_weight() -> u32 {
    1
}

/// An SQL assertion run at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Name in reports.
    pub name: String,
    /// Query; its first column of the first row is compared.
    pub sql: String,
    /// Expected value after substitution of `${var}` and
    /// `${ops.<phase>.<op>.ok|rows}` counters.
    pub expect: String,
    /// Targets the check applies to (default: all).
    #[serde(default)]
    pub targets: Vec<Flavor>,
}

impl Operation {
    /// The statements of the operation (the `sql` shorthand or `steps`).
    pub fn statements(&self) -> Vec<Step> {
        match &self.sql {
            Some(sql) => vec![Step {
                sql: sql.clone(),
                params: self.params.clone(),
                expect_rows: self.expect_rows.clone(),
            }],
            None => self.steps.clone(),
        }
    }

    /// Whether the operation runs on `flavor`.
    pub fn applies_to(&self, flavor: Flavor) -> bool {
        self.targets.is_empty() || self.targets.contains(&flavor)
    }

    /// Attempts including the first.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
            .unwrap_or(if self.retry_on.is_empty() { 1 } else { 10 })
            .max(1)
    }
}

impl Check {
    /// Whether the check applies to `flavor`.
    pub fn applies_to(&self, flavor: Flavor) -> bool {
        self.targets.is_empty() || self.targets.contains(&flavor)
    }
}
