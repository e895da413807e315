//! The logical messages of the hot-restart protocol (see docs/hot-restart.md).

/// Version of the wire protocol; a peer speaking another version is refused.
///
/// Bump it on any change to a frame layout. The `Hello` layout itself is frozen so that any
/// two versions can still tell each other they differ.
pub const PROTOCOL_VERSION: u16 = 1;

/// The most fds one `ListenerFds` frame carries (SCM_MAX_FD on Linux is 253).
pub const MAX_FDS_PER_BATCH: usize = 253;

/// One batch of listening sockets; the fds travel alongside with SCM_RIGHTS, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdBatch {
    /// 0-based; the child acknowledges each batch by index before the next is sent.
    pub index: u32,
    /// True on the final batch of this handover.
    pub last: bool,
    /// The address of each fd, in fd order.
    pub addresses: Vec<String>,
}

/// Counters and gauges, by Envoy name; counters continue from the old totals in the child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub counters: Vec<(String, u64)>,
    pub gauges: Vec<(String, i64)>,
}

/// One live client connection moved from a draining parent to its child; its fd travels in
/// SCM_RIGHTS with the `Connections` frame, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedConn {
    /// Wire address of the listener that accepted it (`tcp:IP:PORT`).
    pub listener: String,
    /// The client's address, for logs and X-Forwarded-For.
    pub peer: String,
    /// Bytes already read from the client and not yet answered (a partial request head).
    pub pending: Vec<u8>,
}

/// One open tunnel (upgrade or CONNECT) moved from a draining parent to its child: two fds
/// (client, then upstream) travel in SCM_RIGHTS with the `Tunnels` frame, in list order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MovedTunnel {
    /// Wire address of the listener that accepted the client (`tcp:IP:PORT`).
    pub listener: String,
    /// The client's address.
    pub peer: String,
    /// The cluster and the host address the upstream connection goes to.
    pub cluster: String,
    pub upstream: String,
    /// Read from the upstream, not yet written to the client, oldest first.
    pub to_client: Vec<u8>,
    /// Read from the client, not yet written to the upstream, oldest first.
    pub to_upstream: Vec<u8>,
    /// FIN states: bit 0 client FIN read, 1 upstream FIN read, 2 FIN sent upstream, 3 FIN
    /// sent to the client.
    pub fins: u8,
    /// The stream idle timeout in ms; 0: none.
    pub idle_ms: u64,
    /// The record: bytes each way, status, response flags, HTTP minor version, age in ms.
    pub bytes_rx: u64,
    pub bytes_tx: u64,
    pub status: u16,
    pub flags: u16,
    pub minor: u8,
    pub age_ms: u64,
}

/// A message on the restart socket. Child → parent unless noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// First frame from the child.
    Hello {
        protocol_version: u16,
        binary_version: String,
        pid: u32,
    },
    /// Parent → child: handshake accepted; the child's epoch is `epoch + 1`.
    HelloAck {
        protocol_version: u16,
        binary_version: String,
        pid: u32,
        epoch: u32,
    },
    /// Parent → child: no handover (busy, draining, version mismatch); the link closes next.
    Refuse { reason: String },
    /// The listeners the child's config needs, by address (restart socket included).
    RequestListeners { addresses: Vec<String> },
    /// Parent → child: one batch of listening sockets (fds in SCM_RIGHTS).
    ListenerFds(FdBatch),
    /// The child holds batch `batch`; the parent may send the next one.
    FdsAck { batch: u32 },
    /// The child is fully ready (listeners registered); the parent must stop accepting.
    Listening,
    /// Parent → child: the parent stopped accepting; the child starts now.
    AcceptingStopped,
    /// The child asks the parent to drain (`--parent-shutdown-time-s`), like SIGTERM.
    DrainParent,
    /// Parent → child: the parent's stats, so counters continue across generations.
    Stats(StatsSnapshot),
    /// Parent → child, while draining: idle keep-alive connections (fds in SCM_RIGHTS, at most
    /// `MAX_FDS_PER_BATCH`), so an upgrade closes none of them. Handled by the drivers alone:
    /// it moves data-plane state and changes no hot-restart state.
    Connections(Vec<MovedConn>),
    /// Parent → child, while draining: open tunnels (two fds each in SCM_RIGHTS). The parent
    /// keeps its copies until the child acknowledges `batch`, and resumes the tunnels itself
    /// if the child goes away first. Handled by the drivers alone.
    Tunnels {
        batch: u32,
        tunnels: Vec<MovedTunnel>,
    },
    /// The child adopted tunnel batch `batch` (sent before it touches their sockets).
    TunnelsAck { batch: u32 },
}

impl Message {
    /// Short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::HelloAck { .. } => "HelloAck",
            Message::Refuse { .. } => "Refuse",
            Message::RequestListeners { .. } => "RequestListeners",
            Message::ListenerFds(_) => "ListenerFds",
            Message::FdsAck { .. } => "FdsAck",
            Message::Listening => "Listening",
            Message::AcceptingStopped => "AcceptingStopped",
            Message::DrainParent => "DrainParent",
            Message::Stats(_) => "Stats",
            Message::Connections(_) => "Connections",
            Message::Tunnels { .. } => "Tunnels",
            Message::TunnelsAck { .. } => "TunnelsAck",
        }
    }
}
