//! End-of-run checks: each check's query against the target, its result
//! compared with the expected value (the run's counters substituted in).

use super::*;

/// The first column of the first row of a simple query, as text.
pub async fn first_value(
    client: &Client,
    sql: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    for msg in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = msg {
            return Ok(row.get(0).map(str::to_string));
        }
    }
    Ok(None)
}

pub(super) fn values_equal(expected: &str, observed: &str) -> bool {
    if expected.trim() == observed.trim() {
        return true;
    }
    match (
        expected.trim().parse::<f64>(),
        observed.trim().parse::<f64>(),
    ) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

/// Runs the workload's checks that apply to the target.
pub(super) async fn run_checks(
    target: &Target,
    workload: &Workload,
    vars: &Vars,
    phases: &[PhaseResult],
) -> Result<(Vec<CheckResult>, Vec<(String, String)>), HarnessError> {
    // Checks, with the run's counters as variables.
    let mut counters = BTreeMap::new();
    for p in phases {
        let names: std::collections::BTreeSet<&String> =
            p.stats.ops.keys().chain(p.stats.warmup.keys()).collect();
        for op in names {
            let m = p.stats.ops.get(op);
            let w = p.stats.warmup.get(op).copied().unwrap_or_default();
            let ok = m.map_or(0, |s| s.ok) + w.ok;
            let rows = m.map_or(0, |s| s.rows) + w.rows;
            let errors = m.map_or(0, |s| s.error_count()) + w.errors;
            counters.insert(format!("ops.{}.{}.ok", p.name, op), ok.to_string());
            counters.insert(format!("ops.{}.{}.rows", p.name, op), rows.to_string());
            counters.insert(format!("ops.{}.{}.errors", p.name, op), errors.to_string());
        }
        for phase in &workload.phases {
            for op in &phase.ops {
                for k in ["ok", "rows", "errors"] {
                    counters
                        .entry(format!("ops.{}.{}.{k}", phase.name, op.name))
                        .or_insert_with(|| "0".into());
                }
            }
        }
    }
    let client = target.connect(0).await?;
    let mut checks = Vec::new();
    let mut skipped_checks = Vec::new();
    let flavor: Flavor = target.info.flavor;
    for check in &workload.checks {
        if !check.applies_to(flavor) {
            skipped_checks.push((
                check.name.clone(),
                format!("not applicable to {flavor:?} targets"),
            ));
            continue;
        }
        let sql = vars
            .substitute(&check.sql, &BTreeMap::new())
            .unwrap_or_else(|e| e);
        let expected = vars
            .substitute(&check.expect, &counters)
            .unwrap_or_else(|e| e);
        let (observed, passed) = match first_value(&client, &sql).await {
            Ok(Some(v)) => {
                let ok = values_equal(&expected, &v);
                (v, ok)
            }
            Ok(None) => ("NULL / no rows".into(), false),
            Err(e) => (describe_error(&e), false),
        };
        checks.push(CheckResult {
            name: check.name.clone(),
            sql,
            expected,
            observed,
            passed,
        });
    }
    Ok((checks, skipped_checks))
}

#[cfg(test)]
mod tests {
    use super::values_equal;

    #[test]
    fn numeric_and_text_equality() {
        assert!(values_equal("100", "100"));
        assert!(values_equal("100", "100.0"));
        assert!(values_equal("1e3", "1000"));
        assert!(!values_equal("100", "101"));
        assert!(values_equal(" abc", "abc"));
        assert!(!values_equal("abc", "abd"));
    }
}
