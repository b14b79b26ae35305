//! Operating errors of the wire layer. Each one closes the connection it happened on, and only
//! that one; each carries enough context for one useful log line.

use std::io;

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{op}: {source}")]
    Io { op: &'static str, source: io::Error },
    #[error("frame length {len} is negative")]
    NegativeFrameLength { len: i32 },
    #[error(
        "frame length {len} exceeds the limit of {max_bytes} bytes (socket.request.max.bytes)"
    )]
    FrameTooLarge { len: i32, max_bytes: usize },
    #[error("connection closed in the middle of a frame ({read} of {expected} bytes read)")]
    TruncatedFrame { read: usize, expected: usize },
    #[error("request header too short: {len} bytes")]
    HeaderTooShort { len: usize },
    #[error("unknown API key {api_key}")]
    UnknownApiKey { api_key: i16 },
    #[error("unsupported version {version} of API key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("cannot decode the {what} of API key {api_key} v{version}: {reason}")]
    Decode {
        what: &'static str,
        api_key: i16,
        version: i16,
        reason: String,
    },
    #[error("cannot encode the response of API key {api_key} v{version}: {reason}")]
    Encode {
        api_key: i16,
        version: i16,
        reason: String,
    },
    #[error("response of {len} bytes does not fit a frame")]
    ResponseTooLarge { len: usize },
}

/// A codec error as one log-friendly line (the codec's messages may end in a newline).
pub(crate) fn one_line(error: impl std::fmt::Display) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
