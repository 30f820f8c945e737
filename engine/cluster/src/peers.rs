//! [`Peers`]: the nodes this node knows, how to reach them, and when each
//! last answered.
//!
//! A request for this node itself is handled in-process by the node's own
//! [`Handler`], set once at start-up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use holo_kv::KvError;
use holo_raft::NodeAddr;
use parking_lot::RwLock;

use crate::rpc::{AdminRequest, Handler, Reply, Request, RpcClient};

/// How long a node request may take before the peer counts as unreachable.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a probe of a peer may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A peer that answered within this window counts as recently seen.
const RECENT: Duration = Duration::from_secs(3);

/// The known nodes of the cluster.
pub struct Peers {
    me: u64,
    dead_after: Duration,
    nodes: RwLock<BTreeMap<u64, NodeAddr>>,
    rpc: Arc<RpcClient>,
    liveness: Liveness,
    local: OnceLock<Weak<dyn Handler>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("me", &self.me)
            .field("nodes", &*self.nodes.read())
            .finish()
    }
}

impl Peers {
    /// Peers of node `me` at `addr`; a peer silent for `dead_after` is dead
    /// (never when zero).
    pub fn new(me: u64, addr: NodeAddr, dead_after: Duration, rpc: Arc<RpcClient>) -> Peers {
        Peers {
            me,
            dead_after,
            nodes: RwLock::new(BTreeMap::from([(me, addr)])),
            rpc,
            liveness: Liveness::default(),
            local: OnceLock::new(),
        }
    }

    /// Sets the handler of requests addressed to this node.
    pub(crate) fn set_local(&self, handler: Weak<dyn Handler>) {
        let _ = self.local.set(handler);
    }

    /// This node's id.
    pub fn me(&self) -> u64 {
        self.me
    }

    /// The RPC client.
    pub(crate) fn rpc(&self) -> &Arc<RpcClient> {
        &self.rpc
    }

    /// Known nodes and their addresses.
    pub fn nodes(&self) -> BTreeMap<u64, NodeAddr> {
        self.nodes.read().clone()
    }

    /// Ids of the known nodes, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.read().keys().copied().collect()
    }

    /// Records `found`; returns the nodes that were new or moved.
    pub fn learn(&self, found: BTreeMap<u64, NodeAddr>) -> Vec<(u64, NodeAddr)> {
        let mut added = Vec::new();
        let mut nodes = self.nodes.write();
        for (id, addr) in found {
            if nodes.get(&id) != Some(&addr) {
                nodes.insert(id, addr.clone());
                added.push((id, addr));
            }
        }
        added
    }

    /// Sends `req` to node `node_id` (handled in-process when it is this
    /// node).
    pub(crate) async fn call(&self, node_id: u64, req: Request) -> Reply {
        if node_id == self.me {
            let handler = self.local.get().and_then(Weak::upgrade);
            return match handler {
                Some(h) => h.handle(req).await,
                None => Err(KvError::Unavailable("the node is shutting down".into())),
            };
        }
        let addr = self.nodes.read().get(&node_id).map(|a| a.rpc.clone());
        let Some(addr) = addr else {
            return Err(KvError::NodeUnreachable {
                node_id,
                reason: "address unknown".into(),
            });
        };
        self.rpc.call(node_id, &addr, &req, RPC_TIMEOUT).await
    }

    /// Pings every known peer once (in the background) and records who
    /// answered.
    pub(crate) fn probe(self: &Arc<Self>) {
        for (id, addr) in self.nodes() {
            if id == self.me {
                continue;
            }
            let peers = self.clone();
            tokio::spawn(async move {
                let ok = peers
                    .rpc
                    .call(
                        id,
                        &addr.rpc,
                        &Request::from(AdminRequest::Ping),
                        PROBE_TIMEOUT,
                    )
                    .await
                    .is_ok();
                if ok {
                    peers.liveness.observe(id);
                }
            });
        }
    }

    /// Whether `node` is considered dead (`--dead-node-secs` without an
    /// answer; never when that is 0).
    pub fn is_dead(&self, node: u64) -> bool {
        node != self.me
            && !self.dead_after.is_zero()
            && self.liveness.is_dead(node, self.dead_after)
    }

    /// Whether `node` answered a probe in the last few seconds (this node
    /// always has).
    pub fn recently_seen(&self, node: u64) -> bool {
        node == self.me || self.liveness.seen_within(node, RECENT)
    }

    /// Registered nodes not considered dead.
    pub fn live(&self) -> BTreeMap<u64, NodeAddr> {
        self.nodes()
            .into_iter()
            .filter(|(id, _)| !self.is_dead(*id))
            .collect()
    }
}

