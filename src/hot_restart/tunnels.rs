//! Moving open tunnels (WebSocket, CONNECT) to the successor, exactly once.
//!
//! The parent detaches a tunnel between two steps of its core (no byte half-processed):
//! both sockets are deregistered and never read or written here again, unless the handover
//! is rolled back. Their fds, the bytes buffered each way and the record go to the child in
//! `Tunnels` batches; the parent keeps its fds until the child's `TunnelsAck` for the batch,
//! then closes them. The child writes that acknowledgement into the restart socket before it
//! touches the sockets, so if the parent sees the link end without it, the child never read
//! or wrote them, and the parent resumes every tunnel of the batch from exactly the state it
//! sent (rollback).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use baton_statemachine::{Message, MovedTunnel, Peer, MAX_FDS_PER_BATCH};

use super::driver::Host;
use super::{HotRestart, PARENT_KEY};
use crate::access_log::{Flags, Rq};
use crate::http::core::TunnelState;

/// One tunnel between processes: what the core took out, its two sockets, and where the
/// upstream connection goes (by cluster name: indices differ between configurations).
pub struct TunnelMove {
    pub listener: usize,
    pub peer: SocketAddr,
    pub client: mio::net::TcpStream,
    pub upstream: mio::net::TcpStream,
    pub cluster: String,
    pub upstream_addr: SocketAddr,
    pub state: TunnelState,
    pub rq: Rq,
    /// The client's addresses from its PROXY protocol header (not sent: the wire carries
    /// `peer`, and the successor finds the socket's own peer itself).
    pub origin: Option<crate::proxy_protocol::Origin>,
}

/// Bytes of buffered tunnel data per `Tunnels` frame (well under the 1 MiB frame limit).
const BATCH_BYTES: usize = 512 * 1024;

