//! A broadcast "stop" signal for the loops of one shard: accept loops stop accepting, connection
//! loops stop reading new requests and finish the ones in flight.

use std::rc::Rc;

use glommio::sync::Semaphore;

/// Cloneable handle; [`Shutdown::trigger`] wakes every [`Shutdown::wait`]er, now and later.
#[derive(Clone)]
pub struct Shutdown {
    // A semaphore with no permits: `acquire` waits until `close`, which wakes every waiter.
    gate: Rc<Semaphore>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            gate: Rc::new(Semaphore::new(0)),
        }
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        self.gate.close();
    }

    pub fn is_triggered(&self) -> bool {
        // A closed semaphore refuses every acquire with an error.
        self.gate.try_acquire(1).is_err()
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub async fn wait(&self) {
        // Permits are never signalled, so this only returns once the semaphore is closed.
        let _closed = self.gate.acquire(1).await;
    }
}
