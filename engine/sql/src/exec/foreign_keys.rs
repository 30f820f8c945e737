//! Foreign keys at write time. A statement's row writes note what the
//! constraints need ([`FkWork`]): on the child side, the parent keys its
//! new references lead to; on the parent side, the referenced keys its
//! deletes and updates take away. Once the statement's writes are buffered,
//! every parent key is read and locked in the transaction
//! ([`check_parents`]): a parent deleted concurrently then conflicts with
//! the lock, so a child and the deletion of its parent never both commit.
//! The parent side runs as PostgreSQL's referential-integrity triggers do,
//! through SQL in the same transaction ([`Cascade`]): cascades and SET NULL
//! as UPDATE/DELETE statements on the child table (their own foreign keys
//! acted on in turn), NO ACTION and RESTRICT as a query for a referencing
//! row, when the statement and its cascades are done.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::{DmlStatement, LogicalPlan};
use datafusion::physical_plan::execute_stream;
use futures::TryStreamExt;
use holo_kv::Transaction;

use crate::catalog::descriptor::FkAction;
use crate::catalog::foreign_keys::{FkLink, ParentRef, describe_values};
use crate::catalog::{Catalog, TableEntry};
use crate::codec::column::conform;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::planner::PlanContext;

/// Parent keys read at once while checking references.
const CONCURRENT_READS: usize = 16;
/// Referenced keys per cascading statement or check query.
const KEYS_PER_STATEMENT: usize = 256;
/// Most statements one statement's cascades may run.
const MAX_CASCADE_STEPS: usize = 100_000;

/// References of one batch of child rows to check.
#[derive(Debug)]
struct ChildCheck {
    link: Arc<FkLink>,
    /// The referencing columns of the batch, in constraint order.
    values: Vec<ArrayRef>,
    /// Rows to check and where they lead (never [`ParentRef::Null`]).
    rows: Vec<(usize, ParentRef)>,
}

/// A referenced key that a parent row's delete or update took away.
#[derive(Debug, Clone)]
pub(crate) struct ParentChange {
    link: Arc<FkLink>,
    /// The referenced columns' old values (parent types).
    old: Vec<ScalarValue>,
    /// Their new values, for an update.
    new: Option<Vec<ScalarValue>>,
}

/// What a statement's writes leave for its foreign keys.
#[derive(Debug, Default)]
pub(crate) struct FkWork {
    checks: Vec<ChildCheck>,
    changes: Vec<ParentChange>,
}

/// The arrays at `positions` of full-width `rows`.
fn pick(rows: &[ArrayRef], positions: &[usize]) -> Vec<ArrayRef> {
    positions.iter().map(|&p| rows[p].clone()).collect()
}

/// Per row: whether any of the columns at `positions` differs between
/// `old` and `new` (NULL-aware).
fn changed(old: &[ArrayRef], new: &[ArrayRef], positions: &[usize]) -> SqlResult<Vec<bool>> {
    let rows = new.first().map_or(0, |a| a.len());
    let mut out = vec![false; rows];
    for &p in positions {
        let differs = distinct(&old[p], &new[p])
            .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))?;
        for (i, d) in out.iter_mut().enumerate() {
            *d |= differs.value(i);
        }
    }
    Ok(out)
}

/// Row `i` of `arrays` as scalars; `None` when one is NULL.
fn tuple(arrays: &[ArrayRef], i: usize) -> SqlResult<Option<Vec<ScalarValue>>> {
    if arrays.iter().any(|a| a.is_null(i)) {
        return Ok(None);
    }
    arrays
        .iter()
        .map(|a| ScalarValue::try_from_array(a, i).map_err(SqlError::from))
        .collect::<SqlResult<Vec<_>>>()
        .map(Some)
}

/// Every table column conformed to its type.
fn conformed(entry: &TableEntry, rows: &[ArrayRef]) -> SqlResult<Vec<ArrayRef>> {
    rows.iter()
        .zip(&entry.desc.columns)
        .map(|(a, c)| conform(a, c.ty))
        .collect()
}

