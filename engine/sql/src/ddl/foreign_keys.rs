//! FOREIGN KEY constraints as CREATE TABLE and ALTER TABLE ... ADD
//! CONSTRAINT declare them: the referenced table and key are resolved,
//! checked as PostgreSQL checks them (a primary key or unique constraint
//! over exactly the referenced columns, comparable types) and stored in the
//! referencing table's descriptor; `docs/schema-changes.md` says how they
//! are enforced.

use std::collections::HashSet;

use datafusion::sql::sqlparser::ast::{
    ConstraintReferenceMatchKind, ForeignKeyConstraint, ReferentialAction,
};

use super::{ident_name, resolve_table_name};
use crate::catalog::TableEntry;
use crate::catalog::descriptor::{
    FkAction, ForeignKeyDescriptor, IndexDescriptor, TableDescriptor,
};
use crate::catalog::foreign_keys::{dependents, referenced_key, still_referenced};
use crate::catalog::relation_missing;
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::types::SqlType;

/// The action a clause names (NO ACTION when it names none).
fn action(a: Option<ReferentialAction>) -> FkAction {
    match a {
        None | Some(ReferentialAction::NoAction) => FkAction::NoAction,
        Some(ReferentialAction::Restrict) => FkAction::Restrict,
        Some(ReferentialAction::Cascade) => FkAction::Cascade,
        Some(ReferentialAction::SetNull) => FkAction::SetNull,
        Some(ReferentialAction::SetDefault) => FkAction::SetDefault,
    }
}

/// Whether a column of type `child` may reference one of type `parent`:
/// PostgreSQL needs an equality operator between them; here the values
/// must also map onto the parent's key encoding without loss.
fn comparable(child: SqlType, parent: SqlType) -> bool {
    use SqlType as T;
    let int = |t: SqlType| matches!(t, T::SmallInt | T::Integer | T::BigInt);
    let text = |t: SqlType| matches!(t, T::Text | T::Varchar { .. });
    child == parent
        || (int(child) && int(parent))
        || (text(child) && text(parent))
        || matches!((child, parent), (T::Numeric { scale: a, .. }, T::Numeric { scale: b, .. }) if a == b)
}

fn undefined_column(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_COLUMN,
        format!("column \"{name}\" referenced in foreign key constraint does not exist"),
    )
}

fn invalid_fk(message: String) -> SqlError {
    SqlError::new(sqlstate::INVALID_FOREIGN_KEY, message)
}

/// The column ids of `names` in `table`.
fn column_ids(table: &TableDescriptor, names: &[String]) -> SqlResult<Vec<u32>> {
    names
        .iter()
        .map(|n| {
            table
                .column(n)
                .map(|c| c.id)
                .ok_or_else(|| undefined_column(n))
        })
        .collect()
}

