//! Sequences: each node takes blocks of values from a sequence's stored
//! state (one small transaction per block, outside the caller's
//! transaction, as PostgreSQL's `nextval` is) and hands them out from
//! memory, so values are never handed out twice and `nextval` is not a
//! consensus round trip per call. Values a node had not handed out when it
//! stopped are skipped (gaps, as after a PostgreSQL crash).

use std::collections::HashMap;
use std::sync::Arc;

use holo_kv::{KvClient, Transaction, TxnOptions};
use parking_lot::Mutex;

use crate::catalog::descriptor::SequenceDescriptor;
use crate::catalog::keys::sequence_value_key;
use crate::error::{SqlError, SqlResult, sqlstate};

pub mod options;
pub mod udfs;

/// Values a node takes at once at least (a sequence's CACHE, when larger,
/// wins).
pub const NODE_BLOCK: i64 = 32;

/// 2200H: the sequence reached its bound without CYCLE.
pub const SEQUENCE_GENERATOR_LIMIT_EXCEEDED: &str = "2200H";

/// What is stored per sequence: the last value handed out to a node's
/// block and whether one was (PostgreSQL's `last_value`, `is_called`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredState {
    /// The last value taken (or, unless `called`, the next one to take).
    pub last: i64,
    /// Whether `last` was taken.
    pub called: bool,
}

impl StoredState {
    fn decode(bytes: &[u8]) -> SqlResult<StoredState> {
        match bytes {
            [v @ .., called] if v.len() == 8 => Ok(StoredState {
                last: i64::from_be_bytes(v.try_into().unwrap_or([0; 8])),
                called: *called != 0,
            }),
            _ => Err(SqlError::internal("corrupt sequence state")),
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut v = self.last.to_be_bytes().to_vec();
        v.push(u8::from(self.called));
        v
    }
}

/// The values a node holds of one sequence: `next`, then `left - 1` more
/// steps of the increment.
#[derive(Debug, Clone, Copy)]
struct Block {
    next: i64,
    left: i64,
}

/// The node's sequence blocks.
pub struct Sequences {
    kv: Arc<KvClient>,
    txn_options: TxnOptions,
    blocks: Mutex<HashMap<u32, Block>>,
}

impl std::fmt::Debug for Sequences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequences").finish()
    }
}

/// The `n`-th value (from 0) after `first` stepping by `increment`, or
/// `None` past `[min, max]`.
fn step(first: i64, increment: i64, n: i64, min: i64, max: i64) -> Option<i64> {
    let v = first.checked_add(increment.checked_mul(n)?)?;
    (min..=max).contains(&v).then_some(v)
}

/// From `state`, a block of at most `want` values of `seq` and the state
/// after it; 2200H at the bound without CYCLE.
fn take_block(
    seq: &SequenceDescriptor,
    state: StoredState,
    want: i64,
) -> SqlResult<(Block, StoredState)> {
    let first = if state.called {
        match step(state.last, seq.increment, 1, seq.min, seq.max) {
            Some(v) => v,
            None if seq.cycle => {
                if seq.increment > 0 {
                    seq.min
                } else {
                    seq.max
                }
            }
            None => {
                let (bound, which) = if seq.increment > 0 {
                    (seq.max, "maximum")
                } else {
                    (seq.min, "minimum")
                };
                return Err(SqlError::new(
                    SEQUENCE_GENERATOR_LIMIT_EXCEEDED,
                    format!(
                        "nextval: reached {which} value of sequence \"{}\" ({bound})",
                        seq.name
                    ),
                ));
            }
        }
    } else {
        state.last
    };
    // As many as fit before the bound (the first always does).
    let room = if seq.increment > 0 {
        (i128::from(seq.max) - i128::from(first)) / i128::from(seq.increment)
    } else {
        (i128::from(first) - i128::from(seq.min)) / -i128::from(seq.increment)
    };
    let count = i128::from(want.max(1)).min(room + 1) as i64;
    let last = step(first, seq.increment, count - 1, seq.min, seq.max).unwrap_or(first);
    Ok((
        Block {
            next: first,
            left: count,
        },
        StoredState { last, called: true },
    ))
}

impl Sequences {
    /// The blocks of a node whose transactions go through `kv`.
    pub fn new(kv: Arc<KvClient>, txn_options: TxnOptions) -> Arc<Sequences> {
        Arc::new(Sequences {
            kv,
            txn_options,
            blocks: Mutex::new(HashMap::new()),
        })
    }

    /// The next value of `seq` from this node's block, when it has one.
    pub fn next_cached(&self, seq: &SequenceDescriptor) -> Option<i64> {
        let mut blocks = self.blocks.lock();
        let block = blocks.get_mut(&seq.id)?;
        if block.left <= 0 {
            return None;
        }
        let v = block.next;
        block.left -= 1;
        block.next = block.next.wrapping_add(seq.increment);
        Some(v)
    }

