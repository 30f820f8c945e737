//! A range's persisted state machine state: created by a bootstrap or a
//! split, loaded at start, deleted (and tombstoned) when the range is
//! merged away or leaves the node.

use super::*;

/// The state of the right-hand range written in the same batch that applies
/// a split: applied and purged at [`SPLIT_INIT_INDEX`], same membership.
pub fn initial_split_state(
    batch: &mut WriteBatch,
    engine: &Engine,
    right: &RangeDescriptor,
    membership: &StoredMembership<u64, NodeAddr>,
) -> Result<(), AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    let log_id = LogId::new(openraft::CommittedLeaderId::new(0, 0), SPLIT_INIT_INDEX);
    let state = SmState {
        applied: Some(log_id),
        membership: StoredMembership::new(Some(log_id), membership.membership().clone()),
        desc: right.clone(),
        tso_high_water_ms: 0,
        frozen: 0,
        aborted_merges: Vec::new(),
    };
    batch.put_cf(cf, key(right.id, TAG_SM), encode(&state).map_err(any)?);
    batch.put_cf(cf, key(right.id, TAG_PURGED), encode(&log_id).map_err(any)?);
    Ok(())
}

/// Reads the persisted state machine state of `range`, if any.
pub fn load_state(engine: &Engine, range: RangeId) -> Result<Option<SmState>, AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    match engine.db().get_cf(cf, key(range, TAG_SM)).map_err(any)? {
        Some(bytes) => Ok(Some(decode(&bytes).map_err(any)?)),
        None => Ok(None),
    }
}

/// Writes the initial state of a range created when a cluster is
/// bootstrapped: voters `members`, log purged up to [`SPLIT_INIT_INDEX`] (as
/// for a split-created range), so a replica added later always starts from a
/// snapshot. A single-voter group elects itself when it starts.
pub fn bootstrap_range(
    engine: &Engine,
    desc: &RangeDescriptor,
    members: std::collections::BTreeMap<u64, NodeAddr>,
) -> Result<(), AnyError> {
    let voters: std::collections::BTreeSet<u64> = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members);
    let mut batch = WriteBatch::default();
    initial_split_state(
        &mut batch,
        engine,
        desc,
        &StoredMembership::new(None, membership),
    )?;
    engine.write_with_sync(batch, true).map_err(any)
}

/// Deletes every piece of `range`'s Raft state (log, vote, applied state)
/// in `batch`; its data keys belong to whichever range covers them now.
pub fn delete_range_state(
    batch: &mut WriteBatch,
    engine: &Engine,
    range: RangeId,
) -> Result<(), AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    let start = range.0.to_be_bytes().to_vec();
    let end = match range.0.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xFF; 9],
    };
    batch.delete_range_cf(cf, start, end);
    Ok(())
}

/// Key marking a range id as merged away for good: no replica of it is
/// created or filled again on this node. Outside the `range id | tag`
/// keys, so deleting a range's state keeps it.
pub(super) fn tombstone_key(range: RangeId) -> Vec<u8> {
    let mut k = vec![0xFF, b'T'];
    k.extend_from_slice(&range.0.to_be_bytes());
    k
}

/// Whether `range` was merged away on this node.
pub fn is_tombstoned(engine: &Engine, range: RangeId) -> Result<bool, AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    Ok(engine
        .db()
        .get_cf(cf, tombstone_key(range))
        .map_err(any)?
        .is_some())
}

/// Ids of every range with Raft state on the engine.
pub fn local_ranges(engine: &Engine) -> Result<Vec<SmState>, AnyError> {
    let cf = engine.cf(CF_RAFT).map_err(any)?;
    let mut it = engine.db().raw_iterator_cf(cf);
    it.seek_to_first();
    let mut out = Vec::new();
    while let Some((k, v)) = it.item() {
        if k.len() == 9 && k[8] == TAG_SM {
            out.push(decode(v).map_err(any)?);
        }
        it.next();
    }
    it.status().map_err(any)?;
    Ok(out)
}