/// The descriptor of foreign key `fk` of table `child` (its columns, key
/// and unique constraints already set); `column` is the column of a
/// column constraint (`REFERENCES` in a column definition). `parent` finds
/// a referenced table other than `child` by name. `used` holds the
/// table's constraint names and gets the new one.
pub(super) fn foreign_key_descriptor(
    child: &TableDescriptor,
    fk: &ForeignKeyConstraint,
    name: Option<String>,
    column: Option<&str>,
    parent: &dyn Fn(&str) -> Option<TableDescriptor>,
    used: &mut HashSet<String>,
) -> SqlResult<ForeignKeyDescriptor> {
    match fk.match_kind {
        None | Some(ConstraintReferenceMatchKind::Simple) => {}
        Some(kind) => {
            return Err(
                SqlError::unsupported(format!("{kind} foreign keys are not supported"))
                    .with_hint("MATCH SIMPLE (the default) is supported"),
            );
        }
    }
    if let Some(c) = &fk.characteristics
        && (c.deferrable == Some(true) || c.initially.is_some() || c.enforced == Some(false))
    {
        return Err(SqlError::unsupported(
            "DEFERRABLE, INITIALLY and NOT ENFORCED foreign keys are not supported",
        ));
    }
    let names: Vec<String> = match column {
        Some(c) => vec![c.to_string()],
        None => fk.columns.iter().map(ident_name).collect(),
    };
    let ids = column_ids(child, &names)?;
    let parent_name = resolve_table_name(&fk.foreign_table)?;
    let parent = if parent_name == child.name {
        child.clone()
    } else {
        parent(&parent_name).ok_or_else(|| relation_missing(&parent_name))?
    };
    let parent_ids = if fk.referred_columns.is_empty() {
        parent.primary_key.column_ids.clone()
    } else {
        let referred: Vec<String> = fk.referred_columns.iter().map(ident_name).collect();
        column_ids(&parent, &referred)?
    };
    if parent_ids.len() != ids.len() {
        return Err(invalid_fk(
            "number of referencing and referenced columns for foreign key disagree".into(),
        ));
    }
    let index_id = referenced_key(&parent, &parent_ids).ok_or_else(|| {
        invalid_fk(format!(
            "there is no unique constraint matching given keys for referenced table \"{}\"",
            parent.name
        ))
    })?;
    let constraint = match name {
        Some(n) => {
            if !used.insert(n.clone()) {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_OBJECT,
                    format!(
                        "constraint \"{n}\" for relation \"{}\" already exists",
                        child.name
                    ),
                ));
            }
            n
        }
        None => {
            let base = format!("{}_{}_fkey", child.name, names.join("_"));
            let mut n = base.clone();
            let mut k = 1;
            while !used.insert(n.clone()) {
                n = format!("{base}{k}");
                k += 1;
            }
            n
        }
    };
    for ((name, &id), &pid) in names.iter().zip(&ids).zip(&parent_ids) {
        let (ct, pc) = match (child.column_by_id(id), parent.column_by_id(pid)) {
            (Some(c), Some(p)) => (c.ty, p),
            _ => return Err(undefined_column(name)),
        };
        if !comparable(ct, pc.ty) {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!("foreign key constraint \"{constraint}\" cannot be implemented"),
            )
            .with_detail(format!(
                "Key columns \"{name}\" and \"{}\" are of incompatible types: {ct} and {}.",
                pc.name, pc.ty
            )));
        }
    }
    Ok(ForeignKeyDescriptor {
        name: constraint,
        column_ids: ids,
        parent_id: parent.id,
        parent_column_ids: parent_ids,
        parent_index_id: index_id,
        on_delete: action(fk.on_delete),
        on_update: action(fk.on_update),
        validated: true,
    })
}

/// 2BP01 when a foreign key references column `id` (called `name`) of
/// `table` (a constraint of the table itself that the column is part of
/// goes with it).
pub(super) fn column_unreferenced(table: &TableEntry, id: u32, name: &str) -> SqlResult<()> {
    let Some(position) = table.desc.columns.iter().position(|c| c.id == id) else {
        return Ok(());
    };
    let deps = dependents(&table.links, |l| {
        l.parent_columns.contains(&position)
            && !(l.is_self_reference() && l.child_columns.contains(&position))
    });
    if deps.is_empty() {
        return Ok(());
    }
    let object = format!("column {name} of table {}", table.desc.name);
    Err(still_referenced(&object, &object, &deps))
}

/// 2BP01 when a foreign key references `index` of `table`; `what` is
/// `index` or `constraint` (PostgreSQL's word for what is dropped), and
/// `on_table` whether the message names the table.
pub(crate) fn index_unreferenced(
    table: &TableEntry,
    index: &IndexDescriptor,
    what: &str,
    on_table: bool,
) -> SqlResult<()> {
    let deps = dependents(&table.links, |l| l.parent_index_id == index.id);
    if deps.is_empty() {
        return Ok(());
    }
    let dropped = if on_table {
        format!("{what} {} on table {}", index.name, table.desc.name)
    } else {
        format!("{what} {}", index.name)
    };
    Err(still_referenced(
        &dropped,
        &format!("index {}", index.name),
        &deps,
    ))
}
