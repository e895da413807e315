//! Hot restart: the restart socket (`channel`), and the driver that runs the pure state
//! machine of `baton-statemachine` against real sockets (`driver`). The wire protocol and the
//! state diagram are in docs/hot-restart.md.

pub mod channel;
pub mod driver;
pub mod tunnels;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use baton_statemachine::Machine;
use mio::net::UnixListener;

/// Key of the link to our parent in `HotRestart::peers`; children get 1, 2, ...
pub const PARENT_KEY: u64 = 0;

/// The hot-restart side of a process: the pure machine, the restart socket and its peers.
/// Its fields are written only by `driver`; the proxy talks to it through its methods and
/// answers through `driver::Host`.
pub struct HotRestart {
    machine: Machine,
    /// Time origin of the machine's millisecond clock.
    origin: Instant,
    /// The restart socket's listening fd (ours, handed over, or received).
    listener: Option<UnixListener>,
    accepting: bool,
    peers: HashMap<u64, channel::Conn>,
    next_id: u64,
    ready_sent: bool,
    done_sent: bool,
    /// Draining with a live successor that takes our idle connections.
    handing_off: bool,
    /// Our parent has handed us connections while draining: it may hand more until it exits.
    parent_hands_over: bool,
    /// Started without `--hot-restart-file`: the machine's lines are debug, not info.
    quiet: bool,
    /// Carrying out an action failed (a listener we cannot bind): this process is exiting and
    /// must not tell a parent it is ready.
    failed: bool,
    /// The last tunnel batch id sent, and the batches the child has not acknowledged yet
    /// (our copies of their sockets stay open until it does).
    tunnel_batch: u32,
    awaiting: HashMap<u32, Vec<tunnels::TunnelMove>>,
}

impl HotRestart {
    pub fn new(machine: Machine) -> HotRestart {
        HotRestart {
            machine,
            origin: Instant::now(),
            listener: None,
            accepting: false,
            peers: HashMap::new(),
            next_id: PARENT_KEY,
            ready_sent: false,
            done_sent: false,
            handing_off: false,
            parent_hands_over: false,
            quiet: false,
            failed: false,
            tunnel_batch: 0,
            awaiting: HashMap::new(),
        }
    }
}

/// How a TCP listener is named on the wire (matched by address between generations).
pub fn tcp_address(a: SocketAddr) -> String {
    format!("tcp:{a}")
}

/// How the restart socket itself is named on the wire.
pub fn restart_address(p: &Path) -> String {
    format!("unix:{}", p.display())
}
