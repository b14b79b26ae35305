//! `odradek-net`: the Kafka wire protocol and the per-connection loop.
//!
//! Everything here is transport and framing; what a request *means* lives in the broker's
//! handlers. Every function that reads bytes from the network returns an error on any input it
//! cannot use, and never panics: a hostile peer can only get its own connection closed.
//!
//! Layout:
//! - [`error`]: [`NetError`], the operating errors of this crate, with context.
//! - [`frame`]: length-prefixed frames (`i32` big-endian length, then the payload), bounded.
//! - [`header`]: the request header (API key, version, correlation id, client id).
//! - [`codec`]: request bodies and length-prefixed responses, via the `kafka-protocol` crate.
//! - [`segmented`]: responses whose record batches are passed on by reference, not copied.
//! - [`client`]: the client side of the codec: encode requests, decode responses, blocking reads.
//! - [`legacy_apis`]: the versions Kafka 3.9 serves below the codec's oldest (Produce v0–2,
//!   Fetch v0–3, CreateTopics v0–1, DeleteTopics v0, DescribeConfigs v0, ListOffsets v0,
//!   OffsetCommit v0–1, OffsetFetch v0), decoded into the codec's request structs and answered
//!   from its response structs by hand.
//! - [`message_set`]: the legacy message formats (magic 0 and 1) that Produce v0–2 and Fetch
//!   v0–3 carry, and their conversion to and from record batches (magic 2).
//! - [`conn`]: the connection loop: pipelined requests, bounded in flight, in-order responses,
//!   the service's session per connection, and requests that must finish before the next.
//! - [`shutdown`]: a broadcast "stop now" signal for accept and connection loops.
//! - [`guard_alloc`]: the global allocator that keeps a lying length prefix from aborting the
//!   process (the codec reserves what a peer declares before reading it).

pub mod client;
pub mod codec;
pub mod conn;
pub mod error;
pub mod frame;
pub mod guard_alloc;
pub mod header;
pub mod legacy_apis;
pub mod message_set;
pub mod segmented;
pub mod shutdown;

pub use codec::{
    decode_body, encode_response, encode_response_sharing, encode_response_with_header_version,
};
pub use conn::{serve_connection, write_pieces, ConnLimits, Peer, Request, Service};
pub use error::NetError;
pub use frame::FrameReader;
pub use header::decode_request_header;
pub use shutdown::Shutdown;

// Unit tests feed hostile bytes to the codec, so they run under the broker's allocator too,
// counted (`guard_alloc::counting`).
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: guard_alloc::counting::CountingAlloc = guard_alloc::counting::CountingAlloc;
