//! Requests to this node, from peers over RPC and from its own KV client:
//! one arm per request kind, each handing off to the part that owns it.

use async_trait::async_trait;
use holo_kv::KvError;
use holo_kv::service::{KvWrite, RangeHeader, RangeService, WriteResponse};
use holo_raft::network::dispatch;
use holo_storage::{ReadOptions, ScanResult};
use openraft::ServerState;

use crate::directory::NodeHandle;
use crate::node::ClusterNode;
use crate::rpc::{AdminRequest, Handler, KvRequest, RaftMessage, Reply, Request, Response};

#[async_trait]
impl Handler for ClusterNode {
    async fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Raft(message) => self.raft_message(message).await,
            Request::Kv(request) => self.kv_request(request).await,
            Request::Admin(request) => self.admin_request(request).await,
        }
    }
}

impl ClusterNode {
    /// A peer's Raft message, to the replica it is for (created empty when
    /// this node is being added to the range).
    async fn raft_message(&self, message: RaftMessage) -> Reply {
        let RaftMessage {
            range,
            kind,
            payload,
        } = message;
        let replica = self.registry().for_message(range).await?;
        dispatch(replica.raft(), kind, &payload, |desc| {
            self.registry().accept_snapshot(range, desc)
        })
        .await
        .map(Response::Raft)
        .map_err(|e| KvError::Unavailable(e.to_string()))
    }

    /// A KV client's request, at the local replica it addresses.
    async fn kv_request(&self, request: KvRequest) -> Reply {
        match request {
            KvRequest::Get { header, key, read } => self
                .registry()
                .local(header.range_id)?
                .get(header, key, read)
                .await
                .map(Response::Get),
            KvRequest::Scan {
                header,
                start,
                end,
                read,
                limit,
            } => self
                .registry()
                .local(header.range_id)?
                .scan(header, start, end, read, limit as usize)
                .await
                .map(Response::Scan),
            KvRequest::Write { header, write } => {
                let replica = self.registry().local(header.range_id)?;
                let tso = NodeHandle::new_from(self);
                replica
                    .write(header, write, &tso)
                    .await
                    .map(Response::Write)
            }
            KvRequest::Tso { count } => {
                self.meta().serve_timestamps(count).await.map(Response::Tso)
            }
        }
    }

    /// Membership, status and range administration.
    async fn admin_request(&self, request: AdminRequest) -> Reply {
        match request {
            AdminRequest::Join { node_id, addr } => {
                self.register_node(node_id, addr).await?;
                if let Ok(registry) = self.meta().read_registry().await {
                    self.add_nodes(registry);
                }
                Ok(Response::Cluster(self.view()))
            }
            AdminRequest::Status => Ok(Response::Status(self.status())),
            AdminRequest::Ping => Ok(Response::Done),
            AdminRequest::GcPrepare { bound, resolve } => self.gc_prepare(bound, resolve).await,
            AdminRequest::Split { key } => {
                self.lead_range_of(&key).await?;
                self.split_once(key).await.map(|_| Response::Done)
            }
            AdminRequest::AdminSplit { key } => self.admin_split(key).await.map(|_| Response::Done),
            AdminRequest::Merge { key } => {
                self.lead_range_of(&key).await?;
                self.merge_once(key).await.map(|_| Response::Done)
            }
            AdminRequest::AdminMerge { key } => self.admin_merge(key).await.map(|_| Response::Done),
            AdminRequest::Freeze { range, nonce } => self.freeze_local(range, nonce).await,
            AdminRequest::Unfreeze { range, nonce } => self.unfreeze_local(range, nonce).await,
            AdminRequest::WaitApplied {
                range,
                index,
                nonce,
            } => self.wait_frozen(range, index, nonce).await,
            AdminRequest::MergeAbort {
                range,
                nonce,
                right_start,
            } => self.merge_abort_local(range, nonce, right_start).await,
            AdminRequest::TransferLease { range, to } => {
                self.transfer_lease(range, to).await.map(|_| Response::Done)
            }
            AdminRequest::Campaign { range } => {
                let replica = self.registry().local(range)?;
                // A transfer asks again until the old leaseholder sees the new
                // leader; a node that already leads or campaigns must not
                // start over at a higher term (that would depose itself, and
                // under load no election would ever finish).
                let state = replica.raft().metrics().borrow().state;
                if !matches!(state, ServerState::Leader | ServerState::Candidate) {
                    replica
                        .raft()
                        .trigger()
                        .elect()
                        .await
                        .map_err(|e| KvError::Unavailable(format!("range {range}: {e}")))?;
                }
                Ok(Response::Done)
            }
        }
    }
}

#[async_trait]
impl RangeService for ClusterNode {
    fn node_id(&self) -> u64 {
        self.config.node_id
    }

    async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>, KvError> {
        self.registry()
            .local(header.range_id)?
            .get(header, key, read)
            .await
    }

    async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult, KvError> {
        self.registry()
            .local(header.range_id)?
            .scan(header, start, end, read, limit)
            .await
    }

    async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse, KvError> {
        let replica = self.registry().local(header.range_id)?;
        let tso = NodeHandle::new_from(self);
        replica.write(header, write, &tso).await
    }
}
