//! DataFusion's view of the catalog: [`HoloCatalogProvider`] (database),
//! [`HoloSchemaProvider`] (`public`) and [`HoloTable`] (a table).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use holo_kv::Transaction;
use parking_lot::{Mutex, RwLock};

use super::keys::PUBLIC_SCHEMA_NAME;
use super::{Catalog, TableEntry};
use crate::error::SqlError;
use crate::exec::access::choose;
use crate::exec::pushdown::{plan_index_spans, plan_spans};
use crate::exec::scan::HoloScanExec;

/// The transaction statements of one session run in; installed as a
/// `SessionConfig` extension and read by scans at planning time.
#[derive(Debug, Default)]
pub struct TxnSlot(Mutex<Option<Arc<Transaction>>>);

impl TxnSlot {
    /// Sets (or clears) the current transaction.
    pub fn set(&self, txn: Option<Arc<Transaction>>) {
        *self.0.lock() = txn;
    }

    /// The current transaction.
    pub fn get(&self) -> Option<Arc<Transaction>> {
        self.0.lock().clone()
    }
}

/// The database as a DataFusion catalog: `public` from HoloStore, plus
/// schemas registered by others (`pg_catalog`).
#[derive(Debug)]
pub struct HoloCatalogProvider {
    public: Arc<HoloSchemaProvider>,
    extra: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl HoloCatalogProvider {
    /// The provider over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> HoloCatalogProvider {
        HoloCatalogProvider {
            public: Arc::new(HoloSchemaProvider { catalog }),
            extra: RwLock::new(HashMap::new()),
        }
    }
}

impl CatalogProvider for HoloCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![PUBLIC_SCHEMA_NAME.to_string()];
        names.extend(self.extra.read().keys().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == PUBLIC_SCHEMA_NAME {
            return Some(self.public.clone());
        }
        self.extra.read().get(name).cloned()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if name == PUBLIC_SCHEMA_NAME {
            return Err(DataFusionError::Plan("schema public is built in".into()));
        }
        Ok(self.extra.write().insert(name.to_string(), schema))
    }
}

/// The `public` schema: HoloStore tables.
#[derive(Debug)]
pub struct HoloSchemaProvider {
    catalog: Arc<Catalog>,
}

#[async_trait]
impl SchemaProvider for HoloSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.catalog.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut entry = self.catalog.table(name);
        // Unknown here: another node may have just created it.
        if entry.is_none()
            && self
                .catalog
                .refresh_if_stale()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
        {
            entry = self.catalog.table(name);
        }
        Ok(entry.map(|entry| Arc::new(HoloTable { entry }) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.table(name).is_some()
    }
}

/// One HoloStore table as a DataFusion table. Primary-key equality, `IN` and
/// range predicates become key spans of the scan (exact pushdown); other
/// predicates are left to DataFusion.
#[derive(Debug)]
pub struct HoloTable {
    /// The table.
    pub entry: Arc<TableEntry>,
}

#[async_trait]
impl TableProvider for HoloTable {
    fn schema(&self) -> SchemaRef {
        self.entry.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.entry.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let plan = plan_spans(&self.entry, filters);
        // Predicates an index scan could use reach `scan` too; DataFusion
        // still applies them to the rows the index leads to.
        let mut by_index = vec![false; filters.len()];
        for index in self.entry.indexes.iter().filter(|i| i.scannable()) {
            let p = plan_index_spans(&self.entry, index, filters);
            by_index
                .iter_mut()
                .zip(&p.consumed)
                .for_each(|(b, &c)| *b |= c);
        }
        // The scan may read an index instead of the primary-key spans
        // (`exec::access`): the key predicates are then checked again.
        let index_possible = by_index.iter().any(|&b| b);
        Ok(plan
            .consumed
            .iter()
            .zip(by_index)
            .map(|(&pk, index)| {
                if pk && !index_possible {
                    TableProviderFilterPushDown::Exact
                } else if pk || index {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let txn = state
            .config()
            .get_extension::<TxnSlot>()
            .and_then(|slot| slot.get())
            .ok_or_else(|| {
                SqlError::internal("scan planned outside a transaction").into_datafusion()
            })?;
        let refs: Vec<&Expr> = filters.iter().collect();
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..self.entry.schema.fields().len()).collect());
        let access = choose(&self.entry, &refs, &projection, txn.start_ts());
        let scan = HoloScanExec::new(
            self.entry.clone(),
            access.spans,
            projection,
            limit,
            txn,
            state.config().batch_size(),
        )?
        .with_estimate(access.est_rows)
        .with_filters(filters.to_vec());
        Ok(Arc::new(match access.lookup {
            Some(l) => scan.with_index_lookup(l),
            None => scan,
        }))
    }
}
