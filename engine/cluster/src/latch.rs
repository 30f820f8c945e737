//! [`Latches`]: in-memory span latches that serialize conflicting commands on
//! one range's leaseholder.
//!
//! Writers latch the keys they touch; readers latch the span they read.
//! Readers and ordinary writers do not conflict (a reader sees a key before
//! or after an atomic batch, and Percolator locks make pending writes
//! visible). A one-phase commit takes its commit timestamp while holding its
//! latches, so its latches also block readers: a reader with a later
//! timestamp waits until the write is applied instead of missing it. Requests
//! are granted in arrival order among those that conflict.

use std::sync::Arc;

use holo_kv::service::KvWrite;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a latch request protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchKind {
    /// A read of a span.
    Read,
    /// A write of keys; `blocks_reads` for one-phase commits.
    Write {
        /// Whether readers of the same keys must wait.
        blocks_reads: bool,
    },
}

/// A half-open key span `[start, end)`; empty `end` = unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Inclusive start.
    pub start: Vec<u8>,
    /// Exclusive end; empty = unbounded.
    pub end: Vec<u8>,
}

impl Span {
    /// The span of exactly one key.
    pub fn point(key: &[u8]) -> Span {
        let mut end = Vec::with_capacity(key.len() + 1);
        end.extend_from_slice(key);
        end.push(0);
        Span {
            start: key.to_vec(),
            end,
        }
    }

