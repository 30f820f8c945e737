//! Operations: statements prepared per client, parameters rendered, one
//! execution of an operation's steps and how its outcome is classified.

use super::*;

/// An operation ready to execute on one connection.
pub(super) struct PreparedOp {
    pub(super) op: Operation,
    /// Per statement: the prepared statement, or the SQLSTATE preparing failed with.
    pub(super) statements: Vec<Result<Statement, String>>,
    pub(super) sql: Vec<String>,
    pub(super) expect: Option<String>,
    pub(super) expect_rows: Vec<Option<u64>>,
    /// Distinct parameter names used by the operation.
    pub(super) param_names: Vec<String>,
    /// Per statement: generators substituted into the SQL text (`{name}`);
    /// such statements run over the simple protocol.
    pub(super) inline: Vec<Vec<String>>,
}

/// The generator names written as `{name}` in `sql`.
pub fn inline_params(sql: &str, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| sql.contains(&format!("{{{n}}}")))
        .cloned()
        .collect()
}

pub(super) fn render_inline(
    sql: &str,
    names: &[String],
    values: &BTreeMap<String, Value>,
) -> String {
    let mut out = sql.to_string();
    for n in names {
        if let Some(v) = values.get(n) {
            out = out.replace(&format!("{{{n}}}"), &v.to_string());
        }
    }
    out
}

/// The row count of the last command of a simple query.
pub(super) fn command_rows(messages: Vec<SimpleQueryMessage>) -> u64 {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n),
            _ => None,
        })
        .last()
        .unwrap_or(0)
}

pub(super) async fn prepare_ops(
    client: &Client,
    ops: &[Operation],
    vars: &Vars,
    generator_names: &[String],
) -> Result<Vec<PreparedOp>, String> {
    let none = BTreeMap::new();
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let steps = op.statements();
        let mut statements = Vec::new();
        let mut sql = Vec::new();
        let mut expect_rows = Vec::new();
        let mut param_names = Vec::new();
        let mut inline = Vec::new();
        for step in &steps {
            let text = vars.substitute(&step.sql, &none)?;
            let names = inline_params(&text, generator_names);
            let stmt = if op.expect.is_some() || !names.is_empty() {
                Err(String::new())
            } else {
                client.prepare(&text).await.map_err(|e| error_code(&e))
            };
            for n in &names {
                if !param_names.contains(n) {
                    param_names.push(n.clone());
                }
            }
            inline.push(names);
            statements.push(stmt);
            sql.push(text);
            expect_rows.push(match &step.expect_rows {
                Some(n) => Some(vars.int(n)? as u64),
                None => None,
            });
            for p in &step.params {
                if !param_names.contains(p) {
                    param_names.push(p.clone());
                }
            }
        }
        let expect = match &op.expect {
            Some(e) => Some(vars.substitute(e, &none)?),
            None => None,
        };
        out.push(PreparedOp {
            op: op.clone(),
            statements,
            sql,
            expect,
            expect_rows,
            param_names,
            inline,
        });
    }
    Ok(out)
}

pub(super) fn error_code(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(c) => c.code().to_string(),
        None => CONNECTION.to_string(),
    }
}

/// Executes one operation once (all its statements); `Ok(rows)` or the
/// error category.
pub(super) async fn execute_once(
    client: &mut Client,
    p: &PreparedOp,
    values: &BTreeMap<String, Value>,
) -> Result<u64, String> {
    if let Some(expected) = &p.expect {
        let observed = first_value(client, &p.sql[0])
            .await
            .map_err(|e| error_code(&e))?;
        return match observed {
            Some(o) if values_equal(expected, &o) => Ok(1),
            _ => Err(CHECK_FAILED.to_string()),
        };
    }
    if p.op.transaction {
        let tx = client.transaction().await.map_err(|e| error_code(&e))?;
        let rows = run_steps(&tx, p, values).await?;
        tx.commit().await.map_err(|e| error_code(&e))?;
        Ok(rows)
    } else {
        run_steps(client, p, values).await
    }
}

/// Runs the statements of `p` on `client` (a connection or a transaction).
pub(super) async fn run_steps(
    client: &impl GenericClient,
    p: &PreparedOp,
    values: &BTreeMap<String, Value>,
) -> Result<u64, String> {
    let mut rows = 0;
    for (i, step) in p.op.statements().iter().enumerate() {
        let n = if p.inline[i].is_empty() {
            let stmt = p.statements[i].as_ref().map_err(Clone::clone)?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = step
                .params
                .iter()
                .map(|n| &values[n] as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            client
                .execute(stmt, &params)
                .await
                .map_err(|e| error_code(&e))?
        } else {
            let sql = render_inline(&p.sql[i], &p.inline[i], values);
            command_rows(
                client
                    .simple_query(&sql)
                    .await
                    .map_err(|e| error_code(&e))?,
            )
        };
        if p.expect_rows[i].is_some_and(|e| e != n) {
            return Err(ROWS_MISMATCH.to_string());
        }
        rows += n;
    }
    Ok(rows)
}
