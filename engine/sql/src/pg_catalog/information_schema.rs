//! `information_schema` with the SQL standard's constraint views, which
//! drivers and ORMs read: `table_constraints`, `key_column_usage`,
//! `referential_constraints`, `constraint_column_usage` and
//! `check_constraints`, from the descriptors. DataFusion's own tables
//! (`tables`, `columns`, ...) are served by its provider behind ours.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use super::objects::{Kind, constraints};
use super::tables::{Row, batch};
use crate::catalog::descriptor::FkAction;
use crate::catalog::keys::{DATABASE_NAME, PUBLIC_SCHEMA_NAME};
use crate::catalog::{Catalog, TableEntry};

/// The columns naming a constraint.
const NAMED: &[&str] = &["constraint_catalog", "constraint_schema", "constraint_name"];
/// The columns naming a table.
const OF_TABLE: &[&str] = &["table_catalog", "table_schema", "table_name"];

/// The views of ours.
const VIEWS: &[&str] = &[
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
    "constraint_column_usage",
    "check_constraints",
];

/// The schema `information_schema`.
#[derive(Debug)]
pub struct InformationSchema {
    inner: InformationSchemaProvider,
    catalog: Arc<Catalog>,
}

impl InformationSchema {
    /// The schema over `catalog`, with DataFusion's tables of `list`.
    pub fn new(list: Arc<dyn CatalogProviderList>, catalog: Arc<Catalog>) -> InformationSchema {
        InformationSchema {
            inner: InformationSchemaProvider::new(list),
            catalog,
        }
    }
}

fn text(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_string()))
}

