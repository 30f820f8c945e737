//! Internal RPC between nodes: one gRPC method (`/holo.Internal/Call`) over
//! tonic whose message is a bincode-encoded [`Request`] / [`Reply`].
//!
//! One HTTP/2 channel per peer multiplexes every range's Raft traffic and
//! every KV request. The codec passes bytes through, so the message types
//! are plain Rust enums shared by both ends (same binary on every node).

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes};
use holo_kv::KvError;
use holo_kv::service::{KvWrite, RangeHeader, WriteResponse};
use holo_raft::NodeAddr;
use holo_raft::codec::{decode, encode};
use holo_raft::network::RaftRpcKind;
use holo_storage::{RangeDescriptor, RangeId, ReadOptions, ScanResult};
use holo_txn_types::Timestamp;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};

use crate::rpc_error::RpcError;
use crate::status::{ClusterView, NodeStatus};

const SERVICE: &str = "holo.Internal";
const CALL_PATH: &str = "/holo.Internal/Call";
/// Largest message (snapshot chunks are a few MiB).
const MAX_MESSAGE: usize = 256 << 20;

/// A request from one node to another, by the part of the node that
/// serves it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// A Raft message for one range's group.
    Raft(RaftMessage),
    /// A read, write or timestamp request of a KV client.
    Kv(KvRequest),
    /// Membership, status and range administration (splits, merges,
    /// leases, GC) between nodes and from `holoctl`.
    Admin(AdminRequest),
}

