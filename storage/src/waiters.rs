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
