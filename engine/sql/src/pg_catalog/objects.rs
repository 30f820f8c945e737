//! HoloFusion's tables, indexes and constraints as PostgreSQL's catalog
//! names them: object ids derived from descriptor ids (the same on every
//! node and after restarts), and the definitions `pg_get_indexdef` and
//! `pg_get_constraintdef` print, in PostgreSQL's words.

use crate::catalog::TableEntry;
use crate::catalog::descriptor::{FkAction, IndexDescriptor, TableDescriptor};
use crate::codec::key::PRIMARY_INDEX_ID;

/// Tables: `0x2000_0000 | table id` (clear of the oids below 2^29 that
/// datafusion-pg-catalog hands to its own relations).
const TABLE_TAG: i32 = 0x2000_0000;
/// Indexes (the primary index included): `0x4000_0000 | table << 12 |
/// index id`.
const INDEX_TAG: i32 = 0x4000_0000;
/// Constraints: `0x6000_0000 | table << 12 | k`, `k` below.
const CONSTRAINT_TAG: i32 = 0x6000_0000;
/// `k` of the primary key; a UNIQUE constraint's is its index id.
const PK_CONSTRAINT: u32 = 1;
/// `k` of CHECK constraint `i` (descriptor order).
const CHECK_BASE: u32 = 0x800;
/// `k` of foreign key `i` (descriptor order).
const FK_BASE: u32 = 0xC00;

/// The oid of table `id`.
pub fn table_oid(id: u32) -> i32 {
    TABLE_TAG | (id & 0x1FFF_FFFF) as i32
}

/// The oid of index `index` of table `table`.
pub fn index_oid(table: u32, index: u16) -> i32 {
    INDEX_TAG | (((table & 0x1_FFFF) << 12) | (u32::from(index) & 0xFFF)) as i32
}

fn constraint_oid(table: u32, k: u32) -> i32 {
    CONSTRAINT_TAG | (((table & 0x1_FFFF) << 12) | (k & 0xFFF)) as i32
}

/// What an oid of ours names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A table.
    Table(u32),
    /// An index of a table (id 1: the primary index).
    Index(u32, u16),
    /// Constraint `k` of a table.
    Constraint(u32, u32),
}

/// The object `oid` names, if it is one of ours.
pub fn object(oid: i64) -> Option<Object> {
    let oid = i32::try_from(oid).ok()?;
    let low = (oid & 0xFFF) as u32;
    let table = ((oid >> 12) & 0x1_FFFF) as u32;
    match oid & 0x6000_0000 {
        CONSTRAINT_TAG => Some(Object::Constraint(table, low)),
        INDEX_TAG => Some(Object::Index(table, low as u16)),
        TABLE_TAG => Some(Object::Table((oid & 0x1FFF_FFFF) as u32)),
        _ => None,
    }
}

/// PostgreSQL's `quote_ident`: a name that is not a lower-case identifier
/// (or is a reserved word) in double quotes.
pub fn quote_ident(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "all",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "default",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "into",
        "is",
        "join",
        "leading",
        "limit",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "primary",
        "references",
        "select",
        "table",
        "then",
        "to",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "when",
        "where",
        "with",
    ];
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The kind of a constraint, as `pg_constraint.contype` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `p`
    PrimaryKey,
    /// `u`
    Unique,
    /// `c`
    Check,
    /// `f`
    ForeignKey,
}

impl Kind {
    /// The `contype` letter.
    pub fn letter(self) -> &'static str {
        match self {
            Kind::PrimaryKey => "p",
            Kind::Unique => "u",
            Kind::Check => "c",
            Kind::ForeignKey => "f",
        }
    }
}

/// One constraint of a table.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Its oid.
    pub oid: i32,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its position in the descriptor (checks, foreign keys) or its index
    /// id (primary key, unique).
    pub k: u32,
}

/// The constraints of `desc`, in PostgreSQL's order of kinds.
pub fn constraints(desc: &TableDescriptor) -> Vec<Constraint> {
    let mut out = vec![Constraint {
        oid: constraint_oid(desc.id, PK_CONSTRAINT),
        name: desc.primary_key.name.clone(),
        kind: Kind::PrimaryKey,
        k: PK_CONSTRAINT,
    }];
    out.extend(
        desc.indexes
            .iter()
            .filter(|i| i.constraint)
            .map(|i| Constraint {
                oid: constraint_oid(desc.id, u32::from(i.id)),
                name: i.name.clone(),
                kind: Kind::Unique,
                k: u32::from(i.id),
            }),
    );
    out.extend(desc.checks.iter().enumerate().map(|(i, c)| Constraint {
        oid: constraint_oid(desc.id, CHECK_BASE + i as u32),
        name: c.name.clone(),
        kind: Kind::Check,
        k: CHECK_BASE + i as u32,
    }));
    out.extend(
        desc.foreign_keys
            .iter()
            .enumerate()
            .map(|(i, f)| Constraint {
                oid: constraint_oid(desc.id, FK_BASE + i as u32),
                name: f.name.clone(),
                kind: Kind::ForeignKey,
                k: FK_BASE + i as u32,
            }),
    );
    out
}

