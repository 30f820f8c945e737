//! [`LocalNode`]: a node's engine, timestamp oracle and replicas, served
//! in-process.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use holo_storage::{
    Engine, EngineOptions, MvccStore, RangeDescriptor, RangeId, ReadOptions, ScanResult,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::replica::Replica;
use crate::service::{
    KvWrite, RangeDirectory, RangeHeader, RangeLocation, RangeService, WriteResponse,
};
use crate::tso::{LocalTso, TimestampOracle};
use crate::{KvError, Result};

const META_STORE_IDENT: &[u8] = b"store_ident";
const META_RANGE_PREFIX: &[u8] = b"range/";

/// Identity of a store, written once when the store is bootstrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdent {
    /// Cluster the store belongs to.
    pub cluster_id: String,
    /// The node id.
    pub node_id: u64,
}

/// One node's storage: engine, store, oracle and the replicas it holds.
pub struct LocalNode {
    ident: StoreIdent,
    store: Arc<MvccStore>,
    tso: Arc<LocalTso>,
    replicas: RwLock<BTreeMap<RangeId, Arc<Replica>>>,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("ident", &self.ident)
            .finish()
    }
}

fn range_meta_key(id: RangeId) -> Vec<u8> {
    let mut k = META_RANGE_PREFIX.to_vec();
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

impl LocalNode {
    /// Opens the store in `data_dir` as a single-node cluster, bootstrapping
    /// it (identity plus one range covering the whole keyspace) on first
    /// start.
    pub fn open_single(data_dir: &Path, options: EngineOptions) -> Result<Arc<LocalNode>> {
        LocalNode::open_single_with_splits(data_dir, options, &[])
    }

    /// Like [`LocalNode::open_single`], but a fresh store is bootstrapped with
    /// its keyspace pre-split at `splits` (sorted, distinct, non-empty keys).
    /// An existing store keeps its ranges.
    pub fn open_single_with_splits(
        data_dir: &Path,
        options: EngineOptions,
        splits: &[Vec<u8>],
    ) -> Result<Arc<LocalNode>> {
        let engine = Arc::new(Engine::open(data_dir, options)?);
        let ident = match engine.get_meta(META_STORE_IDENT)? {
            Some(bytes) => serde_json::from_slice::<StoreIdent>(&bytes)
                .map_err(|e| KvError::Storage(format!("corrupt store identity: {e}")))?,
            None => {
                let ident = StoreIdent {
                    cluster_id: format!("holo-{:016x}", rand::random::<u64>()),
                    node_id: 1,
                };
                if splits.iter().any(Vec::is_empty) || !splits.windows(2).all(|w| w[0] < w[1]) {
                    return Err(KvError::Storage(
                        "bootstrap split keys must be sorted, distinct and non-empty".into(),
                    ));
                }
                let mut bounds = vec![Vec::new()];
                bounds.extend(splits.iter().cloned());
                bounds.push(Vec::new());
                for (i, w) in bounds.windows(2).enumerate() {
                    let mut range =
                        RangeDescriptor::whole_keyspace(RangeId(i as u64 + 1), ident.node_id);
                    range.start_key = w[0].clone();
                    range.end_key = w[1].clone();
                    engine.put_meta(&range_meta_key(range.id), &encode_json(&range)?)?;
                }
                engine.put_meta(META_STORE_IDENT, &encode_json(&ident)?)?;
                ident
            }
        };
        let store = Arc::new(MvccStore::new(engine.clone())?);
        let tso = Arc::new(LocalTso::open(engine.clone())?);
        let mut replicas = BTreeMap::new();
        for desc in load_ranges(&engine)? {
            let replica = Replica::new(desc.clone(), store.clone(), tso.clone(), ident.node_id);
            replicas.insert(desc.id, Arc::new(replica));
        }
        if replicas.is_empty() {
            return Err(KvError::Storage(
                "store has an identity but no ranges".into(),
            ));
        }
        Ok(Arc::new(LocalNode {
            ident,
            store,
            tso,
            replicas: RwLock::new(replicas),
        }))
    }

    /// The store's identity.
    pub fn ident(&self) -> &StoreIdent {
        &self.ident
    }

    /// The node's MVCC store.
    pub fn store(&self) -> &Arc<MvccStore> {
        &self.store
    }

    /// The node's timestamp oracle.
    pub fn tso(&self) -> Arc<dyn TimestampOracle> {
        self.tso.clone()
    }

    /// Descriptors of every range on the node, in key order.
    pub fn range_descriptors(&self) -> Vec<RangeDescriptor> {
        let mut out: Vec<_> = self
            .replicas
            .read()
            .values()
            .map(|r| r.descriptor())
            .collect();
        out.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        out
    }

    fn replica(&self, id: RangeId) -> Result<Arc<Replica>> {
        self.replicas
            .read()
            .get(&id)
            .cloned()
            .ok_or(KvError::RangeNotFound {
                range_id: id,
                node_id: self.ident.node_id,
            })
    }
}

fn encode_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| KvError::Storage(format!("encode metadata: {e}")))
}

fn load_ranges(engine: &Engine) -> Result<Vec<RangeDescriptor>> {
    let cf = engine.cf(holo_storage::keys::CF_META)?;
    let mut out = Vec::new();
    let iter = engine.db().prefix_iterator_cf(cf, META_RANGE_PREFIX);
    for item in iter {
        let (k, v) = item.map_err(|e| KvError::Storage(e.to_string()))?;
        if !k.starts_with(META_RANGE_PREFIX) {
            break;
        }
        let desc: RangeDescriptor = serde_json::from_slice(&v)
            .map_err(|e| KvError::Storage(format!("corrupt range descriptor: {e}")))?;
        out.push(desc);
    }
    Ok(out)
}

#[async_trait]
impl RangeService for LocalNode {
    fn node_id(&self) -> u64 {
        self.ident.node_id
    }

    async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>> {
        self.replica(header.range_id)?.get(header, key, read).await
    }

    async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult> {
        self.replica(header.range_id)?
            .scan(header, start, end, read, limit)
            .await
    }

    async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse> {
        self.replica(header.range_id)?.write(header, write).await
    }
}

#[async_trait]
impl RangeDirectory for LocalNode {
    async fn lookup(&self, key: &[u8]) -> Result<RangeLocation> {
        self.replicas
            .read()
            .values()
            .map(|r| r.descriptor())
            .find(|d| d.contains(key))
            .map(|desc| RangeLocation {
                desc,
                leaseholder: self.ident.node_id,
            })
            .ok_or_else(|| KvError::Unavailable(format!("no range holds key {key:?}")))
    }

    async fn ranges(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeLocation>> {
        Ok(self
            .range_descriptors()
            .into_iter()
            .filter(|d| d.clamp(start, end).is_some())
            .map(|desc| RangeLocation {
                desc,
                leaseholder: self.ident.node_id,
            })
            .collect())
    }
}
