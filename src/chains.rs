//! Choosing a listener's filter chain for a connection, in Envoy's order: destination port,
//! destination address, server name (SNI), transport protocol, application protocols (ALPN),
//! direct source address (the socket's peer), source address, source port. At each step the chains that name the connection's value win
//! (for address ranges and names, the most specific ones); only if none does, the chains that
//! leave the criterion unset stay in the running. There is no going back to a less specific
//! group at a later step. When nothing is left, the `default_filter_chain` serves, if any.

use std::net::{IpAddr, SocketAddr};

use crate::config::FilterChainTls;

/// What is known of a connection when its chain is chosen.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The address the client connected to (`None`: not looked up, as no chain names one).
    pub local: Option<SocketAddr>,
    /// The client's address (`None`: not looked up, as no chain names one); a PROXY
    /// protocol header's when the listener reads one.
    pub peer: Option<SocketAddr>,
    /// The socket's peer (`None`: not looked up, as no chain names one).
    pub direct: Option<SocketAddr>,
    /// The ClientHello's server name.
    pub sni: Option<&'a str>,
    /// `tls` (a ClientHello came first) or `raw_buffer`.
    pub transport: &'a str,
    /// The ClientHello's ALPN protocols.
    pub alpn: &'a [&'a [u8]],
}

impl Facts<'_> {
    /// The addresses a PROXY protocol header gave the connection replace the socket's (only
    /// those looked up: the ones some chain matches on).
    pub fn with_origin(mut self, o: Option<&crate::proxy_protocol::Origin>) -> Self {
        if let Some(o) = o {
            self.peer = self.peer.map(|_| o.peer);
            if let Some(l) = o.local {
                self.local = self.local.map(|_| l);
            }
        }
        self
    }
}

/// Whether choosing among `chains` needs the ClientHello (a TLS context to pick, or a match
/// on what only a ClientHello carries).
pub fn needs_hello(chains: &[FilterChainTls]) -> bool {
    chains.iter().any(|c| {
        c.tls.is_some()
            || !c.server_names.is_empty()
            || !c.application_protocols.is_empty()
            || c.transport_protocol.as_deref() == Some("tls")
    })
}

/// Whether choosing among `chains` needs the connection's local address.
pub fn needs_local(chains: &[FilterChainTls]) -> bool {
    chains
        .iter()
        .any(|c| c.destination_port.is_some() || !c.prefix_ranges.is_empty())
}

/// Whether choosing among `chains` needs the client's address (or the socket's peer).
pub fn needs_peer(chains: &[FilterChainTls]) -> bool {
    chains.iter().any(|c| {
        !c.source_prefix_ranges.is_empty()
            || !c.source_ports.is_empty()
            || !c.direct_source_prefix_ranges.is_empty()
    })
}

/// Whether the chain of every connection is the first one: a single chain matching
/// everything (the common case, chosen without a look at the socket).
pub fn trivial(chains: &[FilterChainTls]) -> bool {
    chains.len() == 1
        && !needs_local(chains)
        && !needs_peer(chains)
        && chains.first().is_some_and(|c| !c.fallback)
}

/// Which of a connection's addresses choosing among a listener's chains needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    local: bool,
    peer: bool,
}

impl Needs {
    pub fn of(chains: &[FilterChainTls]) -> Needs {
        Needs {
            local: needs_local(chains),
            peer: needs_peer(chains),
        }
    }

    /// The facts of a connection on `sock` (no system call for an address no chain matches
    /// on).
    pub fn facts<'a>(self, sock: &mio::net::TcpStream, transport: &'a str) -> Facts<'a> {
        let peer = self.peer.then(|| sock.peer_addr().ok()).flatten();
        Facts {
            local: self.local.then(|| sock.local_addr().ok()).flatten(),
            peer,
            direct: peer,
            sni: None,
            transport,
            alpn: &[],
        }
    }
}

