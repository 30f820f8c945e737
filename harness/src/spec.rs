//! The workload specification (YAML), its variables and its validation.
//!
//! A malformed file fails before anything starts, naming the file, the field
//! and the reason. See `docs/workload-spec.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;

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
    #[serde(default)]
    pub duration: Option<String>,
    /// Or: how many operations to run in total.
    #[serde(default)]
    pub operations: Option<Num>,
    /// Unmeasured warm-up before the measured part.
    #[serde(default)]
    pub warmup: Option<String>,
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

/// Resolved variables of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Vars(pub BTreeMap<String, String>);

impl Vars {
    /// Replaces every `${name}` in `text`; `extra` is consulted first.
    pub fn substitute(
        &self,
        text: &str,
        extra: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            let name = &after[..end];
            let value = extra
                .get(name)
                .or_else(|| self.0.get(name))
                .ok_or_else(|| format!("unknown variable `{name}`"))?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// An integer from a [`Num`].
    pub fn int(&self, n: &Num) -> Result<i64, String> {
        match n {
            Num::Int(i) => Ok(*i),
            Num::Float(f) => Ok(*f as i64),
            Num::Text(t) => {
                let s = self.substitute(t, &BTreeMap::new())?;
                s.trim()
                    .parse::<i64>()
                    .or_else(|_| s.trim().parse::<f64>().map(|f| f as i64))
                    .map_err(|_| format!("`{t}` is not an integer (got {s:?})"))
            }
        }
    }
}

/// Parses a duration like `30s`, `2m`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

impl Workload {
    /// Reads and validates `path`, resolving variables with `scale`.
    pub fn load(path: &Path, scale: f64) -> Result<(Workload, Vars), HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|e| HarnessError::Spec {
            file: path.display().to_string(),
            field: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Workload::parse(&text, &path.display().to_string(), scale)
    }

    /// Parses and validates a workload from `text` (named `file` in errors).
    pub fn parse(text: &str, file: &str, scale: f64) -> Result<(Workload, Vars), HarnessError> {
        let spec_err = |field: &str, reason: String| HarnessError::Spec {
            file: file.to_string(),
            field: field.to_string(),
            reason,
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let workload: Workload = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            spec_err(
                if path == "." { "" } else { &path },
                e.into_inner().to_string(),
            )
        })?;
        let vars = workload
            .resolve_vars(scale)
            .map_err(|(f, r)| spec_err(&f, r))?;
        workload.validate(&vars).map_err(|(f, r)| spec_err(&f, r))?;
        Ok((workload, vars))
    }

    fn resolve_vars(&self, scale: f64) -> Result<Vars, (String, String)> {
        if !(scale > 0.0 && scale.is_finite()) {
            return Err((
                "--scale".into(),
                format!("must be a positive number, got {scale}"),
            ));
        }
        let mut vars = BTreeMap::new();
        for (name, value) in &self.vars {
            let v = match value {
                Num::Int(i) if self.scaled.contains(name) => {
                    ((*i as f64) * scale).round().max(1.0) as i64
                }
                Num::Int(i) => *i,
                Num::Float(f) => {
                    vars.insert(name.clone(), f.to_string());
                    continue;
                }
                Num::Text(t) => {
                    vars.insert(name.clone(), t.clone());
                    continue;
                }
            };
            vars.insert(name.clone(), v.to_string());
        }
        for name in &self.scaled {
            if !matches!(self.vars.get(name), Some(Num::Int(_))) {
                return Err((
                    format!("scaled[{name}]"),
                    "must name an integer variable in vars".into(),
                ));
            }
        }
        Ok(Vars(vars))
    }

