//! ALTER TABLE: each operation is an online schema change. The statement
//! makes the change's first step in one transaction with its job (a column
//! goes write-only, a constraint starts being enforced, a name or default
//! changes), then runs the job ([`crate::jobs`]) until every node uses the
//! result; see `docs/schema-changes.md`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnOption, RenameTableNameKind,
    TableConstraint,
};
use holo_kv::{KvError, Transaction};
use holo_txn_types::KeyError;

use super::alter_checks::{check_references, first_column, rename_in_check};
use super::create_index::{build_index, drop_index, run_job};
use super::foreign_keys::{column_unreferenced, foreign_key_descriptor, index_unreferenced};
use super::indexes::{UniqueSpec, add_unique_indexes};
use super::{
    choose_check_name, column_descriptor, ident_name, is_constant_default, resolve_table_name,
    validate_check, validate_default,
};
use crate::catalog::descriptor::{
    CheckDescriptor, ColumnDescriptor, IndexState, MissingValue, TableDescriptor,
};
use crate::catalog::keys::namespace_key;
use crate::catalog::{Catalog, relation_exists, relation_missing};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::interrupt::Interrupt;
use crate::jobs::statements::create_job;
use crate::jobs::{JobKind, TableChange};

/// What an operation does after its checks.
enum Step {
    /// Nothing (IF [NOT] EXISTS met, or the change is already so).
    Nothing,
    /// Commit the changed descriptor with a job of `change`, its first
    /// step called `step`.
    Job(TableChange, &'static str),
    /// Build index `id`, added to the descriptor delete-only.
    BuildIndex(u16),
    /// Drop index `id` (a UNIQUE constraint's).
    DropIndex(u16),
}

fn undefined_column(column: &str, table: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" does not exist"),
    )
}

fn column_exists(column: &str, table: &str) -> SqlError {
    SqlError::new(
        sqlstate::DUPLICATE_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" already exists"),
    )
}

fn in_progress(column: &str) -> SqlError {
    SqlError::new(
        sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("column \"{column}\" is being changed by a schema-change job"),
    )
    .with_hint("see SHOW JOBS")
}

fn undefined_constraint(name: &str, table: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
    )
}

/// Runs an ALTER TABLE; `text` describes its job and `interrupt` (the
/// statement's) cancels a change that can be undone.
pub async fn alter_table(
    catalog: &Arc<Catalog>,
    at: &AlterTable,
    text: &str,
    interrupt: &Arc<Interrupt>,
) -> SqlResult<()> {
    let table = resolve_table_name(&at.name)?;
    if at.location.is_some() || at.on_cluster.is_some() || at.table_type.is_some() {
        return Err(SqlError::unsupported(
            "this ALTER TABLE form is not supported",
        ));
    }
    let [op] = at.operations.as_slice() else {
        return Err(SqlError::unsupported(
            "ALTER TABLE with more than one operation is not supported",
        )
        .with_hint("run one ALTER TABLE per change"));
    };
    catalog.refresh_if_stale().await?;
    let Some(entry) = catalog.table(&table) else {
        if at.if_exists {
            return Ok(());
        }
        return Err(relation_missing(&table));
    };
    if let AlterTableOperation::DropColumn { column_names, .. } = op {
        drop_column_indexes(catalog, &entry.desc, column_names, text).await?;
    }
    let txn = catalog.begin().await?;
    let mut desc = catalog
        .stored_table(&txn, entry.desc.id)
        .await?
        .ok_or_else(|| relation_missing(&table))?;
    let mut new_name_key = None;
    let step = match op {
        AlterTableOperation::RenameTable { table_name } => {
            let name = match table_name {
                RenameTableNameKind::To(n) | RenameTableNameKind::As(n) => resolve_table_name(n)?,
            };
            if name == desc.name || catalog.relation_exists(&name) {
                return Err(relation_exists(&name));
            }
            txn.delete(namespace_key(desc.parent_id, &desc.name))?;
            let key = namespace_key(desc.parent_id, &name);
            txn.insert(key.clone(), desc.id.to_be_bytes().to_vec())?;
            new_name_key = Some((key, name.clone()));
            desc.name = name;
            Step::Job(TableChange::Metadata, "renamed")
        }
        other => plan(catalog, &mut desc, other)?,
    };
    let (change, first) = match step {
        Step::Nothing => return Ok(()),
        Step::BuildIndex(id) => {
            return build_index(catalog, txn, desc, id, text, false, interrupt).await;
        }
        Step::DropIndex(id) => {
            drop(txn);
            return drop_index(catalog, entry.desc.id, id, text).await;
        }
        Step::Job(change, first) => (change, first),
    };
    if let AlterTableOperation::AddConstraint {
        constraint: TableConstraint::ForeignKey(_),
        ..
    } = op
    {
        catalog.lock_parents(&txn, &desc).await?;
    }
    let kind = JobKind::AlterTable {
        table_id: desc.id,
        change,
    };
    let revertible = kind.revertible();
    catalog.write_table(&txn, desc).await?;
    let (id, claim) = create_job(catalog, &txn, kind, text, first).await?;
    commit(catalog, txn, new_name_key).await?;
    let interrupt = if revertible {
        interrupt.clone()
    } else {
        Interrupt::none()
    };
    run_job(catalog, id, claim, interrupt, revertible).await
}