/// The index of the chain (in `items`, each one's match given by `m`) that serves a
/// connection with `f`; `None`: no chain matches and there is no default chain.
pub fn select<T>(items: &[T], m: impl Fn(&T) -> &FilterChainTls, f: &Facts<'_>) -> Option<usize> {
    let all: Vec<usize> = (0..items.len())
        .filter(|&i| !m(&items[i]).fallback)
        .collect();
    let c = |i: usize| m(&items[i]);
    let dest_port = f.local.map(|a| a.port());
    let mut group = narrow(
        all,
        |i| c(i).destination_port.is_some() && c(i).destination_port == dest_port,
        |i| c(i).destination_port.is_none(),
    );
    group = by_range(group, f.local.map(|a| a.ip()), |i| &c(i).prefix_ranges);
    // The server name: exact, then the longest `*.` wildcard, then chains without names.
    let named = |g: &[usize], name: &str| -> Vec<usize> {
        g.iter()
            .copied()
            .filter(|&i| c(i).server_names.iter().any(|n| n == name))
            .collect()
    };
    let mut by_name = Vec::new();
    if let Some(sni) = f.sni.map(str::to_ascii_lowercase) {
        by_name = named(&group, &sni);
        let mut rest = sni.as_str();
        while by_name.is_empty() {
            let Some((_, tail)) = rest.split_once('.') else {
                break;
            };
            by_name = named(&group, &format!("*.{tail}"));
            rest = tail;
        }
    }
    group = if by_name.is_empty() {
        group
            .into_iter()
            .filter(|&i| c(i).server_names.is_empty())
            .collect()
    } else {
        by_name
    };
    group = narrow(
        group,
        |i| c(i).transport_protocol.as_deref() == Some(f.transport),
        |i| c(i).transport_protocol.is_none(),
    );
    group = narrow(
        group,
        |i| {
            let offered = |p: &String| f.alpn.contains(&p.as_bytes());
            c(i).application_protocols.iter().any(offered)
        },
        |i| c(i).application_protocols.is_empty(),
    );
    group = by_range(group, f.direct.map(|a| a.ip()), |i| {
        &c(i).direct_source_prefix_ranges
    });
    group = by_range(group, f.peer.map(|a| a.ip()), |i| {
        &c(i).source_prefix_ranges
    });
    let source_port = f.peer.map(|a| a.port());
    group = narrow(
        group,
        |i| source_port.is_some_and(|p| c(i).source_ports.contains(&p)),
        |i| c(i).source_ports.is_empty(),
    );
    group
        .first()
        .copied()
        .or_else(|| items.iter().position(|x| m(x).fallback))
}

/// How a hot-restart handover names chain `chain` to the successor: `name=` its name, or
/// `index=` its index when it has none.
pub fn wire_key(chains: &[FilterChainTls], chain: usize) -> String {
    match chains.get(chain).and_then(|c| c.name.as_deref()) {
        Some(name) => format!("name={name}"),
        None => format!("index={chain}"),
    }
}

/// The chain `wire_key` named, in this config: by name; by index only when the chain there
/// has no name either. `None`: it is gone.
pub fn by_wire_key(chains: &[FilterChainTls], key: &str) -> Option<usize> {
    if let Some(n) = key.strip_prefix("name=") {
        return chains.iter().position(|c| c.name.as_deref() == Some(n));
    }
    let i: usize = key.strip_prefix("index=")?.parse().ok()?;
    chains.get(i).filter(|c| c.name.is_none()).map(|_| i)
}

/// The chains of `group` with the longest range holding `ip` (`ranges` gives a chain's), or,
/// when none holds it, those without ranges.
fn by_range<'c>(
    group: Vec<usize>,
    ip: Option<IpAddr>,
    ranges: impl Fn(usize) -> &'c Vec<(IpAddr, u8)>,
) -> Vec<usize> {
    let best = |i: usize| -> Option<u8> {
        let ip = ip?.to_canonical();
        let fits = ranges(i)
            .iter()
            .filter(|&&(net, len)| crate::http::request::in_range(ip, net, len));
        fits.map(|&(_, len)| len).max()
    };
    let longest = group.iter().filter_map(|&i| best(i)).max();
    match longest {
        Some(l) => group.into_iter().filter(|&i| best(i) == Some(l)).collect(),
        None => group
            .into_iter()
            .filter(|&i| ranges(i).is_empty())
            .collect(),
    }
}

