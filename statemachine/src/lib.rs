//! The hot-restart state machine of baton, with no I/O (sans-I/O, in the style of quinn-proto).
//!
//! Why pure: every handover decision (who accepts on a listener, when to roll back, when to
//! exit) lives here, where it can be tested exhaustively and driven by random event sequences,
//! while the driver (`src/hot_restart/driver.rs` in the `baton` crate) only moves bytes, fds
//! and timers.
//!
//! One [`Machine`] is one process. It starts in [`State::Init`] (the child role: looking for a
//! parent), and once it has taken over (or found no parent) it is in [`State::Serving`], the
//! parent role, where it can hand over to the next generation. The same value lives through
//! both roles, so the epoch, the listener table and the link to a still-draining parent carry
//! over without a second type.
//!
//! Time is a [`Millis`]: milliseconds since an arbitrary monotonic origin chosen by the driver
//! (e.g. an `Instant` taken at start-up). It is passed into every [`Machine::handle`] call;
//! the machine never reads a clock. Time going backwards is tolerated (deadlines just do not
//! fire yet).
//!
//! Driving loop: call [`Machine::handle`] with each [`Event`]; execute the returned
//! [`Action`]s in order; set one timer for the last [`Action::ArmTimer`] (or
//! [`Machine::next_deadline`]) and deliver [`Event::Tick`] when it fires. Every state change
//! is reported as [`Action::Transition`] first in the list; the driver logs it at info with
//! pid, epoch ([`Machine::epoch`]) and the new state.

mod child;
pub mod codec;
mod event;
mod machine;
mod message;
mod parent;

pub use codec::{decode, encode, CodecError, HEADER_LEN, MAX_FRAME_LEN};
pub use event::{Action, Error, Event, State};
pub use machine::Machine;
pub use message::{
    FdBatch, Message, MovedConn, MovedTunnel, StatsSnapshot, MAX_FDS_PER_BATCH, PROTOCOL_VERSION,
};

/// Milliseconds since an arbitrary monotonic origin chosen by the driver.
pub type Millis = u64;

/// A process-local name for one listening socket (the driver maps it to an fd).
///
/// Ids never cross the wire: processes match listeners by address, because each process
/// numbers its own config independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(pub u32);

/// One listening socket of this process's config: its local id and its address.
///
/// The address is the matching key across processes, e.g. `0.0.0.0:10000` for TCP or
/// `unix:/tmp/envoy_restart.sock` for the restart socket itself (which is handed over like
/// any other listener, so the path is never unserved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub id: ListenerId,
    pub address: String,
}

/// Which restart-socket connection an event or action concerns.
///
/// A process has at most one parent link (the one it connected to at start) and any number
/// of child connections accepted on its restart socket, named by driver-chosen ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Parent,
    Child(u64),
}

/// What the machine needs to know about its process; fixed for the process lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our pid, sent in the handshake so each side can log who it talks to.
    pub pid: u32,
    /// Free-form build identifier (e.g. crate version + git hash), informational only.
    pub binary_version: String,
    /// Every listener this process's config needs, including the restart socket.
    pub listeners: Vec<Listener>,
    /// How long a peer on the restart socket may stay silent before a handover completes.
    pub handshake_timeout_ms: u64,
    /// `--drain-time-s` in milliseconds: the longest a draining process keeps serving.
    pub drain_time_ms: u64,
    /// `--parent-shutdown-time-s` in milliseconds: after takeover, tell the parent to drain.
    pub parent_shutdown_ms: Option<u64>,
    /// How often a parent that handed over sends its stats to the child.
    pub stats_interval_ms: u64,
}

impl Config {
    /// Defaults matching Envoy's flags (600 s drain) and a 10 s handshake timeout.
    pub fn new(pid: u32, binary_version: impl Into<String>, listeners: Vec<Listener>) -> Self {
        Config {
            pid,
            binary_version: binary_version.into(),
            listeners,
            handshake_timeout_ms: 10_000,
            drain_time_ms: 600_000,
            parent_shutdown_ms: None,
            stats_interval_ms: 1_000,
        }
    }
}
