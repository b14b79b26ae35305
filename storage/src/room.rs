//! The line for room in a shard's write buffer.
//!
//! A shard holds at most `write_buffer_bytes` of appended batches that are not on the device yet.
//! An append that finds the buffer full waits here, and appends behind it wait too, even for
//! other partitions and even when a little room came free meanwhile: first come, first appended.
//! Refusing instead (a retriable error) made clients resend those batches after the ones that
//! fitted, so a partition's records ended up out of the order they were sent in.
//!
//! Only the front of the line is woken, each time the flusher frees room; it appends (or, when
//! the room is still too small, waits again at the front) and then wakes the next. Entry into the
//! line happens in the same poll as the append would have, so a connection's batches keep the
//! order in which they reached the shard.

use std::collections::VecDeque;

use futures::channel::oneshot;

/// One waiting append: its ticket, and the sender that wakes it (taken when woken).
struct Waiter {
    ticket: u64,
    wake: Option<oneshot::Sender<()>>,
}

/// The appends waiting for room on one shard, oldest first.
#[derive(Default)]
pub(crate) struct RoomLine {
    waiting: VecDeque<Waiter>,
    next_ticket: u64,
}

impl RoomLine {
    /// Whether an append holding `ticket` (`None`: not in line) may try to append now.
    pub fn may_try(&self, ticket: Option<u64>) -> bool {
        match (self.waiting.front(), ticket) {
            (None, _) => true,
            (Some(front), Some(ticket)) => front.ticket == ticket,
            (Some(_), None) => false,
        }
    }

    /// Joins the line (or, already in it, re-arms the wake-up); returns the ticket.
    pub fn wait(&mut self, ticket: Option<u64>, wake: oneshot::Sender<()>) -> u64 {
        if let Some(ticket) = ticket {
            let waiter = self
                .waiting
                .iter_mut()
                .find(|w| w.ticket == ticket)
                .expect("a ticket in hand is in the line");
            waiter.wake = Some(wake);
            return ticket;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.push_back(Waiter {
            ticket,
            wake: Some(wake),
        });
        ticket
    }

    /// Leaves the line (appended, refused, or gave up waiting); wakes the new front.
    pub fn leave(&mut self, ticket: u64) {
        let at = self
            .waiting
            .iter()
            .position(|w| w.ticket == ticket)
            .expect("a ticket in hand is in the line");
        self.waiting.remove(at);
        if at == 0 {
            self.wake_front();
        }
    }

    /// Room came free: the front tries again.
    pub fn wake_front(&mut self) {
        if let Some(wake) = self.waiting.front_mut().and_then(|w| w.wake.take()) {
            // A front that gave up meanwhile has dropped its receiver; it leaves on its own.
            let _ = wake.send(());
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_line_when_the_front_leaves_should_wake_only_the_next_in_order() {
        let mut line = RoomLine::default();
        assert!(line.may_try(None));
        let (tx_a, mut rx_a) = oneshot::channel();
        let (tx_b, mut rx_b) = oneshot::channel();
        let a = line.wait(None, tx_a);
        let b = line.wait(None, tx_b);
        assert!(!line.may_try(None), "a newcomer waits behind the line");
        assert!(line.may_try(Some(a)) && !line.may_try(Some(b)));
        line.wake_front();
        assert_eq!(rx_a.try_recv(), Ok(Some(())));
        assert_eq!(rx_b.try_recv(), Ok(None), "only the front is woken");
        line.leave(a);
        assert_eq!(
            rx_b.try_recv(),
            Ok(Some(())),
            "leaving the front wakes the next"
        );
        assert!(line.may_try(Some(b)));
        line.leave(b);
        assert_eq!(line.len(), 0);
        assert!(line.may_try(None));
    }

    #[test]
    fn given_a_waiter_behind_the_front_when_it_gives_up_should_not_wake_anyone() {
        let mut line = RoomLine::default();
        let (tx_a, mut rx_a) = oneshot::channel();
        let (tx_b, _rx_b) = oneshot::channel();
        let a = line.wait(None, tx_a);
        let b = line.wait(None, tx_b);
        line.leave(b);
        assert_eq!(rx_a.try_recv(), Ok(None));
        assert!(line.may_try(Some(a)));
    }
}