fn schema(names: &[&str], ints: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| {
                let ty = if ints.contains(n) {
                    DataType::Int32
                } else {
                    DataType::Utf8
                };
                Field::new(*n, ty, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// `constraint_catalog`, `constraint_schema`, `constraint_name`.
fn named(name: &str) -> Row {
    vec![
        ("constraint_catalog", text(DATABASE_NAME)),
        ("constraint_schema", text(PUBLIC_SCHEMA_NAME)),
        ("constraint_name", text(name)),
    ]
}

/// `table_catalog`, `table_schema`, `table_name`.
fn of_table(table: &str) -> Row {
    vec![
        ("table_catalog", text(DATABASE_NAME)),
        ("table_schema", text(PUBLIC_SCHEMA_NAME)),
        ("table_name", text(table)),
    ]
}

fn rule(a: FkAction) -> ScalarValue {
    text(a.sql())
}

/// The column names of `ids` in `entry`.
fn names(entry: &TableEntry, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .filter_map(|&id| entry.desc.column_by_id(id).map(|c| c.name.clone()))
        .collect()
}

/// The key columns of constraint `c` of `entry` (PK, UNIQUE, FK).
fn key_columns(entry: &TableEntry, kind: Kind, k: u32) -> Vec<u32> {
    let desc = &entry.desc;
    match kind {
        Kind::PrimaryKey => desc.primary_key.column_ids.clone(),
        Kind::Unique => desc
            .indexes
            .iter()
            .find(|i| u32::from(i.id) == k)
            .map(|i| i.columns.iter().map(|c| c.id).collect())
            .unwrap_or_default(),
        Kind::ForeignKey => desc
            .foreign_keys
            .get((k - 0xC00) as usize)
            .map(|f| f.column_ids.clone())
            .unwrap_or_default(),
        Kind::Check => Vec::new(),
    }
}

impl InformationSchema {
    fn view(&self, name: &str) -> Result<Option<(SchemaRef, Vec<Row>)>> {
        let entries: Vec<Arc<TableEntry>> = self
            .catalog
            .table_names()
            .iter()
            .filter_map(|n| self.catalog.table(n))
            .collect();
        let mut rows: Vec<Row> = Vec::new();
        let schema = match name {
            "table_constraints" => {
                for e in &entries {
                    for c in constraints(&e.desc) {
                        let kind = match c.kind {
                            Kind::PrimaryKey => "PRIMARY KEY",
                            Kind::Unique => "UNIQUE",
                            Kind::Check => "CHECK",
                            Kind::ForeignKey => "FOREIGN KEY",
                        };
                        let mut row = named(&c.name);
                        row.extend(of_table(&e.desc.name));
                        row.extend([
                            ("constraint_type", text(kind)),
                            ("is_deferrable", text("NO")),
                            ("initially_deferred", text("NO")),
                            ("enforced", text("YES")),
                        ]);
                        if c.kind == Kind::Unique {
                            row.push(("nulls_distinct", text("YES")));
                        }
                        rows.push(row);
                    }
                }
                schema(
                    &[
                        NAMED,
                        OF_TABLE,
                        &[
                            "constraint_type",
                            "is_deferrable",
                            "initially_deferred",
                            "enforced",
                            "nulls_distinct",
                        ],
                    ]
                    .concat(),
                    &[],
                )
            }
            "key_column_usage" => {
                for e in &entries {
                    for c in constraints(&e.desc)
                        .into_iter()
                        .filter(|c| c.kind != Kind::Check)
                    {
                        let ids = key_columns(e, c.kind, c.k);
                        let fk = (c.kind == Kind::ForeignKey)
                            .then(|| e.desc.foreign_keys.get((c.k - 0xC00) as usize))
                            .flatten();
                        for (i, col) in names(e, &ids).into_iter().enumerate() {
                            let mut row = named(&c.name);
                            row.extend(of_table(&e.desc.name));
                            row.push(("column_name", text(&col)));
                            row.push(("ordinal_position", ScalarValue::Int32(Some(i as i32 + 1))));
                            if let Some(fk) = fk {
                                // Where the referenced column stands in the
                                // referenced key.
                                let pos = self.catalog.table_by_id(fk.parent_id).and_then(|p| {
                                    let key = referenced_key_columns(&p, fk.parent_index_id);
                                    key.iter().position(|&id| id == fk.parent_column_ids[i])
                                });
                                row.push((
                                    "position_in_unique_constraint",
                                    ScalarValue::Int32(pos.map(|p| p as i32 + 1)),
                                ));
                            }
                            rows.push(row);
                        }
                    }
                }
                schema(
                    &[
                        NAMED,
                        OF_TABLE,
                        &[
                            "column_name",
                            "ordinal_position",
                            "position_in_unique_constraint",
                        ],
                    ]
                    .concat(),
                    &["ordinal_position", "position_in_unique_constraint"],
                )
            }
            "referential_constraints" => {
                for e in &entries {
                    for fk in &e.desc.foreign_keys {
                        let unique = self.catalog.table_by_id(fk.parent_id).and_then(|p| {
                            if fk.parent_index_id == 1 {
                                Some(p.desc.primary_key.name.clone())
                            } else {
                                p.desc
                                    .indexes
                                    .iter()
                                    .find(|i| i.id == fk.parent_index_id && i.constraint)
                                    .map(|i| i.name.clone())
                            }
                        });
                        let mut row = named(&fk.name);
                        row.extend([
                            ("unique_constraint_catalog", text(DATABASE_NAME)),
                            ("unique_constraint_schema", text(PUBLIC_SCHEMA_NAME)),
                            ("unique_constraint_name", ScalarValue::Utf8(unique)),
                            ("match_option", text("NONE")),
                            ("update_rule", rule(fk.on_update)),
                            ("delete_rule", rule(fk.on_delete)),
                        ]);
                        rows.push(row);
                    }
                }
                schema(
                    &[
                        NAMED,
                        &[
                            "unique_constraint_catalog",
                            "unique_constraint_schema",
                            "unique_constraint_name",
                            "match_option",
                            "update_rule",
                            "delete_rule",
                        ],
                    ]
                    .concat(),
                    &[],
                )
            }
            "constraint_column_usage" => {
                for e in &entries {
                    for c in constraints(&e.desc) {
                        // A foreign key uses the referenced columns; the
                        // others their own.
                        let (table, cols) = match c.kind {
                            Kind::ForeignKey => {
                                let fk = &e.desc.foreign_keys[(c.k - 0xC00) as usize];
                                match self.catalog.table_by_id(fk.parent_id) {
                                    Some(p) => {
                                        (p.desc.name.clone(), names(&p, &fk.parent_column_ids))
                                    }
                                    None => continue,
                                }
                            }
                            Kind::Check => {
                                let check = &e.desc.checks[(c.k - 0x800) as usize];
                                (e.desc.name.clone(), crate::ddl::check_columns(&check.expr))
                            }
                            kind => (e.desc.name.clone(), names(e, &key_columns(e, kind, c.k))),
                        };
                        for col in cols {
                            let mut row = of_table(&table);
                            row.push(("column_name", text(&col)));
                            row.extend(named(&c.name));
                            rows.push(row);
                        }
                    }
                }
                schema(&[OF_TABLE, &["column_name"], NAMED].concat(), &[])
            }
            "check_constraints" => {
                for e in &entries {
                    for c in &e.desc.checks {
                        let mut row = named(&c.name);
                        row.push(("check_clause", text(&format!("(({}))", c.expr))));
                        rows.push(row);
                    }
                }
                schema(&[NAMED, &["check_clause"]].concat(), &[])
            }
            _ => return Ok(None),
        };
        Ok(Some((schema, rows)))
    }
}

/// The key columns of index `index_id` of `table` (1: the primary key).
fn referenced_key_columns(table: &TableEntry, index_id: u16) -> Vec<u32> {
    if index_id == 1 {
        return table.desc.primary_key.column_ids.clone();
    }
    table
        .desc
        .indexes
        .iter()
        .find(|i| i.id == index_id)
        .map(|i| i.columns.iter().map(|c| c.id).collect())
        .unwrap_or_default()
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(VIEWS.iter().map(|v| v.to_string()));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some((schema, rows)) = self.view(name)? {
            let b = batch(&schema, &rows)?;
            let rows = MemTable::try_new(schema, vec![vec![b]])?;
            return Ok(Some(Arc::new(View(rows))));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        VIEWS.contains(&name) || self.inner.table_exist(name)
    }
}

/// One of the views: its rows, listed as a view (as PostgreSQL's are, so
/// clients listing tables leave it out).
#[derive(Debug)]
struct View(MemTable);

#[async_trait]
impl TableProvider for View {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}
