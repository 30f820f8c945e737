//! `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON t (...)
//! [INCLUDE (...)]` and `DROP INDEX`: both online schema changes run as
//! jobs ([`crate::jobs`]); the statement returns when its job ended.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{self, CreateIndex, Expr as SqlExpr, ObjectName};
use holo_kv::KvError;
use holo_txn_types::KeyError;

use super::{ident_name, resolve_table_name};
use crate::catalog::descriptor::{
    IndexColumnDescriptor, IndexDescriptor, IndexState, TableDescriptor,
};
use crate::catalog::keys::namespace_key;
use crate::catalog::{Catalog, relation_exists, relation_missing};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::{CancelOnDrop, Interrupt};
use crate::jobs::JobKind;
use crate::jobs::runner;
use crate::jobs::statements::create_job;

/// Rejects the parts of CREATE INDEX HoloFusion does not implement.
fn check_supported(ci: &CreateIndex) -> SqlResult<()> {
    if ci.predicate.is_some() {
        return Err(SqlError::unsupported(
            "partial indexes (CREATE INDEX ... WHERE) are not supported",
        ));
    }
    if let Some(using) = &ci.using
        && !using.to_string().eq_ignore_ascii_case("btree")
    {
        return Err(SqlError::unsupported(format!(
            "index access method \"{}\" is not supported; indexes are ordered (btree)",
            using.to_string().to_lowercase()
        )));
    }
    if ci.nulls_distinct == Some(false) {
        return Err(SqlError::unsupported(
            "UNIQUE NULLS NOT DISTINCT is not supported",
        ));
    }
    if !ci.with.is_empty() || !ci.index_options.is_empty() || !ci.alter_options.is_empty() {
        return Err(SqlError::unsupported(
            "index storage parameters and options are not supported",
        ));
    }
    Ok(())
}

/// One key column: its name and whether it is DESC.
fn key_column(c: &ast::IndexColumn) -> SqlResult<(String, bool)> {
    if c.operator_class.is_some() {
        return Err(SqlError::unsupported("operator classes are not supported"));
    }
    let name = match &c.column.expr {
        SqlExpr::Identifier(id) => ident_name(id),
        other => {
            return Err(SqlError::unsupported(format!(
                "indexes on expressions ({other}) are not supported"
            )));
        }
    };
    let descending = c.column.options.asc == Some(false);
    // NULLs sort first in a DESC column and last in an ASC one, as
    // PostgreSQL's defaults; the other orders are not implemented.
    if let Some(nulls_first) = c.column.options.nulls_first
        && nulls_first != descending
    {
        return Err(SqlError::unsupported(
            "NULLS FIRST on an ascending or NULLS LAST on a descending index column is not supported",
        ));
    }
    Ok((name, descending))
}

fn column_id(desc: &TableDescriptor, name: &str) -> SqlResult<u32> {
    desc.column(name).map(|c| c.id).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    })
}

/// The index `ci` adds to `desc` (not yet added), delete-only; `taken`
/// tells whether a relation name is in use.
fn index_descriptor(
    desc: &TableDescriptor,
    ci: &CreateIndex,
    taken: &dyn Fn(&str) -> bool,
) -> SqlResult<IndexDescriptor> {
    let keys = ci
        .columns
        .iter()
        .map(key_column)
        .collect::<SqlResult<Vec<_>>>()?;
    let columns = keys
        .iter()
        .map(|(name, descending)| {
            Ok(IndexColumnDescriptor {
                id: column_id(desc, name)?,
                descending: *descending,
            })
        })
        .collect::<SqlResult<Vec<_>>>()?;
    let include_names: Vec<String> = ci.include.iter().map(ident_name).collect();
    let mut include_ids = Vec::with_capacity(include_names.len());
    for name in &include_names {
        let id = column_id(desc, name)?;
        if !include_ids.contains(&id) {
            include_ids.push(id);
        }
    }
    let name = match &ci.name {
        Some(n) => resolve_table_name(n)?,
        None => {
            // PostgreSQL's choice: table, every column, `idx`; a number
            // appended until the name is free.
            let mut parts = vec![desc.name.clone()];
            parts.extend(keys.iter().map(|(n, _)| n.clone()));
            parts.extend(include_names.iter().cloned());
            let base = format!("{}_idx", parts.join("_"));
            let mut name = base.clone();
            let mut n = 1;
            while taken(&name) {
                name = format!("{base}{n}");
                n += 1;
            }
            name
        }
    };
    Ok(IndexDescriptor {
        id: desc.next_index_id,
        name,
        columns,
        include_ids,
        unique: ci.unique,
        constraint: false,
        state: IndexState::DeleteOnly,
        readable_from: None,
    })
}

/// Runs a CREATE INDEX: adds the index delete-only with its job in one
/// transaction, then runs the job here until it ends. `text` describes the
/// job; `interrupt` (the statement's) cancels it, undoing the change.
pub async fn create_index(
    catalog: &Arc<Catalog>,
    ci: &CreateIndex,
    interrupt: &Arc<Interrupt>,
) -> SqlResult<()> {
    check_supported(ci)?;
    let table = resolve_table_name(&ci.table_name)?;
    let not_found = || relation_missing(&table);
    catalog.refresh_if_stale().await?;
    let entry = catalog.table(&table).ok_or_else(not_found)?;
    let txn = catalog.begin().await?;
    let mut desc = catalog
        .stored_table(&txn, entry.desc.id)
        .await?
        .ok_or_else(not_found)?;
    let taken = |n: &str| catalog.relation_exists(n) || desc.indexes.iter().any(|i| i.name == n);
    let index = index_descriptor(&desc, ci, &taken)?;
    if taken(&index.name) {
        return if ci.if_not_exists {
            Ok(())
        } else {
            Err(relation_exists(&index.name))
        };
    }
    desc.next_index_id = desc.next_index_id.checked_add(1).ok_or_else(|| {
        SqlError::new(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("table \"{table}\" has used up its index ids"),
        )
    })?;
    let index_id = index.id;
    desc.indexes.push(index);
    let text = ci.to_string();
    build_index(
        catalog,
        txn,
        desc,
        index_id,
        &text,
        ci.if_not_exists,
        interrupt,
    )
    .await
}

