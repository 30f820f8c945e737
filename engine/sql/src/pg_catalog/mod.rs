//! PostgreSQL's system catalog as clients read it about HoloFusion's own
//! tables, indexes and constraints (psql's `\d`, `\di`; ORMs' inspection).
//! datafusion-pg-catalog provides `pg_catalog` from DataFusion schemas
//! alone; [`install`] wraps it so that `pg_class`, `pg_attribute`,
//! `pg_index` and `pg_constraint` answer from the descriptors
//! ([`tables`], oids and definitions in [`objects`]), and adds the
//! functions that describe them ([`udfs`]). [`information_schema`] adds
//! the SQL standard's constraint views.

pub mod information_schema;
mod objects;
mod tables;
mod udfs;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;

use crate::catalog::Catalog;
use crate::catalog::keys::{DATABASE_NAME, PUBLIC_SCHEMA_NAME};
use crate::error::{SqlError, SqlResult};
use tables::{Row, batch, class_schema, conform, int32_at, internal, without};

pub use objects::{Object, object, quote_ident};

/// Wraps the `pg_catalog` schema registered by datafusion-pg-catalog in
/// `ctx` (call after its `setup_pg_catalog`) and registers the catalog
/// functions of HoloFusion's objects.
pub fn install(ctx: &SessionContext, catalog: Arc<Catalog>) -> SqlResult<()> {
    let db = ctx
        .catalog(DATABASE_NAME)
        .ok_or_else(|| SqlError::internal("no database catalog to extend"))?;
    let inner = db
        .schema("pg_catalog")
        .ok_or_else(|| SqlError::internal("pg_catalog is not registered"))?;
    let wrapper = HoloPgCatalog {
        inner,
        catalog: catalog.clone(),
    };
    db.register_schema("pg_catalog", Arc::new(wrapper))?;
    udfs::register(ctx, catalog);
    Ok(())
}

/// Which table of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Class,
    Attribute,
    Index,
    Constraint,
}

impl Which {
    fn of(name: &str) -> Option<Which> {
        Some(match name {
            "pg_class" => Which::Class,
            "pg_attribute" => Which::Attribute,
            "pg_index" => Which::Index,
            "pg_constraint" => Which::Constraint,
            _ => return None,
        })
    }
}

/// `pg_catalog` with four tables of ours.
#[derive(Debug)]
struct HoloPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    catalog: Arc<Catalog>,
}

#[async_trait]
impl SchemaProvider for HoloPgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(which) = Which::of(name) else {
            return self.inner.table(name).await;
        };
        let theirs = self.inner.table(name).await?;
        let schema = match which {
            Which::Class => class_schema(
                &theirs
                    .as_ref()
                    .ok_or_else(|| internal("no pg_class"))?
                    .schema(),
            ),
            Which::Attribute => theirs
                .as_ref()
                .ok_or_else(|| internal("no pg_attribute"))?
                .schema(),
            Which::Index => tables::index_schema(),
            Which::Constraint => tables::constraint_schema(),
        };
        Ok(Some(Arc::new(CatalogTable {
            which,
            schema,
            inner: self.inner.clone(),
            catalog: self.catalog.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        Which::of(name).is_some() || self.inner.table_exist(name)
    }
}

/// One of the tables of ours, built for each scan.
#[derive(Debug)]
struct CatalogTable {
    which: Which,
    schema: SchemaRef,
    inner: Arc<dyn SchemaProvider>,
    catalog: Arc<Catalog>,
}

/// Every row of datafusion-pg-catalog's table `name`.
async fn their_rows(
    inner: &Arc<dyn SchemaProvider>,
    state: &dyn Session,
    name: &str,
) -> Result<Vec<RecordBatch>> {
    let Some(table) = inner.table(name).await? else {
        return Ok(Vec::new());
    };
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

impl CatalogTable {
    /// The oid datafusion-pg-catalog gave `public`, and the oids it gave
    /// the relations there (ours, which our rows replace).
    async fn public(&self, state: &dyn Session) -> Result<(i32, Vec<i32>)> {
        let spaces = their_rows(&self.inner, state, "pg_namespace").await?;
        let mut public = None;
        for b in &spaces {
            let names = b.column_by_name("nspname");
            for i in 0..b.num_rows() {
                let name = names.and_then(|c| {
                    datafusion::arrow::array::AsArray::as_string_opt::<i32>(c.as_ref())
                        .map(|s| s.value(i).to_string())
                });
                if name.as_deref() == Some(PUBLIC_SCHEMA_NAME) {
                    public = int32_at(b, "oid", i);
                }
            }
        }
        let public = public.ok_or_else(|| internal("no public namespace"))?;
        let classes = their_rows(&self.inner, state, "pg_class").await?;
        let mut ours = Vec::new();
        for b in &classes {
            for i in 0..b.num_rows() {
                if int32_at(b, "relnamespace", i) == Some(public)
                    && let Some(oid) = int32_at(b, "oid", i)
                {
                    ours.push(oid);
                }
            }
        }
        Ok((public, ours))
    }

    async fn rows(&self, state: &dyn Session) -> Result<RecordBatch> {
        self.catalog
            .refresh_if_stale()
            .await
            .map_err(SqlError::into_datafusion)?;
        let (public, theirs_public) = self.public(state).await?;
        let entries: Vec<_> = self
            .catalog
            .table_names()
            .iter()
            .filter_map(|n| self.catalog.table(n))
            .collect();
        let parent = |id: u32| self.catalog.table_by_id(id);
        let ours: Vec<Row> = entries
            .iter()
            .flat_map(|e| match self.which {
                Which::Class => tables::class_rows(e, public),
                Which::Attribute => tables::attribute_rows(e),
                Which::Index => tables::index_rows(e),
                Which::Constraint => tables::constraint_rows(e, public, parent),
            })
            .collect();
        let ours = batch(&self.schema, &ours)?;
        let kept = match self.which {
            Which::Class => {
                let theirs = their_rows(&self.inner, state, "pg_class").await?;
                conform(&self.schema, &theirs, without("oid", theirs_public))?
            }
            Which::Attribute => {
                let theirs = their_rows(&self.inner, state, "pg_attribute").await?;
                conform(&self.schema, &theirs, without("attrelid", theirs_public))?
            }
            Which::Index | Which::Constraint => return Ok(ours),
        };
        Ok(datafusion::arrow::compute::concat_batches(
            &self.schema,
            &[kept, ours],
        )?)
    }
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows(state).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![rows]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
