//! The proxy as the hot-restart driver sees it: the narrow `Host` interface over listeners,
//! connections, stats and the process lifecycle.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Instant;

use baton_statemachine::{State, StatsSnapshot};
use mio::net::TcpListener;
use mio::Interest;

use super::{bind_listener, Proxy};
use crate::hot_restart::driver::Host;
use crate::hot_restart::tcp_address;
use crate::reactor::{TimerKey, Tok};
use crate::stats::ServerState;

impl Host for Proxy {
    fn now(&self) -> Instant {
        self.ctx.now()
    }

    fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    fn arm_timer(&mut self, at: Instant) {
        self.ctx.timers.arm(at, TimerKey::Restart);
    }

    /// Start-up is done once the first DNS answers are in and every health-checked host had
    /// its first check (or 5 s passed since the start).
    fn dns_ready(&self) -> bool {
        self.dns_ready
            && (self.hc_init_until.is_none()
                || crate::cluster::checker::first_round_done(&self.ctx))
    }

    fn connections(&self) -> usize {
        // A tunnel detached for the successor is ours until the successor acknowledges it.
        self.sessions.len() + self.moving.iter().filter(|s| s.in_tunnel()).count()
    }

    fn restart_file(&self) -> Option<&Path> {
        self.opts.hot_restart_file.as_deref()
    }

    fn set_epoch(&mut self, epoch: u32) {
        self.ctx.set_epoch(epoch);
    }

    /// The data listeners, then the admin listener (index `listeners.len()`).
    fn listener_count(&self) -> usize {
        self.listeners.len() + usize::from(self.admin.is_some())
    }

    fn listener_fd(&self, i: usize) -> Option<RawFd> {
        if i == self.listeners.len() {
            return self.admin.as_ref()?.fd();
        }
        self.listeners.get(i)?.as_ref().map(|l| l.as_raw_fd())
    }

    fn install_listener(&mut self, i: usize, l: TcpListener) {
        if i == self.listeners.len() {
            if let Some(a) = self.admin.as_mut() {
                a.install(l);
            }
            return;
        }
        if let (Some(slot), Some(rt)) = (self.listeners.get_mut(i), self.ctx.home(i)) {
            // The socket works without an option the new config added; it is said loudly.
            if let Err(e) = super::adopt_listener(&rt.name, &l, &rt.socket) {
                log::warn!("listener taken over from the parent: {e}");
            }
            *slot = Some(l);
            log::info!(
                "listener {}: took over {} from the parent",
                rt.name,
                rt.address
            );
        }
    }

    fn bind_listener(&mut self, i: usize) -> Result<(), String> {
        if i == self.listeners.len() {
            return self.admin.as_mut().map_or(Ok(()), |a| a.bind_fresh());
        }
        let (Some(slot), Some(rt)) = (self.listeners.get_mut(i), self.ctx.home(i)) else {
            return Ok(());
        };
        *slot = Some(bind_listener(&rt.name, rt.address, &rt.socket)?);
        Ok(())
    }

    fn set_accepting(&mut self, i: usize, on: bool) {
        if i == self.listeners.len() {
            let started = self
                .admin
                .as_mut()
                .is_some_and(|a| a.set_accepting(self.poll.registry(), on));
            if started {
                // Queued connections raise no new edge: accept them now.
                self.on_admin(usize::MAX);
            }
            return;
        }
        let registry = self.poll.registry();
        let Some(Some(l)) = self.listeners.get_mut(i) else {
            return;
        };
        if self.accepting.get(i) == Some(&on) {
            return;
        }
        let r = if on {
            registry.register(l, Tok::Listener(i).token(), Interest::READABLE)
        } else {
            registry.deregister(l)
        };
        match r {
            Ok(()) => {
                if let Some(a) = self.accepting.get_mut(i) {
                    *a = on;
                }
            }
            Err(e) => log::error!("listener {}: {e}", self.name(i)),
        }
        if on {
            self.accept(i);
        }
    }

    fn close_listener(&mut self, i: usize) {
        if i == self.listeners.len() {
            if let Some(a) = self.admin.as_mut() {
                a.close_listener(self.poll.registry());
            }
            return;
        }
        let had = self.listeners.get(i).is_some_and(Option::is_some);
        Proxy::close_listener(self, i);
        if had {
            log::info!("listener {} closed", self.name(i));
        }
    }

    fn listening(&mut self, epoch: u32) {
        if !self.ctx.draining() {
            self.ctx.stats.set_state(ServerState::Live);
        }
        for i in 0..self.listeners.len() {
            let Some(l) = self.ctx.home(i) else { continue };
            if self.accepting.get(i) == Some(&true) {
                let bound = self.listeners[i].as_ref().and_then(|x| x.local_addr().ok());
                // The start-up line (or the machine's "resuming accepting") says this at info.
                log::debug!(
                    "listener {} accepting on {} (pid {}, epoch {epoch}, cluster '{}', node '{}')",
                    l.name,
                    bound.unwrap_or(l.address),
                    std::process::id(),
                    self.opts.service_cluster,
                    self.opts.service_node
                );
            }
        }
    }