/// Commits index `index_id` of `desc` (added there, delete-only, its id
/// handed out) in `txn` with its name and its job, then runs the job here
/// until it ends; `interrupt` (the statement's) cancels it, undoing the
/// change. A name another node took meanwhile is 42P07 (nothing with
/// `if_not_exists`).
pub(super) async fn build_index(
    catalog: &Arc<Catalog>,
    txn: holo_kv::Transaction,
    desc: TableDescriptor,
    index_id: u16,
    text: &str,
    if_not_exists: bool,
    interrupt: &Arc<Interrupt>,
) -> SqlResult<()> {
    let name = desc
        .indexes
        .iter()
        .find(|i| i.id == index_id)
        .map(|i| i.name.clone())
        .ok_or_else(|| SqlError::internal(format!("index {index_id} is not in the table")))?;
    let name_key = namespace_key(desc.parent_id, &name);
    txn.insert(name_key.clone(), desc.id.to_be_bytes().to_vec())?;
    let kind = JobKind::CreateIndex {
        table_id: desc.id,
        index_id,
    };
    catalog.write_table(&txn, desc).await?;
    let (id, claim) = create_job(catalog, &txn, kind, text, "delete-only").await?;
    match txn.commit().await {
        Ok(_) => {}
        Err(KvError::Key(KeyError::AlreadyExists { key })) if key == name_key => {
            catalog.reload().await?;
            return if if_not_exists {
                Ok(())
            } else {
                Err(relation_exists(&name))
            };
        }
        Err(e) => return Err(e.into()),
    }
    catalog.reload().await?;
    run_job(catalog, id, claim, interrupt.clone(), true).await
}

/// Runs job `id` on a task of its own, so that a client that goes away (or
/// a cancel request, which drops the statement) does not stop it half-way:
/// with `cancel_on_drop` the job is then canceled and reverts by itself,
/// otherwise it runs to its end.
pub(super) async fn run_job(
    catalog: &Arc<Catalog>,
    id: u64,
    claim: u64,
    interrupt: Arc<Interrupt>,
    cancel_on_drop: bool,
) -> SqlResult<()> {
    let guard = cancel_on_drop.then(|| CancelOnDrop::new(&interrupt));
    let task = tokio::spawn(runner::run(catalog.clone(), id, claim, interrupt));
    let result = task
        .await
        .map_err(|e| SqlError::internal(format!("schema-change job {id} failed: {e}")));
    if let Some(g) = guard {
        g.disarm();
    }
    result??;
    // The statement returns once every node uses the change's last step,
    // so the next statement on any node sees it; but only for a while: the
    // change is done, and a transaction block open on the old version (its
    // client perhaps waiting for this statement) must not hold it forever.
    let none = Interrupt::none();
    let wait = catalog.wait_for_version(catalog.stored_version(), &none);
    match tokio::time::timeout(FINAL_WAIT, wait).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// How long a schema-change statement waits, after its last step, for
/// every node to use it.
const FINAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs a DROP INDEX of `names`. The index of a UNIQUE constraint goes
/// with its constraint only (2BP01), as in PostgreSQL; any other is made
/// write-only with its job in one transaction, then the job removes it.
pub async fn drop_indexes(
    catalog: &Arc<Catalog>,
    names: &[ObjectName],
    if_exists: bool,
    text: &str,
) -> SqlResult<()> {
    catalog.refresh_if_stale().await?;
    for name in names {
        let name = resolve_table_name(name)?;
        let Some(table) = catalog.index_owner(&name) else {
            if if_exists {
                continue;
            }
            return Err(SqlError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("index \"{name}\" does not exist"),
            ));
        };
        let owner = &table.desc.name;
        let Some(index) = table.desc.index(&name) else {
            continue;
        };
        if index.constraint {
            return Err(SqlError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "cannot drop index {name} because constraint {name} on table {owner} requires it"
                ),
            )
            .with_hint(format!(
                "You can drop constraint {name} on table {owner} instead."
            )));
        }
        super::foreign_keys::index_unreferenced(&table, index, "index", false)?;
        drop_index(catalog, table.desc.id, index.id, text).await?;
    }
    Ok(())
}

/// Makes index `index_id` of table `table_id` write-only with its job in
/// one transaction, then runs the job, which removes it.
pub(super) async fn drop_index(
    catalog: &Arc<Catalog>,
    table_id: u32,
    index_id: u16,
    text: &str,
) -> SqlResult<()> {
    let txn = catalog.begin().await?;
    let Some(mut desc) = catalog.stored_table(&txn, table_id).await? else {
        return Ok(());
    };
    let Some(stored) = desc.indexes.iter_mut().find(|i| i.id == index_id) else {
        return Ok(());
    };
    if stored.state != IndexState::Public {
        return Err(SqlError::new(
            sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "index \"{}\" is being built or dropped by a schema-change job",
                stored.name
            ),
        )
        .with_hint("see SHOW JOBS"));
    }
    stored.state = IndexState::WriteOnly;
    let kind = JobKind::DropIndex { table_id, index_id };
    catalog.write_table(&txn, desc).await?;
    let (id, claim) = create_job(catalog, &txn, kind, text, "write-only").await?;
    txn.commit().await?;
    catalog.reload().await?;
    run_job(catalog, id, claim, Interrupt::none(), false).await
}
