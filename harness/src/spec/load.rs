//! Reading a workload file: parsing, resolving its variables with the run's
//! scale, and validating every field (errors name the file and field).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::error::HarnessError;

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
        let workload = workload.resolve(&vars).map_err(|(f, r)| spec_err(&f, r))?;
        Ok((workload, vars))
    }

    /// The workload with its numbers and SQL resolved against `vars`; an
    /// unknown `${var}` fails naming the field. Variables become the
    /// resolved values and nothing is scaled again, so the result, written
    /// back as YAML, runs the same at scale 1.
    fn resolve(mut self, vars: &Vars) -> Result<Workload, (String, String)> {
        let no_extra = BTreeMap::new();
        let num = |n: &mut Num, field: String| -> Result<(), (String, String)> {
            if matches!(n, Num::Text(_)) {
                *n = Num::Int(vars.int(n).map_err(|r| (field, r))?);
            }
            Ok(())
        };
        let sql = |text: &mut String, field: String| -> Result<(), (String, String)> {
            *text = vars.substitute(text, &no_extra).map_err(|r| (field, r))?;
            Ok(())
        };
        for (i, s) in self.setup.iter_mut().enumerate() {
            sql(s, format!("setup[{i}]"))?;
        }
        for (i, step) in self.load.iter_mut().enumerate() {
            sql(&mut step.sql, format!("load[{i}].sql"))?;
            num(&mut step.rows, format!("load[{i}].rows"))?;
            if let Some(b) = &mut step.batch {
                num(b, format!("load[{i}].batch"))?;
            }
        }
        for (name, p) in self.params.iter_mut() {
            if let ParamSpec::Int {
                min,
                max,
                start,
                step,
                ..
            } = p
            {
                for (field, n) in [("min", min), ("max", max), ("start", start), ("step", step)] {
                    if let Some(n) = n {
                        num(n, format!("params.{name}.{field}"))?;
                    }
                }
            }
        }
        for (pi, phase) in self.phases.iter_mut().enumerate() {
            if let Some(n) = &mut phase.operations {
                num(n, format!("phases[{pi}].operations"))?;
            }
            for (oi, op) in phase.ops.iter_mut().enumerate() {
                let f = |field: &str| format!("phases[{pi}].ops[{oi}].{field}");
                if let Some(s) = &mut op.sql {
                    sql(s, f("sql"))?;
                }
                if let Some(n) = &mut op.expect_rows {
                    num(n, f("expect_rows"))?;
                }
                if let Some(e) = &mut op.expect {
                    sql(e, f("expect"))?;
                }
                for (si, step) in op.steps.iter_mut().enumerate() {
                    sql(&mut step.sql, f(&format!("steps[{si}].sql")))?;
                    if let Some(n) = &mut step.expect_rows {
                        num(n, f(&format!("steps[{si}].expect_rows")))?;
                    }
                }
            }
        }
        for (i, c) in self.checks.iter_mut().enumerate() {
            sql(&mut c.sql, format!("checks[{i}].sql"))?;
        }
        self.vars = vars
            .0
            .iter()
            .map(|(k, v)| {
                let n = v
                    .parse::<i64>()
                    .map(Num::Int)
                    .or_else(|_| v.parse::<f64>().map(Num::Float))
                    .unwrap_or_else(|_| Num::Text(v.clone()));
                (k.clone(), n)
            })
            .collect();
        self.scaled.clear();
        Ok(self)
    }

    /// Runs every phase for `d` after its warm-up (`--duration`), instead
    /// of its own duration or operation count.
    pub fn set_duration(&mut self, d: std::time::Duration) {
        for p in &mut self.phases {
            p.duration = Some(d);
            p.operations = None;
        }
    }

    /// The resolved workload as YAML (what the report keeps).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .unwrap_or_else(|e| format!("# the workload could not be written as YAML: {e}\n"))
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

    /// Checks what resolving does not: names, shapes, ranges, references
    /// between fields. (`${var}` in SQL and numbers is checked as
    /// [`Workload::resolve`] substitutes it.)
    fn validate(&self, vars: &Vars) -> Result<(), (String, String)> {
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
        for (i, step) in self.load.iter().enumerate() {
            let f = |field: &str| format!("load[{i}].{field}");
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
                    if d.is_zero() {
                        return Err((f("duration"), "must be longer than zero".into()));
                    }
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
                    for p in &step.params {
                        if !self.params.contains_key(p) {
                            return Err((
                                sf("params"),
                                format!("unknown parameter generator `{p}`"),
                            ));
                        }
                    }
                }
                if op.expect.is_some()
                    && (op.statements().len() != 1 || !op.statements()[0].params.is_empty())
                {
                    return Err((
                        f("expect"),
                        "only a single statement without parameters can have `expect`".into(),
                    ));
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
        let (w, vars) = Workload::parse(GOOD, "good.yaml", 2.5).unwrap();
        assert_eq!(vars.0["rows"], "250");
        assert_eq!(
            w.phases[0].duration,
            Some(std::time::Duration::from_secs(1))
        );
        let ParamSpec::Int { max, .. } = &w.params["key"] else {
            panic!("int generator expected")
        };
        assert_eq!(max, &Some(Num::Int(250)));
        assert_eq!(
            w.checks[0].expect, "${rows}",
            "counters resolve after the run"
        );
        // Written back, the resolved workload loads to the same values at
        // scale 1.
        let (again, vars_again) = Workload::parse(&w.to_yaml(), "resolved.yaml", 1.0).unwrap();
        assert_eq!(vars_again.0["rows"], "250");
        assert_eq!(again.phases[0].duration, w.phases[0].duration);
        assert!(w.to_yaml().contains("duration: 1s"), "{}", w.to_yaml());
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