/// Commits the first step; a new table name another node took meanwhile
/// is 42P07.
async fn commit(
    catalog: &Catalog,
    txn: Transaction,
    new_name: Option<(Vec<u8>, String)>,
) -> SqlResult<()> {
    match txn.commit().await {
        Ok(_) => {}
        Err(KvError::Key(KeyError::AlreadyExists { key }))
            if let Some((name_key, name)) = &new_name
                && &key == name_key =>
        {
            return Err(relation_exists(name));
        }
        Err(e) => return Err(e.into()),
    }
    catalog.reload().await
}

/// The step of every operation but RENAME TO, with `desc` changed.
fn plan(
    catalog: &Catalog,
    desc: &mut TableDescriptor,
    op: &AlterTableOperation,
) -> SqlResult<Step> {
    let table = desc.name.clone();
    match op {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            column_position,
            ..
        } => {
            if column_position.is_some() {
                return Err(SqlError::unsupported(
                    "ADD COLUMN ... FIRST/AFTER is not supported",
                ));
            }
            let name = ident_name(&column_def.name);
            if desc.column_name_taken(&name) {
                return if *if_not_exists {
                    Ok(Step::Nothing)
                } else {
                    Err(column_exists(&name, &table))
                };
            }
            if super::sequences::serial_type(&column_def.data_type).is_some() {
                return Err(SqlError::unsupported(
                    "ALTER TABLE ... ADD COLUMN of a SERIAL column is not supported",
                ));
            }
            let ctx = catalog.expr_context();
            let (mut column, constraints) =
                column_descriptor(ctx, column_def, desc.next_column_id)?;
            if let Some(opt) = constraints.first() {
                let what = match &opt.option {
                    ColumnOption::PrimaryKey(_) => "PRIMARY KEY",
                    ColumnOption::Unique(_) => "UNIQUE",
                    ColumnOption::Check(_) => "CHECK",
                    ColumnOption::ForeignKey(_) => "REFERENCES",
                    _ => "this column option",
                };
                return Err(SqlError::unsupported(format!(
                    "ADD COLUMN with {what} is not supported"
                ))
                .with_hint(
                    "add the column, then the constraint with ALTER TABLE ... ADD CONSTRAINT",
                ));
            }
            if let Some(sql) = &column.default {
                column.missing =
                    super::alter_checks::missing_value(ctx, &column, sql)?.map(|value| {
                        MissingValue {
                            // Set when the column becomes visible.
                            before_version: u32::MAX,
                            value,
                        }
                    });
            }
            desc.next_column_id += 1;
            let column_id = column.id;
            desc.hidden_columns.push(column);
            Ok(Step::Job(
                TableChange::AddColumn { column_id },
                "write-only",
            ))
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            ..
        } => {
            let name = single_column(column_names)?;
            let Some(pos) = desc.columns.iter().position(|c| c.name == name) else {
                if desc.hidden_columns.iter().any(|c| c.name == name) {
                    return Err(in_progress(&name));
                }
                return if *if_exists {
                    Ok(Step::Nothing)
                } else {
                    Err(undefined_column(&name, &table))
                };
            };
            let id = desc.columns[pos].id;
            check_droppable(desc, id, &name)?;
            let mut column = desc.columns.remove(pos);
            // Readers still at the previous version may meet rows written
            // without it.
            column.nullable = true;
            column.validating_not_null = false;
            desc.checks.retain(|c| !check_references(&c.expr, &name));
            desc.foreign_keys.retain(|f| !f.column_ids.contains(&id));
            desc.hidden_columns.push(column);
            Ok(Step::Job(
                TableChange::DropColumn { column_id: id },
                "write-only",
            ))
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let (old, new) = (ident_name(old_column_name), ident_name(new_column_name));
            if desc.column(&old).is_none() {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{old}\" does not exist"),
                ));
            }
            if desc.column_name_taken(&new) {
                return Err(column_exists(&new, &table));
            }
            for check in &mut desc.checks {
                check.expr = rename_in_check(&check.expr, &old, &new)?;
            }
            if let Some(c) = desc.columns.iter_mut().find(|c| c.name == old) {
                c.name = new;
            }
            Ok(Step::Job(TableChange::Metadata, "renamed"))
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            alter_column(catalog, desc, &ident_name(column_name), op)
        }
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } => add_constraint(catalog, desc, constraint, *not_valid),
        AlterTableOperation::DropConstraint {
            if_exists, name, ..
        } => {
            let name = ident_name(name);
            if let Some(pos) = desc.checks.iter().position(|c| c.name == name) {
                desc.checks.remove(pos);
                return Ok(Step::Job(TableChange::Metadata, "dropped"));
            }
            if let Some(pos) = desc.foreign_keys.iter().position(|f| f.name == name) {
                desc.foreign_keys.remove(pos);
                return Ok(Step::Job(TableChange::Metadata, "dropped"));
            }
            if let Some(index) = desc.indexes.iter().find(|i| i.constraint && i.name == name) {
                if let Some(entry) = catalog.table_by_id(desc.id) {
                    index_unreferenced(&entry, index, "constraint", true)?;
                }
                return Ok(Step::DropIndex(index.id));
            }
            if desc.primary_key.name == name {
                return Err(SqlError::unsupported(
                    "dropping a table's primary key is not supported",
                ));
            }
            if *if_exists {
                Ok(Step::Nothing)
            } else {
                Err(undefined_constraint(&name, &table))
            }
        }
        AlterTableOperation::ValidateConstraint { name } => {
            let name = ident_name(name);
            let validated = desc
                .checks
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.validated)
                .or_else(|| {
                    desc.foreign_keys
                        .iter()
                        .find(|f| f.name == name)
                        .map(|f| f.validated)
                });
            match validated {
                Some(false) => Ok(Step::Job(
                    TableChange::ValidateConstraint { name },
                    "validating",
                )),
                Some(_) => Ok(Step::Nothing),
                None if desc.index(&name).is_some_and(|i| i.constraint)
                    || desc.primary_key.name == name =>
                {
                    Ok(Step::Nothing)
                }
                None => Err(undefined_constraint(&name, &table)),
            }
        }
        other => Err(SqlError::unsupported(format!(
            "ALTER TABLE ... {} is not supported",
            operation_name(other)
        ))),
    }
}

