//! Test certificates made with the openssl CLI (a CA, server and client certificates), YAML
//! for TLS listeners and clusters, and a Python TLS origin. Everything stays on loopback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A directory of PEM files: `ca`, and leaves signed by it.
pub struct Pki {
    pub dir: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Pki {
    /// A fresh CA named `ca_name` (files `ca.crt`, `ca.key`).
    pub fn new(tag: &str) -> Pki {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("baton-tls-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pki dir");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!("/CN=Test CA {tag}"),
            ],
            &dir,
        );
        Pki { dir }
    }

    /// A leaf `name.crt`/`name.key` with subject `subj` and SANs `san` (e.g.
    /// `DNS:a.test,IP:127.0.0.1`), signed by the CA.
    pub fn leaf(&self, name: &str, subj: &str, san: &str) -> (String, String) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\nsubjectAltName={san}\n"),
        )
        .expect("ext file");
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subj,
            ],
            &self.dir,
        );
        self.sign(&csr, &crt, &["-extfile", &ext]);
        (self.path(&crt), self.path(&key))
    }

    /// A leaf `name.crt`/`name.key` signed by the CA without extensions, which makes it an
    /// X.509 v1 certificate (as Envoy's quick-start certificate is); RSA, as that one is.
    pub fn leaf_v1(&self, name: &str, subj: &str) -> (String, String) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                subj,
            ],
            &self.dir,
        );
        self.sign(&csr, &crt, &[]);
        (self.path(&crt), self.path(&key))
    }

    /// Signs `csr` with the CA into `crt`; `extra` arguments for `openssl x509`.
    fn sign(&self, csr: &str, crt: &str, extra: &[&str]) {
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            crt,
            "-days",
            "2",
        ];
        args.extend_from_slice(extra);
        openssl(&args, &self.dir);
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    pub fn ca(&self) -> String {
        self.path("ca.crt")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A filter chain with a DownstreamTlsContext: `match_lines` go under `filter_chain_match`
/// (none: no match), `ctx_lines` under the context's `typed_config` after the certificate.
pub fn tls_chain(hcm: &str, match_lines: &[&str], cert: &(String, String), ctx: &[&str]) -> String {
    let mut y = String::new();
    y.push_str("    - filters:\n");
    y.push_str(hcm);
    if !match_lines.is_empty() {
        y.push_str("      filter_chain_match:\n");
        for l in match_lines {
            y.push_str(&format!("        {l}\n"));
        }
    }
    y.push_str(&format!(
        r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: "{}"}}
              private_key: {{filename: "{}"}}
"#,
        cert.0, cert.1
    ));
    for l in ctx {
        y.push_str(&format!("          {l}\n"));
    }
    y
}

/// The HTTP connection manager every chain of a test listener shares, with an access log to
/// `log` printing the TLS operators.
pub fn hcm(log: &str, cluster: &str) -> String {
    let access_log = super::common::yaml::file_access_log(
        log,
        "%RESPONSE_CODE% %DOWNSTREAM_TLS_VERSION% %REQUESTED_SERVER_NAME% [%DOWNSTREAM_PEER_SUBJECT%]\\n",
    );
    prefixed_hcm("ingress_https", &access_log, cluster)
}

/// An HTTP connection manager (stat prefix `prefix`, then the `access_log` lines) routing
/// everything to `cluster`.
pub fn prefixed_hcm(prefix: &str, access_log: &str, cluster: &str) -> String {
    format!(
        r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
{access_log}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: {cluster}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A whole bootstrap: admin on `admin`, `listener_0` on `port` with `listener_extra` lines
/// and `chains`, and a cluster `backend` to `up` with `cluster_extra` lines.
pub fn bootstrap(
    admin: u16,
    port: u16,
    listener_extra: &str,
    chains: &str,
    up: u16,
    cluster_extra: &str,
) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address:
        port_value: {port}
        address: 127.0.0.1
{listener_extra}    filter_chains:
{chains}  clusters:
{}{cluster_extra}admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
"#,
        static_cluster("backend", up)
    )
}

/// A STATIC cluster `name` with one endpoint, 127.0.0.1:`port` (an item of `clusters:`).
pub fn static_cluster(name: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    connect_timeout: 2s
    type: STATIC
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {port}}}
"#
    )
}

/// `openssl s_client` to 127.0.0.1:`port` with `args`; returns (success, stdout + stderr).
pub fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "20",
        "openssl",
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
    ])
    .args(args)
    .stdin(Stdio::null());
    let o = cmd.output().expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// The subject line of the server certificate s_client printed (`CN = a.test` or `CN=a.test`).
pub fn served_subject(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("subject="))
        .unwrap_or("")
        .replace(' ', "")
}

/// A stat from the admin's /stats (0 when absent).
pub fn stat(admin: u16, name: &str) -> u64 {
    let out = super::common::curl_ok(&[&format!("http://127.0.0.1:{admin}/stats")]);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A Python HTTPS origin on 127.0.0.1:`port`: HTTP/1.1 keep-alive (a path ending in `close`
/// closes), answering `secure <client port> <SNI> <version> <ALPN> <new|reused session>` so a
/// test sees what the proxy's TLS client did. With `client_ca`, it requires a
/// client certificate signed by that CA.
pub struct PyTls {
    child: Child,
    pub port: u16,
}

const PY_SERVER: &str = r#"
import http.server, ssl, sys
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        s = self.request
        body = ("secure %d %s %s %s %s\n" % (self.client_address[1],
            getattr(s, "baton_sni", None) or "-", s.version(),
            s.selected_alpn_protocol() or "-", "reused" if s.session_reused else "new")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.path.endswith("close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def sni(sock, name, ctx):
    sock.baton_sni = name
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
ctx.sni_callback = sni
if ca != "-":
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"#;

impl PyTls {
    pub fn start(cert: &(String, String), client_ca: Option<&str>) -> PyTls {
        let port = super::common::free_port();
        let mut child = Command::new("python3")
            .args([
                "-c",
                PY_SERVER,
                &port.to_string(),
                &cert.0,
                &cert.1,
                client_ca.unwrap_or("-"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > end || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                panic!("python TLS origin did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        PyTls { child, port }
    }
}

impl Drop for PyTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
