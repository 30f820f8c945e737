//! [`MetaClient`]: this node's client of the meta range: the node registry,
//! range descriptors, range-id allocation and the timestamp oracle, all
//! reached through the meta range's leader (redirects followed, stale
//! routes retried).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holo_kv::KvError;
use holo_kv::service::{KvWrite, RangeHeader};
use holo_raft::NodeAddr;
use holo_storage::{RangeDescriptor, RangeId, ReadOptions, ScanResult};
use holo_txn_types::{Mutation, MutationOp, Timestamp};

use crate::meta::{self, META_RANGE};
use crate::peers::Peers;
use crate::registry::ReplicaRegistry;
use crate::retry::retry_stale;
use crate::rpc::{KvRequest, Reply, Request, Response};
use crate::tso::{TsoBatcher, TsoState};

/// The meta range as this node reaches it.
pub struct MetaClient {
    peers: Arc<Peers>,
    registry: Arc<ReplicaRegistry>,
    leader: AtomicU64,
    tso: TsoState,
    batcher: Arc<TsoBatcher>,
    /// Timestamps this node asked the oracle for.
    requests: AtomicU64,
}

impl std::fmt::Debug for MetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaClient")
            .field("leader", &self.leader.load(Ordering::Relaxed))
            .finish()
    }
}

fn unexpected(answer: Response) -> KvError {
    KvError::Unavailable(format!("unexpected meta answer {answer:?}"))
}

fn header() -> RangeHeader {
    RangeHeader::for_range(&meta::meta_descriptor([]))
}

impl MetaClient {
    /// A client over `peers`; the local meta replica, when there is one,
    /// is found in `registry`.
    pub fn new(peers: Arc<Peers>, registry: Arc<ReplicaRegistry>) -> MetaClient {
        MetaClient {
            peers,
            registry,
            leader: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            tso: TsoState::default(),
            batcher: Arc::new(TsoBatcher::default()),
        }
    }

    /// The meta range's leader as this node best knows it.
    pub fn leader_hint(&self) -> u64 {
        if let Some(l) = self.registry.get(META_RANGE).and_then(|r| r.leader()) {
            return l;
        }
        match self.leader.load(Ordering::Relaxed) {
            0 => self.peers.me(),
            l => l,
        }
    }

    /// Records the meta leader a peer named.
    pub fn set_leader(&self, leader: u64) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    fn rotate_leader(&self, after: u64) {
        let nodes = self.peers.ids();
        let next = nodes
            .iter()
            .copied()
            .find(|n| *n > after)
            .or_else(|| nodes.first().copied());
        if let Some(n) = next {
            self.set_leader(n);
        }
    }

    /// Sends a request built by `make` to the meta range's leader, following
    /// redirects and retrying unreachable nodes with backoff.
    pub(crate) async fn call(&self, make: impl Fn() -> Request) -> Reply {
        let target = AtomicU64::new(0);
        retry_stale(
            || {
                target.store(self.leader_hint(), Ordering::Relaxed);
                self.peers.call(target.load(Ordering::Relaxed), make())
            },
            |e| match e {
                KvError::NotLeader {
                    leader: Some(l), ..
                } if *l != target.load(Ordering::Relaxed) => {
                    self.set_leader(*l);
                    true
                }
                KvError::Unavailable(_) => false,
                _ => {
                    self.rotate_leader(target.load(Ordering::Relaxed));
                    false
                }
            },
        )
        .await
    }