/// The first words of an operation, for its 0A000.
fn operation_name(op: &AlterTableOperation) -> String {
    let text = op.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The one column a DROP COLUMN names.
fn single_column(names: &[datafusion::sql::sqlparser::ast::Ident]) -> SqlResult<String> {
    match names {
        [one] => Ok(ident_name(one)),
        _ => Err(SqlError::unsupported(
            "DROP COLUMN of several columns is not supported",
        )),
    }
}

/// 0A000 for a primary key column, which cannot go.
fn check_droppable(desc: &TableDescriptor, id: u32, name: &str) -> SqlResult<()> {
    if desc.is_pk(id) {
        return Err(SqlError::unsupported(format!(
            "cannot drop column \"{name}\": it is part of the primary key of \"{}\"",
            desc.name
        )));
    }
    Ok(())
}

/// Before a DROP COLUMN: drops the indexes (and UNIQUE constraints) that
/// use the column, as PostgreSQL does, each with its own job.
async fn drop_column_indexes(
    catalog: &Arc<Catalog>,
    desc: &TableDescriptor,
    names: &[datafusion::sql::sqlparser::ast::Ident],
    text: &str,
) -> SqlResult<()> {
    let name = single_column(names)?;
    let Some(column) = desc.column(&name) else {
        return Ok(());
    };
    check_droppable(desc, column.id, &name)?;
    if let Some(entry) = catalog.table_by_id(desc.id) {
        column_unreferenced(&entry, column.id, &name)?;
    }
    let using: Vec<u16> = desc
        .indexes
        .iter()
        .filter(|i| {
            i.columns.iter().any(|c| c.id == column.id) || i.include_ids.contains(&column.id)
        })
        .map(|i| i.id)
        .collect();
    for index_id in using {
        drop_index(catalog, desc.id, index_id, text).await?;
    }
    Ok(())
}

/// ALTER COLUMN `name` ... .
fn alter_column(
    catalog: &Catalog,
    desc: &mut TableDescriptor,
    name: &str,
    op: &AlterColumnOperation,
) -> SqlResult<Step> {
    let table = desc.name.clone();
    let is_pk = desc.column(name).is_some_and(|c| desc.is_pk(c.id));
    let column: &mut ColumnDescriptor = desc
        .columns
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| undefined_column(name, &table))?;
    if column.validating_not_null {
        return Err(in_progress(name));
    }
    match op {
        AlterColumnOperation::SetNotNull => {
            if !column.nullable {
                return Ok(Step::Nothing);
            }
            column.validating_not_null = true;
            Ok(Step::Job(
                TableChange::SetNotNull {
                    column_id: column.id,
                },
                "validating",
            ))
        }
        AlterColumnOperation::DropNotNull => {
            if is_pk {
                return Err(SqlError::new(
                    sqlstate::INVALID_TABLE_DEFINITION,
                    format!("column \"{name}\" is in a primary key"),
                ));
            }
            if column.nullable {
                return Ok(Step::Nothing);
            }
            column.nullable = true;
            Ok(Step::Job(TableChange::Metadata, "nullable"))
        }
        AlterColumnOperation::SetDefault { value } => {
            if !is_constant_default(value) {
                return Err(SqlError::unsupported(format!(
                    "DEFAULT {value} for column \"{name}\": only constants and CURRENT_TIMESTAMP are supported"
                )));
            }
            let sql = value.to_string();
            validate_default(catalog.expr_context(), name, column.ty, &sql)?;
            column.default = Some(sql);
            Ok(Step::Job(TableChange::Metadata, "default set"))
        }
        AlterColumnOperation::DropDefault => {
            column.default = None;
            Ok(Step::Job(TableChange::Metadata, "default dropped"))
        }
        AlterColumnOperation::SetDataType { .. } => Err(SqlError::unsupported(
            "ALTER COLUMN ... TYPE is not supported",
        )),
        AlterColumnOperation::AddGenerated { .. } => Err(SqlError::unsupported(
            "ALTER COLUMN ... ADD GENERATED is not supported",
        )),
    }
}

