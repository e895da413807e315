//! How the load clients name a failed request, so baton-load and baton-mixed report the same
//! kinds the same way.

use std::io;

/// Failure kinds, in report order.
pub const KINDS: [&str; 7] = [
    "reset",
    "closed",
    "timeout",
    "non2xx",
    "wrong_body",
    "bad_response",
    "connect",
];

/// The kind of an I/O error met while sending a request or reading its response.
pub fn kind_of(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => "reset",
        io::ErrorKind::UnexpectedEof => "closed",
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout",
        _ => "bad_response",
    }
}

/// Position of `kind` in `KINDS`.
pub fn index(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).expect("known kind")
}