impl FkWork {
    /// Whether there is nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.changes.is_empty()
    }

    fn check_references(
        &mut self,
        link: &Arc<FkLink>,
        rows: &[ArrayRef],
        which: &[bool],
    ) -> SqlResult<()> {
        let values = pick(rows, &link.child_columns);
        let refs = link.parent_refs(&values)?;
        let rows: Vec<(usize, ParentRef)> = refs
            .into_iter()
            .enumerate()
            .filter(|(i, r)| which[*i] && *r != ParentRef::Null)
            .collect();
        if !rows.is_empty() {
            self.checks.push(ChildCheck {
                link: link.clone(),
                values,
                rows,
            });
        }
        Ok(())
    }

    fn take_away(
        &mut self,
        link: &Arc<FkLink>,
        old: &[ArrayRef],
        new: Option<&[ArrayRef]>,
        which: &[bool],
    ) -> SqlResult<()> {
        let old = pick(old, &link.parent_columns);
        let new = new.map(|n| pick(n, &link.parent_columns));
        for (i, _) in which.iter().enumerate().filter(|(_, w)| **w) {
            let Some(old) = tuple(&old, i)? else {
                // A NULL is referenced by nothing.
                continue;
            };
            let new = match &new {
                Some(n) => Some(
                    n.iter()
                        .map(|a| ScalarValue::try_from_array(a, i).map_err(SqlError::from))
                        .collect::<SqlResult<Vec<_>>>()?,
                ),
                None => None,
            };
            self.changes.push(ParentChange {
                link: link.clone(),
                old,
                new,
            });
        }
        Ok(())
    }

    /// Inserted full-width `rows` of `entry`: their references.
    pub(crate) fn inserted(&mut self, entry: &TableEntry, rows: &[ArrayRef]) -> SqlResult<()> {
        if entry.links.outbound.is_empty() {
            return Ok(());
        }
        let rows = conformed(entry, rows)?;
        let all = vec![true; rows.first().map_or(0, |a| a.len())];
        for link in &entry.links.outbound {
            self.check_references(link, &rows, &all)?;
        }
        Ok(())
    }

    /// Updated rows of `entry`, full width before (`old`, where the
    /// columns of [`TableEntry::old_row_columns`] are set) and after
    /// (`new`): changed references, and changed referenced keys.
    pub(crate) fn updated(
        &mut self,
        entry: &TableEntry,
        old: &[ArrayRef],
        new: &[ArrayRef],
    ) -> SqlResult<()> {
        if entry.links.is_empty() {
            return Ok(());
        }
        let new = conformed(entry, new)?;
        for link in &entry.links.outbound {
            let which = changed(old, &new, &link.child_columns)?;
            self.check_references(link, &new, &which)?;
        }
        for link in &entry.links.inbound {
            let which = changed(old, &new, &link.parent_columns)?;
            self.take_away(link, old, Some(&new), &which)?;
        }
        Ok(())
    }

    /// Deleted rows of `entry` (full width, as for [`FkWork::updated`]).
    pub(crate) fn deleted(&mut self, entry: &TableEntry, old: &[ArrayRef]) -> SqlResult<()> {
        let all = vec![true; old.first().map_or(0, |a| a.len())];
        for link in &entry.links.inbound {
            self.take_away(link, old, None, &all)?;
        }
        Ok(())
    }

    /// Checks the references (see [`check_parents`]) and returns the
    /// parent-side changes, for [`Cascade`].
    pub(crate) async fn finish(self, txn: &Transaction) -> SqlResult<Vec<ParentChange>> {
        check_parents(txn, self.checks).await?;
        Ok(self.changes)
    }
}

/// 23503 for a reference to a missing parent.
fn not_present(link: &FkLink, values: &[ArrayRef], i: usize) -> SqlError {
    SqlError::new(
        sqlstate::FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            link.child_name, link.name
        ),
    )
    .with_detail(format!(
        "Key {} is not present in table \"{}\".",
        describe_values(&link.child_column_names, values, i),
        link.parent_name
    ))
}

/// Checks that every row of `values` (the referencing columns of `link`'s
/// child table, in constraint order) references an existing row, as `txn`
/// sees it, without locking anything: 23503 for the first that does not.
pub(crate) async fn references_exist(
    txn: &Transaction,
    link: &Arc<FkLink>,
    values: Vec<ArrayRef>,
) -> SqlResult<()> {
    let rows: Vec<(usize, ParentRef)> = link
        .parent_refs(&values)?
        .into_iter()
        .enumerate()
        .filter(|(_, r)| *r != ParentRef::Null)
        .collect();
    let check = ChildCheck {
        link: link.clone(),
        values,
        rows,
    };
    read_parents(txn, &[check], false).await
}

/// Reads every parent key the checks lead to, in `txn` (so after the
/// statement's own writes), and locks it: 23503 for the first that does
/// not exist.
async fn check_parents(txn: &Transaction, checks: Vec<ChildCheck>) -> SqlResult<()> {
    read_parents(txn, &checks, true).await
}

