//! [`RangeCache`]: a node's cache of range locations.

use std::collections::BTreeMap;
use std::sync::Arc;

use holo_storage::RangeId;
use parking_lot::RwLock;

use crate::Result;
use crate::service::{RangeDirectory, RangeLocation};

/// Cached range locations keyed by start key, filled from a
/// [`RangeDirectory`] on a miss and invalidated on a stale-route answer.
pub struct RangeCache {
    directory: Arc<dyn RangeDirectory>,
    entries: RwLock<BTreeMap<Vec<u8>, RangeLocation>>,
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
        }
    }

    fn cached(&self, key: &[u8]) -> Option<RangeLocation> {
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
        if let Some(loc) = self.cached(key) {
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
        entries.insert(loc.desc.start_key.clone(), loc);
    }

    /// Forgets the cached location of `range_id`.
    pub fn invalidate(&self, range_id: RangeId) {
        self.entries
            .write()
            .retain(|_, loc| loc.desc.id != range_id);
    }
}
