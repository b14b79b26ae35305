//! Message keys and the partition each message goes to.
//!
//! - `none`: no key; messages stick to one partition until its batch is full, then move to the
//!   next (Kafka's sticky partitioner), so batches fill whatever the partition count.
//! - `round-robin`: keys `key-0`, `key-1`, … one per partition, in turn.
//! - `random:N`: a key drawn from N (`key-<k>`), partition `k mod partitions`.

use std::io::Write;

use crate::args::Keys;

/// Chooses each message's key and partition.
pub struct KeyPicker {
    keys: Keys,
    partitions: u32,
    counter: u64,
    random: u64,
    names: Vec<Vec<u8>>,
    /// The key of a `random:N` draw past the named ones, written in place.
    scratch: Vec<u8>,
    /// Without keys: the partition messages go to until its batch is full (Kafka's sticky
    /// partitioner), so that batches fill up whatever the partition count.
    sticky: u32,
}

impl KeyPicker {
    pub fn new(keys: Keys, partitions: u32, producer: u32) -> KeyPicker {
        let distinct = match keys {
            Keys::None => 0,
            Keys::RoundRobin => partitions,
            Keys::Random(n) => n.min(1 << 16),
        };
        KeyPicker {
            keys,
            partitions,
            counter: u64::from(producer),
            random: 0x9E37_79B9_7F4A_7C15
                ^ (u64::from(producer) + 1).wrapping_mul(0xA24B_AED4_963E_E407),
            names: (0..distinct)
                .map(|i| format!("key-{i}").into_bytes())
                .collect(),
            scratch: Vec::new(),
            sticky: producer % partitions,
        }
    }

    /// The sticky partition's batch is full (or was sent): move on to the next partition.
    pub fn batch_full(&mut self) {
        self.sticky = (self.sticky + 1) % self.partitions;
    }

    /// The next message's key (borrowed: the message copies it into its batch) and partition.
    pub fn next(&mut self) -> (Option<&[u8]>, u32) {
        self.counter = self.counter.wrapping_add(1);
        match self.keys {
            Keys::None => (None, self.sticky),
            Keys::RoundRobin => {
                let k = (self.counter % u64::from(self.partitions)) as usize;
                (Some(&self.names[k]), k as u32)
            }
            Keys::Random(n) => {
                // xorshift64: cheap, and good enough to spread keys.
                self.random ^= self.random << 13;
                self.random ^= self.random >> 7;
                self.random ^= self.random << 17;
                let k = self.random % u64::from(n);
                let partition = (k % u64::from(self.partitions)) as u32;
                if let Some(name) = self.names.get(k as usize) {
                    return (Some(name), partition);
                }
                self.scratch.clear();
                write!(self.scratch, "key-{k}").expect("writing to a Vec cannot fail");
                (Some(&self.scratch), partition)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_without_keys_round_robin_and_random_with_keys() {
        let mut none = KeyPicker::new(Keys::None, 3, 0);
        assert_eq!(none.next(), (None, 0));
        assert_eq!(none.next(), (None, 0));
        none.batch_full();
        assert_eq!(none.next(), (None, 1));
        let mut rr = KeyPicker::new(Keys::RoundRobin, 3, 0);
        let parts: Vec<u32> = (0..6).map(|_| rr.next().1).collect();
        assert_eq!(parts, [1, 2, 0, 1, 2, 0]);
        for n in [10, 1 << 20] {
            check_random_keys(n);
        }
    }

    /// Keys of `random:n` are `key-<k>` with k < n, on partition k mod 4, whether named up
    /// front or written in place.
    fn check_random_keys(n: u32) {
        let mut random = KeyPicker::new(Keys::Random(n), 4, 1);
        for _ in 0..1000 {
            let (key, partition) = random.next();
            let key = key.expect("a key");
            let k: u32 = std::str::from_utf8(&key[4..])
                .expect("utf-8")
                .parse()
                .expect("number");
            assert!(k < n);
            assert_eq!(partition, k % 4);
        }
    }
}
