//! Foreign keys resolved against both of their tables. A constraint is
//! stored in the child (referencing) table's descriptor; every catalog load
//! turns it into one [`FkLink`], shared by the child's entry (checked when
//! its rows are written) and the parent's (acted on when its rows go away
//! or change key).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::descriptor::{FkAction, ForeignKeyDescriptor, TableDescriptor};
use crate::codec::column::ColumnReader;
use crate::codec::key::{PRIMARY_INDEX_ID, TAG_VALUE, index_prefix};
use crate::error::{SqlError, SqlResult, sqlstate};
use crate::types::SqlType;

/// One element of the parent's key, in key order.
#[derive(Debug, Clone)]
struct KeyElement {
    /// Position in the constraint's column list.
    column: usize,
    /// The parent column's type.
    ty: SqlType,
    /// Whether the index stores the element descending.
    descending: bool,
}

/// A foreign key between two tables as writers enforce it.
#[derive(Debug)]
pub struct FkLink {
    /// Constraint name.
    pub name: String,
    /// The referencing table.
    pub child_id: u32,
    /// Its name.
    pub child_name: String,
    /// Referencing columns: positions in the child's columns.
    pub child_columns: Vec<usize>,
    /// Their names.
    pub child_column_names: Vec<String>,
    /// Their types.
    pub child_types: Vec<SqlType>,
    /// Their defaults (SQL text), for SET DEFAULT.
    pub child_defaults: Vec<Option<String>>,
    /// The referenced table.
    pub parent_id: u32,
    /// Its name.
    pub parent_name: String,
    /// Referenced columns (in constraint order): positions in the
    /// parent's columns.
    pub parent_columns: Vec<usize>,
    /// Their names.
    pub parent_column_names: Vec<String>,
    /// The parent's key the constraint references: its primary index (1)
    /// or a unique index.
    pub parent_index_id: u16,
    /// What deleting a referenced row does.
    pub on_delete: FkAction,
    /// What changing a referenced key does.
    pub on_update: FkAction,
    prefix: Vec<u8>,
    key: Vec<KeyElement>,
}

/// Where a child row's reference leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentRef {
    /// A referencing column is NULL: nothing is referenced (MATCH SIMPLE).
    Null,
    /// The key of the parent row (primary key) or unique-index entry that
    /// must exist.
    Key(Vec<u8>),
    /// A value no parent column can hold (out of the parent type's range).
    Impossible,
}

/// The foreign keys a table takes part in.
#[derive(Debug, Default, Clone)]
pub struct TableLinks {
    /// Constraints of this table (it references others).
    pub outbound: Vec<Arc<FkLink>>,
    /// Constraints of other tables (or its own) that reference it.
    pub inbound: Vec<Arc<FkLink>>,
}

impl TableLinks {
    /// Whether the table takes part in no foreign key.
    pub fn is_empty(&self) -> bool {
        self.outbound.is_empty() && self.inbound.is_empty()
    }
}

/// The links of every table in `tables`; a constraint whose parent is
/// missing (never left behind by DDL) is skipped with a warning.
pub fn link_tables<'a>(
    tables: impl IntoIterator<Item = &'a TableDescriptor> + Clone,
) -> HashMap<u32, TableLinks> {
    let by_id: HashMap<u32, &TableDescriptor> =
        tables.clone().into_iter().map(|t| (t.id, t)).collect();
    let mut out: HashMap<u32, TableLinks> = HashMap::new();
    for child in tables {
        for fk in &child.foreign_keys {
            let Some(parent) = by_id.get(&fk.parent_id) else {
                tracing::warn!(constraint = %fk.name, "foreign key to a missing table skipped");
                continue;
            };
            match FkLink::resolve(child, fk, parent) {
                Ok(link) => {
                    let link = Arc::new(link);
                    out.entry(child.id).or_default().outbound.push(link.clone());
                    out.entry(parent.id).or_default().inbound.push(link);
                }
                Err(e) => {
                    tracing::warn!(constraint = %fk.name, error = %e.message, "foreign key skipped");
                }
            }
        }
    }
    out
}

/// The index (the primary key's id, or a unique index's) whose key
/// columns are exactly `column_ids` of `parent`, as a set: what a foreign
/// key may reference.
pub fn referenced_key(parent: &TableDescriptor, column_ids: &[u32]) -> Option<u16> {
    let same_set = |ids: &mut dyn Iterator<Item = u32>| {
        let mut ids: Vec<u32> = ids.collect();
        let mut wanted = column_ids.to_vec();
        ids.sort_unstable();
        wanted.sort_unstable();
        ids == wanted
    };
    if same_set(&mut parent.primary_key.column_ids.iter().copied()) {
        return Some(PRIMARY_INDEX_ID);
    }
    parent
        .indexes
        .iter()
        .find(|i| {
            i.unique
                && i.state == super::descriptor::IndexState::Public
                && same_set(&mut i.columns.iter().map(|c| c.id))
        })
        .map(|i| i.id)
}

fn missing(what: &str, fk: &str) -> SqlError {
    SqlError::internal(format!("foreign key \"{fk}\": {what} is missing"))
}

