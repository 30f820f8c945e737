//! [`Interrupt`]: one statement's cancel flag and deadline, checked by the
//! parser, the planner's rules and the planner pool, so a cancel request
//! or `statement_timeout` also stops a statement that is still being
//! parsed or planned.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{SqlError, SqlResult, sqlstate};

/// One statement's interruption state.
#[derive(Debug)]
pub struct Interrupt {
    cancelled: AtomicBool,
    deadline: Option<Instant>,
}

impl Interrupt {
    /// An interrupt for a statement starting now, with an optional
    /// `statement_timeout`.
    pub fn new(timeout: Option<Duration>) -> Arc<Interrupt> {
        Arc::new(Interrupt {
            cancelled: AtomicBool::new(false),
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        })
    }

    /// An interrupt that never fires on its own.
    pub fn none() -> Arc<Interrupt> {
        Interrupt::new(None)
    }

    /// Cancels the statement (a cancel request, or its caller went away).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// The deadline, when the statement has a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// 57014 once the statement is cancelled or past its deadline.
    pub fn check(&self) -> SqlResult<()> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(canceled());
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timed_out());
        }
        Ok(())
    }
}

/// The error of a cancelled statement.
pub fn canceled() -> SqlError {
    SqlError::new(
        sqlstate::QUERY_CANCELED,
        "canceling statement due to user request",
    )
}

/// The error of a statement past its `statement_timeout`.
pub fn timed_out() -> SqlError {
    SqlError::new(
        sqlstate::QUERY_CANCELED,
        "canceling statement due to statement timeout",
    )
}

/// Cancels an interrupt when dropped before [`CancelOnDrop::disarm`]: a
/// statement's future dropped by a timeout, a cancel request or a closed
/// connection stops the work it handed to other threads.
#[derive(Debug)]
pub struct CancelOnDrop(Option<Arc<Interrupt>>);

impl CancelOnDrop {
    /// Guards `interrupt`.
    pub fn new(interrupt: &Arc<Interrupt>) -> CancelOnDrop {
        CancelOnDrop(Some(interrupt.clone()))
    }

    /// The work finished: dropping no longer cancels.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(i) = self.0.take() {
            i.cancel();
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Interrupt>>> = const { RefCell::new(None) };
}

/// Runs `f` with `interrupt` as this thread's current interrupt (seen by
/// [`check_current`], e.g. in the planner's rules).
pub fn with_current<T>(interrupt: &Arc<Interrupt>, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<Arc<Interrupt>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CURRENT.with(|c| c.borrow_mut().replace(interrupt.clone()));
    let _reset = Reset(prev);
    f()
}

/// Checks this thread's current interrupt, if any.
pub fn check_current() -> SqlResult<()> {
    CURRENT.with(|c| match c.borrow().as_ref() {
        Some(i) => i.check(),
        None => Ok(()),
    })
}
