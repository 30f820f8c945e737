//! Catalog descriptors: what is stored for databases, schemas and tables.
//!
//! Descriptors are JSON objects tagged by `kind`; unknown fields are ignored
//! by older readers and missing optional fields take defaults, so fields can
//! be added without a migration.

use serde::{Deserialize, Serialize};

use crate::types::SqlType;

/// Version of the descriptor format written by this code.
pub const DESCRIPTOR_FORMAT: u32 = 1;

/// Any catalog object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Descriptor {
    /// A database.
    Database(DatabaseDescriptor),
    /// A schema inside a database.
    Schema(SchemaDescriptor),
    /// A table inside a schema.
    Table(TableDescriptor),
}

impl Descriptor {
    /// The descriptor's id.
    pub fn id(&self) -> u32 {
        match self {
            Descriptor::Database(d) => d.id,
            Descriptor::Schema(s) => s.id,
            Descriptor::Table(t) => t.id,
        }
    }
}

/// A database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDescriptor {
    /// Descriptor format version.
    pub format: u32,
    /// Descriptor id.
    pub id: u32,
    /// Name.
    pub name: String,
}

/// A schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDescriptor {
    /// Descriptor format version.
    pub format: u32,
    /// Descriptor id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Id of the database holding it.
    pub parent_id: u32,
}

/// A table column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDescriptor {
    /// Stable id, never reused inside the table.
    pub id: u32,
    /// Name (case as stored: unquoted identifiers are lower-cased).
    pub name: String,
    /// Type.
    #[serde(flatten)]
    pub ty: SqlType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default value expression (SQL text), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// The primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryKeyDescriptor {
    /// Constraint name (`<table>_pkey` unless named).
    pub name: String,
    /// Key columns in key order.
    pub column_ids: Vec<u32>,
}

/// A CHECK constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDescriptor {
    /// Constraint name.
    pub name: String,
    /// Boolean SQL expression over the table's columns.
    pub expr: String,
}

/// A secondary index (layout reserved; no DDL creates one yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDescriptor {
    /// Index id inside the table (the primary index is 1).
    pub id: u16,
    /// Name.
    pub name: String,
    /// Indexed columns in order.
    pub column_ids: Vec<u32>,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDescriptor {
    /// Descriptor format version.
    pub format: u32,
    /// Descriptor id; also the table id in data keys.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Id of the schema holding it.
    pub parent_id: u32,
    /// Schema version, bumped by every change of the table's definition;
    /// written into every row value.
    pub version: u32,
    /// Columns in table order.
    pub columns: Vec<ColumnDescriptor>,
    /// The primary key.
    pub primary_key: PrimaryKeyDescriptor,
    /// CHECK constraints.
    #[serde(default)]
    pub checks: Vec<CheckDescriptor>,
    /// Secondary indexes.
    #[serde(default)]
    pub indexes: Vec<IndexDescriptor>,
    /// Next column id to hand out.
    pub next_column_id: u32,
}

impl TableDescriptor {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDescriptor> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column with id `id`.
    pub fn column_by_id(&self, id: u32) -> Option<&ColumnDescriptor> {
        self.columns.iter().find(|c| c.id == id)
    }

    /// Whether column `id` is part of the primary key.
    pub fn is_pk(&self, id: u32) -> bool {
        self.primary_key.column_ids.contains(&id)
    }
}