    fn overlaps(&self, other: &Span) -> bool {
        let below_end = |a: &[u8], end: &[u8]| end.is_empty() || a < end;
        below_end(&self.start, &other.end) && below_end(&other.start, &self.end)
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    kind: LatchKind,
    /// Sorted by start.
    spans: Vec<Span>,
}

fn kinds_conflict(a: LatchKind, b: LatchKind) -> bool {
    match (a, b) {
        (LatchKind::Read, LatchKind::Read) => false,
        (LatchKind::Write { .. }, LatchKind::Write { .. }) => true,
        (LatchKind::Read, LatchKind::Write { blocks_reads })
        | (LatchKind::Write { blocks_reads }, LatchKind::Read) => blocks_reads,
    }
}

/// Whether two sorted span lists overlap anywhere (merge walk).
fn spans_overlap(a: &[Span], b: &[Span]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].overlaps(&b[j]) {
            return true;
        }
        // Advance the span that ends first.
        let a_end = &a[i].end;
        let b_end = &b[j].end;
        if !a_end.is_empty() && (b_end.is_empty() || a_end <= b_end) {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

#[derive(Debug, Default)]
struct Table {
    next_seq: u64,
    entries: Vec<Entry>,
}

impl Table {
    fn blocked(&self, seq: u64) -> bool {
        let Some(me) = self.entries.iter().find(|e| e.seq == seq) else {
            return false;
        };
        self.entries
            .iter()
            .take_while(|e| e.seq < seq)
            .any(|e| kinds_conflict(e.kind, me.kind) && spans_overlap(&e.spans, &me.spans))
    }
}

/// The latch table of one range.
#[derive(Debug, Default)]
pub struct Latches {
    table: Mutex<Table>,
    released: Notify,
}

/// A granted latch; released on drop.
#[derive(Debug)]
pub struct LatchGuard {
    latches: Arc<Latches>,
    seq: u64,
}

impl Drop for LatchGuard {
    fn drop(&mut self) {
        {
            let mut t = self.latches.table.lock();
            t.entries.retain(|e| e.seq != self.seq);
        }
        self.latches.released.notify_waiters();
    }
}

impl Latches {
    /// An empty latch table.
    pub fn new() -> Arc<Latches> {
        Arc::new(Latches::default())
    }

    /// Waits until `spans` can be latched as `kind`, then holds them until the
    /// guard drops. Dropping the future while it waits withdraws the request.
    pub async fn acquire(self: &Arc<Self>, mut spans: Vec<Span>, kind: LatchKind) -> LatchGuard {
        spans.sort_by(|a, b| a.start.cmp(&b.start));
        let guard = {
            let mut t = self.table.lock();
            let seq = t.next_seq;
            t.next_seq += 1;
            t.entries.push(Entry { seq, kind, spans });
            LatchGuard {
                latches: self.clone(),
                seq,
            }
        };
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.table.lock().blocked(guard.seq) {
                return guard;
            }
            notified.await;
        }
    }

    /// Number of latches held or waited for.
    pub fn len(&self) -> usize {
        self.table.lock().entries.len()
    }

    /// Whether no latch is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The latches a write takes: its keys; a one-phase commit's also block
/// readers (its commit timestamp is taken inside them).
pub fn write_latch_spans(write: &KvWrite) -> (Vec<Span>, LatchKind) {
    match write {
        KvWrite::Command(cmd) => (
            cmd.keys().iter().map(|k| Span::point(k)).collect(),
            LatchKind::Write {
                blocks_reads: false,
            },
        ),
        KvWrite::OnePc { mutations, .. } => (
            mutations.iter().map(|m| Span::point(&m.key)).collect(),
            LatchKind::Write { blocks_reads: true },
        ),
    }
}

impl Latches {
    /// Acquires the latches of `write` (see [`write_latch_spans`]).
    pub async fn acquire_for(self: &Arc<Self>, write: &KvWrite) -> LatchGuard {
        let (spans, kind) = write_latch_spans(write);
        self.acquire(spans, kind).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn span(a: &str, b: &str) -> Span {
        Span {
            start: a.as_bytes().to_vec(),
            end: b.as_bytes().to_vec(),
        }
    }

    #[test]
    fn overlap_rules() {
        assert!(span("a", "c").overlaps(&span("b", "d")));
        assert!(!span("a", "b").overlaps(&span("b", "c")));
        assert!(span("a", "").overlaps(&span("z", "zz")));
        assert!(Span::point(b"k").overlaps(&span("a", "z")));
        assert!(!Span::point(b"k").overlaps(&Span::point(b"k\0")));
        assert!(spans_overlap(
            &[span("a", "b"), span("m", "n")],
            &[span("c", "d"), span("m", "m\0")]
        ));
        assert!(!spans_overlap(
            &[span("a", "b"), span("x", "y")],
            &[span("c", "d")]
        ));
    }

    #[tokio::test]
    async fn writers_exclude_each_other_and_one_pc_blocks_readers() {
        let latches = Latches::new();
        let w = latches
            .acquire(
                vec![Span::point(b"k")],
                LatchKind::Write { blocks_reads: true },
            )
            .await;
        // A reader of an overlapping span must wait.
        let l2 = latches.clone();
        let reader = tokio::spawn(async move {
            let _g = l2.acquire(vec![span("a", "z")], LatchKind::Read).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!reader.is_finished());
        // A reader elsewhere and a plain writer's reader proceed.
        let _r = latches
            .acquire(vec![Span::point(b"x")], LatchKind::Read)
            .await;
        drop(w);
        tokio::time::timeout(Duration::from_secs(1), reader)
            .await
            .unwrap()
            .unwrap();
        let _w2 = latches
            .acquire(
                vec![Span::point(b"k")],
                LatchKind::Write {
                    blocks_reads: false,
                },
            )
            .await;
        let _r2 = tokio::time::timeout(
            Duration::from_secs(1),
            latches.acquire(vec![Span::point(b"k")], LatchKind::Read),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn cancelled_waiter_is_withdrawn() {
        let latches = Latches::new();
        let w = latches
            .acquire(
                vec![Span::point(b"k")],
                LatchKind::Write {
                    blocks_reads: false,
                },
            )
            .await;
        let waiting = tokio::time::timeout(
            Duration::from_millis(20),
            latches.acquire(
                vec![Span::point(b"k")],
                LatchKind::Write {
                    blocks_reads: false,
                },
            ),
        )
        .await;
        assert!(waiting.is_err());
        assert_eq!(latches.len(), 1);
        drop(w);
        assert!(latches.is_empty());
    }
}
