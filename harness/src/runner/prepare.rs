//! Preparation: the workload's setup SQL and load steps, before any phase.

use super::*;

/// Runs setup SQL and load steps.
pub(super) async fn prepare(
    target: &Target,
    workload: &Workload,
    vars: &Vars,
    quiet: bool,
) -> Result<(), HarnessError> {
    let client = target.connect(0).await?;
    let none = BTreeMap::new();
    for sql in &workload.setup {
        let sql = vars.substitute(sql, &none).map_err(|r| HarnessError::Sql {
            stage: "setup".into(),
            sql: sql.clone(),
            reason: r,
        })?;
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| sql_err("setup", &sql, &e))?;
    }
    for step in &workload.load {
        let rows = vars.int(&step.rows).map_err(|r| HarnessError::Sql {
            stage: "load".into(),
            sql: step.sql.clone(),
            reason: r,
        })?;
        let batch = match &step.batch {
            Some(b) => vars.int(b).map_err(|r| HarnessError::Sql {
                stage: "load".into(),
                sql: step.sql.clone(),
                reason: r,
            })?,
            None => rows.max(1),
        };
        let bar = progress(quiet, rows as u64, "load");
        let mut start = 1i64;
        while start <= rows {
            let end = (start + batch - 1).min(rows);
            let mut extra = BTreeMap::new();
            extra.insert("start".to_string(), start.to_string());
            extra.insert("end".to_string(), end.to_string());
            let sql = vars
                .substitute(
                    &step
                        .sql
                        .replace("{start}", "${start}")
                        .replace("{end}", "${end}"),
                    &extra,
                )
                .map_err(|r| HarnessError::Sql {
                    stage: "load".into(),
                    sql: step.sql.clone(),
                    reason: r,
                })?;
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| sql_err("load", &sql, &e))?;
            bar.inc((end - start + 1) as u64);
            start = end + 1;
        }
        bar.finish_and_clear();
    }
    Ok(())
}

pub(super) fn progress(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{prefix:>8} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}