/// A Raft message for one range.
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftMessage {
    /// The range.
    pub range: RangeId,
    /// The message kind.
    pub kind: RaftRpcKind,
    /// The encoded openraft request.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// A KV client's request, served by a range's leaseholder (or, for
/// timestamps, the meta range's leader).
#[derive(Debug, Serialize, Deserialize)]
pub enum KvRequest {
    /// Read one key at the leaseholder.
    Get {
        /// Addressed range.
        header: RangeHeader,
        /// The key.
        key: Vec<u8>,
        /// Timestamp and bypassed locks.
        read: ReadOptions,
    },
    /// Scan a span at the leaseholder.
    Scan {
        /// Addressed range.
        header: RangeHeader,
        /// First key.
        #[serde(with = "serde_bytes")]
        start: Vec<u8>,
        /// End key (exclusive, empty = range end).
        #[serde(with = "serde_bytes")]
        end: Vec<u8>,
        /// Timestamp and bypassed locks.
        read: ReadOptions,
        /// Most pairs.
        limit: u64,
    },
    /// A write at the leaseholder.
    Write {
        /// Addressed range.
        header: RangeHeader,
        /// The write.
        write: KvWrite,
    },
    /// The first of `count` consecutive timestamps from the oracle (the
    /// meta range's leader).
    Tso {
        /// How many timestamps.
        count: u32,
    },
}

/// Membership, status and range administration.
#[derive(Debug, Serialize, Deserialize)]
pub enum AdminRequest {
    /// A node asks to be part of the cluster.
    Join {
        /// The new node's id.
        node_id: u64,
        /// Its addresses.
        addr: NodeAddr,
    },
    /// What the node knows about the cluster and its replicas.
    Status,
    /// Are you there? (liveness probe)
    Ping,
    /// A step of a GC round: answer the bound you allow below `bound`
    /// (your oldest open transaction); with `resolve`, first resolve the
    /// locks below it in the ranges you lead.
    GcPrepare {
        /// The candidate safe point.
        bound: Timestamp,
        /// Resolve locks (second step) or only report open transactions
        /// (first step).
        resolve: bool,
    },
    /// Split the range holding `key` at `key` (sent to its leaseholder).
    Split {
        /// First key of the new right-hand range.
        key: Vec<u8>,
    },
    /// Split at `key` wherever its range's leaseholder is (the receiving
    /// node routes the split).
    AdminSplit {
        /// First key of the new right-hand range.
        key: Vec<u8>,
    },
    /// Campaign for a range's leadership now (part of a lease transfer).
    Campaign {
        /// The range.
        range: RangeId,
    },
    /// Move a range's lease (Raft leadership) to another replica.
    TransferLease {
        /// The range.
        range: RangeId,
        /// The node that should lead it.
        to: u64,
    },
    /// Merge the range holding `key` with its right-hand neighbour (sent to
    /// the left range's leaseholder).
    Merge {
        /// A key of the left range.
        key: Vec<u8>,
    },
    /// Merge wherever the left range's leaseholder is (the receiving node
    /// routes the merge).
    AdminMerge {
        /// A key of the left range.
        key: Vec<u8>,
    },
    /// Freeze a range for merge attempt `nonce` (sent to its leaseholder).
    Freeze {
        /// The right-hand range.
        range: RangeId,
        /// The merge attempt.
        nonce: u64,
    },
    /// Lift the freeze of merge attempt `nonce` (it was fenced).
    Unfreeze {
        /// The range.
        range: RangeId,
        /// The merge attempt.
        nonce: u64,
    },
    /// Answer once this node's replica of `range` applied `index` (and is
    /// frozen by merge attempt `nonce`).
    WaitApplied {
        /// The range.
        range: RangeId,
        /// The log index.
        index: u64,
        /// The merge attempt that must have frozen the replica.
        nonce: u64,
    },
    /// Fence merge attempt `nonce` in the left range `range`; answers
    /// whether it was fenced (`false`: it had already merged).
    MergeAbort {
        /// The left range.
        range: RangeId,
        /// The merge attempt.
        nonce: u64,
        /// First key of the right-hand range.
        right_start: Vec<u8>,
    },
}

impl From<KvRequest> for Request {
    fn from(r: KvRequest) -> Request {
        Request::Kv(r)
    }
}

impl From<AdminRequest> for Request {
    fn from(r: AdminRequest) -> Request {
        Request::Admin(r)
    }
}

/// A successful answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// Encoded answer of a Raft message.
    Raft(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A read value.
    Get(Option<Vec<u8>>),
    /// Scanned pairs.
    Scan(ScanResult),
    /// A write's outcome.
    Write(WriteResponse),
    /// An oracle timestamp.
    Tso(Timestamp),
    /// The cluster as the answering node sees it.
    Cluster(ClusterView),
    /// A node's status.
    Status(NodeStatus),
    /// Done, nothing to return.
    Done,
    /// A range frozen for a merge: its descriptor and the freeze's log
    /// index.
    Frozen {
        /// The frozen range.
        desc: RangeDescriptor,
        /// Log index of the freeze.
        index: u64,
    },
    /// Whether a merge attempt was fenced.
    MergeAborted(bool),
    /// A node's answer to [`AdminRequest::GcPrepare`].
    GcPrepared {
        /// The safe point the node allows.
        bound: Timestamp,
        /// Spans `[start, end)` of the ranges it leads whose locks below
        /// `bound` are resolved (empty end = unbounded).
        #[serde(with = "holo_txn_types::bytes::pairs")]
        spans: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

/// The answer to a [`Request`].
pub type Reply = Result<Response, KvError>;

/// The answer as it travels: failures in their wire form.
type WireReply = Result<Response, RpcError>;

/// Serves requests of other nodes.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    async fn handle(&self, request: Request) -> Reply;
}

#[derive(Debug, Clone, Copy, Default)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// The gRPC service wrapping a [`Handler`].
#[derive(Clone)]
pub struct InternalService {
    handler: Arc<dyn Handler>,
}

impl InternalService {
    /// The service answering with `handler`.
    pub fn new(handler: Arc<dyn Handler>) -> InternalService {
        InternalService { handler }
    }
}

impl NamedService for InternalService {
    const NAME: &'static str = SERVICE;
}

struct CallSvc(Arc<dyn Handler>);

impl tonic::server::UnaryService<Bytes> for CallSvc {
    type Response = Bytes;
    type Future = BoxFuture<tonic::Response<Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move {
            let reply: Reply = match decode::<Request>(request.get_ref()) {
                Ok(req) => handler.handle(req).await,
                Err(e) => Err(KvError::Unavailable(format!("undecodable request: {e}"))),
            };
            let wire: WireReply = reply.map_err(|e| RpcError::from(&e));
            let bytes = encode(&wire)
                .map_err(|e| tonic::Status::internal(format!("encoding reply: {e}")))?;
            Ok(tonic::Response::new(Bytes::from(bytes)))
        })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for InternalService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == CALL_PATH {
            let svc = CallSvc(self.handler.clone());
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(BytesCodec)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE);
                Ok(grpc.unary(svc, req).await)
            })
        } else {
            Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            })
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: Arc<dyn Handler>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(InternalService::new(handler))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Calls other nodes; one lazily connected channel per address.
#[derive(Default)]
pub struct RpcClient {
    channels: Mutex<HashMap<String, Channel>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient").finish()
    }
}

impl RpcClient {
    /// A client with no connections yet.
    pub fn new() -> RpcClient {
        RpcClient::default()
    }

    fn channel(&self, addr: &str) -> Result<Channel, KvError> {
        let mut channels = self.channels.lock();
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| KvError::Unavailable(format!("bad node address {addr}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2));
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Sends `request` to the node at `addr` and waits at most `timeout`.
    /// Transport failures come back as [`KvError::NodeUnreachable`].
    pub async fn call(
        &self,
        node_id: u64,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Reply {
        let unreachable = |reason: String| KvError::NodeUnreachable { node_id, reason };
        let channel = self.channel(addr)?;
        let bytes =
            encode(request).map_err(|e| KvError::Unavailable(format!("encoding request: {e}")))?;
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let call = async {
            grpc.ready()
                .await
                .map_err(|e| unreachable(format!("connecting to {addr}: {e}")))?;
            grpc.unary(
                tonic::Request::new(Bytes::from(bytes)),
                http::uri::PathAndQuery::from_static(CALL_PATH),
                BytesCodec,
            )
            .await
            .map_err(|s| unreachable(format!("{addr}: {}", s.message())))
        };
        let response = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| unreachable(format!("{addr}: no answer within {timeout:?}")))??;
        decode::<WireReply>(response.get_ref())
            .map_err(|e| KvError::Unavailable(format!("undecodable reply from {addr}: {e}")))?
            .map_err(KvError::from)
    }
}
