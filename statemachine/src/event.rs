//! What goes into the machine ([`Event`]), what comes out ([`Action`]), and its [`State`].

use std::fmt;

use crate::{FdBatch, ListenerId, Message, Millis, Peer, StatsSnapshot};

/// The machine's state; the role-specific data lives in the machine, not here, so a state
/// is a cheap `Copy` value for logs and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    // --- child role: a new process taking over ---
    /// Started; the driver is probing the restart socket.
    Init,
    /// Connected to the parent, `Hello` sent, waiting for `HelloAck`.
    Connecting,
    /// Handshake accepted, listeners requested, fd batches arriving.
    Connected,
    /// Listeners in hand (received and/or to bind fresh); the driver registers them.
    FdsReceived,
    /// Told the parent `Listening`; waiting for `AcceptingStopped`.
    Listening,
    // --- parent role: the live process ---
    /// Accepting on its listeners; no handover under way.
    Serving,
    /// A child said `Hello`; it is asking for listeners.
    ChildConnected,
    /// Fd batches being sent and acknowledged.
    PassingFds,
    /// All fds sent; waiting for the child's `Listening`.
    FdsTransferred,
    /// The child accepts; we stopped accepting and still serve our connections.
    HandedOver,
    /// Finishing in-flight work until `ConnectionsDone` or the drain deadline.
    Draining,
    /// Final: the driver exits the process.
    Exited,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Something that happened, reported by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Init: nothing answers at the restart path (absent, or a stale socket the driver
    /// removed): start fresh as epoch 0.
    NoParent,
    /// Init: our connect to the parent succeeded (`Peer::Parent`), or a new connection was
    /// accepted on our restart socket (`Peer::Child(id)`, id unique per connection).
    PeerConnected(Peer),
    /// A whole frame was decoded from `Peer`. `ListenerFds` must come as [`Event::FdsReceived`].
    MessageReceived(Peer, Message),
    /// A `ListenerFds` frame from the parent, with the number of fds that came with it.
    FdsReceived { batch: FdBatch, fd_count: usize },
    /// EOF or error on that peer's connection (the process may have died).
    PeerClosed(Peer),
    /// FdsReceived: every listener is registered with the reactor (not accepting yet) and the
    /// process is fully ready to serve.
    ListenersReady,
    /// SIGTERM (or SIGINT) arrived.
    SigTerm,
    /// Draining: no connection is left.
    ConnectionsDone,
    /// The timer armed by [`Action::ArmTimer`] fired (early or spurious ticks are harmless).
    Tick,
}

/// Something the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The state changed: log it at info with pid and [`crate::Machine::epoch`].
    Transition { from: State, to: State },
    /// A notable decision and its reason (refusal, rollback, timeout): log at info or warn.
    Log(String),
    /// Encode and write this message to the peer.
    Send(Peer, Message),
    /// Send `Message::ListenerFds(batch)` with the fds of `ids` (same order) in SCM_RIGHTS.
    PassFds {
        peer: Peer,
        batch: FdBatch,
        ids: Vec<ListenerId>,
    },
    /// Keep the fds of the last `ListenerFds` frame: the i-th fd becomes `ids[i]`; `None`
    /// means we did not ask for it (close that fd).
    AdoptFds {
        batch: u32,
        ids: Vec<Option<ListenerId>>,
    },
    /// Bind and listen on these listeners ourselves (the parent did not have them).
    BindFresh(Vec<ListenerId>),
    /// Register for accept and start accepting (new owner).
    StartAccepting(Vec<ListenerId>),
    /// Deregister; keep the fds open (a child owns the shared accept queues now).
    StopAccepting(Vec<ListenerId>),
    /// Rollback: register again and accept on fds we still hold.
    ResumeAccepting(Vec<ListenerId>),
    /// We are the only owner: `close()` them (never `shutdown()`).
    CloseListeners(Vec<ListenerId>),
    /// Another process owns these now: `close()` only our copies, never `shutdown()`.
    DropListenerCopies(Vec<ListenerId>),
    /// Snapshot our stats and send `Message::Stats` to that peer.
    SendStats(Peer),
    /// Add the parent's stats to ours (counters continue, gauges replace).
    MergeStats(StatsSnapshot),
    /// Enter draining: `Connection: close` on responses, close idle connections safely.
    StartDrain { deadline: Millis },
    /// Fire [`Event::Tick`] at this time, replacing any earlier timer of the machine.
    ArmTimer(Millis),
    /// Close that restart-socket connection (no message).
    DropPeer(Peer),
    /// Send `Message::Refuse { reason }` to that peer, then close its connection.
    Refuse { peer: Peer, reason: String },
    /// Exit the process with this code; `reason` is for the final log line.
    Exit { code: i32, reason: String },
}

/// The driver delivered an event that has no meaning in the current state.
///
/// Such an event is a driver bug (or a peer the driver already closed); the machine is left
/// exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    IllegalEvent { state: State, event: Event },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::IllegalEvent { state, event } => {
                write!(f, "illegal event {event:?} in state {state}")
            }
        }
    }
}

impl std::error::Error for Error {}