    fn validate(&self, vars: &Vars) -> Result<(), (String, String)> {
        let no_extra = BTreeMap::new();
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((
                "name".into(),
                "must be non-empty, letters, digits, '_' or '-'".into(),
            ));
        }
        if !self.faults.is_empty() {
            return Err((
                "faults".into(),
                "fault injection (kill, restart, partition, split) is not available yet; leave the schedule empty".into(),
            ));
        }
        for (i, sql) in self.setup.iter().enumerate() {
            vars.substitute(sql, &no_extra)
                .map_err(|r| (format!("setup[{i}]"), r))?;
        }
        for (i, step) in self.load.iter().enumerate() {
            let f = |field: &str| format!("load[{i}].{field}");
            vars.substitute(&step.sql, &no_extra)
                .map_err(|r| (f("sql"), r))?;
            let rows = vars.int(&step.rows).map_err(|r| (f("rows"), r))?;
            if rows < 0 {
                return Err((f("rows"), "must not be negative".into()));
            }
            if let Some(b) = &step.batch
                && vars.int(b).map_err(|r| (f("batch"), r))? <= 0
            {
                return Err((f("batch"), "must be positive".into()));
            }
        }
        for (name, p) in &self.params {
            let f = |field: &str| format!("params.{name}.{field}");
            match p {
                ParamSpec::Int {
                    dist,
                    min,
                    max,
                    theta,
                    start,
                    step,
                } => match dist {
                    Dist::Uniform | Dist::Zipfian => {
                        let lo = vars
                            .int(min.as_ref().ok_or((f("min"), "required".to_string()))?)
                            .map_err(|r| (f("min"), r))?;
                        let hi = vars
                            .int(max.as_ref().ok_or((f("max"), "required".to_string()))?)
                            .map_err(|r| (f("max"), r))?;
                        if lo > hi {
                            return Err((f("max"), format!("{hi} is below min {lo}")));
                        }
                        if let Some(t) = theta
                            && !(*t > 0.0 && t.is_finite())
                        {
                            return Err((f("theta"), "must be positive".into()));
                        }
                    }
                    Dist::Sequential => {
                        if let Some(s) = start {
                            vars.int(s).map_err(|r| (f("start"), r))?;
                        }
                        if let Some(s) = step {
                            vars.int(s).map_err(|r| (f("step"), r))?;
                        }
                    }
                },
                ParamSpec::Float { min, max } => {
                    if min >= max {
                        return Err((f("max"), "must be above min".into()));
                    }
                }
                ParamSpec::Text { len, .. } => {
                    if *len == 0 {
                        return Err((f("len"), "must be positive".into()));
                    }
                }
                ParamSpec::Choice { values } => {
                    if values.is_empty() {
                        return Err((f("values"), "must not be empty".into()));
                    }
                }
            }
        }
        if self.phases.is_empty() {
            return Err(("phases".into(), "at least one phase is required".into()));
        }
        let mut phase_names = BTreeSet::new();
        for (pi, phase) in self.phases.iter().enumerate() {
            let f = |field: &str| format!("phases[{pi}].{field}");
            if !phase_names.insert(&phase.name) {
                return Err((f("name"), format!("duplicate phase name `{}`", phase.name)));
            }
            match (&phase.duration, &phase.operations) {
                (Some(d), None) => {
                    parse_duration(d).map_err(|r| (f("duration"), r))?;
                }
                (None, Some(n)) => {
                    if vars.int(n).map_err(|r| (f("operations"), r))? <= 0 {
                        return Err((f("operations"), "must be positive".into()));
                    }
                }
                _ => {
                    return Err((
                        f("duration"),
                        "give exactly one of `duration` and `operations`".into(),
                    ));
                }
            }
            if let Some(w) = &phase.warmup {
                parse_duration(w).map_err(|r| (f("warmup"), r))?;
            }
            if phase.concurrency == 0 || phase.concurrency > 1024 {
                return Err((f("concurrency"), "must be between 1 and 1024".into()));
            }
            if let Some(r) = phase.rate
                && !(r > 0.0 && r.is_finite())
            {
                return Err((
                    f("rate"),
                    "must be a positive number of operations per second".into(),
                ));
            }
            if phase.ops.is_empty() {
                return Err((f("ops"), "at least one operation is required".into()));
            }
            let mut names = BTreeSet::new();
            for (oi, op) in phase.ops.iter().enumerate() {
                let f = |field: &str| format!("phases[{pi}].ops[{oi}].{field}");
                if !names.insert(&op.name) {
                    return Err((f("name"), format!("duplicate operation name `{}`", op.name)));
                }
                if op.weight == 0 {
                    return Err((f("weight"), "must be positive".into()));
                }
                match (&op.sql, op.steps.is_empty()) {
                    (Some(_), false) => {
                        return Err((f("steps"), "give either `sql` or `steps`, not both".into()));
                    }
                    (None, true) => {
                        return Err((f("sql"), "an operation needs `sql` or `steps`".into()));
                    }
                    _ => {}
                }
                if op.sql.is_none() && (!op.params.is_empty() || op.expect_rows.is_some()) {
                    return Err((
                        f("params"),
                        "`params` and `expect_rows` go inside each step when `steps` is used"
                            .into(),
                    ));
                }
                for (si, step) in op.statements().iter().enumerate() {
                    let sf = |field: &str| {
                        if op.sql.is_some() {
                            f(field)
                        } else {
                            format!("phases[{pi}].ops[{oi}].steps[{si}].{field}")
                        }
                    };
                    vars.substitute(&step.sql, &no_extra)
                        .map_err(|r| (sf("sql"), r))?;
                    for p in &step.params {
                        if !self.params.contains_key(p) {
                            return Err((
                                sf("params"),
                                format!("unknown parameter generator `{p}`"),
                            ));
                        }
                    }
                    if let Some(n) = &step.expect_rows {
                        vars.int(n).map_err(|r| (sf("expect_rows"), r))?;
                    }
                }
                if let Some(e) = &op.expect {
                    if op.statements().len() != 1 || !op.statements()[0].params.is_empty() {
                        return Err((
                            f("expect"),
                            "only a single statement without parameters can have `expect`".into(),
                        ));
                    }
                    vars.substitute(e, &no_extra)
                        .map_err(|r| (f("expect"), r))?;
                }
                for code in &op.retry_on {
                    if code.len() != 5 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return Err((f("retry_on"), format!("`{code}` is not a SQLSTATE")));
                    }
                }
            }
        }
        let mut check_names = BTreeSet::new();
        for (i, c) in self.checks.iter().enumerate() {
            if !check_names.insert(&c.name) {
                return Err((
                    format!("checks[{i}].name"),
                    format!("duplicate check name `{}`", c.name),
                ));
            }
            vars.substitute(&c.sql, &no_extra)
                .map_err(|r| (format!("checks[{i}].sql"), r))?;
            // Counters are known only after the run: check the variable names now.
            let mut rest = c.expect.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let end = after.find('}').ok_or((
                    format!("checks[{i}].expect"),
                    "unterminated `${`".to_string(),
                ))?;
                let name = &after[..end];
                let known = vars.0.contains_key(name) || self.counter_exists(name);
                if !known {
                    return Err((
                        format!("checks[{i}].expect"),
                        format!("unknown variable or counter `{name}`"),
                    ));
                }
                rest = &after[end + 1..];
            }
        }
        Ok(())
    }

    fn counter_exists(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            ["ops", phase, op, "ok" | "rows" | "errors"] => self
                .phases
                .iter()
                .any(|p| p.name == *phase && p.ops.iter().any(|o| o.name == *op)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: t
vars: { rows: 100 }
scaled: [rows]
setup: ["CREATE TABLE kv (k BIGINT PRIMARY KEY)"]
params:
  key: { kind: int, dist: uniform, min: 1, max: "${rows}" }
phases:
  - name: main
    duration: 1s
    ops:
      - { name: read, sql: "SELECT * FROM kv WHERE k = $1", params: [key] }
checks:
  - { name: count, sql: "SELECT count(*) FROM kv", expect: "${rows}" }
"#;

    #[test]
    fn good_spec_resolves_scaled_vars() {
        let (_, vars) = Workload::parse(GOOD, "good.yaml", 2.5).unwrap();
        assert_eq!(vars.0["rows"], "250");
    }

    fn err(text: &str) -> String {
        match Workload::parse(text, "bad.yaml", 1.0) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn errors_name_file_field_and_reason() {
        let e = err(&GOOD.replace("name: read", "nmae: read"));
        assert!(
            e.contains("bad.yaml") && e.contains("phases[0].ops[0]") && e.contains("nmae"),
            "{e}"
        );
        let e = err(&GOOD.replace("params: [key]", "params: [kye]"));
        assert!(
            e.contains("phases[0].ops[0].params") && e.contains("kye"),
            "{e}"
        );
        let e = err(&GOOD.replace("duration: 1s", "duration: soon"));
        assert!(e.contains("phases[0].duration"), "{e}");
        let e = err(&GOOD.replace("max: \"${rows}\"", "max: \"${nope}\""));
        assert!(e.contains("params.key.max") && e.contains("nope"), "{e}");
        let e = err(&GOOD.replace("expect: \"${rows}\"", "expect: \"${ops.main.write.ok}\""));
        assert!(e.contains("checks[0].expect"), "{e}");
        let e = err(&format!("{GOOD}\nfaults: [{{at: 1s, kill: 1}}]"));
        assert!(e.contains("faults"), "{e}");
        let e = err("name: x\nphases: []\n");
        assert!(e.contains("phases"), "{e}");
    }
}
