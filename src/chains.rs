//! Choosing a listener's filter chain for a connection, in Envoy's order: destination port,
//! server name (SNI), transport protocol, application protocols (ALPN). At each step the
//! chains that name the connection's value win; only if none does, the chains that leave
//! the criterion unset stay in the running. There is no going back to a less specific group
//! at a later step. When nothing is left, the `default_filter_chain` serves, if any.

use crate::config::FilterChainTls;

/// What is known of a connection when its chain is chosen.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The port the client connected to (`None`: not looked up, as no chain names one).
    pub dest_port: Option<u16>,
    /// The ClientHello's server name.
    pub sni: Option<&'a str>,
    /// `tls` (a ClientHello came first) or `raw_buffer`.
    pub transport: &'a str,
    /// The ClientHello's ALPN protocols.
    pub alpn: &'a [&'a [u8]],
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

/// Whether choosing among `chains` needs the connection's local port.
pub fn needs_port(chains: &[FilterChainTls]) -> bool {
    chains.iter().any(|c| c.destination_port.is_some())
}

/// The index of the chain (in `items`, each one's match given by `m`) that serves a
/// connection with `f`; `None`: no chain matches and there is no default chain.
pub fn select<T>(items: &[T], m: impl Fn(&T) -> &FilterChainTls, f: &Facts<'_>) -> Option<usize> {
    let all: Vec<usize> = (0..items.len())
        .filter(|&i| !m(&items[i]).fallback)
        .collect();
    let c = |i: usize| m(&items[i]);
    let mut group = narrow(
        all,
        |i| c(i).destination_port.is_some() && c(i).destination_port == f.dest_port,
        |i| c(i).destination_port.is_none(),
    );
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
            server_names: names.iter().map(|n| n.to_string()).collect(),
            transport_protocol: proto.map(String::from),
            application_protocols: Vec::new(),
            fallback: false,
            terminal: 0,
            tls: None,
            handshake_timeout: Duration::from_secs(1),
        }
    }

    fn pick(chains: &[FilterChainTls], sni: Option<&str>, proto: &str) -> Option<usize> {
        let f = Facts {
            dest_port: None,
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
                dest_port: None,
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
                dest_port: Some(port),
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