/// When each peer last answered.
#[derive(Debug)]
struct Liveness {
    started: Instant,
    last_seen: RwLock<HashMap<u64, Instant>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            started: Instant::now(),
            last_seen: RwLock::new(HashMap::new()),
        }
    }
}

impl Liveness {
    fn observe(&self, node: u64) {
        self.last_seen.write().insert(node, Instant::now());
    }

    fn seen_within(&self, node: u64, window: Duration) -> bool {
        self.last_seen
            .read()
            .get(&node)
            .is_some_and(|t| t.elapsed() < window)
    }

    /// A node never heard of counts from this node's start.
    fn is_dead(&self, node: u64, after: Duration) -> bool {
        let seen = self
            .last_seen
            .read()
            .get(&node)
            .copied()
            .unwrap_or(self.started);
        seen.elapsed() >= after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> NodeAddr {
        NodeAddr {
            rpc: format!("127.0.0.1:{port}"),
            pg: String::new(),
        }
    }

    #[test]
    fn learning_reports_only_new_or_moved_nodes() {
        let peers = Peers::new(1, addr(1), Duration::ZERO, Arc::new(RpcClient::new()));
        let first = peers.learn(BTreeMap::from([(1, addr(1)), (2, addr(2))]));
        assert_eq!(first, vec![(2, addr(2))]);
        assert!(peers.learn(BTreeMap::from([(2, addr(2))])).is_empty());
        let moved = peers.learn(BTreeMap::from([(2, addr(3))]));
        assert_eq!(moved, vec![(2, addr(3))]);
        assert_eq!(peers.ids(), vec![1, 2]);
    }

    #[test]
    fn liveness_counts_from_start_and_never_kills_self() {
        let peers = Peers::new(
            1,
            addr(1),
            Duration::from_millis(20),
            Arc::new(RpcClient::new()),
        );
        peers.learn(BTreeMap::from([(2, addr(2))]));
        assert!(
            !peers.is_dead(2),
            "a peer is not dead before the window passes"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert!(peers.is_dead(2));
        assert!(!peers.is_dead(1), "a node never counts itself dead");
        peers.liveness.observe(2);
        assert!(!peers.is_dead(2));
        assert!(peers.recently_seen(2));
        assert!(!peers.recently_seen(3));
        assert_eq!(peers.live().keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn zero_window_means_never_dead() {
        let peers = Peers::new(1, addr(1), Duration::ZERO, Arc::new(RpcClient::new()));
        peers.learn(BTreeMap::from([(2, addr(2))]));
        assert!(!peers.is_dead(2));
    }

    #[tokio::test]
    async fn a_call_to_an_unknown_node_is_unreachable() {
        let peers = Peers::new(1, addr(1), Duration::ZERO, Arc::new(RpcClient::new()));
        let err = peers
            .call(9, Request::from(AdminRequest::Ping))
            .await
            .unwrap_err();
        assert!(
            matches!(err, KvError::NodeUnreachable { node_id: 9, .. }),
            "{err:?}"
        );
        let err = peers
            .call(1, Request::from(AdminRequest::Ping))
            .await
            .unwrap_err();
        assert!(
            matches!(err, KvError::Unavailable(_)),
            "no local handler yet: {err:?}"
        );
    }
}
