//! DNS resolution off the reactor. getaddrinfo blocks, so a helper thread runs it and wakes the
//! reactor through a `mio::Waker`; a slow or dead DNS server delays only other lookups, never
//! traffic.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// A lookup request: which cluster endpoint it is for, and what to resolve.
#[derive(Debug, Clone)]
pub struct Query {
    pub cluster: usize,
    pub endpoint: usize,
    pub host: String,
    pub port: u16,
}

/// The answer to a `Query`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub cluster: usize,
    pub endpoint: usize,
    pub result: Result<Vec<SocketAddr>, String>,
}

/// Handle to the resolver thread; dropping it ends the thread after its current lookup.
pub struct Resolver {
    tx: Sender<Query>,
    rx: Receiver<Answer>,
}

impl Resolver {
    pub fn start(waker: Arc<mio::Waker>) -> std::io::Result<Resolver> {
        let (qtx, qrx) = channel::<Query>();
        let (atx, arx) = channel::<Answer>();
        std::thread::Builder::new()
            .name("baton-dns".into())
            .spawn(move || {
                // Signals are the reactor's: delivered to this thread, a SIGHUP could reach
                // the reactor's signal pipe while a SIGTERM sent with it waits for the other
                // thread, and the reload would be handled as if it came first.
                let all = nix::sys::signal::SigSet::all();
                if let Err(e) = all.thread_block() {
                    log::warn!("dns: cannot block signals in the resolver thread: {e}");
                }
                while let Ok(q) = qrx.recv() {
                    let result = (q.host.as_str(), q.port)
                        .to_socket_addrs()
                        .map(|it| it.collect::<Vec<_>>())
                        .map_err(|e| e.to_string());
                    let a = Answer {
                        cluster: q.cluster,
                        endpoint: q.endpoint,
                        result,
                    };
                    if atx.send(a).is_err() {
                        break;
                    }
                    if let Err(e) = waker.wake() {
                        log::warn!("dns: cannot wake the reactor: {e}");
                    }
                }
            })?;
        Ok(Resolver { tx: qtx, rx: arx })
    }

    /// Queues a lookup; false if the resolver thread is gone.
    pub fn submit(&self, q: Query) -> bool {
        self.tx.send(q).is_ok()
    }

    /// Answers that arrived since the last call.
    pub fn drain(&self) -> Vec<Answer> {
        self.rx.try_iter().collect()
    }
}
