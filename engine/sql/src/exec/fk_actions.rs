//! The parent side of foreign keys: what a statement's deletes and key
//! updates of referenced rows do, as PostgreSQL's referential-integrity
//! triggers do it, through SQL in the same transaction ([`Cascade`]):
//! cascades and SET NULL / SET DEFAULT as UPDATE or DELETE statements on
//! the referencing table (their own foreign keys acted on in turn, as a
//! work list), NO ACTION and RESTRICT as a query for a referencing row.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::{DmlStatement, LogicalPlan};
use datafusion::physical_plan::execute_stream;
use futures::TryStreamExt;
use holo_kv::Transaction;

use super::foreign_keys::ParentChange;
use crate::catalog::descriptor::FkAction;
use crate::catalog::foreign_keys::{FkLink, ParentRef, describe_values};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::planner::PlanContext;

/// Referenced keys per cascading statement or check query.
const KEYS_PER_STATEMENT: usize = 256;
/// Most statements one statement's cascades may run.
const MAX_CASCADE_STEPS: usize = 100_000;

/// `key` (referenced values) in the referencing columns' types; `None`
/// when a value does not fit them (no row can reference it).
fn as_child_key(link: &FkLink, key: &[ScalarValue]) -> Option<Vec<ScalarValue>> {
    key.iter()
        .zip(&link.child_types)
        .map(|(v, ty)| v.cast_to(&ty.arrow_type()).ok().filter(|c| !c.is_null()))
        .collect()
}

/// Quotes an identifier for SQL text.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `cols` matching one of `tuples` (values cast to the child columns'
/// types; a tuple that cannot be cast matches nothing and is left out), as
/// SQL with its parameters appended to `params`. `None` when nothing can
/// match.
fn matching(
    link: &FkLink,
    tuples: &[&[ScalarValue]],
    params: &mut Vec<ScalarValue>,
) -> Option<String> {
    let cast: Vec<Vec<ScalarValue>> = tuples
        .iter()
        .filter_map(|t| as_child_key(link, t))
        .collect();
    if cast.is_empty() {
        return None;
    }
    let names: Vec<String> = link.child_column_names.iter().map(|n| quote(n)).collect();
    if let [name] = names.as_slice() {
        let mut list = Vec::with_capacity(cast.len());
        for t in cast {
            params.extend(t);
            list.push(format!("${}", params.len()));
        }
        return Some(format!("{name} IN ({})", list.join(", ")));
    }
    let mut alternatives = Vec::with_capacity(cast.len());
    for t in cast {
        let mut terms = Vec::with_capacity(names.len());
        for (name, v) in names.iter().zip(t) {
            params.push(v);
            terms.push(format!("{name} = ${}", params.len()));
        }
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    Some(alternatives.join(" OR "))
}

/// Where a statement's parent-side changes stand: [`Cascade::next`] runs
/// the checks and hands out the statements the actions need; the caller
/// runs each one and [`Cascade::push`]es the changes it makes.
pub(crate) struct Cascade<'a> {
    planning: &'a PlanContext,
    txn: &'a Transaction,
    queue: VecDeque<ParentChange>,
    /// NO ACTION changes, checked when everything else is done.
    at_end: Vec<ParentChange>,
    steps: usize,
}

