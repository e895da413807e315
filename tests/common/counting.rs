//! An origin that counts its connections, the EOFs it reads and the requests it answers,
//! all with one status.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// An HTTP/1.1 keep-alive origin on 127.0.0.1 that counts accepted connections and the
/// connections its peer closed (EOF), and keeps every request head as received. Every
/// answer has its one status and body `ok`; `/slow/N` answers after N ms; `/headers/N`
/// answers with N extra headers.
pub struct Origin {
    pub port: u16,
    accepted: Arc<AtomicU64>,
    eofs: Arc<AtomicU64>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    pub fn start(status: u16) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let port = l.local_addr().expect("origin address").port();
        let o = Origin {
            port,
            accepted: Arc::default(),
            eofs: Arc::default(),
            heads: Arc::default(),
        };
        let (accepted, eofs, heads) = (o.accepted.clone(), o.eofs.clone(), o.heads.clone());
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let (eofs, heads) = (eofs.clone(), heads.clone());
                thread::spawn(move || serve(s, status, &eofs, &heads));
            }
        });
        o
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn eofs(&self) -> u64 {
        self.eofs.load(Ordering::SeqCst)
    }

    /// Request heads received so far, as received.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

fn serve(mut s: TcpStream, status: u16, eofs: &AtomicU64, heads: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match s.read(&mut chunk) {
                Ok(0) => {
                    eofs.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(_) => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        heads.lock().expect("heads").push(head);
        let mut extra = String::new();
        if let Some(ms) = path.strip_prefix("/slow/") {
            thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        }
        if let Some(n) = path.strip_prefix("/headers/") {
            for i in 0..n.parse().unwrap_or(0) {
                extra.push_str(&format!("x-h{i}: {i}\r\n"));
            }
        }
        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n{extra}\r\nok");
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
