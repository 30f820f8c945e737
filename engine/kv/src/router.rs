//! [`RangeCache`]: a node's cache of range locations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use holo_storage::RangeId;
use parking_lot::RwLock;

use crate::service::{RangeDirectory, RangeLocation};
use crate::{KvError, Result};

/// Cached range locations keyed by start key, filled from a
/// [`RangeDirectory`] on a miss and invalidated on a stale-route answer.
pub struct RangeCache {
    directory: Arc<dyn RangeDirectory>,
    entries: RwLock<BTreeMap<Vec<u8>, RangeLocation>>,
    /// Replicas of a cached range that answered "no such range" in a row:
    /// once every replica did, the range is gone (merged) and the entry is
    /// dropped.
    not_found: RwLock<HashMap<RangeId, usize>>,
}

impl std::fmt::Debug for RangeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeCache")
            .field("entries", &self.entries.read().len())
            .finish()
    }
}

impl RangeCache {
    /// An empty cache over `directory`.
    pub fn new(directory: Arc<dyn RangeDirectory>) -> RangeCache {
        RangeCache {
            directory,
            entries: RwLock::new(BTreeMap::new()),
            not_found: RwLock::new(HashMap::new()),
        }
    }

    /// The cached location of the range holding `key`, without a lookup.
    pub fn peek(&self, key: &[u8]) -> Option<RangeLocation> {
        let entries = self.entries.read();
        entries
            .range(..=key.to_vec())
            .next_back()
            .map(|(_, loc)| loc)
            .filter(|loc| loc.desc.contains(key))
            .cloned()
    }

    /// The location of the range holding `key`.
    pub async fn locate(&self, key: &[u8]) -> Result<RangeLocation> {
        if let Some(loc) = self.peek(key) {
            return Ok(loc);
        }
        let loc = self.directory.lookup(key).await?;
        self.insert(loc.clone());
        Ok(loc)
    }

    /// Every range overlapping `[start, end)`, fresh from the directory.
    pub async fn ranges(&self, start: &[u8], end: &[u8]) -> Result<Vec<RangeLocation>> {
        let locs = self.directory.ranges(start, end).await?;
        for loc in &locs {
            self.insert(loc.clone());
        }
        Ok(locs)
    }

    fn insert(&self, loc: RangeLocation) {
        let mut entries = self.entries.write();
        // Drop cached entries that overlap the new one: they are stale.
        let stale: Vec<Vec<u8>> = entries
            .iter()
            .filter(|(_, e)| {
                let d = &e.desc;
                loc.desc.clamp(&d.start_key, &d.end_key).is_some()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            entries.remove(&k);
        }
        self.not_found.write().remove(&loc.desc.id);
        entries.insert(loc.desc.start_key.clone(), loc);
    }

    /// Learns from a stale-route answer about `range_id`: follows a named
    /// leader, moves on to the next replica when the node did not serve
    /// (unreachable, no replica, no known leader), and forgets the entry
    /// when the range's span changed or no replica has it any more.
    pub fn on_stale(&self, range_id: RangeId, error: &KvError) {
        let mut entries = self.entries.write();
        let Some(loc) = entries.values_mut().find(|l| l.desc.id == range_id) else {
            return;
        };
        let gone = matches!(error, KvError::RangeNotFound { .. }) && {
            let mut misses = self.not_found.write();
            let n = misses.entry(range_id).or_insert(0);
            *n += 1;
            *n >= loc.desc.replicas.len().max(1)
        };
        let next = match error {
            _ if gone => None,
            KvError::NotLeader {
                leader: Some(l), ..
            } => Some(*l),
            KvError::NotLeader { leader: None, .. }
            | KvError::NodeUnreachable { .. }
            | KvError::RangeNotFound { .. } => {
                let ids: Vec<u64> = loc.desc.replicas.iter().map(|r| r.node_id).collect();
                let pos = ids.iter().position(|id| *id == loc.leaseholder);
                match pos {
                    Some(p) if ids.len() > 1 => Some(ids[(p + 1) % ids.len()]),
                    None if !ids.is_empty() => Some(ids[0]),
                    _ => None,
                }
            }
            _ => None,
        };
        match next {
            Some(leaseholder) => {
                loc.leaseholder = leaseholder;
                drop(entries);
                self.directory.observe(range_id, leaseholder);
            }
            None => {
                entries.retain(|_, loc| loc.desc.id != range_id);
                self.not_found.write().remove(&range_id);
            }
        }
    }

    /// Forgets the cached location of `range_id`.
    pub fn invalidate(&self, range_id: RangeId) {
        self.entries
            .write()
            .retain(|_, loc| loc.desc.id != range_id);
    }
}