impl<'a> Cascade<'a> {
    /// The actions of `changes`, made in `txn`.
    pub(crate) fn new(
        planning: &'a PlanContext,
        txn: &'a Transaction,
        changes: Vec<ParentChange>,
    ) -> Cascade<'a> {
        Cascade {
            planning,
            txn,
            queue: changes.into(),
            at_end: Vec::new(),
            steps: 0,
        }
    }

    /// Changes made by a statement [`Cascade::next`] handed out.
    pub(crate) fn push(&mut self, changes: Vec<ParentChange>) {
        self.queue.extend(changes);
    }

    /// The next statement to run, or `None` when every action is done and
    /// every check passed.
    pub(crate) async fn next(&mut self) -> SqlResult<Option<DmlStatement>> {
        while let Some(first) = self.queue.pop_front() {
            self.steps += 1;
            if self.steps > MAX_CASCADE_STEPS {
                return Err(SqlError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "foreign-key actions of one statement ran more than {MAX_CASCADE_STEPS} statements"
                    ),
                ));
            }
            let update = first.new.is_some();
            let link = first.link.clone();
            let action = if update {
                link.on_update
            } else {
                link.on_delete
            };
            // Changes of the same constraint and kind go together, so one
            // statement reads every row it changes before it writes any
            // (keys moving onto each other's old values stay apart).
            let mut group = vec![first];
            let mut rest = VecDeque::with_capacity(self.queue.len());
            for c in self.queue.drain(..) {
                if group.len() < KEYS_PER_STATEMENT
                    && Arc::ptr_eq(&c.link, &link)
                    && c.new.is_some() == update
                {
                    group.push(c);
                } else {
                    rest.push_back(c);
                }
            }
            self.queue = rest;
            match action {
                FkAction::NoAction => self.at_end.extend(group),
                FkAction::Restrict => self.check_unreferenced(&group, false).await?,
                FkAction::Cascade | FkAction::SetNull | FkAction::SetDefault => {
                    if action == FkAction::SetDefault {
                        // A default that is the key taken away still
                        // references it (PostgreSQL checks this too).
                        self.at_end.extend(group.iter().cloned());
                    }
                    if let Some(dml) = self.action_statement(&link, action, &group).await? {
                        return Ok(Some(dml));
                    }
                }
            }
        }
        // The checks at the end, each constraint on its own.
        let mut at_end = std::mem::take(&mut self.at_end);
        while let Some(first) = at_end.first() {
            let link = first.link.clone();
            let (same, others): (Vec<_>, Vec<_>) = at_end
                .into_iter()
                .partition(|c| Arc::ptr_eq(&c.link, &link));
            for group in same.chunks(KEYS_PER_STATEMENT) {
                self.check_unreferenced(group, true).await?;
            }
            at_end = others;
        }
        Ok(None)
    }

    /// The UPDATE or DELETE on the child table that `action` takes for
    /// `group` (changes of one constraint).
    async fn action_statement(
        &self,
        link: &FkLink,
        action: FkAction,
        group: &[ParentChange],
    ) -> SqlResult<Option<DmlStatement>> {
        let mut params = Vec::new();
        let table = quote(&link.child_name);
        let names: Vec<String> = link.child_column_names.iter().map(|n| quote(n)).collect();
        let sql = match action {
            FkAction::Cascade if group[0].new.is_some() => {
                // Each referencing row takes the new key of the old key it
                // holds: SET c = CASE WHEN <old key 1> THEN <new 1> ... END.
                let mut conditions = Vec::new();
                let mut news: Vec<Vec<usize>> = Vec::new();
                for change in group {
                    let (Some(old), Some(new)) = (as_child_key(link, &change.old), &change.new)
                    else {
                        continue;
                    };
                    let terms: Vec<String> = names
                        .iter()
                        .zip(old)
                        .map(|(n, v)| {
                            params.push(v);
                            format!("{n} = ${}", params.len())
                        })
                        .collect();
                    conditions.push(format!("({})", terms.join(" AND ")));
                    news.push(
                        new.iter()
                            .map(|v| {
                                params.push(v.clone());
                                params.len()
                            })
                            .collect(),
                    );
                }
                if conditions.is_empty() {
                    return Ok(None);
                }
                let sets: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| {
                        let arms: Vec<String> = conditions
                            .iter()
                            .zip(&news)
                            .map(|(c, new)| format!("WHEN {c} THEN ${}", new[j]))
                            .collect();
                        format!("{n} = CASE {} ELSE {n} END", arms.join(" "))
                    })
                    .collect();
                format!(
                    "UPDATE {table} SET {} WHERE {}",
                    sets.join(", "),
                    conditions.join(" OR ")
                )
            }
            _ => {
                let tuples: Vec<&[ScalarValue]> = group.iter().map(|c| c.old.as_slice()).collect();
                let Some(filter) = matching(link, &tuples, &mut params) else {
                    return Ok(None);
                };
                if action == FkAction::Cascade {
                    format!("DELETE FROM {table} WHERE {filter}")
                } else {
                    let sets: Vec<String> = names
                        .iter()
                        .zip(&link.child_defaults)
                        .map(|(n, default)| match (action, default) {
                            (FkAction::SetDefault, Some(sql)) => format!("{n} = {sql}"),
                            _ => format!("{n} = NULL"),
                        })
                        .collect();
                    format!("UPDATE {table} SET {} WHERE {filter}", sets.join(", "))
                }
            }
        };
        match self.plan(&sql, params).await? {
            LogicalPlan::Dml(dml) => Ok(Some(dml)),
            _ => Err(SqlError::internal(
                "a foreign-key action is not a DML statement",
            )),
        }
    }

    async fn plan(&self, sql: &str, params: Vec<ScalarValue>) -> SqlResult<LogicalPlan> {
        let stmts = crate::parse::parse(sql, None)?;
        let [stmt] = stmts.as_slice() else {
            return Err(SqlError::internal(
                "a foreign-key statement is not one statement",
            ));
        };
        let plan = self.planning.logical(stmt).await?;
        Ok(plan.with_param_values(ParamValues::from(params))?)
    }

    /// 23503 when a row of the child table still references one of the
    /// keys `group` took away. With `reprovided`, a key that the parent
    /// table holds again (another row took it) is no longer taken away
    /// (NO ACTION).
    async fn check_unreferenced(&self, group: &[ParentChange], reprovided: bool) -> SqlResult<()> {
        let Some(first) = group.first() else {
            return Ok(());
        };
        let link = first.link.clone();
        let mut keys: Vec<&[ScalarValue]> = Vec::with_capacity(group.len());
        for change in group {
            if reprovided && self.parent_holds(change).await? {
                continue;
            }
            keys.push(&change.old);
        }
        let mut params = Vec::new();
        let Some(filter) = matching(&link, &keys, &mut params) else {
            return Ok(());
        };
        let columns: Vec<String> = link.child_column_names.iter().map(|n| quote(n)).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter} LIMIT 1",
            columns.join(", "),
            quote(&link.child_name)
        );
        let plan = self.plan(&sql, params).await?;
        let physical = self.planning.physical(&plan).await?;
        let batches: Vec<_> = execute_stream(physical, self.planning.state.task_ctx())?
            .try_collect()
            .await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(());
        };
        Err(SqlError::new(
            sqlstate::FOREIGN_KEY_VIOLATION,
            format!(
                "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                link.parent_name, link.name, link.child_name
            ),
        )
        .with_detail(format!(
            "Key {} is still referenced from table \"{}\".",
            describe_values(&link.parent_column_names, batch.columns(), 0),
            link.child_name
        )))
    }

    /// Whether the parent table holds `change`'s old key again.
    async fn parent_holds(&self, change: &ParentChange) -> SqlResult<bool> {
        let arrays = change
            .old
            .iter()
            .map(|v| v.to_array().map_err(SqlError::from))
            .collect::<SqlResult<Vec<_>>>()?;
        match change.link.parent_refs(&arrays)?.pop() {
            Some(ParentRef::Key(key)) => Ok(self.txn.get(&key).await?.is_some()),
            _ => Ok(false),
        }
    }
}