impl FkLink {
    /// Resolves constraint `fk` of `child` against `parent`.
    pub fn resolve(
        child: &TableDescriptor,
        fk: &ForeignKeyDescriptor,
        parent: &TableDescriptor,
    ) -> SqlResult<FkLink> {
        let position = |t: &TableDescriptor, id: u32| {
            t.columns
                .iter()
                .position(|c| c.id == id)
                .ok_or_else(|| missing(&format!("column {id} of \"{}\"", t.name), &fk.name))
        };
        let child_columns = fk
            .column_ids
            .iter()
            .map(|&id| position(child, id))
            .collect::<SqlResult<Vec<_>>>()?;
        let parent_columns = fk
            .parent_column_ids
            .iter()
            .map(|&id| position(parent, id))
            .collect::<SqlResult<Vec<_>>>()?;
        let element = |id: u32, descending: bool| -> SqlResult<KeyElement> {
            let column = fk
                .parent_column_ids
                .iter()
                .position(|&p| p == id)
                .ok_or_else(|| missing(&format!("referenced column {id}"), &fk.name))?;
            Ok(KeyElement {
                column,
                ty: parent.columns[parent_columns[column]].ty,
                descending,
            })
        };
        let key = if fk.parent_index_id == PRIMARY_INDEX_ID {
            parent
                .primary_key
                .column_ids
                .iter()
                .map(|&id| element(id, false))
                .collect::<SqlResult<Vec<_>>>()?
        } else {
            let index = parent
                .indexes
                .iter()
                .find(|i| i.id == fk.parent_index_id)
                .ok_or_else(|| missing("the referenced unique index", &fk.name))?;
            index
                .columns
                .iter()
                .map(|c| element(c.id, c.descending))
                .collect::<SqlResult<Vec<_>>>()?
        };
        Ok(FkLink {
            name: fk.name.clone(),
            child_id: child.id,
            child_name: child.name.clone(),
            child_column_names: child_columns
                .iter()
                .map(|&p| child.columns[p].name.clone())
                .collect(),
            child_types: child_columns.iter().map(|&p| child.columns[p].ty).collect(),
            child_defaults: child_columns
                .iter()
                .map(|&p| child.columns[p].default.clone())
                .collect(),
            child_columns,
            parent_id: parent.id,
            parent_name: parent.name.clone(),
            parent_column_names: parent_columns
                .iter()
                .map(|&p| parent.columns[p].name.clone())
                .collect(),
            parent_columns,
            parent_index_id: fk.parent_index_id,
            on_delete: fk.on_delete,
            on_update: fk.on_update,
            prefix: index_prefix(parent.id, fk.parent_index_id),
            key,
        })
    }

    /// Whether the constraint references its own table.
    pub fn is_self_reference(&self) -> bool {
        self.child_id == self.parent_id
    }

    /// Where each row of `values` (the referencing columns' arrays, in
    /// constraint order) leads.
    pub fn parent_refs(&self, values: &[ArrayRef]) -> SqlResult<Vec<ParentRef>> {
        let rows = values.first().map_or(0, |a| a.len());
        let opts = CastOptions {
            safe: true,
            format_options: FormatOptions::default(),
        };
        // Each key element's values in the parent column's type; a value
        // that does not fit becomes NULL there.
        let cast = self
            .key
            .iter()
            .map(|e| {
                let array = &values[e.column];
                cast_with_options(array, &e.ty.arrow_type(), &opts)
                    .map_err(|err| SqlError::from(datafusion::error::DataFusionError::from(err)))
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let readers = cast
            .iter()
            .zip(&self.key)
            .map(|(a, e)| ColumnReader::new(a, e.ty))
            .collect::<SqlResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if values.iter().any(|a| a.is_null(i)) {
                out.push(ParentRef::Null);
                continue;
            }
            if readers.iter().any(|r| r.is_null(i)) {
                out.push(ParentRef::Impossible);
                continue;
            }
            let mut key = Vec::with_capacity(self.prefix.len() + 16);
            key.extend_from_slice(&self.prefix);
            for (r, e) in readers.iter().zip(&self.key) {
                let start = key.len();
                key.push(TAG_VALUE);
                r.write_key(i, &mut key);
                if e.descending {
                    key[start..].iter_mut().for_each(|b| *b = !*b);
                }
            }
            out.push(ParentRef::Key(key));
        }
        Ok(out)
    }
}

/// PostgreSQL's rendering of row `i` of `values` under `names` in an error
/// detail: `(a, b)=(1, x)`.
pub fn describe_values(names: &[String], values: &[ArrayRef], i: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    let rendered: Vec<String> = values
        .iter()
        .map(|a| {
            ArrayFormatter::try_new(a.as_ref(), &options)
                .map(|f| f.value(i).to_string())
                .unwrap_or_else(|_| "?".to_string())
        })
        .collect();
    format!("({})=({})", names.join(", "), rendered.join(", "))
}

/// PostgreSQL's 2BP01 for dropping `what` (e.g. `table p`), which is
/// `object` to the foreign keys `deps` (constraint, table) that depend on
/// it.
pub fn still_referenced(what: &str, object: &str, deps: &[(String, String)]) -> SqlError {
    let detail = deps
        .iter()
        .map(|(c, t)| format!("constraint {c} on table {t} depends on {object}"))
        .collect::<Vec<_>>()
        .join("\n");
    SqlError::new(
        sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
        format!("cannot drop {what} because other objects depend on it"),
    )
    .with_detail(detail)
    .with_hint("Use DROP ... CASCADE to drop the dependent objects too.")
}

/// The foreign keys among `links` (a table's inbound ones) that `keep`
/// selects, as `(constraint, referencing table)`: what 2BP01 names.
pub fn dependents(links: &TableLinks, keep: impl Fn(&FkLink) -> bool) -> Vec<(String, String)> {
    links
        .inbound
        .iter()
        .filter(|l| keep(l))
        .map(|l| (l.name.clone(), l.child_name.clone()))
        .collect()
}