/// The reads of [`check_parents`], locking the keys read with `lock`.
async fn read_parents(txn: &Transaction, checks: &[ChildCheck], lock: bool) -> SqlResult<()> {
    for check in checks {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut keys: Vec<(usize, &[u8])> = Vec::new();
        for (i, r) in &check.rows {
            match r {
                ParentRef::Key(k) => {
                    if seen.insert(k.as_slice()) {
                        keys.push((*i, k.as_slice()));
                    }
                }
                ParentRef::Impossible => return Err(not_present(&check.link, &check.values, *i)),
                ParentRef::Null => {}
            }
        }
        for chunk in keys.chunks(CONCURRENT_READS) {
            let mut reads = Vec::with_capacity(chunk.len());
            for &(i, key) in chunk {
                reads.push(async move { (i, key, txn.get(key).await) });
            }
            for (i, key, read) in futures::future::join_all(reads).await {
                if read?.is_none() {
                    return Err(not_present(&check.link, &check.values, i));
                }
                if lock {
                    txn.lock(key.to_vec())?;
                }
            }
        }
    }
    Ok(())
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
    child: &TableEntry,
    tuples: &[&[ScalarValue]],
    params: &mut Vec<ScalarValue>,
) -> Option<String> {
    let types: Vec<_> = link
        .child_columns
        .iter()
        .map(|&p| child.desc.columns[p].ty.arrow_type())
        .collect();
    let cast: Vec<Vec<ScalarValue>> = tuples
        .iter()
        .filter_map(|t| {
            t.iter()
                .zip(&types)
                .map(|(v, ty)| v.cast_to(ty).ok().filter(|c| !c.is_null()))
                .collect::<Option<Vec<_>>>()
        })
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
    catalog: &'a Catalog,
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
        catalog: &'a Catalog,
        changes: Vec<ParentChange>,
    ) -> Cascade<'a> {
        Cascade {
            planning,
            txn,
            catalog,
            queue: changes.into(),
            at_end: Vec::new(),
            steps: 0,
        }
    }

    /// Changes made by a statement [`Cascade::next`] handed out.
    pub(crate) fn push(&mut self, changes: Vec<ParentChange>) {
        self.queue.extend(changes);
    }

    fn child(&self, link: &FkLink) -> SqlResult<Arc<TableEntry>> {
        self.catalog.table_by_id(link.child_id).ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!(
                    "table \"{}\" of foreign key \"{}\" was dropped",
                    link.child_name, link.name
                ),
            )
        })
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
            let action = if update {
                first.link.on_update
            } else {
                first.link.on_delete
            };
            // Changes of the same constraint and kind go together.
            let mut group = vec![first];
            let link = group[0].link.clone();
            if !(update && action == FkAction::Cascade) {
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
            }
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
        let at_end = std::mem::take(&mut self.at_end);
        for group in at_end.chunks(KEYS_PER_STATEMENT) {
            self.check_unreferenced(group, true).await?;
        }
        Ok(None)
    }

    /// The UPDATE or DELETE on the child table that `action` takes for
    /// `group` (one change for a cascading update).
    async fn action_statement(
        &self,
        link: &FkLink,
        action: FkAction,
        group: &[ParentChange],
    ) -> SqlResult<Option<DmlStatement>> {
        let child = self.child(link)?;
        let mut params = Vec::new();
        let table = quote(&child.desc.name);
        let set = match (action, &group[0].new) {
            (FkAction::Cascade, None) => None,
            (FkAction::Cascade, Some(new)) => {
                let mut terms = Vec::new();
                for (name, v) in link.child_column_names.iter().zip(new) {
                    params.push(v.clone());
                    terms.push(format!("{} = ${}", quote(name), params.len()));
                }
                Some(terms.join(", "))
            }
            _ => Some(
                link.child_columns
                    .iter()
                    .map(|&p| {
                        let column = &child.desc.columns[p];
                        let value = match (action, &column.default) {
                            (FkAction::SetDefault, Some(sql)) => sql.clone(),
                            _ => "NULL".to_string(),
                        };
                        format!("{} = {value}", quote(&column.name))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        let tuples: Vec<&[ScalarValue]> = group.iter().map(|c| c.old.as_slice()).collect();
        let Some(filter) = matching(link, &child, &tuples, &mut params) else {
            return Ok(None);
        };
        let sql = match set {
            None => format!("DELETE FROM {table} WHERE {filter}"),
            Some(set) => format!("UPDATE {table} SET {set} WHERE {filter}"),
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
        let child = self.child(&link)?;
        let mut params = Vec::new();
        let Some(filter) = matching(&link, &child, &keys, &mut params) else {
            return Ok(());
        };
        let columns: Vec<String> = link.child_column_names.iter().map(|n| quote(n)).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter} LIMIT 1",
            columns.join(", "),
            quote(&child.desc.name)
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

/// A statement on a fast path never changes a referenced key (see
/// `FastPlan::detect`): changes left for [`Cascade`] there are a bug.
pub(crate) fn expect_no_changes(changes: &[ParentChange]) -> SqlResult<()> {
    if changes.is_empty() {
        Ok(())
    } else {
        Err(SqlError::internal(
            "a fast-path write changed a referenced key",
        ))
    }
}
