//! Applying the merge commands: freezing the right-hand range, absorbing
//! it into the left one, and fencing a failed attempt.

use super::persist::tombstone_key;
use super::*;

impl RangeStateMachine {
    pub(super) fn freeze(&mut self, nonce: u64) -> Result<RangeDescriptor, ApplyError> {
        if nonce == 0 {
            return Err(ApplyError::Invalid("merge nonce 0".into()));
        }
        if self.state.frozen != 0 && self.state.frozen != nonce {
            return Err(ApplyError::Frozen);
        }
        if self.state.desc.start_key.is_empty() {
            return Err(ApplyError::Invalid(
                "the first range cannot be merged away".into(),
            ));
        }
        if !self.settled_voters_only() {
            return Err(ApplyError::Invalid(
                "the range's replicas are changing".into(),
            ));
        }
        self.state.frozen = nonce;
        Ok(self.state.desc.clone())
    }

    /// Applies a merge: checks that `right` is this range's right-hand
    /// neighbour on the same replicas and that the attempt was not fenced,
    /// then widens the descriptor and drops the right range's Raft state
    /// (its data keys stay where they are: they now belong to this range).
    /// Whether the membership is one settled set of voters (no change in
    /// progress, no learners): a merge or freeze needs every replica of the
    /// range to hold the other range's data too.
    pub(super) fn settled_voters_only(&self) -> bool {
        let m = self.state.membership.membership();
        m.get_joint_config().len() == 1 && m.learner_ids().next().is_none()
    }

    pub(super) fn merge(
        &mut self,
        right: &RangeDescriptor,
        nonce: u64,
        left_version: u64,
        batch: &mut WriteBatch,
    ) -> SResult<Result<RangeDescriptor, ApplyError>> {
        let desc = &self.state.desc;
        if self.state.frozen != 0 {
            return Ok(Err(ApplyError::Frozen));
        }
        if desc.epoch.version != left_version {
            return Ok(Err(ApplyError::Invalid(format!(
                "range {} changed since the merge was planned",
                desc.id
            ))));
        }
        if !self.settled_voters_only() {
            return Ok(Err(ApplyError::Invalid(format!(
                "the replicas of range {} are changing",
                desc.id
            ))));
        }
        if self.state.aborted_merges.contains(&nonce) {
            return Ok(Err(ApplyError::Invalid(format!(
                "merge attempt {nonce} was aborted"
            ))));
        }
        if desc.end_key.is_empty() || desc.end_key != right.start_key || right.id == desc.id {
            return Ok(Err(ApplyError::Invalid(format!(
                "range {} is not the right-hand neighbour of range {}",
                right.id, desc.id
            ))));
        }
        let voters = |d: &RangeDescriptor| {
            d.replicas
                .iter()
                .map(|r| r.node_id)
                .collect::<std::collections::BTreeSet<_>>()
        };
        if voters(desc) != voters(right) {
            return Ok(Err(ApplyError::Invalid(format!(
                "ranges {} and {} have different replicas",
                desc.id, right.id
            ))));
        }
        let mut left = desc.clone();
        left.end_key = right.end_key.clone();
        left.epoch.version = desc.epoch.version.max(right.epoch.version) + 1;
        delete_range_state(batch, &self.engine, right.id)
            .map_err(StorageIOError::write_state_machine)?;
        let cf = self
            .engine
            .cf(CF_RAFT)
            .map_err(|e| StorageIOError::write_state_machine(any(e)))?;
        batch.put_cf(cf, tombstone_key(right.id), []);
        self.state.desc = left.clone();
        Ok(Ok(left))
    }

    pub(super) fn merge_abort(
        &mut self,
        nonce: u64,
        right_start: &[u8],
    ) -> Result<bool, ApplyError> {
        let desc = &self.state.desc;
        if desc.end_key.as_slice() == right_start {
            if !self.state.aborted_merges.contains(&nonce) {
                self.state.aborted_merges.push(nonce);
                let excess = self
                    .state
                    .aborted_merges
                    .len()
                    .saturating_sub(ABORTED_MERGES_KEPT);
                self.state.aborted_merges.drain(..excess);
            }
            return Ok(true);
        }
        if desc.contains(right_start) {
            return Ok(false);
        }
        Err(ApplyError::Invalid(format!(
            "range {} does not border {:?}",
            desc.id, right_start
        )))
    }
}
