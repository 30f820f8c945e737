//! openraft's network for one range over a node-wide [`RaftTransport`].
//!
//! Every range's group sends through the node's one transport; a message is
//! the range id, its kind and the bincode-encoded openraft request. The
//! receiving node hands the payload to [`dispatch`] on its replica of the
//! range and sends back the encoded `Result` of the local Raft call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holo_storage::RangeId;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::types::NodeAddr;
use crate::{RangeRaft, TypeConfig};

/// Which Raft message a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRpcKind {
    /// `AppendEntries` (also heartbeats).
    AppendEntries,
    /// `RequestVote`.
    Vote,
    /// One chunk of a snapshot.
    InstallSnapshot,
}

/// Why a message did not reach the peer or got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (connection refused, timeout).
    #[error("node {node} unreachable: {reason}")]
    Unreachable {
        /// The target node.
        node: u64,
        /// What failed.
        reason: String,
    },
    /// The peer answered with something that is not a valid answer.
    #[error("bad answer from node {node}: {reason}")]
    Protocol {
        /// The target node.
        node: u64,
        /// What was wrong.
        reason: String,
    },
}

impl TransportError {
    /// A stable code naming the variant.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Unreachable { .. } => "RAFT_PEER_UNREACHABLE",
            TransportError::Protocol { .. } => "RAFT_BAD_ANSWER",
        }
    }
}

/// Carries encoded Raft messages between nodes (gRPC in production, in
/// memory in tests).
#[async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `payload` to `range`'s replica on node `target` and returns the
    /// encoded answer.
    async fn raft_rpc(
        &self,
        target: u64,
        addr: &NodeAddr,
        range: RangeId,
        kind: RaftRpcKind,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError>;
}

/// Creates a range's per-peer clients.
#[derive(Clone)]
pub struct RangeNetworkFactory {
    range: RangeId,
    transport: Arc<dyn RaftTransport>,
}

impl RangeNetworkFactory {
    /// The network of `range` over `transport`.
    pub fn new(range: RangeId, transport: Arc<dyn RaftTransport>) -> RangeNetworkFactory {
        RangeNetworkFactory { range, transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for RangeNetworkFactory {
    type Network = RangeNetwork;

    async fn new_client(&mut self, target: u64, node: &NodeAddr) -> RangeNetwork {
        RangeNetwork {
            range: self.range,
            target,
            addr: node.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// A range's client to one peer.
pub struct RangeNetwork {
    range: RangeId,
    target: u64,
    addr: NodeAddr,
    transport: Arc<dyn RaftTransport>,
}

impl RangeNetwork {
    async fn call<Req, Resp, E>(
        &self,
        kind: RaftRpcKind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, NodeAddr, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .raft_rpc(
                self.target,
                &self.addr,
                self.range,
                kind,
                payload,
                option.hard_ttl(),
            )
            .await
            .map_err(|e| match e {
                TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                TransportError::Protocol { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        let result: Result<Resp, RaftError<u64, E>> =
            decode(&answer).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.addr.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for RangeNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        self.call(RaftRpcKind::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, NodeAddr, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(RaftRpcKind::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        self.call(RaftRpcKind::Vote, &rpc, &option).await
    }
}

/// Why a received message could not be handed to Raft.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The message did not decode.
    #[error("undecodable {kind:?} message: {reason}")]
    Undecodable {
        /// The message kind.
        kind: RaftRpcKind,
        /// The decoding failure.
        reason: String,
    },
    /// The receiver refused a snapshot (the sender retries later).
    #[error("snapshot refused: {0}")]
    SnapshotRefused(String),
}

impl DispatchError {
    /// A stable code naming the variant.
    pub fn code(&self) -> &'static str {
        match self {
            DispatchError::Undecodable { .. } => "RAFT_UNDECODABLE",
            DispatchError::SnapshotRefused(_) => "RAFT_SNAPSHOT_REFUSED",
        }
    }
}

/// Hands a received message to the local replica and encodes its answer.
/// The first chunk of a snapshot is shown to `accept_snapshot` with the
/// span it carries; an error refuses the whole snapshot.
pub async fn dispatch(
    raft: &RangeRaft,
    kind: RaftRpcKind,
    payload: &[u8],
    accept_snapshot: impl FnOnce(&holo_storage::RangeDescriptor) -> Result<(), String>,
) -> Result<Vec<u8>, DispatchError> {
    let bad = |e: &dyn std::fmt::Display| DispatchError::Undecodable {
        kind,
        reason: e.to_string(),
    };
    let answer = match kind {
        RaftRpcKind::AppendEntries => {
            let req: AppendEntriesRequest<TypeConfig> = decode(payload).map_err(|e| bad(&e))?;
            encode(&raft.append_entries(req).await)
        }
        RaftRpcKind::Vote => {
            let req: VoteRequest<u64> = decode(payload).map_err(|e| bad(&e))?;
            encode(&raft.vote(req).await)
        }
        RaftRpcKind::InstallSnapshot => {
            let req: InstallSnapshotRequest<TypeConfig> = decode(payload).map_err(|e| bad(&e))?;
            if req.offset == 0
                && let Some(desc) = crate::state_machine::snapshot_descriptor(&req.data)
            {
                accept_snapshot(&desc).map_err(DispatchError::SnapshotRefused)?;
            }
            encode(&raft.install_snapshot(req).await)
        }
    };
    answer.map_err(|e| bad(&e))
}