    fn begin_drain(&mut self, handoff: bool) {
        Proxy::begin_drain(self, handoff);
    }

    fn state_changed(&mut self, from: State, to: State) {
        Proxy::state_changed(self, from, to);
    }

    fn successor_gone(&mut self) {
        self.ctx.end_handoff();
        for id in self.sessions.keys() {
            self.drive(id);
        }
    }

    fn exit(&mut self, code: i32, reason: String) {
        let cut = self.sessions.len();
        if cut > 0 {
            log::warn!("exiting ({reason}): {cut} connection(s) still open are cut");
        } else if self.opts.hot_restart_file.is_none() {
            // With a restart file the machine's own exit line says this at info.
            log::info!("exiting: {reason} (pid {})", std::process::id());
        }
        if code != 0 {
            self.exit_reason = Some(reason);
        }
        self.exit_code = Some(code);
    }

    fn stats_snapshot(&self) -> StatsSnapshot {
        self.ctx.stats_snapshot()
    }

    fn stats_merge(&mut self, s: StatsSnapshot, parent_connections: i64) {
        self.ctx.stats_merge(s);
        self.ctx.stats.set_parent_connections(parent_connections);
    }

    fn parent_gone(&mut self) {
        // Its live gauges leave ours; its counters stay summed in.
        self.ctx.stats.store.clear_parent();
        self.ctx.stats.set_parent_connections(0);
    }

    fn adopt_connection(
        &mut self,
        listener: usize,
        stream: std::net::TcpStream,
        peer: SocketAddr,
        pending: &[u8],
    ) {
        self.adopt(
            mio::net::TcpStream::from_std(stream),
            peer,
            listener,
            Some(pending),
        );
    }

    fn fd_reserve(&mut self) -> &mut crate::fds::Reserve {
        &mut self.ctx.fd_reserve
    }

    fn listener_address(
        &self,
        i: usize,
        client: Option<&mio::net::TcpStream>,
        origin: Option<&crate::proxy_protocol::Origin>,
    ) -> String {
        wire_name(&self.ctx, i, client, origin)
    }

    fn resume_tunnel(&mut self, t: crate::hot_restart::tunnels::TunnelMove) {
        Proxy::resume_tunnel(self, t);
    }

    fn listener_by_address(&self, address: &str) -> Option<usize> {
        unit_by_wire_name(&self.ctx, address)
    }
}

/// How a connection's listener and filter chain are named to a hot-restart successor: the
/// listener's address, and, when its chains have more than one terminal filter or the
/// connection is not on the first chain its terminal filter serves, `#` and the connection's
/// chain: `name=` its name, or `index=` its index when it has none. (A predecessor without
/// chains sends the address alone: the listener's first chain.) The chain is found again from
/// `client`'s addresses, or those of its PROXY protocol header, `origin` (plain connections
/// are chosen by them; one chosen by its ClientHello is named by the first chain of its
/// terminal filter).
pub fn wire_name(
    ctx: &crate::context::Ctx,
    unit: usize,
    client: Option<&mio::net::TcpStream>,
    origin: Option<&crate::proxy_protocol::Origin>,
) -> String {
    let Some(l) = ctx.listeners.get(unit) else {
        return String::new();
    };
    let address = tcp_address(l.address);
    let single = ctx
        .listeners
        .get(l.first_unit + 1)
        .is_none_or(|n| n.first_unit != l.first_unit);
    let first = l.chain_index(unit);
    let own = client
        .filter(|_| l.chains.len() > 1 && !crate::chains::trivial(&l.chains))
        .and_then(|s| {
            let facts = crate::chains::Needs::of(&l.chains)
                .facts(s, "raw_buffer")
                .with_origin(origin);
            crate::chains::select(&l.chains, |c| c, &facts)
        })
        .filter(|&c| l.unit_of(c) == unit);
    match (single, own.or(first)) {
        (false, Some(i)) => format!("{address}#{}", crate::chains::wire_key(&l.chains, i)),
        (true, Some(i)) if Some(i) != first => {
            format!("{address}#{}", crate::chains::wire_key(&l.chains, i))
        }
        _ => address,
    }
}

/// The unit `wire_name` names in this config: `None` when the listener or its chain is gone
/// (the connection is then closed, as for a listener this config lacks).
pub fn unit_by_wire_name(ctx: &crate::context::Ctx, name: &str) -> Option<usize> {
    let (address, chain) = match name.split_once('#') {
        Some((a, c)) => (a, Some(c)),
        None => (name, None),
    };
    let first = ctx
        .listeners
        .iter()
        .position(|l| tcp_address(l.address) == address)?;
    let l = ctx.listeners.get(first)?;
    let index = match chain {
        None => 0,
        Some(key) => crate::chains::by_wire_key(&l.chains, key)?,
    };
    Some(l.unit_of(index))
}
