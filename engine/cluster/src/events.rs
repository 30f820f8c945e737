//! The event loop of a node: what its replicas' state machines report
//! (splits, merges, installed snapshots, membership changes) turned into
//! replica starts and stops.

use std::sync::Weak;

use holo_raft::state_machine::SmEvent;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::node::ClusterNode;

/// Runs until the node is gone or the state machines' sender closes.
pub(crate) async fn run(node: Weak<ClusterNode>, mut rx: UnboundedReceiver<SmEvent>) {
    while let Some(ev) = rx.recv().await {
        let Some(node) = node.upgrade() else { return };
        match ev {
            SmEvent::Split { left, right } => {
                if let Err(e) = node.on_split(&left, &right).await {
                    tracing::error!(range = %right.id, error = %e, "starting the right-hand range of a split failed");
                }
            }
            SmEvent::Merged { left, right } => {
                tracing::info!(left = %left.id, %right, "range merge applied");
                node.registry().destroy(right).await;
                node.kv().cache().invalidate(right);
                node.kv().cache().invalidate(left.id);
            }
            // A snapshot of a merged range replaces the replicas of the
            // ranges it absorbed (their merge never applied here).
            SmEvent::SnapshotInstalled { desc } => {
                for r in node.replicas() {
                    let d = r.descriptor();
                    if d.id != desc.id && r.initialized() && desc.covers(&d) {
                        tracing::info!(range = %d.id, by = %desc.id, "replica absorbed by a merged range's snapshot");
                        node.registry().destroy(d.id).await;
                    }
                }
            }
            SmEvent::Membership { desc, members } => {
                node.on_membership(&desc, &members).await;
            }
        }
    }
}
