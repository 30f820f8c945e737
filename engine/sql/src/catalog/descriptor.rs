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
    /// A sequence inside a schema.
    Sequence(SequenceDescriptor),
}

impl Descriptor {
    /// The descriptor's id.
    pub fn id(&self) -> u32 {
        match self {
            Descriptor::Database(d) => d.id,
            Descriptor::Schema(s) => s.id,
            Descriptor::Table(t) => t.id,
            Descriptor::Sequence(s) => s.id,
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
    /// The value of rows written before the column was added (ALTER TABLE
    /// ADD COLUMN ... DEFAULT), read where such a row has no field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingValue>,
    /// SET NOT NULL in progress: writers refuse NULLs while existing rows
    /// are checked; readers still take the column as nullable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validating_not_null: bool,
}

/// What a row written before a column existed holds in it: PostgreSQL's
/// `attmissingval`, so ADD COLUMN ... DEFAULT rewrites no rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingValue {
    /// Rows written at a schema version below this one that have no field
    /// of the column read `value`; newer rows without one are NULL.
    pub before_version: u32,
    /// The value's field payload (the row format's encoding of the
    /// column's type, without the field header).
    pub value: Vec<u8>,
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
    /// Whether every existing row is known to satisfy it; writers enforce
    /// it either way (`false` while ADD CONSTRAINT checks the rows, and
    /// for `NOT VALID`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub validated: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What a foreign key does when a referenced row is deleted or its key
/// changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    /// Fail at the end of the statement if a referencing row remains.
    #[default]
    NoAction,
    /// Fail at once if a referencing row exists.
    Restrict,
    /// Delete the referencing rows, or change their key with the parent's.
    Cascade,
    /// Set the referencing columns to NULL.
    SetNull,
    /// Set the referencing columns to their defaults.
    SetDefault,
}

impl FkAction {
    /// The action as SQL names it.
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// A FOREIGN KEY constraint, stored in the referencing table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDescriptor {
    /// Constraint name (unique among the table's constraints).
    pub name: String,
    /// Referencing columns of this table.
    pub column_ids: Vec<u32>,
    /// The referenced table (may be this one).
    pub parent_id: u32,
    /// Referenced columns, in the order of `column_ids`.
    pub parent_column_ids: Vec<u32>,
    /// The referenced table's key over those columns: its primary index
    /// (1) or a unique index.
    pub parent_index_id: u16,
    /// ON DELETE.
    #[serde(default)]
    pub on_delete: FkAction,
    /// ON UPDATE.
    #[serde(default)]
    pub on_update: FkAction,
    /// Whether every existing row is known to satisfy it (writers enforce
    /// it either way).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub validated: bool,
}

/// Who maintains and who reads a secondary index: the steps of an online
/// schema change (F1). Writers keep entries of every index that is not
/// `DeleteOnly` complete; readers use `Public` indexes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IndexState {
    /// Writers delete entries of rows they change or delete, add none.
    DeleteOnly,
    /// Writers maintain the index fully; readers ignore it.
    WriteOnly,
    /// Complete and used by readers.
    #[default]
    Public,
}

/// One key column of a secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexColumnDescriptor {
    /// The table column's id.
    pub id: u32,
    /// Whether the column sorts descending in the index.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub descending: bool,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDescriptor {
    /// Index id inside the table (the primary index is 1).
    pub id: u16,
    /// Name (unique among the schema's relations).
    pub name: String,
    /// Key columns in order.
    pub columns: Vec<IndexColumnDescriptor>,
    /// Non-key columns stored in the entries (`INCLUDE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_ids: Vec<u32>,
    /// Whether the index enforces uniqueness.
    pub unique: bool,
    /// Whether a UNIQUE constraint of the table owns the index.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub constraint: bool,
    /// Step of the index in its schema change.
    #[serde(default)]
    pub state: IndexState,
    /// For an index built over existing rows: the timestamp (raw) after
    /// which its entries are complete. A transaction whose snapshot is not
    /// newer does not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readable_from: Option<u64>,
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
    /// Columns in table order: the ones readers see.
    pub columns: Vec<ColumnDescriptor>,
    /// Write-only columns of a schema change in progress (being added or
    /// dropped): invisible to statements, carried along by updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_columns: Vec<ColumnDescriptor>,
    /// The primary key.
    pub primary_key: PrimaryKeyDescriptor,
    /// CHECK constraints.
    #[serde(default)]
    pub checks: Vec<CheckDescriptor>,
    /// Secondary indexes.
    #[serde(default)]
    pub indexes: Vec<IndexDescriptor>,
    /// FOREIGN KEY constraints of this table (it is the referencing side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKeyDescriptor>,
    /// Next column id to hand out.
    pub next_column_id: u32,
    /// Next secondary index id to hand out.
    #[serde(default = "first_secondary_index_id")]
    pub next_index_id: u16,
}

fn first_secondary_index_id() -> u16 {
    2
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

    /// Whether a visible or write-only column is called `name`.
    pub fn column_name_taken(&self, name: &str) -> bool {
        self.columns
            .iter()
            .chain(&self.hidden_columns)
            .any(|c| c.name == name)
    }

    /// The secondary index called `name`.
    pub fn index(&self, name: &str) -> Option<&IndexDescriptor> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Whether column `id` is part of the primary key.
    pub fn is_pk(&self, id: u32) -> bool {
        self.primary_key.column_ids.contains(&id)
    }
}

/// A sequence: its options; its current value lives under its own key
/// (`keys::sequence_value_key`), outside the descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDescriptor {
    /// Descriptor format version.
    pub format: u32,
    /// Descriptor id.
    pub id: u32,
    /// Name (a relation name of its schema).
    pub name: String,
    /// Id of the schema holding it.
    pub parent_id: u32,
    /// `smallint`, `integer` or `bigint`.
    #[serde(flatten)]
    pub ty: SqlType,
    /// First value.
    pub start: i64,
    /// Step (never 0).
    pub increment: i64,
    /// Least value.
    pub min: i64,
    /// Greatest value.
    pub max: i64,
    /// Values a session may take at once (PostgreSQL's CACHE).
    pub cache: i64,
    /// Whether it wraps around at its bound.
    pub cycle: bool,
    /// The column it serves (`SERIAL`, `OWNED BY`): dropped with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<SequenceOwner>,
}

/// The table column owning a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOwner {
    /// The table.
    pub table_id: u32,
    /// The column.
    pub column_id: u32,
}