    /// A timestamp from the oracle: from the local meta replica when it
    /// leads, else from the leader in batches shared by concurrent callers.
    pub async fn timestamp(self: &Arc<Self>) -> Result<Timestamp, KvError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(meta) = self.registry.get(META_RANGE)
            && meta.is_leader()
        {
            return self.tso.next(&meta).await;
        }
        let me = self.clone();
        self.batcher
            .get(move |count| {
                let me = me.clone();
                async move {
                    match me.call(|| Request::from(KvRequest::Tso { count })).await? {
                        Response::Tso(ts) => Ok(ts),
                        other => Err(KvError::Unavailable(format!(
                            "unexpected oracle answer {other:?}"
                        ))),
                    }
                }
            })
            .await
    }

    /// How many timestamps this node asked the oracle for so far.
    pub fn timestamp_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Serves a peer's request for `count` timestamps (this node leads the
    /// meta range).
    pub async fn serve_timestamps(&self, count: u32) -> Result<Timestamp, KvError> {
        let meta = self.registry.local(META_RANGE)?;
        self.tso.next_batch(&meta, count).await
    }

    /// Scans the meta range at a fresh timestamp.
    pub async fn scan(
        self: &Arc<Self>,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<ScanResult, KvError> {
        let read_ts = self.timestamp().await?;
        match self
            .call(|| {
                Request::from(KvRequest::Scan {
                    header: header(),
                    start: start.clone(),
                    end: end.clone(),
                    read: ReadOptions::at(read_ts),
                    limit: limit as u64,
                })
            })
            .await?
        {
            Response::Scan(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// The value of `key` in the meta range, if any.
    pub async fn get(self: &Arc<Self>, key: Vec<u8>) -> Result<Option<Vec<u8>>, KvError> {
        let mut end = key.clone();
        end.push(0);
        let scan = self.scan(key, end, 1).await?;
        Ok(scan.pairs.into_iter().next().map(|(_, v)| v))
    }

    /// The descriptor the meta range holds for the range ending at
    /// `end_key` (an unreadable value counts as none).
    pub async fn descriptor_ending_at(
        self: &Arc<Self>,
        end_key: &[u8],
    ) -> Result<Option<RangeDescriptor>, KvError> {
        let value = self.get(meta::descriptor_key(end_key)).await?;
        Ok(value.and_then(|v| holo_raft::codec::decode(&v).ok()))
    }

    /// Writes `changes` to the meta range in one transaction that started at
    /// `start_ts` (fails with a write conflict when a key changed since).
    pub async fn write(
        &self,
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        start_ts: Timestamp,
    ) -> Result<(), KvError> {
        let mutations: Vec<Mutation> = changes
            .into_iter()
            .map(|(key, value)| Mutation {
                key,
                op: match value {
                    Some(v) => MutationOp::Put(v),
                    None => MutationOp::Delete,
                },
            })
            .collect();
        match self
            .call(|| {
                Request::from(KvRequest::Write {
                    header: header(),
                    write: KvWrite::OnePc {
                        mutations: mutations.clone(),
                        start_ts,
                    },
                })
            })
            .await?
        {
            Response::Write(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Records a node's addresses in the registry.
    pub async fn register_node(
        self: &Arc<Self>,
        node_id: u64,
        addr: &NodeAddr,
    ) -> Result<(), KvError> {
        let value = holo_raft::codec::encode(addr).map_err(|e| KvError::Storage(e.to_string()))?;
        let start_ts = self.timestamp().await?;
        self.write(vec![(meta::node_key(node_id), Some(value))], start_ts)
            .await
    }

    /// Reads the node registry.
    pub async fn read_registry(self: &Arc<Self>) -> Result<BTreeMap<u64, NodeAddr>, KvError> {
        let (start, end) = meta::node_span();
        let scan = self.scan(start, end, 10_000).await?;
        let mut out = BTreeMap::new();
        for (k, v) in scan.pairs {
            if let (Some(id), Ok(addr)) = (
                meta::node_id_of(&k),
                holo_raft::codec::decode::<NodeAddr>(&v),
            ) {
                out.insert(id, addr);
            }
        }
        Ok(out)
    }

    /// Allocates a cluster-unique range id.
    pub async fn allocate_range_id(self: &Arc<Self>) -> Result<RangeId, KvError> {
        for _ in 0..20 {
            let start_ts = self.timestamp().await?;
            let key = meta::range_id_key();
            let answer = self
                .call(|| {
                    Request::from(KvRequest::Get {
                        header: header(),
                        key: key.clone(),
                        read: ReadOptions::at(start_ts),
                    })
                })
                .await?;
            let current = match answer {
                Response::Get(Some(v)) => u64::from_be_bytes(
                    v.as_slice()
                        .try_into()
                        .map_err(|_| KvError::Storage("corrupt range id counter".into()))?,
                ),
                Response::Get(None) => meta::FIRST_DATA_RANGE.0,
                other => return Err(unexpected(other)),
            };
            let next = current + 1;
            match self
                .write(vec![(key, Some(next.to_be_bytes().to_vec()))], start_ts)
                .await
            {
                Ok(()) => return Ok(RangeId(next)),
                Err(KvError::Key(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(KvError::Unavailable(
            "range id allocation kept conflicting".into(),
        ))
    }

    /// Writes `descs` into the meta range (each under its end key).
    pub async fn publish_descriptors(
        self: &Arc<Self>,
        descs: &[RangeDescriptor],
    ) -> Result<(), KvError> {
        for _ in 0..10 {
            let start_ts = self.timestamp().await?;
            let mut changes = Vec::new();
            for d in descs {
                let value =
                    holo_raft::codec::encode(d).map_err(|e| KvError::Storage(e.to_string()))?;
                changes.push((meta::descriptor_key(&d.end_key), Some(value)));
            }
            match self.write(changes, start_ts).await {
                Ok(()) => return Ok(()),
                Err(KvError::Key(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(e),
            }
        }
        Err(KvError::Unavailable(
            "publishing range descriptors kept conflicting".into(),
        ))
    }
}