/// The primary index as an index descriptor (PostgreSQL lists it with the
/// others).
pub fn primary_index(desc: &TableDescriptor) -> IndexDescriptor {
    IndexDescriptor {
        id: PRIMARY_INDEX_ID,
        name: desc.primary_key.name.clone(),
        columns: desc
            .primary_key
            .column_ids
            .iter()
            .map(|&id| crate::catalog::descriptor::IndexColumnDescriptor {
                id,
                descending: false,
            })
            .collect(),
        include_ids: Vec::new(),
        unique: true,
        constraint: true,
        state: Default::default(),
        readable_from: None,
    }
}

/// The index with id `id` of `desc` (1: the primary index).
pub fn index(desc: &TableDescriptor, id: u16) -> Option<IndexDescriptor> {
    if id == PRIMARY_INDEX_ID {
        return Some(primary_index(desc));
    }
    desc.indexes.iter().find(|i| i.id == id).cloned()
}

fn column_name(desc: &TableDescriptor, id: u32) -> String {
    desc.column_by_id(id)
        .map_or_else(|| format!("column{id}"), |c| quote_ident(&c.name))
}

fn column_list(desc: &TableDescriptor, ids: &[u32]) -> String {
    ids.iter()
        .map(|&id| column_name(desc, id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_get_indexdef`: the whole definition (`column` 0) or the text of
/// index column `column` (1-based; INCLUDE columns count); the table is
/// schema-qualified unless `pretty`.
pub fn index_def(
    desc: &TableDescriptor,
    index: &IndexDescriptor,
    column: i64,
    pretty: bool,
) -> Option<String> {
    let keys: Vec<String> = index
        .columns
        .iter()
        .map(|c| {
            let name = column_name(desc, c.id);
            if c.descending {
                format!("{name} DESC")
            } else {
                name
            }
        })
        .collect();
    if column > 0 {
        let n = column as usize;
        return keys
            .get(n - 1)
            .map(|k| k.trim_end_matches(" DESC").to_string())
            .or_else(|| {
                index
                    .include_ids
                    .get(n - 1 - keys.len())
                    .map(|&id| column_name(desc, id))
            });
    }
    let table = if pretty {
        quote_ident(&desc.name)
    } else {
        format!("public.{}", quote_ident(&desc.name))
    };
    let mut def = format!(
        "CREATE {}INDEX {} ON {table} USING btree ({})",
        if index.unique { "UNIQUE " } else { "" },
        quote_ident(&index.name),
        keys.join(", ")
    );
    if !index.include_ids.is_empty() {
        def.push_str(&format!(
            " INCLUDE ({})",
            column_list(desc, &index.include_ids)
        ));
    }
    Some(def)
}

/// `pg_get_constraintdef`; `parent` finds a referenced table.
pub fn constraint_def(
    entry: &TableEntry,
    c: &Constraint,
    pretty: bool,
    parent: impl Fn(u32) -> Option<std::sync::Arc<TableEntry>>,
) -> Option<String> {
    let desc = &entry.desc;
    match c.kind {
        Kind::PrimaryKey => Some(format!(
            "PRIMARY KEY ({})",
            column_list(desc, &desc.primary_key.column_ids)
        )),
        Kind::Unique => {
            let index = desc.indexes.iter().find(|i| u32::from(i.id) == c.k)?;
            let ids: Vec<u32> = index.columns.iter().map(|c| c.id).collect();
            Some(format!("UNIQUE ({})", column_list(desc, &ids)))
        }
        Kind::Check => {
            let check = desc.checks.get((c.k - CHECK_BASE) as usize)?;
            let mut def = if pretty {
                format!("CHECK ({})", check.expr)
            } else {
                format!("CHECK (({}))", check.expr)
            };
            if !check.validated {
                def.push_str(" NOT VALID");
            }
            Some(def)
        }
        Kind::ForeignKey => {
            let fk = desc.foreign_keys.get((c.k - FK_BASE) as usize)?;
            let parent = if fk.parent_id == desc.id {
                entry.desc.clone()
            } else {
                parent(fk.parent_id)?.desc.clone()
            };
            let mut def = format!(
                "FOREIGN KEY ({}) REFERENCES {}({})",
                column_list(desc, &fk.column_ids),
                quote_ident(&parent.name),
                column_list(&parent, &fk.parent_column_ids)
            );
            if fk.on_update != FkAction::NoAction {
                def.push_str(&format!(" ON UPDATE {}", fk.on_update.sql()));
            }
            if fk.on_delete != FkAction::NoAction {
                def.push_str(&format!(" ON DELETE {}", fk.on_delete.sql()));
            }
            if !fk.validated {
                def.push_str(" NOT VALID");
            }
            Some(def)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_name_their_objects() {
        assert_eq!(object(i64::from(table_oid(123))), Some(Object::Table(123)));
        assert_eq!(
            object(i64::from(index_oid(123, 1))),
            Some(Object::Index(123, 1))
        );
        assert_eq!(
            object(i64::from(index_oid(99_999, 4095))),
            Some(Object::Index(99_999, 4095))
        );
        let c = constraint_oid(77, FK_BASE + 2);
        assert_eq!(
            object(i64::from(c)),
            Some(Object::Constraint(77, FK_BASE + 2))
        );
        assert!(c > 0 && index_oid(99_999, 4095) > 0);
        assert_eq!(object(16384), None);
    }

    #[test]
    fn names_are_quoted_as_postgresql_does() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