/// The chains of `group` that match exactly, or, when none does, those that match anything.
fn narrow(
    group: Vec<usize>,
    exact: impl Fn(usize) -> bool,
    any: impl Fn(usize) -> bool,
) -> Vec<usize> {
    if group.iter().any(|&i| exact(i)) {
        group.into_iter().filter(|&i| exact(i)).collect()
    } else {
        group.into_iter().filter(|&i| any(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chain(names: &[&str], proto: Option<&str>) -> FilterChainTls {
        FilterChainTls {
            name: None,
            destination_port: None,
            prefix_ranges: Vec::new(),
            server_names: names.iter().map(|n| n.to_string()).collect(),
            transport_protocol: proto.map(String::from),
            application_protocols: Vec::new(),
            source_prefix_ranges: Vec::new(),
            direct_source_prefix_ranges: Vec::new(),
            source_ports: Vec::new(),
            fallback: false,
            terminal: 0,
            tls: None,
            handshake_timeout: Duration::from_secs(1),
        }
    }

    fn pick(chains: &[FilterChainTls], sni: Option<&str>, proto: &str) -> Option<usize> {
        let f = Facts {
            local: None,
            peer: None,
            direct: None,
            sni,
            transport: proto,
            alpn: &[],
        };
        select(chains, |c| c, &f)
    }

    #[test]
    fn chains_are_chosen_by_name_then_transport() {
        let l = vec![
            chain(&["a.test"], None),
            chain(&["*.b.test"], None),
            chain(&["*.x.b.test"], Some("tls")),
            chain(&[], Some("raw_buffer")),
            chain(&[], Some("tls")),
        ];
        assert_eq!(pick(&l, Some("a.test"), "tls"), Some(0));
        assert_eq!(pick(&l, Some("A.Test"), "tls"), Some(0), "case-insensitive");
        assert_eq!(pick(&l, Some("y.b.test"), "tls"), Some(1));
        assert_eq!(pick(&l, Some("z.y.b.test"), "tls"), Some(1), "spans labels");
        assert_eq!(pick(&l, Some("y.x.b.test"), "tls"), Some(2), "longest wins");
        // The longest wildcard's group has no chain for raw_buffer: no fallback to a shorter one.
        assert_eq!(pick(&l, Some("y.x.b.test"), "raw_buffer"), None);
        assert_eq!(pick(&l, Some("b.test"), "tls"), Some(4), "not the apex");
        assert_eq!(pick(&l, None, "tls"), Some(4));
        assert_eq!(pick(&l, None, "raw_buffer"), Some(3));
        assert_eq!(pick(&l, Some("other.test"), "raw_buffer"), Some(3));
    }

    #[test]
    fn address_ranges_choose_the_most_specific_then_source_ports() {
        let net = |s: &str, l: u8| (s.parse::<IpAddr>().unwrap(), l);
        let mut wide = chain(&[], None);
        wide.prefix_ranges = vec![net("127.0.0.0", 8)];
        let mut narrow = chain(&[], None);
        narrow.prefix_ranges = vec![net("10.0.0.0", 8), net("127.0.0.1", 32)];
        let mut from = chain(&[], None);
        from.source_prefix_ranges = vec![net("127.0.0.2", 32)];
        from.prefix_ranges = vec![net("127.0.0.0", 16)];
        let mut port = chain(&[], None);
        port.source_ports = vec![4000];
        port.prefix_ranges = vec![net("127.0.0.0", 16)];
        let l = vec![wide, narrow, from, port, chain(&[], None)];
        let at = |local: &str, peer: &str| {
            let f = Facts {
                local: Some(local.parse().unwrap()),
                peer: Some(peer.parse().unwrap()),
                direct: Some(peer.parse().unwrap()),
                sni: None,
                transport: "raw_buffer",
                alpn: &[],
            };
            select(&l, |c| c, &f)
        };
        assert_eq!(at("127.0.0.1:80", "127.0.0.9:1"), Some(1), "the /32");
        assert_eq!(
            at("127.1.0.1:80", "127.0.0.9:1"),
            Some(0),
            "only the /8 holds it"
        );
        assert_eq!(at("10.1.2.3:80", "127.0.0.9:1"), Some(1));
        assert_eq!(
            at("192.0.2.1:80", "127.0.0.9:1"),
            Some(4),
            "no range: the catch-all"
        );
        // The /16 group: the source address, then the source port.
        assert_eq!(at("127.0.5.5:80", "127.0.0.2:1"), Some(2));
        assert_eq!(at("127.0.5.5:80", "127.0.0.9:4000"), Some(3));
        assert_eq!(
            at("127.0.5.5:80", "127.0.0.9:4001"),
            None,
            "no fallback to the /8"
        );
        assert_eq!(
            at("[::ffff:127.0.5.5]:80", "[::ffff:127.0.0.2]:1"),
            Some(2),
            "IPv4-mapped addresses are IPv4"
        );
    }

    #[test]
    fn handed_over_connections_find_their_chain_by_name_or_index() {
        let mut named = chain(&["a.test"], None);
        named.name = Some("web".into());
        let old = vec![named.clone(), chain(&[], None)];
        assert_eq!(wire_key(&old, 0), "name=web");
        assert_eq!(wire_key(&old, 1), "index=1");
        // The new config moved the named chain: found by name; the unnamed one by index.
        let new = vec![chain(&[], None), chain(&["b.test"], None), named];
        assert_eq!(by_wire_key(&new, "name=web"), Some(2));
        assert_eq!(by_wire_key(&new, "index=1"), Some(1));
        assert_eq!(
            by_wire_key(&new, "index=2"),
            None,
            "named now: not by index"
        );
        assert_eq!(by_wire_key(&new, "index=7"), None);
        assert_eq!(by_wire_key(&new, "name=gone"), None);
        assert_eq!(by_wire_key(&new, "other"), None);
    }

    #[test]
    fn alpn_port_and_the_default_chain() {
        let mut h2 = chain(&[], Some("tls"));
        h2.application_protocols = vec!["h2".into()];
        let mut h1 = chain(&[], Some("tls"));
        h1.application_protocols = vec!["http/1.1".into()];
        let any = chain(&[], None);
        let l = vec![h2, h1, any];
        let with = |alpn: &[&[u8]], transport: &str| {
            let f = Facts {
                local: None,
                peer: None,
                direct: None,
                sni: None,
                transport,
                alpn,
            };
            select(&l, |c| c, &f)
        };
        assert_eq!(
            with(&[b"h2", b"http/1.1"], "tls"),
            Some(0),
            "any offered one"
        );
        assert_eq!(with(&[b"http/1.1"], "tls"), Some(1));
        // A TLS client without ALPN: the tls chains need a protocol; the catch-all has no
        // transport, but the tls group (exact) won the transport step: nothing matches.
        assert_eq!(with(&[], "tls"), None);
        assert_eq!(with(&[], "raw_buffer"), Some(2));

        let mut p80 = chain(&[], None);
        p80.destination_port = Some(80);
        let mut fallback = chain(&[], None);
        fallback.fallback = true;
        let l = vec![p80, chain(&["a.test"], None), fallback];
        let at = |port: u16, sni: Option<&str>| {
            let f = Facts {
                local: Some(SocketAddr::from(([127, 0, 0, 1], port))),
                peer: None,
                direct: None,
                sni,
                transport: "tls",
                alpn: &[],
            };
            select(&l, |c| c, &f)
        };
        assert_eq!(at(80, Some("a.test")), Some(0), "the port comes first");
        assert_eq!(at(81, Some("a.test")), Some(1));
        assert_eq!(
            at(81, Some("b.test")),
            Some(2),
            "nothing matches: the default"
        );
    }
}