    /// The next value of `seq`: from the node's block, or from a new block
    /// taken in a transaction of its own (retried on conflicts).
    pub async fn next(&self, seq: &SequenceDescriptor) -> SqlResult<i64> {
        if let Some(v) = self.next_cached(seq) {
            return Ok(v);
        }
        let want = seq.cache.max(NODE_BLOCK);
        let block = self
            .update(seq, |state| {
                let (block, after) = take_block(seq, state, want)?;
                Ok((after, block))
            })
            .await?;
        let v = block.next;
        self.blocks.lock().insert(
            seq.id,
            Block {
                next: v.wrapping_add(seq.increment),
                left: block.left - 1,
            },
        );
        Ok(v)
    }

    /// `setval`: the stored state becomes `(value, called)`; this node's
    /// block is dropped (other nodes finish theirs, as other sessions'
    /// cached values in PostgreSQL).
    pub async fn set(&self, seq: &SequenceDescriptor, value: i64, called: bool) -> SqlResult<()> {
        if !(seq.min..=seq.max).contains(&value) {
            return Err(SqlError::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    seq.name, seq.min, seq.max
                ),
            ));
        }
        self.update(seq, |_| {
            Ok((
                StoredState {
                    last: value,
                    called,
                },
                (),
            ))
        })
        .await?;
        self.forget(seq.id);
        Ok(())
    }

    /// Drops this node's block of sequence `id` (dropped or altered).
    pub fn forget(&self, id: u32) {
        self.blocks.lock().remove(&id);
    }

    /// Reads the stored state of `seq`, writes `f`'s new state, commits;
    /// conflicting takers retry.
    async fn update<T>(
        &self,
        seq: &SequenceDescriptor,
        f: impl Fn(StoredState) -> SqlResult<(StoredState, T)>,
    ) -> SqlResult<T> {
        let key = sequence_value_key(seq.id);
        let mut attempt = 0u32;
        loop {
            let txn = Transaction::begin(self.kv.clone(), self.txn_options.clone()).await?;
            let state = match txn.get(&key).await? {
                Some(b) => StoredState::decode(&b)?,
                None => StoredState {
                    last: seq.start,
                    called: false,
                },
            };
            let (after, out) = f(state)?;
            txn.put(key.clone(), after.encode())?;
            match txn.commit().await {
                Ok(_) => return Ok(out),
                Err(e) => {
                    let e = SqlError::from(e);
                    if e.code != sqlstate::SERIALIZATION_FAILURE || attempt >= 50 {
                        return Err(e);
                    }
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(
                        u64::from(attempt.min(10)) * 5,
                    ))
                    .await;
                }
            }
        }
    }
}

/// Writes the first state of a new sequence (`start`, not yet called) in
/// `txn`, the transaction creating it.
pub fn initial_state(txn: &Transaction, seq: &SequenceDescriptor) -> SqlResult<()> {
    txn.put(
        sequence_value_key(seq.id),
        StoredState {
            last: seq.start,
            called: false,
        }
        .encode(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SqlType;

    fn seq(increment: i64, min: i64, max: i64, cycle: bool) -> SequenceDescriptor {
        SequenceDescriptor {
            format: 1,
            id: 7,
            name: "s".into(),
            parent_id: 2,
            ty: SqlType::BigInt,
            start: if increment > 0 { min } else { max },
            increment,
            min,
            max,
            cache: 1,
            cycle,
            owned_by: None,
        }
    }

    #[test]
    fn blocks_stop_at_the_bound_and_cycle_or_fail() {
        let s = seq(2, 1, 10, false);
        let fresh = StoredState {
            last: 1,
            called: false,
        };
        let (b, after) = take_block(&s, fresh, 32).unwrap();
        assert_eq!((b.next, b.left), (1, 5));
        assert_eq!(
            after,
            StoredState {
                last: 9,
                called: true
            }
        );
        let err = take_block(&s, after, 32).unwrap_err();
        assert_eq!(err.code, SEQUENCE_GENERATOR_LIMIT_EXCEEDED);
        let c = seq(2, 1, 10, true);
        let (b, _) = take_block(&c, after, 3).unwrap();
        assert_eq!((b.next, b.left), (1, 3));
        let down = seq(-1, -5, -1, false);
        let (b, after) = take_block(
            &down,
            StoredState {
                last: -1,
                called: false,
            },
            2,
        )
        .unwrap();
        assert_eq!((b.next, b.left, after.last), (-1, 2, -2));
    }

    #[test]
    fn states_round_trip() {
        let s = StoredState {
            last: -42,
            called: true,
        };
        assert_eq!(StoredState::decode(&s.encode()).unwrap(), s);
        assert!(StoredState::decode(&[1, 2]).is_err());
    }
}
