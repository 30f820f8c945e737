//! [`RpcError`]: a failure as it travels in an RPC reply: the error's
//! stable code and message, and the few facts a caller acts on (the range,
//! the leader to redirect to, the current descriptor, the key error).
//!
//! The wire form is this struct, not the serde form of `KvError`, so the
//! KV layer's error enum can change without changing what nodes of
//! different builds understand of each other: an unknown code arrives as
//! `Unavailable` naming it.

use holo_kv::KvError;
use holo_storage::{RangeDescriptor, RangeId};
use holo_txn_types::{KeyError, Timestamp};
use serde::{Deserialize, Serialize};

/// A failed request, as sent back to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error's stable code (`KvError::code`).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The range the error is about.
    pub range: Option<RangeId>,
    /// The node the error is about (the one that answered, or the one
    /// unreachable).
    pub node: Option<u64>,
    /// The leaseholder to redirect to, when known.
    pub leader: Option<u64>,
    /// The range's current descriptor, when the request's was stale.
    pub current: Option<Box<RangeDescriptor>>,
    /// The per-key failure, for key errors.
    pub key_error: Option<KeyError>,
    /// The key waited on (lock wait timeouts).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The lock holder's start timestamp (lock wait timeouts).
    pub start_ts: Option<Timestamp>,
    /// How many attempts were made (routing exhausted).
    pub attempts: Option<u64>,
}

impl RpcError {
    fn new(e: &KvError, message: String) -> RpcError {
        RpcError {
            code: e.code().to_string(),
            message,
            range: None,
            node: None,
            leader: None,
            current: None,
            key_error: None,
            key: Vec::new(),
            start_ts: None,
            attempts: None,
        }
    }
}

impl From<&KvError> for RpcError {
    fn from(e: &KvError) -> RpcError {
        let text = |m: &String| RpcError::new(e, m.clone());
        match e {
            KvError::Key(k) => RpcError {
                key_error: Some(k.clone()),
                ..RpcError::new(e, e.to_string())
            },
            KvError::RangeNotFound { range_id, node_id } => RpcError {
                range: Some(*range_id),
                node: Some(*node_id),
                ..RpcError::new(e, e.to_string())
            },
            KvError::EpochNotMatch { range_id, current } => RpcError {
                range: Some(*range_id),
                current: current.clone(),
                ..RpcError::new(e, e.to_string())
            },
            KvError::KeyNotInRange { range_id } => RpcError {
                range: Some(*range_id),
                ..RpcError::new(e, e.to_string())
            },
            KvError::NotLeader { range_id, leader } => RpcError {
                range: Some(*range_id),
                leader: *leader,
                ..RpcError::new(e, e.to_string())
            },
            KvError::LockWaitTimeout { start_ts, key } => RpcError {
                start_ts: Some(*start_ts),
                key: key.clone(),
                ..RpcError::new(e, e.to_string())
            },
            KvError::RoutingExhausted { attempts, last } => RpcError {
                attempts: Some(*attempts as u64),
                ..text(last)
            },
            KvError::NodeUnreachable { node_id, reason } => RpcError {
                node: Some(*node_id),
                ..text(reason)
            },
            KvError::TxnNotActive => RpcError::new(e, e.to_string()),
            KvError::TxnTooLarge(m)
            | KvError::Storage(m)
            | KvError::AmbiguousCommit(m)
            | KvError::Unavailable(m)
            | KvError::Aborted(m)
            | KvError::InvalidRequest(m) => text(m),
        }
    }
}

impl From<RpcError> for KvError {
    fn from(e: RpcError) -> KvError {
        if let Some(k) = e.key_error {
            return KvError::Key(k);
        }
        let range = e.range.unwrap_or(RangeId(0));
        let node = e.node.unwrap_or(0);
        match e.code.as_str() {
            "KV_RANGE_NOT_FOUND" => KvError::RangeNotFound {
                range_id: range,
                node_id: node,
            },
            "KV_EPOCH_NOT_MATCH" => KvError::EpochNotMatch {
                range_id: range,
                current: e.current,
            },
            "KV_KEY_NOT_IN_RANGE" => KvError::KeyNotInRange { range_id: range },
            "KV_NOT_LEADER" => KvError::NotLeader {
                range_id: range,
                leader: e.leader,
            },
            "KV_LOCK_WAIT_TIMEOUT" => KvError::LockWaitTimeout {
                start_ts: e.start_ts.unwrap_or(Timestamp::ZERO),
                key: e.key,
            },
            "KV_ROUTING_EXHAUSTED" => KvError::RoutingExhausted {
                attempts: e.attempts.unwrap_or(0) as usize,
                last: e.message,
            },
            "KV_TXN_TOO_LARGE" => KvError::TxnTooLarge(e.message),
            "KV_TXN_NOT_ACTIVE" => KvError::TxnNotActive,
            "KV_STORAGE" => KvError::Storage(e.message),
            "KV_NODE_UNREACHABLE" => KvError::NodeUnreachable {
                node_id: node,
                reason: e.message,
            },
            "KV_AMBIGUOUS_COMMIT" => KvError::AmbiguousCommit(e.message),
            "KV_UNAVAILABLE" => KvError::Unavailable(e.message),
            "KV_ABORTED" => KvError::Aborted(e.message),
            "KV_INVALID_REQUEST" => KvError::InvalidRequest(e.message),
            other => KvError::Unavailable(format!("{other}: {}", e.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: KvError) -> KvError {
        let wire = RpcError::from(&e);
        let bytes = holo_raft::codec::encode(&wire).unwrap();
        let back: RpcError = holo_raft::codec::decode(&bytes).unwrap();
        assert_eq!(back, wire);
        KvError::from(back)
    }

    #[test]
    fn every_kv_error_survives_the_wire() {
        let ts = Timestamp::ZERO;
        let cases = vec![
            KvError::Key(KeyError::AlreadyExists { key: vec![7, 0, 1] }),
            KvError::RangeNotFound {
                range_id: RangeId(4),
                node_id: 2,
            },
            KvError::EpochNotMatch {
                range_id: RangeId(4),
                current: None,
            },
            KvError::KeyNotInRange {
                range_id: RangeId(9),
            },
            KvError::NotLeader {
                range_id: RangeId(4),
                leader: Some(3),
            },
            KvError::LockWaitTimeout {
                start_ts: ts,
                key: b"k".to_vec(),
            },
            KvError::RoutingExhausted {
                attempts: 40,
                last: "stale".into(),
            },
            KvError::TxnTooLarge("big".into()),
            KvError::TxnNotActive,
            KvError::Storage("disk".into()),
            KvError::NodeUnreachable {
                node_id: 5,
                reason: "refused".into(),
            },
            KvError::AmbiguousCommit("maybe".into()),
            KvError::Unavailable("down".into()),
            KvError::Aborted("undone".into()),
            KvError::InvalidRequest("no".into()),
        ];
        for e in cases {
            let back = round_trip(e.clone());
            assert_eq!(back.code(), e.code());
            assert_eq!(back.to_string(), e.to_string());
        }
    }

    #[test]
    fn an_unknown_code_arrives_as_unavailable() {
        let mut wire = RpcError::from(&KvError::Aborted("x".into()));
        wire.code = "KV_FROM_THE_FUTURE".into();
        let e = KvError::from(wire);
        assert!(
            matches!(e, KvError::Unavailable(ref m) if m.contains("KV_FROM_THE_FUTURE")),
            "{e:?}"
        );
    }
}
