//! Hot restart under HTTPS load: Python TLS clients (keep-alive ones and one opening a new
//! connection per request) against real baton processes; the certificate files are replaced,
//! a new process takes over and the old one is SIGTERMed. No request may fail; TLS keep-alive
//! connections are finished by the old process at a request boundary (`Connection: close`)
//! and reconnect to the new one, which serves the new certificate at once.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::hot::*;
use common::*;
use tls_support::*;

const LOAD: &str = r#"
import http.client, os, ssl, sys, threading, time
port, ca, stop, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
lock = threading.Lock()
st = {"ok": 0, "fail": 0, "conns": 0, "closes": 0}
errors = []
def count(k, n=1):
    with lock:
        st[k] += n
def conn():
    count("conns")
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
def worker(keepalive):
    c = None
    while not os.path.exists(stop):
        try:
            if c is None:
                c = conn()
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            count("ok" if r.status == 200 else "fail")
            if r.getheader("connection", "").lower() == "close":
                count("closes")
                c.close()
                c = None
            elif not keepalive:
                c.close()
                c = None
        except Exception as e:
            count("fail")
            with lock:
                errors.append(repr(e))
            if c is not None:
                c.close()
            c = None
        time.sleep(0.005)
threads = [threading.Thread(target=worker, args=(i > 0,)) for i in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok=%d fail=%d conns=%d closes=%d errors=%s" % (st["ok"], st["fail"], st["conns"], st["closes"], errors[:5]))
"#;

fn field(out: &str, name: &str) -> u64 {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn restart_under_https_load_fails_nothing_and_serves_the_new_certificate() {
    let pki = Pki::new("hr");
    let up = Upstream::start("up1");
    // The listener reads these two files; a renewal overwrites them before the restart.
    let old = pki.leaf("old", "/CN=old.test", "DNS:s.test,IP:127.0.0.1");
    let new = pki.leaf("new", "/CN=new.test", "DNS:s.test,IP:127.0.0.1");
    let live = (pki.path("live.crt"), pki.path("live.key"));
    std::fs::copy(&old.0, &live.0).expect("copy cert");
    std::fs::copy(&old.1, &live.1).expect("copy key");
    let log = common::baton::log_path("tls-hr")
        .to_string_lossy()
        .into_owned();
    let chain = tls_chain(&hcm(&log, "backend"), &[], &live, &[]);
    let port = free_port();
    let yaml = bootstrap(free_port(), port, "", &chain, up.port(), "");
    let dir = HotDir::new("tls");
    let mut v1 = hot_start(&yaml, &dir, &["--drain-time-s", "20"]);
    let (_, out) = s_client(port, &["-servername", "s.test"]);
    assert_eq!(served_subject(&out), "CN=old.test", "{out}");

    let stop = pki.path("stop");
    let load = Command::new("python3")
        .args(["-c", LOAD, &port.to_string(), &pki.ca(), &stop, "9"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 load");
    thread::sleep(Duration::from_secs(1));

    std::fs::copy(&new.0, &live.0).expect("renew cert");
    std::fs::copy(&new.1, &live.1).expect("renew key");
    // A second admin port: the parent still holds the first.
    let yaml2 = bootstrap(free_port(), port, "", &chain, up.port(), "");
    let (v2, _) = hot_takeover(&yaml2, &dir, &[], &v1);
    let (_, out) = s_client(port, &["-servername", "s.test"]);
    assert_eq!(
        served_subject(&out),
        "CN=new.test",
        "new connections get the new certificate: {out}"
    );
    thread::sleep(Duration::from_millis(500));

    v1.sigterm();
    expect_exit_code(&mut v1, 0, EXIT_WAIT);
    thread::sleep(Duration::from_secs(1));
    std::fs::write(&stop, b"").expect("stop file");
    let out = load.wait_with_output().expect("load output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("HTTPS load across the restart: {text}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        field(&text, "fail"),
        0,
        "requests failed: {text}\n--- v1 ---\n{}\n--- v2 ---\n{}",
        v1.log(),
        v2.log()
    );
    assert!(field(&text, "ok") > 50, "{text}");
    // The old process ended its TLS keep-alive connections with `Connection: close`.
    assert!(field(&text, "closes") >= 8, "{text}");
    let (_, out) = s_client(port, &["-servername", "s.test"]);
    assert_eq!(served_subject(&out), "CN=new.test", "{out}");
}
