//! Waiting for the log to reach a point: per-milestone waiter lists and the flusher's wake-up.
//!
//! Waiters are oneshot channels: dropping the waiting future drops the receiver, and the list
//! forgets cancelled senders on its next pass, so a cancelled long poll leaves nothing behind.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::path::PathBuf;
use std::task::{Poll, Waker};

use futures::channel::oneshot;

use crate::error::StorageError;

/// A failure of the flusher, kept so that every later waiter gets an error naming it.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    op: &'static str,
    path: PathBuf,
    kind: std::io::ErrorKind,
    message: String,
}

impl Failure {
    pub fn of(error: &StorageError) -> Failure {
        let (op, path, kind) = match error {
            StorageError::Io { op, path, source } => (*op, path.clone(), source.kind()),
            StorageError::Glommio { op, path, .. } => {
                (*op, path.clone(), std::io::ErrorKind::Other)
            }
            StorageError::Corrupt { path, .. } => {
                ("write", path.clone(), std::io::ErrorKind::InvalidData)
            }
            StorageError::Closed => ("write", PathBuf::new(), std::io::ErrorKind::Other),
        };
        Failure {
            op,
            path,
            kind,
            message: error.to_string(),
        }
    }

    pub fn to_error(&self) -> StorageError {
        StorageError::Io {
            op: self.op,
            path: self.path.clone(),
            source: std::io::Error::new(
                self.kind,
                format!("the log failed earlier: {}", self.message),
            ),
        }
    }
}

type Outcome = Result<(), StorageError>;

/// Waiters for a point (an offset) in one milestone.
#[derive(Default)]
pub(crate) struct Waiters {
    waiting: Vec<(i64, oneshot::Sender<Outcome>)>,
}

impl Waiters {
    /// Registers a waiter for `target`; the receiver resolves when `wake_up_to` passes it.
    pub fn add(&mut self, target: i64) -> oneshot::Receiver<Outcome> {
        self.waiting.retain(|(_, tx)| !tx.is_canceled());
        let (tx, rx) = oneshot::channel();
        self.waiting.push((target, tx));
        rx
    }

    /// Resolves every waiter whose target is at or below `reached`.
    pub fn wake_up_to(&mut self, reached: i64) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].0 <= reached || self.waiting[i].1.is_canceled() {
                let (_, tx) = self.waiting.swap_remove(i);
                let _ = tx.send(Ok(()));
            } else {
                i += 1;
            }
        }
    }

    /// Fails every waiter.
    pub fn fail_all(&mut self, failure: &Failure) {
        for (_, tx) in self.waiting.drain(..) {
            let _ = tx.send(Err(failure.to_error()));
        }
    }

    /// Ends every wait with [`StorageError::Closed`].
    pub fn close_all(&mut self) {
        for (_, tx) in self.waiting.drain(..) {
            let _ = tx.send(Err(StorageError::Closed));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Awaits a registered waiter; a dropped sender (the log went away) reads as closed.
pub(crate) async fn settle(rx: oneshot::Receiver<Outcome>) -> Outcome {
    rx.await.unwrap_or(Err(StorageError::Closed))
}

/// A latch that wakes one task (the flusher). Raising it twice before the task runs wakes it once.
#[derive(Default)]
pub(crate) struct Signal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn waiters_resolve_in_reach_and_forget_cancelled_ones() {
        let mut waiters = Waiters::default();
        let mut early = waiters.add(5);
        let mut late = waiters.add(10);
        drop(waiters.add(7));
        waiters.wake_up_to(6);
        assert!(matches!(early.try_recv(), Ok(Some(Ok(())))));
        assert!(matches!(late.try_recv(), Ok(None)));
        assert_eq!(waiters.waiting.len(), 1, "the cancelled waiter is gone");
        let failure = Failure::of(&StorageError::Closed);
        waiters.fail_all(&failure);
        assert!(matches!(
            late.try_recv(),
            Ok(Some(Err(StorageError::Io { .. })))
        ));
        assert!(waiters.is_empty());
    }

    #[test]
    fn a_raised_signal_is_seen_once() {
        let signal = Signal::default();
        signal.raise();
        signal.raise();
        futures::executor::block_on(signal.wait());
        let waiting = signal.wait();
        futures::pin_mut!(waiting);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        signal.raise();
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
    }
}
