//! [`SqlEngine`]: the SQL layer of one node, shared by all its sessions.

use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProviderList};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use holo_kv::{KvClient, TxnOptions};

use crate::catalog::Catalog;
use crate::catalog::keys::{DATABASE_NAME, PUBLIC_SCHEMA_NAME};
use crate::catalog::provider::HoloCatalogProvider;
use crate::error::{SqlError, SqlResult};
use crate::metrics::TxnMetrics;
use crate::pg_catalog::information_schema::InformationSchema;
use crate::planner::Planner;
use crate::types::UTC;

/// Knobs of the SQL layer.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Transaction limits.
    pub txn: TxnOptions,
    /// DataFusion's target partitions (parallelism of operators).
    pub target_partitions: usize,
    /// Rows per Arrow batch.
    pub batch_size: usize,
    /// Range administration (`ALTER TABLE ... SPLIT AT`, `SHOW RANGES`), when
    /// the node is part of a cluster.
    pub admin: Option<std::sync::Arc<dyn holo_kv::service::ClusterAdmin>>,
    /// This node's id (in schema leases and as a job's coordinator).
    pub node_id: u64,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            txn: TxnOptions::default(),
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            batch_size: 8192,
            admin: None,
            node_id: 1,
        }
    }
}

/// The SQL layer of a node: catalog, KV client and the base DataFusion
/// context every session is derived from.
pub struct SqlEngine {
    kv: Arc<KvClient>,
    catalog: Arc<Catalog>,
    base: SessionContext,
    options: SqlOptions,
    txn_metrics: Arc<TxnMetrics>,
    planner: Arc<Planner>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("catalog", &self.catalog)
            .finish()
    }
}

impl SqlEngine {
    /// Opens the catalog (bootstrapping a fresh store) and builds the base
    /// DataFusion context.
    pub async fn new(kv: Arc<KvClient>, options: SqlOptions) -> SqlResult<Arc<SqlEngine>> {
        let catalog = Catalog::open(kv.clone(), options.txn.clone(), options.node_id).await?;
        crate::jobs::statements::spawn_adopter(&catalog);
        crate::stats::auto::spawn(&catalog);
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE_NAME, PUBLIC_SCHEMA_NAME)
            .with_create_default_catalog_and_schema(false)
            // Ours, with the constraint views (registered below).
            .with_information_schema(false)
            .with_target_partitions(options.target_partitions.max(1))
            .with_batch_size(options.batch_size.max(1));
        let opts = config.options_mut();
        opts.execution.time_zone = Some(UTC.to_string());
        opts.sql_parser.enable_ident_normalization = true;
        opts.sql_parser.map_string_types_to_utf8view = false;
        // Numeric literals are exact, as in PostgreSQL (`1.005` is NUMERIC, not
        // a binary float that rounds to 1.00).
        opts.sql_parser.parse_float_as_decimal = true;
        // A hash join hands its probe side's scan the build side's keys as
        // an IN list (which the scan reads as point lookups) whenever they
        // are few; the size limit is of the build side's arrays, which
        // text keys fill quickly.
        opts.optimizer.hash_join_inlist_pushdown_max_size = 4 << 20;
        let list = Arc::new(MemoryCatalogProviderList::new());
        let database = Arc::new(HoloCatalogProvider::new(catalog.clone()));
        list.register_catalog(DATABASE_NAME.to_string(), database.clone());
        let info = InformationSchema::new(list.clone(), catalog.clone());
        database.register_schema("information_schema", Arc::new(info))?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_catalog_list(list as Arc<dyn CatalogProviderList>)
            .build();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let planner = Planner::new(threads)
            .map_err(|e| SqlError::internal(format!("cannot start the planner threads: {e}")))?;
        Ok(Arc::new(SqlEngine {
            kv,
            catalog,
            base: SessionContext::new_with_state(state),
            options,
            txn_metrics: Arc::new(TxnMetrics::new()),
            planner: Arc::new(planner),
        }))
    }

    /// The base context: register functions and schemas (e.g. `pg_catalog`)
    /// here before opening sessions.
    pub fn base_context(&self) -> &SessionContext {
        &self.base
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The KV client.
    pub fn kv(&self) -> &Arc<KvClient> {
        &self.kv
    }

    /// The options.
    pub fn options(&self) -> &SqlOptions {
        &self.options
    }

    /// Transaction counters and commit latency of this node, shared by all
    /// its sessions.
    pub fn txn_metrics(&self) -> &Arc<TxnMetrics> {
        &self.txn_metrics
    }

    /// The pool statements are parsed and planned on.
    pub fn planner(&self) -> &Arc<Planner> {
        &self.planner
    }
}