impl HotRestart {
    /// Sends tunnels to the successor in batches, keeping our copies until each batch is
    /// acknowledged. Without a successor they are resumed here.
    pub fn send_tunnels(&mut self, host: &mut dyn Host, tunnels: Vec<TunnelMove>) {
        let Some(key) = self.child_key() else {
            for t in tunnels {
                host.resume_tunnel(t);
            }
            return;
        };
        let mut batch: Vec<TunnelMove> = Vec::new();
        let mut bytes = 0;
        for t in tunnels {
            let size = t.state.to_client.len() + t.state.to_upstream.len();
            if !batch.is_empty()
                && ((batch.len() + 1) * 2 > MAX_FDS_PER_BATCH || bytes + size > BATCH_BYTES)
            {
                self.send_tunnel_batch(host, key, std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(t);
        }
        if !batch.is_empty() {
            self.send_tunnel_batch(host, key, batch);
        }
    }

    fn send_tunnel_batch(&mut self, host: &mut dyn Host, key: u64, batch: Vec<TunnelMove>) {
        self.tunnel_batch = self.tunnel_batch.wrapping_add(1);
        let id = self.tunnel_batch;
        let now = host.now();
        let mut fds: Vec<RawFd> = Vec::with_capacity(batch.len() * 2);
        let mut wire = Vec::with_capacity(batch.len());
        for t in &batch {
            fds.push(t.client.as_raw_fd());
            fds.push(t.upstream.as_raw_fd());
            wire.push(moved(
                t,
                host.listener_address(t.listener, Some(&t.client), t.origin.as_ref()),
                now,
            ));
        }
        log::info!(
            "hot restart: handing {} tunnel(s) to the new process (batch {id})",
            batch.len()
        );
        self.send(
            Peer::Child(key),
            &Message::Tunnels {
                batch: id,
                tunnels: wire,
            },
            &fds,
        );
        self.awaiting.insert(id, batch);
    }

    /// The child adopted batch `batch`: our copies close.
    pub(super) fn tunnels_acked(&mut self, batch: u32) {
        if let Some(done) = self.awaiting.remove(&batch) {
            log::debug!(
                "hot restart: {} tunnel(s) of batch {batch} moved",
                done.len()
            );
        }
    }

    /// The child went away: every tunnel it did not acknowledge is served here again.
    pub(super) fn roll_back_tunnels(&mut self, host: &mut dyn Host) {
        let mut batches: Vec<u32> = self.awaiting.keys().copied().collect();
        batches.sort_unstable();
        for b in batches {
            if let Some(ts) = self.awaiting.remove(&b) {
                log::warn!(
                    "hot restart: new process gone before adopting {} tunnel(s); resuming them",
                    ts.len()
                );
                for t in ts {
                    host.resume_tunnel(t);
                }
            }
        }
    }

    /// Tunnels of ours are waiting for the child's acknowledgement.
    pub(super) fn tunnels_in_flight(&self) -> bool {
        !self.awaiting.is_empty()
    }

    /// Adopts a batch of tunnels from our parent: acknowledges it first (written into the
    /// restart socket, bounded), then serves them. An acknowledgement that cannot be written
    /// leaves them to the parent, which resumes them when our link ends.
    pub(super) fn adopt_tunnels(
        &mut self,
        host: &mut dyn Host,
        batch: u32,
        tunnels: Vec<MovedTunnel>,
    ) {
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(tunnels.len() * 2);
        for _ in 0..tunnels.len() * 2 {
            match self
                .peers
                .get_mut(&PARENT_KEY)
                .and_then(|p| p.fds.pop_front())
            {
                Some(fd) => fds.push(fd),
                None => {
                    log::warn!("hot restart: parent moved tunnels without their fds");
                    return;
                }
            }
        }
        #[cfg(debug_assertions)]
        test_hooks::maybe_die(host);
        self.send(Peer::Parent, &Message::TunnelsAck { batch }, &[]);
        if !self.flush_parent(Duration::from_secs(1)) {
            log::error!("hot restart: cannot acknowledge tunnel batch {batch}; leaving it to the old process");
            return;
        }
        let now = host.now();
        let mut fds = fds.into_iter();
        for t in tunnels {
            let (Some(c), Some(u)) = (fds.next(), fds.next()) else {
                return;
            };
            let Some(listener) = host.listener_by_address(&t.listener) else {
                log::info!(
                    "hot restart: moved tunnel from {} belongs to listener {} that this config lacks; closing it",
                    t.peer, t.listener
                );
                continue;
            };
            let (Ok(peer), Ok(upstream_addr)) = (t.peer.parse(), t.upstream.parse()) else {
                log::warn!("hot restart: moved tunnel with a bad address; closing it");
                continue;
            };
            let client = std::net::TcpStream::from(c);
            let upstream = std::net::TcpStream::from(u);
            if client.set_nonblocking(true).is_err() || upstream.set_nonblocking(true).is_err() {
                continue;
            }
            host.resume_tunnel(arrived(
                t,
                listener,
                peer,
                upstream_addr,
                client,
                upstream,
                now,
            ));
        }
    }

    /// Writes what is queued for the parent, waiting at most `limit`; true when all of it is
    /// in the kernel.
    fn flush_parent(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            let Some(p) = self.peers.get_mut(&PARENT_KEY) else {
                return false;
            };
            if p.flush().is_err() {
                return false;
            }
            if !p.has_pending_output() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A tunnel as it goes on the wire.
fn moved(t: &TunnelMove, listener: String, now: Instant) -> MovedTunnel {
    let s = &t.state;
    let fins = u8::from(s.client_eof)
        | u8::from(s.up_eof) << 1
        | u8::from(s.up_shut) << 2
        | u8::from(s.down_shut) << 3;
    MovedTunnel {
        listener,
        peer: t.peer.to_string(),
        cluster: t.cluster.clone(),
        upstream: t.upstream_addr.to_string(),
        to_client: s.to_client.clone(),
        to_upstream: s.to_upstream.clone(),
        fins,
        idle_ms: s.idle.map_or(0, |d| (d.as_millis() as u64).max(1)),
        bytes_rx: t.rq.bytes_rx,
        bytes_tx: t.rq.bytes_tx,
        status: t.rq.status,
        flags: t.rq.flags.wire_bits(),
        minor: t.rq.minor,
        age_ms: now.saturating_duration_since(t.rq.start).as_millis() as u64,
    }
}

/// A tunnel from the wire, with its sockets, ready for `Host::resume_tunnel`.
fn arrived(
    t: MovedTunnel,
    listener: usize,
    peer: SocketAddr,
    upstream_addr: SocketAddr,
    client: std::net::TcpStream,
    upstream: std::net::TcpStream,
    now: Instant,
) -> TunnelMove {
    let start = now
        .checked_sub(Duration::from_millis(t.age_ms))
        .unwrap_or(now);
    let mut rq = Rq::new(start, listener, peer, t.minor);
    rq.status = t.status;
    rq.flags = Flags::from_wire_bits(t.flags);
    rq.bytes_rx = t.bytes_rx;
    rq.bytes_tx = t.bytes_tx;
    rq.upstream = Some(upstream_addr);
    let state = TunnelState {
        to_client: t.to_client,
        to_upstream: t.to_upstream,
        client_eof: t.fins & 1 != 0,
        up_eof: t.fins & 2 != 0,
        up_shut: t.fins & 4 != 0,
        down_shut: t.fins & 8 != 0,
        idle: (t.idle_ms > 0).then(|| Duration::from_millis(t.idle_ms)),
    };
    TunnelMove {
        listener,
        peer,
        client: mio::net::TcpStream::from_std(client),
        upstream: mio::net::TcpStream::from_std(upstream),
        cluster: t.cluster,
        upstream_addr,
        state,
        rq,
        origin: None,
    }
}

/// Test-build-only fault injection: a process whose first listener's port is named by
/// `BATON_TEST_DIE_ON_TUNNELS` dies (exit 3) when tunnels arrive, before acknowledging them,
/// so tests can check the old process's rollback. Compiled out of release builds.
#[cfg(debug_assertions)]
mod test_hooks {
    use super::Host;

    pub fn maybe_die(host: &dyn Host) {
        let Ok(port) = std::env::var("BATON_TEST_DIE_ON_TUNNELS") else {
            return;
        };
        if host
            .listener_address(0, None, None)
            .ends_with(&format!(":{port}"))
        {
            log::error!("test hook: dying before acknowledging tunnels");
            std::process::exit(3);
        }
    }
}
