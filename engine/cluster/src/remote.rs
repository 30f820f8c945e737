//! [`RemoteNode`]: another node's ranges, reached over internal RPC.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holo_kv::KvError;
use holo_kv::service::{KvWrite, RangeHeader, RangeService, WriteResponse};
use holo_storage::{ReadOptions, ScanResult};

use crate::rpc::{KvRequest, Request, Response, RpcClient};

/// How long a KV request to another node may take.
const KV_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer's [`RangeService`].
pub struct RemoteNode {
    node_id: u64,
    addr: String,
    rpc: Arc<RpcClient>,
}

impl RemoteNode {
    /// The node `node_id` at RPC address `addr`.
    pub fn new(node_id: u64, addr: String, rpc: Arc<RpcClient>) -> RemoteNode {
        RemoteNode { node_id, addr, rpc }
    }

    async fn call(&self, req: Request) -> Result<Response, KvError> {
        self.rpc
            .call(self.node_id, &self.addr, &req, KV_TIMEOUT)
            .await
    }
}

fn unexpected(r: Response) -> KvError {
    KvError::Unavailable(format!("unexpected answer {r:?}"))
}

#[async_trait]
impl RangeService for RemoteNode {
    fn node_id(&self) -> u64 {
        self.node_id
    }

    async fn get(
        &self,
        header: RangeHeader,
        key: Vec<u8>,
        read: ReadOptions,
    ) -> Result<Option<Vec<u8>>, KvError> {
        match self
            .call(Request::from(KvRequest::Get { header, key, read }))
            .await?
        {
            Response::Get(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    async fn scan(
        &self,
        header: RangeHeader,
        start: Vec<u8>,
        end: Vec<u8>,
        read: ReadOptions,
        limit: usize,
    ) -> Result<ScanResult, KvError> {
        match self
            .call(Request::from(KvRequest::Scan {
                header,
                start,
                end,
                read,
                limit: limit as u64,
            }))
            .await?
        {
            Response::Scan(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    async fn write(&self, header: RangeHeader, write: KvWrite) -> Result<WriteResponse, KvError> {
        match self
            .call(Request::from(KvRequest::Write { header, write }))
            .await?
        {
            Response::Write(w) => Ok(w),
            other => Err(unexpected(other)),
        }
    }
}