/// The table's constraint names (PostgreSQL's names are unique per table).
fn constraint_names(desc: &TableDescriptor) -> HashSet<String> {
    let mut used: HashSet<String> = desc.checks.iter().map(|c| c.name.clone()).collect();
    used.extend(
        desc.indexes
            .iter()
            .filter(|i| i.constraint)
            .map(|i| i.name.clone()),
    );
    used.insert(desc.primary_key.name.clone());
    used.extend(desc.foreign_keys.iter().map(|f| f.name.clone()));
    used
}

/// ADD CONSTRAINT.
fn add_constraint(
    catalog: &Catalog,
    desc: &mut TableDescriptor,
    constraint: &TableConstraint,
    not_valid: bool,
) -> SqlResult<Step> {
    let mut used = constraint_names(desc);
    match constraint {
        TableConstraint::Check(check) => {
            if check.enforced == Some(false) {
                return Err(SqlError::unsupported(
                    "NOT ENFORCED constraints are not supported",
                ));
            }
            let sql = check.expr.to_string();
            validate_check(catalog.expr_context(), desc, &sql)?;
            let given = check.name.as_ref().map(ident_name);
            let column = first_column(&check.expr, desc);
            let name = choose_check_name(&desc.name, given, column.as_deref(), &mut used)?;
            desc.checks.push(CheckDescriptor {
                name: name.clone(),
                expr: sql,
                validated: false,
            });
            if not_valid {
                Ok(Step::Job(TableChange::Metadata, "added not valid"))
            } else {
                Ok(Step::Job(TableChange::AddConstraint { name }, "validating"))
            }
        }
        TableConstraint::Unique(u) => {
            if not_valid {
                return Err(SqlError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "UNIQUE constraints cannot be marked NOT VALID",
                ));
            }
            let spec = UniqueSpec::table(u)?;
            let before = desc.indexes.len();
            add_unique_indexes(desc, vec![spec], &mut used, &|n| catalog.relation_exists(n))?;
            match desc.indexes.get_mut(before) {
                Some(index) => {
                    index.state = IndexState::DeleteOnly;
                    Ok(Step::BuildIndex(index.id))
                }
                None => Ok(Step::Nothing),
            }
        }
        TableConstraint::PrimaryKey(_) => Err(SqlError::unsupported(
            "ADD PRIMARY KEY is not supported: a table's primary key is set by CREATE TABLE",
        )),
        TableConstraint::ForeignKey(fk) => {
            let tables = |n: &str| catalog.table(n).map(|t| t.desc.clone());
            let given = fk.name.as_ref().map(ident_name);
            let mut fk = foreign_key_descriptor(desc, fk, given, None, &tables, &mut used)?;
            fk.validated = false;
            let name = fk.name.clone();
            desc.foreign_keys.push(fk);
            if not_valid {
                Ok(Step::Job(TableChange::Metadata, "added not valid"))
            } else {
                Ok(Step::Job(TableChange::AddConstraint { name }, "validating"))
            }
        }
        other => Err(SqlError::unsupported(format!(
            "table constraint {other} is not supported"
        ))),
    }
}
