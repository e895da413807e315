//! Real Envoy v3 configs from public sources, kept unchanged in `tests/envoy-configs/` (each
//! file's first line is a comment giving its source URL). Every one is run through
//! `baton --mode validate`: it either loads, or is refused with every error naming a field path
//! and a reason. The expected outcome of each file is recorded below (the paths of its errors;
//! none for a file that loads), so any change in what baton accepts is noticed. The configs that load are then served: the only rewrite is of socket addresses
//! (listeners and admin to 127.0.0.1 on free ports, cluster endpoints to a test upstream on
//! 127.0.0.1), because the originals name docker hosts and fixed ports; everything else is
//! served as written.

mod authz_grpc_support;
mod common;
mod compress_support;
mod datadog_support;
mod grpc_support;
mod tls_support;

use common::authz::Authz;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, run_baton_cmd, Baton, RawConn, Upstream};
use serde_yaml::Value;

/// Each corpus file and the paths of the errors baton reports for it, sorted (empty: it
/// loads).
const CORPUS: &[(&str, &[&str])] = &[
    ("envoy--configs-envoy-demo.yaml", &[]),
    ("envoy--configs-encapsulate_in_http1_connect.yaml", &[]),
    ("envoy--configs-envoy-default.yaml", &[]),
    ("envoy--configs-google-vrp-envoy-edge.yaml", &[]),
    ("envoy--configs-google-vrp-envoy-origin.yaml", &[]),
    ("envoy--configs-terminate_http1_connect.yaml", &[]),
    (
        "envoy--configs-proxy_connect.yaml",
        &["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http2_protocol_options.allow_connect"],
    ),
    ("envoy--docs-root-configuration-best_practices-_include-edge.yaml", &[]),
    (
        "envoy--configs-google_com_proxy.v2.yaml",
        &[
            "static_resources.clusters[0].transport_socket.typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "envoy--configs-using_deprecated_config.v2.yaml",
        &[
            "layered_runtime.layers[0].static_layer.envoy.deprecated_features:envoy.api.v2.route.CorsPolicy.allow_origin",
            "layered_runtime.layers[0].static_layer.envoy.deprecated_features:envoy.config.trace.v2.ZipkinConfig.HTTP_JSON_V1",
            "static_resources.clusters[0].transport_socket.typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
            "tracing.http.config",
            "tracing.http.typed_config",
        ],
    ),
    (
        "examples--brotli-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.compressor_library.typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.compressor_library.typed_config.@type",
        ],
    ),
    (
        "examples--cache-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    ("examples--cors-backend-envoy.yaml", &[]),
    ("examples--cors-frontend-envoy.yaml", &[]),
    ("examples--csrf-crosssite-envoy.yaml", &[]),
    ("examples--csrf-samesite-envoy.yaml", &[]),
    ("examples--datadog-tracing-envoy.yaml", &[]),
    ("examples--double-proxy-envoy-backend.yaml", &[]),
    ("examples--double-proxy-envoy-frontend.yaml", &[]),
    ("examples--double-proxy-envoy.yaml", &[]),
    (
        "examples--dynamic-config-cp-envoy.yaml",
        &[
            "dynamic_resources.ads_config",
            "dynamic_resources.cds_config.ads",
            "dynamic_resources.lds_config.ads",
        ],
    ),
    ("examples--dynamic-config-fs-envoy.yaml", &[]),
    ("examples--ext_authz-config-grpc-service-v3.yaml", &[]),
    ("examples--ext_authz-config-http-service.yaml", &[]),
    ("examples--ext_authz-config-opa-service-v3.yaml", &[]),
    ("examples--fault-injection-envoy.yaml", &[]),
    ("examples--front-proxy-envoy.yaml", &[]),
    ("examples--front-proxy-service-envoy-2.yaml", &[]),
    ("examples--front-proxy-service-envoy.yaml", &[]),
    (
        "examples--golang-http-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--golang-network-envoy.yaml",
        &[
            "static_resources.clusters[0].type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--grpc-bridge-client-envoy-proxy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    ("examples--grpc-bridge-server-envoy-proxy.yaml", &[]),
    ("examples--gzip-envoy.yaml", &[]),
    (
        "examples--jaeger-tracing-envoy.yaml",
        &[],
    ),
    (
        "examples--jaeger-tracing-service1-envoy-jaeger.yaml",
        &[],
    ),
    (
        "examples--jaeger-tracing-service2-envoy-jaeger.yaml",
        &[],
    ),
    (
        "examples--kafka-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--kafka-mesh-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--load-reporting-service-envoy.yaml",
        &[
            "cluster_manager",
        ],
    ),
    ("examples--local_ratelimit-envoy.yaml", &[]),
    (
        "examples--locality-load-balancing-envoy.yaml",
        &[],
    ),
    (
        "examples--lua-cluster-specifier-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.inline_cluster_specifier_plugin",
        ],
    ),
    (
        "examples--lua-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config.lua_filter_with_custom_name_1.@type",
        ],
    ),
    (
        "examples--mysql-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--opentelemetry-envoy-1.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
        ],
    ),
    (
        "examples--opentelemetry-envoy-2.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
        ],
    ),
    (
        "examples--opentelemetry-envoy-front-proxy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
        ],
    ),
    (
        "examples--postgres-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    ("examples--rbac-envoy.yaml", &[]),
    (
        "examples--redis-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type",
        ],
    ),
    ("examples--route-mirror-envoy.yaml", &[]),
    (
        "examples--single-page-app-envoy.yaml",
        &[
            "dynamic_resources.lds_config.path_config_source.path",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
            "static_resources.listeners[1].access_log",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--skywalking-envoy-1.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
        ],
    ),
    (
        "examples--skywalking-envoy-2.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
        ],
    ),
    (
        "examples--skywalking-envoy-front-proxy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.start_child_span",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.@type",
        ],
    ),
    (
        "examples--tls-envoy-http-https.yaml",
        &[],
    ),
    (
        "examples--tls-envoy-https-http.yaml",
        &[],
    ),
    (
        "examples--tls-envoy-https-https.yaml",
        &[],
    ),
    (
        "examples--tls-envoy-https-passthrough.yaml",
        &[],
    ),
    ("examples--tls-inspector-envoy.yaml", &[]),
    (
        "examples--tls-sni-envoy-client.yaml",
        &[],
    ),
    ("examples--tls-sni-envoy.yaml", &[]),
    (
        "examples--udp-envoy.yaml",
        &[
            "static_resources.listeners[0].address.socket_address.protocol",
        ],
    ),
    (
        "examples--wasm-cc-envoy.yaml",
        &[
            "static_resources.clusters[1].typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.http_filters",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type",
        ],
    ),
    (
        "examples--websocket-envoy-ws-route.yaml",
        &[],
    ),
    (
        "examples--websocket-envoy-ws.yaml",
        &[],
    ),
    (
        "examples--websocket-envoy-wss-passthrough.yaml",
        &[],
    ),
    (
        "examples--websocket-envoy-wss.yaml",
        &[],
    ),
    (
        "examples--zipkin-envoy-1.yaml",
        &[],
    ),
    (
        "examples--zipkin-envoy-2.yaml",
        &[],
    ),
    (
        "examples--zipkin-envoy-front-proxy.yaml",
        &[],
    ),
    (
        "examples--zstd-envoy.yaml",
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.compressor_library.typed_config.@type",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.compressor_library.typed_config.@type",
        ],
    ),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envoy-configs")
}

/// Splits `--mode validate`'s stderr into `(path, message)` pairs: one error prints as
/// `PATH: MESSAGE`, several as `N errors:` and one indented error per line.
fn errors(stderr: &str, file: &str) -> Vec<(String, String)> {
    let prefix = format!("baton: configuration '{file}': ");
    let rest = stderr
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{file}: unexpected stderr: {stderr}"));
    let mut lines = rest.lines();
    let first = lines.next().unwrap_or_default();
    let items: Vec<&str> = match first.strip_suffix(" errors:") {
        Some(n) if n.parse::<usize>().is_ok() => lines.map(|l| l.trim_start()).collect(),
        _ => vec![rest],
    };
    items
        .iter()
        .map(|e| match e.split_once(": ") {
            Some((p, m)) => (p.to_string(), m.to_string()),
            None => panic!("{file}: an error without a field path: {e}"),
        })
        .collect()
}

#[test]
fn the_corpus_is_real_configs_with_their_sources() {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/envoy-configs")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every corpus file has an expected outcome, and no other"
    );
    assert!(CORPUS.len() >= 30, "{} configs", CORPUS.len());
    for (f, _) in CORPUS {
        let text = std::fs::read_to_string(dir().join(f)).expect("read corpus file");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# source: https://github.com/envoyproxy/"),
            "{f}: first line must give the source URL, got {first:?}"
        );
    }
}

/// The certificate files the double-proxy and tls-sni examples name (`certs/…`, relative to
/// the working directory of the example's container), made for this run: one CA
/// (`certs/cacert.pem`) signs the double-proxy backend's server certificate, its frontend's
/// client certificate and the tls-sni example's two domain certificates, each with the name
/// the example expects. Baton runs in `root()`, as Envoy runs in the example's container.
struct ExampleCerts {
    pki: tls_support::Pki,
}

impl ExampleCerts {
    fn new(tag: &str) -> ExampleCerts {
        let pki = tls_support::Pki::new(tag);
        let certs = pki.dir.join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let leaves = [
            (
                "proxy-postgres-backend.example.com",
                "servercert",
                "serverkey",
            ),
            (
                "proxy-postgres-frontend.example.com",
                "clientcert",
                "clientkey",
            ),
            ("domain1.example.com", "domain1.crt", "domain1.key"),
            ("domain2.example.com", "domain2.crt", "domain2.key"),
        ];
        for (name, crt, key) in leaves {
            // Envoy's edge example serves example.com and www.example.com with servercert.
            let san = match crt {
                "servercert" => format!("DNS:{name},DNS:example.com,DNS:www.example.com"),
                _ => format!("DNS:{name}"),
            };
            let (c, k) = pki.leaf(crt, &format!("/CN={name}"), &san);
            std::fs::copy(c, certs.join(format!("{crt}.pem"))).expect("copy certificate");
            std::fs::copy(k, certs.join(format!("{key}.pem"))).expect("copy key");
        }
        std::fs::copy(pki.ca(), certs.join("cacert.pem")).expect("copy CA");
        ExampleCerts { pki }
    }

    fn root(&self) -> &Path {
        &self.pki.dir
    }

    fn ca(&self) -> String {
        self.pki.ca()
    }

    /// `certs/NAME` under the root.
    fn file(&self, name: &str) -> String {
        self.pki.path(&format!("certs/{name}"))
    }
}

const DYNAMIC_FS: &str = "examples--dynamic-config-fs-envoy.yaml";

/// The dynamic-config-fs example's LDS and CDS files (kept beside the corpus, in
/// `tests/envoy-resources/`), where its bootstrap names them: `/var/lib/envoy/`. The test
/// cannot write there, so baton runs in a mount namespace of the test's own with this
/// directory mounted on `/var/lib` (nothing else there is read).
struct VarLib {
    dir: PathBuf,
    arg: String,
}

impl VarLib {
    /// The files, each passed through `edit(text, name)` first.
    fn new(tag: &str, edit: impl Fn(&str, &str) -> String) -> VarLib {
        let dir = std::env::temp_dir().join(format!("baton-varlib-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("envoy")).expect("var lib dir");
        let from =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/envoy-resources/dynamic-config-fs");
        for name in ["lds.yaml", "cds.yaml"] {
            let text = std::fs::read_to_string(from.join(name)).expect("resource file");
            std::fs::write(dir.join("envoy").join(name), edit(&text, name)).expect("write");
        }
        let arg = dir.to_str().expect("utf-8 path").to_string();
        VarLib { dir, arg }
    }

    /// `/var/lib/envoy/NAME` as the test sees it.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join("envoy").join(name)
    }

    /// A command prefix running baton in the namespace, in working directory `cwd`.
    fn wrapper<'a>(&'a self, cwd: &'a str) -> Vec<&'a str> {
        bind_mounted(&self.arg, "/var/lib", cwd)
    }
}

/// A command prefix running baton in a mount namespace of the test's own with directory
/// `dir` mounted on `at` (a path an example names that the test cannot write), in working
/// directory `cwd`.
fn bind_mounted<'a>(dir: &'a str, at: &'a str, cwd: &'a str) -> Vec<&'a str> {
    vec![
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$0\" \"$1\" && cd \"$2\" && shift 2 && exec \"$@\"",
        dir,
        at,
        cwd,
    ]
}

impl Drop for VarLib {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_corpus_config_loads_or_is_refused_naming_the_field() {
    let certs = ExampleCerts::new("corpus_validate");
    let root = certs.root().to_str().expect("utf-8 path").to_string();
    let var_lib = VarLib::new("corpus_validate", |text, _| text.to_string());
    let mut changed = Vec::new();
    for (f, expected) in CORPUS {
        let rel = format!("tests/envoy-configs/{f}");
        let path = dir().join(f);
        // Run where the examples' certificate files are, as in their containers, and the
        // dynamic-config-fs example with its resource files where it reads them.
        let wrapper: Vec<&str> = if *f == DYNAMIC_FS {
            var_lib.wrapper(&root)
        } else {
            vec!["env", "-C", &root]
        };
        let (status, out, err) = run_baton_cmd(
            &wrapper,
            &[
                "--mode",
                "validate",
                "-c",
                path.to_str().expect("utf-8 path"),
            ],
            Duration::from_secs(30),
        );
        let got: Vec<(String, String)> = if status.success() {
            assert_eq!(out, format!("configuration '{}' OK\n", path.display()));
            Vec::new()
        } else {
            assert_eq!(status.code(), Some(1), "{rel}: {err}");
            errors(&err, &path.display().to_string())
        };
        for (p, m) in &got {
            assert!(!p.is_empty() && !m.is_empty(), "{rel}: {p:?}: {m:?}");
        }
        let mut paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort();
        if paths != *expected {
            changed.push(format!(
                "{rel}:\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "outcomes changed:\n{}",
        changed.join("\n")
    );
}

/// A corpus config with its socket addresses rewritten for this machine: listeners and the
/// admin on 127.0.0.1 at free ports (returned in order), every cluster endpoint at
/// 127.0.0.1:`upstream`. Nothing else changes.
fn on_loopback(file: &str, upstream: u16) -> (String, Vec<u16>) {
    let text = std::fs::read_to_string(dir().join(file)).expect("read corpus file");
    let mut doc: Value = serde_yaml::from_str(&text).expect("corpus YAML");
    let mut ports = Vec::new();
    let sr = doc.get_mut("static_resources").expect("static_resources");
    for l in sr
        .get_mut("listeners")
        .and_then(Value::as_sequence_mut)
        .expect("listeners")
    {
        let port = free_port();
        set_address(l.get_mut("address").expect("listener address"), port);
        ports.push(port);
    }
    // A list of clusters, or one written as a map (Envoy's Google VRP edge config), or none
    // (its origin config).
    let clusters: Vec<&mut Value> = match sr.get_mut("clusters") {
        Some(Value::Sequence(list)) => list.iter_mut().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    for c in clusters {
        let eps = c
            .get_mut("load_assignment")
            .and_then(|la| la.get_mut("endpoints"))
            .and_then(Value::as_sequence_mut)
            .expect("endpoints");
        for locality in eps {
            for ep in locality
                .get_mut("lb_endpoints")
                .and_then(Value::as_sequence_mut)
                .expect("lb_endpoints")
            {
                let addr = ep
                    .get_mut("endpoint")
                    .and_then(|e| e.get_mut("address"))
                    .expect("endpoint address");
                set_address(addr, upstream);
            }
        }
    }
    if let Some(admin) = doc.get_mut("admin").and_then(|a| a.get_mut("address")) {
        set_address(admin, free_port());
    }
    (serde_yaml::to_string(&doc).expect("YAML"), ports)
}

fn set_address(address: &mut Value, port: u16) {
    let sa = address.get_mut("socket_address").expect("socket_address");
    sa["address"] = Value::from("127.0.0.1");
    sa["port_value"] = Value::from(port);
}

/// One request on a fresh connection.
fn request(port: u16, raw: &str) -> common::Response {
    let mut c = RawConn::connect(port);
    c.send(raw.as_bytes());
    c.expect_response(false)
}

/// A corpus config that loads, served on loopback in front of an upstream named `name`.
fn serve(file: &str, name: &str) -> (Baton, Upstream) {
    assert!(loads(file), "{file}");
    let up = Upstream::start(name);
    let (yaml, _) = on_loopback(file, up.port());
    (Baton::start(&yaml), up)
}

fn loads(file: &str) -> bool {
    CORPUS.iter().any(|(f, e)| *f == file && e.is_empty())
}

/// The zipkin and jaeger-tracing examples: every request gets a sampled span whose B3
/// context reaches the upstream; an inbound (ingress) listener answers with the route
/// decorator's operation, an outbound (egress) one sends it upstream; five spans make a
/// report, POSTed as JSON to the collector cluster (here the test upstream).
#[test]
fn tracing_examples_propagate_b3_and_report_spans_to_the_collector() {
    // Per listener: (path, operation, outbound).
    type Listeners = &'static [(&'static str, &'static str, bool)];
    let cases: &[(&str, Listeners)] = &[
        (
            "examples--zipkin-envoy-1.yaml",
            &[
                ("/", "routeToService1", false),
                ("/", "routeToEnvoy2", true),
            ],
        ),
        (
            "examples--zipkin-envoy-2.yaml",
            &[("/", "routeToService2", false)],
        ),
        (
            "examples--zipkin-envoy-front-proxy.yaml",
            &[("/trace/1", "routeToEnvoy1", true)],
        ),
        (
            "examples--jaeger-tracing-envoy.yaml",
            &[("/", "checkAvailability", true)],
        ),
        (
            "examples--jaeger-tracing-service1-envoy-jaeger.yaml",
            &[
                ("/", "checkAvailability", false),
                ("/trace/2", "checkStock", true),
            ],
        ),
        (
            "examples--jaeger-tracing-service2-envoy-jaeger.yaml",
            &[("/", "checkStock", false)],
        ),
    ];
    for (file, listeners) in cases {
        assert!(loads(file), "{file}");
        let up = Upstream::start("service");
        let (yaml, ports) = on_loopback(file, up.port());
        let b = Baton::start(&yaml);
        let proxied = || {
            up.seen()
                .into_iter()
                .filter(|s| s.target != "/api/v2/spans")
                .collect::<Vec<_>>()
        };
        for i in 0..5 {
            let (path, op, outbound) = listeners[i % listeners.len()];
            let port = ports[i % listeners.len()];
            let r = request(
                port,
                &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            );
            assert_eq!(r.status(), 200, "{file} {path}");
            let seen = proxied().pop().expect("proxied");
            let trace = seen.header("x-b3-traceid").expect("x-b3-traceid");
            assert_eq!(trace.len(), 16, "{file}");
            assert!(seen.header("x-b3-spanid").is_some(), "{file}");
            assert_eq!(seen.header("x-b3-sampled"), Some("1"), "{file}");
            let rid = seen.header("x-request-id").expect("x-request-id");
            assert_eq!(rid.as_bytes()[14], b'9', "{file}: sampled");
            if outbound {
                assert_eq!(
                    seen.header("x-envoy-decorator-operation"),
                    Some(op),
                    "{file}"
                );
                assert_eq!(r.header("x-envoy-decorator-operation"), None, "{file}");
            } else {
                assert_eq!(seen.header("x-envoy-decorator-operation"), None, "{file}");
                assert_eq!(r.header("x-envoy-decorator-operation"), Some(op), "{file}");
            }
            if file.contains("front-proxy") {
                // Its response_headers_to_add read the request as the tracer left it.
                assert_eq!(r.header("x-b3-traceid"), Some(trace), "{file}");
                assert_eq!(r.header("x-request-id"), Some(rid), "{file}");
            }
        }
        let report = || {
            up.seen()
                .into_iter()
                .find(|s| s.target == "/api/v2/spans" && s.method == "POST")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while report().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let report = report().unwrap_or_else(|| panic!("{file}: no report\n{}", b.log()));
        assert_eq!(
            report.header("content-type"),
            Some("application/json"),
            "{file}"
        );
        assert!(report.body_len > 2, "{file}");
    }
}

/// The datadog-tracing example, its `datadog_agent` cluster rewritten to a test agent: every
/// request's Datadog and W3C context reaches the upstream, and its span (service
/// `envoy-demo`) is reported to the agent within the 2 s flush; the health check filter
/// answers `/healthcheck` itself.
#[test]
fn datadog_example_sends_the_context_upstream_and_the_spans_to_the_agent() {
    let file = "examples--datadog-tracing-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("http");
    let agent = datadog_support::Agent::start("{}", "datadog_agent");
    let (yaml, ports) = on_loopback(file, up.port());
    let mut doc: Value = serde_yaml::from_str(&yaml).expect("YAML");
    let clusters = doc["static_resources"]["clusters"]
        .as_sequence_mut()
        .expect("clusters");
    let dd = clusters
        .iter_mut()
        .find(|c| c["name"] == "datadog_agent")
        .expect("datadog_agent");
    set_address(
        &mut dd["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
        agent.port,
    );
    let b = Baton::start(&serde_yaml::to_string(&doc).expect("YAML"));
    let r = request(
        ports[0],
        "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    let seen = up.seen().pop().expect("proxied");
    let trace = seen
        .header("x-datadog-trace-id")
        .expect("x-datadog-trace-id");
    let span = seen
        .header("x-datadog-parent-id")
        .expect("x-datadog-parent-id");
    assert_eq!(seen.header("x-datadog-sampling-priority"), Some("1"));
    let low: u64 = trace.parse().expect("decimal");
    let tp = seen.header("traceparent").expect("traceparent");
    assert!(
        tp.starts_with("00-") && tp.ends_with(&format!("{low:016x}-{low:016x}-01")),
        "{tp}"
    );
    assert!(seen.header("x-request-id").is_some());
    let j = agent.span(span);
    for want in [
        format!("\"trace_id\": {trace},"),
        "\"service\": \"envoy-demo\"".into(),
        "\"name\": \"envoy.proxy\"".into(),
        // Outbound, no decorator: Envoy's operation `egress <host>`.
        "\"resource\": \"egress x\"".into(),
        "\"http.url\": \"http://x/hello\"".into(),
    ] {
        assert!(j.contains(&want), "{want} not in {j}\n{}", b.log());
    }
    assert!(agent.lines().iter().all(|l| !l.starts_with("BAD")));
    // The health check filter answers, not the upstream.
    let before = up.seen().len();
    let r = request(
        ports[0],
        "GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(up.seen().len(), before);
}

#[test]
fn front_proxy_service_envoy_routes_its_prefix_and_404s_the_rest() {
    // envoyproxy/examples front-proxy/service-envoy.yaml: a STRICT_DNS cluster behind one
    // prefix route. Envoy: the prefix is proxied as is, anything else is 404 with no body.
    let file = "examples--front-proxy-service-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("service1");
    let (yaml, ports) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let r = request(
        b.port,
        "GET /service/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/service/1");
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("http"));
    assert!(seen[0].header("x-request-id").is_some());
    let r = request(
        b.port,
        "GET /service/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
    assert_eq!(r.body_str(), "");
    assert_eq!(up.requests(), 1);
}

#[test]
fn front_proxy_envoy_serves_http_and_https_by_prefix() {
    // envoyproxy/examples front-proxy/envoy.yaml: the same routes on a plain listener and on
    // a TLS one (the example's inline certificate), two STRICT_DNS clusters, and a runtime
    // connection limit for a listener name no listener has (it limits nothing, as in Envoy).
    let file = "examples--front-proxy-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("service");
    let (yaml, ports) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let r = request(
        ports[0],
        "GET /service/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    let out = common::curl_ok(&["-k", &format!("https://127.0.0.1:{}/service/2", ports[1])]);
    assert_eq!(out, up.greeting());
    let r = request(
        ports[0],
        "GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
    let seen = up.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/service/1", "/service/2"]);
    assert_eq!(seen[1].header("x-forwarded-proto"), Some("https"));
}

#[test]
fn envoy_demo_answers_get_with_its_html_page_and_post_with_an_empty_404() {
    // envoyproxy/envoy configs/envoy-demo.yaml: listener_0 proxies everything to the cluster
    // `loopback`, which is listener_1; listener_1 has a route_config without virtual hosts,
    // so every request there is a 404 local reply, and its local_reply_config gives a GET the
    // HTML page (text/html). Envoy: `curl -i :10000/` is that 404 page; a POST gets the
    // plain 404 with no body. The cluster endpoint is rewritten to listener_1's new port.
    let file = "envoy--configs-envoy-demo.yaml";
    assert!(loads(file));
    let (yaml, ports) = on_loopback(file, 1);
    let mut doc: Value = serde_yaml::from_str(&yaml).expect("YAML");
    doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        ["endpoint"]["address"]["socket_address"]["port_value"] = Value::from(ports[1]);
    let b = Baton::start(&serde_yaml::to_string(&doc).expect("YAML"));
    assert_eq!(b.port, ports[0]);
    let out = common::curl(&["-si", &format!("http://127.0.0.1:{}/", b.port)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    assert!(
        text.contains("\r\ncontent-type: text/html; charset=UTF-8\r\n"),
        "{text}"
    );
    let page = "<html>\n  <body>\n    <h1>Welcome to Envoy</h1>\n";
    assert!(text.contains(&format!("\r\n\r\n{page}")), "{text}");
    assert!(text.ends_with("</html>\n"), "{text}");
    for path in ["/", "/anything/else"] {
        let r = request(
            b.port,
            &format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"),
        );
        assert_eq!(r.status(), 404);
        assert_eq!(r.body_str(), "");
        assert!(r.header("content-type").is_none());
    }
    let r = request(
        b.port,
        "GET /anything/else HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
    assert!(r.body_str().contains("<h1>Welcome to Envoy</h1>"));
    // Straight to listener_1: the same page.
    let r = request(
        ports[1],
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
}

#[test]
fn double_proxy_envoy_forwards_everything_and_keeps_connections() {
    // envoyproxy/examples double-proxy/envoy.yaml: one catch-all route. Envoy: every path is
    // proxied, and a keep-alive client connection carries several requests.
    let (b, up) = serve("examples--double-proxy-envoy.yaml", "app");
    let mut c = RawConn::connect(b.port);
    for path in ["/", "/a/b?c=d"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: app\r\n\r\n").as_bytes());
        assert_eq!(c.expect_response(false).status(), 200);
    }
    let targets: Vec<String> = up.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/", "/a/b?c=d"]);
    assert_eq!(up.connections(), 1, "the upstream connection is reused");
}

#[test]
fn csrf_crosssite_envoy_logs_each_request_to_stdout_in_envoys_default_format() {
    // envoyproxy/examples csrf/crosssite/envoy.yaml: a stdout access log with no format.
    // Envoy writes its default format: [time] "METHOD PATH PROTOCOL" CODE FLAGS ...
    let (mut b, up) = serve("examples--csrf-crosssite-envoy.yaml", "service");
    let r = request(
        b.port,
        "GET /csrf/x HTTP/1.1\r\nHost: site\r\nUser-Agent: t/1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    assert!(
        b.wait_log("\"GET /csrf/x HTTP/1.1\" 200 - 0 ", Duration::from_secs(10)),
        "{}",
        b.log()
    );
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"GET /csrf/x HTTP/1.1\""))
        .expect("access log line");
    assert!(line.starts_with('['), "{line}");
    assert!(line.contains("\"t/1\""), "{line}");
    assert!(line.contains("\"site\""), "{line}");
    assert!(
        line.ends_with(&format!("\"127.0.0.1:{}\"", up.port())),
        "{line}"
    );
}

#[test]
fn cors_examples_answer_preflights_and_mark_allowed_origins() {
    // envoyproxy/examples cors/backend/envoy.yaml: the virtual host allows any origin (its
    // regex `\*` matches Envoy's wildcard check), /cors/disabled turns the filter off,
    // /cors/restricted allows only *.envoyproxy.io.
    let (b, up) = serve("examples--cors-backend-envoy.yaml", "backend");
    let preflight = |path: &str, origin: &str| {
        request(
            b.port,
            &format!(
                "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let r = preflight("/cors/open", "https://anything.test");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://anything.test")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(up.requests(), 0, "answered by the filter");
    let r = preflight("/cors/disabled", "https://anything.test");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(up.requests(), 1, "forwarded");
    let r = preflight("/cors/restricted", "https://www.envoyproxy.io");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://www.envoyproxy.io")
    );
    let r = preflight("/cors/restricted", "https://evil.test");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(
        up.requests(),
        2,
        "a preflight from a foreign origin is forwarded"
    );
    drop(b);
    // cors/frontend/envoy.yaml: the filter with no policy anywhere passes everything.
    let (b, up) = serve("examples--cors-frontend-envoy.yaml", "frontend");
    let r = request(
        b.port,
        "OPTIONS / HTTP/1.1\r\nHost: x\r\nOrigin: https://a.test\r\n\
         Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(up.requests(), 1);
}

#[test]
fn csrf_samesite_example_refuses_foreign_origins_where_enabled() {
    // envoyproxy/examples csrf/samesite/envoy.yaml: the virtual host's policy enables the
    // filter; /csrf/disabled turns it off, /csrf/shadow only counts, and
    // /csrf/additional_origin accepts any origin.
    let (b, up) = serve("examples--csrf-samesite-envoy.yaml", "service");
    let post = |path: &str, origin: &str| {
        request(
            b.port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: site.test\r\nOrigin: {origin}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let r = post("/submit", "https://evil.test");
    assert_eq!(r.status(), 403);
    assert_eq!(r.body_str(), "Invalid origin");
    assert_eq!(post("/submit", "https://site.test").status(), 200);
    assert_eq!(post("/csrf/disabled", "https://evil.test").status(), 200);
    assert_eq!(post("/csrf/shadow", "https://evil.test").status(), 200);
    assert_eq!(
        post("/csrf/additional_origin", "https://evil.test").status(),
        200
    );
    assert_eq!(up.requests(), 4);
}

#[test]
fn rbac_example_denies_requests_without_an_envoy_docs_referer() {
    // envoyproxy/examples rbac/envoy.yaml: a matcher tree denies (`illegal-referer`) any
    // request whose Referer is not an envoyproxy.io docs page, an absent one included; the
    // rest fall to `all-pass`.
    let (b, up) = serve("examples--rbac-envoy.yaml", "service");
    let get = |referer: &str| {
        request(
            b.port,
            &format!("GET / HTTP/1.1\r\nHost: x\r\n{referer}Connection: close\r\n\r\n"),
        )
    };
    let r = get("");
    assert_eq!(r.status(), 403);
    assert_eq!(r.body_str(), "RBAC: access denied");
    assert_eq!(get("Referer: https://example.com/\r\n").status(), 403);
    let ok = get("Referer: https://www.envoyproxy.io/docs/envoy/latest/\r\n");
    assert_eq!(ok.status(), 200);
    assert_eq!(
        get("Referer: http://envoyproxy.io/docs/envoy\r\n").status(),
        200
    );
    assert_eq!(up.requests(), 2);
}

#[test]
fn local_ratelimit_example_answers_429_past_its_bucket() {
    // envoyproxy/examples local_ratelimit/envoy.yaml: two tokens, two more every 5 s; past
    // them 429 `local_rate_limited` with the example's x-local-rate-limit header.
    let file = "examples--local_ratelimit-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("service");
    let (yaml, ports) = on_loopback(file, up.port());
    let _b = Baton::start(&yaml);
    let get = || {
        request(
            ports[1],
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    };
    assert_eq!(get().status(), 200);
    // A fill between two requests only delays the refusal.
    let refused = (0..10).map(|_| get()).find(|r| r.status() == 429);
    let r = refused.expect("a 429 within ten requests");
    assert_eq!(r.body_str(), "local_rate_limited");
    assert_eq!(r.header("x-local-rate-limit"), Some("true"));
}

#[test]
fn gzip_example_compresses_long_json_and_prometheus_text_for_gzip_clients() {
    // envoyproxy/examples gzip/envoy.yaml: JSON of at least 100 bytes without an ETag comes
    // back gzip-encoded to a client that accepts it, and decodes to the upstream's bytes; a
    // short one, one with an ETag (`disable_on_etag_header`) or a client without gzip gets
    // it as it is. The second listener does the same for the admin's text/plain stats. A
    // gzip upload is inflated before it reaches the upstream (`decompressor`).
    use compress_support::{json_body, python_gunzip, python_gzip, JsonOrigin};
    let file = "examples--gzip-envoy.yaml";
    assert!(loads(file));
    let origin = JsonOrigin::start();
    let (yaml, ports) = on_loopback(file, origin.port);
    let _b = Baton::start(&yaml);
    let get = |port: u16, path: &str, ae: &str| {
        request(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{ae}Connection: close\r\n\r\n"),
        )
    };
    let gz = "Accept-Encoding: gzip\r\n";
    let r = get(ports[0], "/json/4000", gz);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(python_gunzip(&r.body) == json_body(4000));
    for (path, ae) in [
        ("/json/99", gz),
        ("/json/4000?etag=%22abc%22", gz),
        ("/json/4000", ""),
    ] {
        let r = get(ports[0], path, ae);
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert!(r.body.starts_with(b"{\"name\""), "{path}");
    }
    let r = get(ports[1], "/stats/prometheus", gz);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(python_gunzip(&r.body).starts_with(b"# TYPE envoy_cluster_upstream_rq counter"));
    let body = json_body(30_000);
    let packed = python_gzip(&body);
    let mut c = RawConn::connect(ports[0]);
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            packed.len()
        )
        .as_bytes(),
    );
    c.send(&packed);
    let r = c.expect_response(false);
    assert_eq!(r.header("x-seen-ce"), Some("none"));
    assert!(r.body == body, "{} bytes back", r.body.len());
}

#[test]
fn route_mirror_example_shadows_each_request_to_its_mirror_cluster() {
    // envoyproxy/examples route-mirror/envoy.yaml: /service/1 is mirrored to
    // service1-mirror, /service/2 to the cluster its x-mirror-cluster header names. Every
    // cluster is the test upstream here, so it sees each request and its shadow (Host with
    // `-shadow`).
    let (b, up) = serve("examples--route-mirror-envoy.yaml", "service");
    let hosts = |n: usize| {
        assert!(up.wait_seen(n, Duration::from_secs(10)), "{:?}", up.seen());
        let mut h: Vec<String> = up
            .seen()
            .iter()
            .map(|r| format!("{} {}", r.target, r.header("host").unwrap_or("")))
            .collect();
        h.sort();
        h
    };
    let get = |path: &str, extra: &str| {
        request(
            b.port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"),
        )
    };
    assert_eq!(get("/service/1", "").status(), 200);
    assert_eq!(hosts(2), ["/service/1 x", "/service/1 x-shadow"]);
    assert_eq!(get("/service/2", "").status(), 200);
    assert_eq!(
        get("/service/2", "x-mirror-cluster: service2-mirror\r\n").status(),
        200
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        hosts(5),
        [
            "/service/1 x",
            "/service/1 x-shadow",
            "/service/2 x",
            "/service/2 x",
            "/service/2 x-shadow"
        ]
    );
}

/// A WebSocket echo server on loopback for the websocket examples: each connection is
/// handshaken and its text/binary messages echoed until the client closes.
fn ws_echo_server() -> (u16, std::thread::JoinHandle<()>) {
    use baton_bench::wire::Reader;
    use baton_bench::ws;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        // One session per test is all the examples' tests open.
        let Ok((s, _)) = l.accept() else { return };
        let mut r = Reader::new(s);
        let Ok(Some(head)) = r.read_request_head() else {
            return;
        };
        if ws::server_handshake(r.get_mut(), &head).is_err() {
            return;
        }
        while let Ok(Some(f)) = ws::read_frame(&mut r, true) {
            let reply = match f.opcode {
                ws::OP_CLOSE => ws::encode(ws::OP_CLOSE, &f.payload, None),
                op => ws::encode(op, &f.payload, None),
            };
            if std::io::Write::write_all(r.get_mut(), &reply).is_err() || f.opcode == ws::OP_CLOSE {
                return;
            }
        }
    });
    (port, h)
}

/// The websocket examples (`upgrade_configs` on the connection manager, and per route): a
/// real WebSocket handshake through baton gets the upstream's 101 and the session echoes.
#[test]
fn websocket_examples_carry_a_websocket_session() {
    use baton_bench::wire::Reader;
    use baton_bench::ws;
    for file in [
        "examples--websocket-envoy-ws.yaml",
        "examples--websocket-envoy-ws-route.yaml",
    ] {
        assert!(loads(file), "{file}");
        let (up, server) = ws_echo_server();
        let (yaml, _) = on_loopback(file, up);
        let b = Baton::start(&yaml);
        let s = std::net::TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut r = Reader::new(s);
        let mut rng = ws::Rng::new(7);
        ws::client_handshake(&mut r, "app", "/ws", &mut rng).expect("handshake through baton");
        for i in 0..20u32 {
            let msg = format!("message {i} through {file}");
            let frame = ws::encode(
                ws::OP_TEXT,
                msg.as_bytes(),
                Some(rng.next_u32().to_be_bytes()),
            );
            std::io::Write::write_all(r.get_mut(), &frame).expect("write");
            let f = ws::read_frame(&mut r, false)
                .expect("read echo")
                .expect("an echo, not EOF");
            assert_eq!((f.opcode, f.payload), (ws::OP_TEXT, msg.into_bytes()));
        }
        let close = ws::encode(ws::OP_CLOSE, &[3, 232], Some([1, 2, 3, 4]));
        std::io::Write::write_all(r.get_mut(), &close).expect("write close");
        let f = ws::read_frame(&mut r, false)
            .expect("close echo")
            .expect("close");
        assert_eq!(f.opcode, ws::OP_CLOSE);
        server.join().expect("echo server");
    }
}

#[test]
fn tls_https_http_example_terminates_tls_with_envoys_own_certificate() {
    // envoyproxy/examples tls/envoy-https-http.yaml: TLS on the listener with the example's
    // inline (X.509 v1, self-signed) certificate, plain HTTP to the service. curl -k as in the
    // example's own instructions.
    let file = "examples--tls-envoy-https-http.yaml";
    assert!(loads(file));
    let up = Upstream::start("service-http");
    let (yaml, ports) = on_loopback(file, up.port());
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let out = common::curl_ok(&["-k", &format!("https://127.0.0.1:{}/", b.port)]);
    assert_eq!(out, up.greeting());
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}

#[test]
fn tls_https_passthrough_example_passes_tls_through_to_the_service() {
    // envoyproxy/examples tls/envoy-https-passthrough.yaml: a tcp_proxy to the HTTPS
    // service; the client's TLS session is the service's own (its certificate, its SNI).
    let file = "examples--tls-envoy-https-passthrough.yaml";
    assert!(loads(file));
    let pki = tls_support::Pki::new("https_passthrough_example");
    let cert = pki.leaf("svc", "/CN=service-https", "DNS:service-https");
    let origin = tls_support::PyTls::start(&cert, None);
    let (yaml, ports) = on_loopback(file, origin.port);
    let b = Baton::start(&yaml);
    assert_eq!(b.port, ports[0]);
    let out = common::curl_ok(&[
        "--cacert",
        &pki.ca(),
        "--resolve",
        &format!("service-https:{}:127.0.0.1", b.port),
        &format!("https://service-https:{}/", b.port),
    ]);
    assert!(out.starts_with("secure "), "{out}");
    assert!(
        out.contains(" service-https "),
        "the SNI reached the service: {out}"
    );
}

#[test]
fn tls_inspector_example_passes_tls_through_by_alpn() {
    // envoyproxy/examples tls-inspector/envoy.yaml: one listener, three tcp_proxy chains. A TLS
    // client offering h2 goes to service-https1, one offering only http/1.1 to service-https0
    // (both passed through: the session is the service's own), anything else (plain HTTP) to
    // service-http. Each service here has its own CA, so a client trusting one CA only gets
    // through when its chain reached that service.
    let file = "examples--tls-inspector-envoy.yaml";
    assert!(loads(file));
    let (pki1, pki0) = (
        tls_support::Pki::new("inspector_h2"),
        tls_support::Pki::new("inspector_h1"),
    );
    let https1 = tls_support::PyTls::start(&pki1.leaf("s1", "/CN=s", "DNS:s.test"), None);
    let https0 = tls_support::PyTls::start(&pki0.leaf("s0", "/CN=s", "DNS:s.test"), None);
    let http = Upstream::start("service-http");
    let (yaml, ports) = on_loopback(file, http.port());
    let yaml = point_clusters(
        &yaml,
        &[
            ("service-https1", https1.port),
            ("service-https0", https0.port),
        ],
    );
    // (The admin comes first in this file: the harness waits on its port.)
    let _b = Baton::start(&yaml);
    let port = ports[0];
    let https = |alpn: &str, ca: &str| {
        common::curl(&[
            alpn,
            "--cacert",
            ca,
            "--resolve",
            &format!("s.test:{port}:127.0.0.1"),
            &format!("https://s.test:{port}/"),
        ])
    };
    let ok = |o: std::process::Output| {
        let body = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        body
    };
    // curl --http2 offers h2 and http/1.1: the h2 chain; --http1.1 offers http/1.1 only.
    assert!(ok(https("--http2", &pki1.ca())).starts_with("secure "));
    assert!(ok(https("--http1.1", &pki0.ca())).starts_with("secure "));
    assert!(
        !https("--http2", &pki0.ca()).status.success(),
        "h2 reached service-https0"
    );
    assert!(
        !https("--http1.1", &pki1.ca()).status.success(),
        "http/1.1 reached service-https1"
    );
    let plain = common::curl_ok(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(plain, http.greeting());
}

/// `yaml` with the first endpoint of each named cluster at 127.0.0.1:port.
fn point_clusters(yaml: &str, to: &[(&str, u16)]) -> String {
    let mut doc: Value = serde_yaml::from_str(yaml).expect("yaml");
    for (cluster, port) in to {
        let clusters = doc["static_resources"]["clusters"]
            .as_sequence_mut()
            .expect("clusters");
        let c = clusters
            .iter_mut()
            .find(|c| c["name"].as_str() == Some(cluster))
            .expect("cluster");
        let ep = &mut c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        set_address(&mut ep["address"], *port);
    }
    serde_yaml::to_string(&doc).expect("yaml")
}

/// A TCP service on 127.0.0.1 that echoes each connection's bytes (the double-proxy
/// example's PostgreSQL stands behind the proxies; any byte stream shows the same).
fn tcp_echo() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let port = l.local_addr().expect("echo address").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().expect("clone echo stream");
                let mut r = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    port
}

/// A TLS client to 127.0.0.1:port trusting a CA, with an optional client certificate: sends
/// `ping` and prints `GOT <reply>`, `GOT EOF`, or `ERR <error>`.
const TLS_PING: &str = r#"
import socket, ssl, sys
port, ca, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
if len(sys.argv) > 5:
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(b"ping")
            data = s.recv(100)
            print("GOT", data.decode() if data else "EOF", flush=True)
except (ssl.SSLError, OSError) as e:
    print("ERR", type(e).__name__, e, flush=True)
"#;

#[test]
fn double_proxy_frontend_and_backend_carry_tcp_over_mutual_tls() {
    // envoyproxy/examples double-proxy: envoy-frontend.yaml takes plain TCP and carries it over
    // TLS, presenting its client certificate and checking the backend's name, to
    // envoy-backend.yaml, which requires a client certificate naming the frontend and passes
    // the bytes on to the database (here an echo service).
    let (back, front) = (
        "examples--double-proxy-envoy-backend.yaml",
        "examples--double-proxy-envoy-frontend.yaml",
    );
    assert!(loads(back) && loads(front));
    let certs = ExampleCerts::new("double_proxy");
    let (yaml, back_ports) = on_loopback(back, tcp_echo());
    let backend = Baton::start_in(certs.root(), &yaml);
    let (yaml, front_ports) = on_loopback(front, backend.port);
    let frontend = Baton::start_in(certs.root(), &yaml);
    assert_eq!(
        (backend.port, frontend.port),
        (back_ports[0], front_ports[0])
    );
    for _ in 0..2 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", frontend.port)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        for msg in [&b"SELECT 1;"[..], &b"SELECT 2;"[..]] {
            std::io::Write::write_all(&mut c, msg).expect("send");
            let mut got = vec![0; msg.len()];
            std::io::Read::read_exact(&mut c, &mut got).expect("echo through both proxies");
            assert_eq!(got, msg);
        }
    }
    // The backend's side of the mutual TLS: its own client gets through, a client without a
    // certificate or with one naming someone else does not.
    let other = certs.pki.leaf(
        "other",
        "/CN=proxy-other.example.com",
        "DNS:proxy-other.example.com",
    );
    let ping = |cert: Option<(&str, &str)>| {
        let port = backend.port.to_string();
        let ca = certs.ca();
        let mut args = vec![
            port.as_str(),
            ca.as_str(),
            "proxy-postgres-backend.example.com",
        ];
        if let Some((c, k)) = cert {
            args.extend([c, k]);
        }
        let o = python_cmd(TLS_PING, &args).output().expect("python3");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (fc, fk) = (certs.file("clientcert.pem"), certs.file("clientkey.pem"));
    assert_eq!(ping(Some((&fc, &fk))), "GOT ping");
    let refused = [ping(None), ping(Some((&other.0, &other.1)))];
    for r in refused {
        assert!(r.starts_with("ERR") || r == "GOT EOF", "{r}");
    }
}

#[test]
fn grpc_bridge_server_example_carries_grpc_calls_to_an_http2_grpc_server() {
    // envoyproxy/examples grpc-bridge/server/envoy-proxy.yaml: codec AUTO, a route matching
    // gRPC requests only (`grpc: {}`), an HTTP/2 cluster. A real gRPC client and server: a
    // unary call, an error with its message (Trailers-Only), a server stream of five, one of
    // three ended by a non-zero status in its trailers.
    let file = "examples--grpc-bridge-server-envoy-proxy.yaml";
    assert!(loads(file));
    let grpc = grpc_support::GrpcServer::start("bridge");
    let (yaml, ports) = on_loopback(file, grpc.1);
    let _b = Baton::start(&yaml);
    assert_eq!(grpc_support::calls(ports[0]), grpc_support::ANSWERS);
    // Not gRPC (no application/grpc content-type): no route.
    let r = request(
        ports[0],
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404);
}

#[test]
fn envoys_edge_example_serves_http2_and_http11_over_tls_to_an_http2_upstream() {
    // Envoy's "Configuring Envoy as an edge proxy" config: TLS for example.com with ALPN
    // "h2,http/1.1" (one entry, split as Envoy splits it), HTTP/2 from clients and to the
    // upstream (explicit http2_protocol_options, here nghttpd over h2c), the fixed-heap
    // overload monitor, runtime connection limits, path normalisation.
    let file = "envoy--docs-root-configuration-best_practices-_include-edge.yaml";
    assert!(loads(file));
    let certs = ExampleCerts::new("edge");
    let (page, origin) = page_behind_nghttpd(&certs, "page", 200_000);
    let (yaml, ports) = on_loopback(file, origin.1);
    let b = Baton::start_in(certs.root(), &yaml);
    // The admin's port comes first in this file: the listener is ports[0].
    let (_b, port) = (b, ports[0]);
    let fetch = |proto: &str, path: &str| example_com_fetch(&certs, port, &[proto], path);
    let page = String::from_utf8(page).expect("ascii");
    assert_eq!(
        fetch("--http2", "/page"),
        (page.clone(), "2 200".to_string())
    );
    assert_eq!(fetch("--http1.1", "/page"), (page, "1.1 200".to_string()));
    // merge_slashes and the upstream's 404 come through as well.
    assert_eq!(fetch("--http2", "//missing").1, "2 404");
    let doc: Value = serde_yaml::from_str(&yaml).expect("yaml");
    let admin = doc["admin"]["address"]["socket_address"]["port_value"]
        .as_u64()
        .expect("admin port");
    let stats = common::curl_ok(&[&format!("http://127.0.0.1:{admin}/stats")]);
    assert!(
        stats.contains("overload.envoy.resource_monitors.fixed_heap.pressure: "),
        "{stats}"
    );
    assert!(
        stats.contains("http.ingress_http.downstream_cx_http2_total: 2"),
        "{stats}"
    );
}

#[test]
fn tls_sni_example_terminates_two_names_with_their_certificates_and_passes_the_third() {
    // envoyproxy/examples tls-sni/envoy.yaml: chains by SNI. domain1 and domain2 are HTTPS
    // terminated here with their own certificates (`certs/domainN.*.pem`), each to its own
    // service; domain3 is passed through to an HTTPS service whose certificate (another CA)
    // the client sees.
    let file = "examples--tls-sni-envoy.yaml";
    assert!(loads(file));
    let certs = ExampleCerts::new("tls_sni");
    let (http0, http1) = (
        Upstream::start("service-http0"),
        Upstream::start("service-http1"),
    );
    let other = tls_support::Pki::new("tls_sni_https");
    let https = tls_support::PyTls::start(
        &other.leaf("svc", "/CN=domain3.example.com", "DNS:domain3.example.com"),
        None,
    );
    let (yaml, ports) = on_loopback(file, http0.port());
    let yaml = point_clusters(
        &yaml,
        &[
            ("proxy-domain2", http1.port()),
            ("proxy-domain3", https.port),
        ],
    );
    let b = Baton::start_in(certs.root(), &yaml);
    assert_eq!(b.port, ports[0]);
    let get = |name: &str, ca: &str| {
        common::curl_ok(&[
            "--cacert",
            ca,
            "--resolve",
            &format!("{name}:{}:127.0.0.1", b.port),
            &format!("https://{name}:{}/", b.port),
        ])
    };
    assert_eq!(get("domain1.example.com", &certs.ca()), http0.greeting());
    assert_eq!(get("domain2.example.com", &certs.ca()), http1.greeting());
    let passed = get("domain3.example.com", &other.ca());
    assert!(
        passed.starts_with("secure ") && passed.contains(" domain3.example.com "),
        "{passed}"
    );
    for name in ["domain1.example.com", "domain2.example.com"] {
        let (_, out) = tls_support::s_client(b.port, &["-servername", name]);
        assert_eq!(tls_support::served_subject(&out), format!("CN={name}"));
    }
}

/// The socket addresses of an LDS or CDS file's resources (listeners and cluster
/// endpoints) moved to 127.0.0.1:`port`; nothing else changes.
fn resources_on_loopback(text: &str, port: u16) -> String {
    let mut doc: Value = serde_yaml::from_str(text).expect("resource file");
    for r in doc["resources"].as_sequence_mut().expect("resources") {
        if r.get("address").is_some() {
            set_address(&mut r["address"], port);
        }
        if let Some(eps) = r
            .get_mut("load_assignment")
            .and_then(|la| la.get_mut("endpoints"))
            .and_then(Value::as_sequence_mut)
        {
            for locality in eps {
                for ep in locality["lb_endpoints"]
                    .as_sequence_mut()
                    .expect("lb_endpoints")
                {
                    set_address(&mut ep["endpoint"]["address"], port);
                }
            }
        }
    }
    serde_yaml::to_string(&doc).expect("YAML")
}

#[test]
fn dynamic_config_fs_example_serves_its_files_and_applies_its_cds_file_edited_with_sed() {
    // envoyproxy/examples dynamic-config-fs: the listener comes from /var/lib/envoy/lds.yaml,
    // the cluster from /var/lib/envoy/cds.yaml; the example then edits cds.yaml with
    // `sed -i` (which moves a new file into place) to point the cluster at service2, and
    // Envoy applies it. baton applies it by a hot restart of its own.
    assert!(loads(DYNAMIC_FS));
    let (s1, s2) = (Upstream::start("service1"), Upstream::start("service2"));
    let port = free_port();
    let var_lib = VarLib::new("serve", |text, name| match name {
        "lds.yaml" => resources_on_loopback(text, port),
        _ => resources_on_loopback(text, s1.port()),
    });
    let text = std::fs::read_to_string(dir().join(DYNAMIC_FS)).expect("corpus file");
    let mut doc: Value = serde_yaml::from_str(&text).expect("YAML");
    set_address(&mut doc["admin"]["address"], free_port());
    let yaml = serde_yaml::to_string(&doc).expect("YAML");
    let hot = common::hot::HotDir::new("dynamic_fs");
    let pid_file = common::hot::InCharge::new(hot.path.join("baton.pid"));
    let (sock, pid_arg) = (hot.sock_arg(), pid_file.display().to_string());
    let cwd = hot.path.to_str().expect("utf-8 path").to_string();
    let mut b = Baton::spawn_wrapped(
        &var_lib.wrapper(&cwd),
        port,
        &[
            "--config-yaml",
            &yaml,
            "--hot-restart-file",
            &sock,
            "--pid-file",
            &pid_arg,
        ],
    );
    b.wait_listening();
    assert_eq!(common::hot::get_body(port), s1.greeting());
    let edit = format!("s/port_value: {}/port_value: {}/", s1.port(), s2.port());
    let cds = var_lib.file("cds.yaml");
    let o = std::process::Command::new("sed")
        .args(["-i", &edit, cds.to_str().expect("utf-8 path")])
        .output()
        .expect("sed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        common::hot::wait_body(port, &s2.greeting(), Duration::from_secs(30)),
        "{}",
        b.log()
    );
    common::hot::stop_in_charge(&mut b, &pid_file);
}

/// A WebSocket echo server over TLS (python `websockets`): port, certificate, key.
const WSS_SERVER: &str = r#"
import asyncio, ssl, sys
import websockets

async def echo(ws, *_):
    async for m in ws:
        await ws.send(m)

async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), ssl=ctx, max_size=None):
        print("listening", flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

/// A wss client verifying the server against a CA: url, CA file, host name, messages.
const WSS_CLIENT: &str = r#"
import asyncio, os, ssl, sys
import websockets

async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    n = int(sys.argv[4])
    async with websockets.connect(sys.argv[1], ssl=ctx, server_hostname=sys.argv[3], max_size=None) as ws:
        for i in range(n):
            msg = os.urandom(i * 997 % 70000) if i % 2 else "text message %d" % i
            await ws.send(msg)
            if await ws.recv() != msg:
                print("MISMATCH", i, flush=True)
                sys.exit(1)
    print("OK", n, flush=True)

asyncio.run(main())
"#;

fn python_cmd(script: &str, args: &[&str]) -> std::process::Command {
    let mut c = common::python3();
    c.arg("-c").arg(script).args(args);
    c
}

#[test]
fn websocket_wss_passthrough_example_carries_a_wss_session() {
    // envoyproxy/examples websocket/envoy-wss-passthrough.yaml: TLS WebSocket traffic passed
    // through by a tcp_proxy; the client's wss session ends at the service.
    use std::io::Read;
    let file = "examples--websocket-envoy-wss-passthrough.yaml";
    assert!(loads(file));
    let pki = tls_support::Pki::new("wss_passthrough_example");
    let cert = pki.leaf("wss", "/CN=service-wss", "DNS:service-wss");
    let up = free_port();
    let mut server = python_cmd(WSS_SERVER, &[&up.to_string(), &cert.0, &cert.1])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 (with the websockets package) is needed");
    let mut line = [0u8; 9];
    server
        .stdout
        .as_mut()
        .expect("server stdout")
        .read_exact(&mut line)
        .expect("the wss server did not start");
    let (yaml, _) = on_loopback(file, up);
    let b = Baton::start(&yaml);
    let out = python_cmd(
        WSS_CLIENT,
        &[
            &format!("wss://127.0.0.1:{}/", b.port),
            &pki.ca(),
            "service-wss",
            "40",
        ],
    )
    .output()
    .expect("run the wss client");
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK 40"),
        "client: {stdout} {}\nbaton: {}",
        String::from_utf8_lossy(&out.stderr),
        b.log()
    );
}

/// envoyproxy/examples locality-load-balancing: one STRICT_DNS cluster over four localities at
/// priorities 0, 1, 1 and 2, each endpoint health checked (on its `health_check_config`
/// port) every 2 s. Envoy: priority 0 takes everything while healthy; when it fails, priority 1
/// does, its two localities sharing it by their equal weights; when those fail, priority 2.
/// Here each endpoint (and its health check port) is a test upstream of its own.
#[test]
fn locality_load_balancing_example_fails_over_by_priority_and_locality() {
    let file = "examples--locality-load-balancing-envoy.yaml";
    assert!(loads(file));
    let names = [
        "backend-local-1",
        "backend-local-2",
        "backend-remote-1",
        "backend-remote-2",
    ];
    let mut ups: Vec<Option<Upstream>> = names.iter().map(|n| Some(Upstream::start(n))).collect();
    let (yaml, ports) = on_loopback(file, 0);
    let mut doc: Value = serde_yaml::from_str(&yaml).expect("YAML");
    let eps = doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
        .as_sequence_mut()
        .expect("endpoints");
    for (loc, up) in eps.iter_mut().zip(&ups) {
        let port = up.as_ref().map_or(0, |u| u.port());
        let ep = &mut loc["lb_endpoints"][0]["endpoint"];
        set_address(&mut ep["address"], port);
        ep["health_check_config"]["port_value"] = Value::from(port);
    }
    let b = Baton::start(&serde_yaml::to_string(&doc).expect("YAML"));
    let who = || {
        let r = request(
            ports[0],
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let body = r.body_str();
        names
            .iter()
            .position(|n| body.starts_with(&format!("hello from {n} ")))
    };
    let count = |n: usize| {
        let mut c = [0usize; 4];
        for _ in 0..n {
            if let Some(i) = who() {
                c[i] += 1;
            }
        }
        c
    };
    // Until the checks see a host go, requests to it fail: wait (bounded) for `want` to answer.
    let wait_for = |want: &[usize]| {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < end {
            if who().is_some_and(|i| want.contains(&i)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("never answered by {want:?}\n{}", b.log());
    };
    assert_eq!(count(10), [10, 0, 0, 0]);
    ups[0] = None;
    wait_for(&[1, 2]);
    let c = count(20);
    assert_eq!(c[0] + c[3], 0, "{c:?}");
    assert!((8..=12).contains(&c[1]), "{c:?}");
    ups[1] = None;
    ups[2] = None;
    wait_for(&[3]);
    assert_eq!(count(8), [0, 0, 0, 8]);
}

/// The ext_authz examples' config with their second cluster, the authorization service's
/// (named `name`), sent to 127.0.0.1:`port`.
fn authz_second(yaml: &str, name: &str, port: u16) -> String {
    let mut doc: Value = serde_yaml::from_str(yaml).expect("YAML");
    let authz_cluster = &mut doc["static_resources"]["clusters"][1];
    assert_eq!(authz_cluster["name"], Value::from(name));
    let ep = &mut authz_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0];
    set_address(&mut ep["endpoint"]["address"], port);
    serde_yaml::to_string(&doc).expect("YAML")
}

/// envoyproxy/examples ext_authz/config/http-service.yaml: every request is checked with the
/// `ext_authz-http-service` cluster (here the test's authorization service) first; an allowed
/// one reaches the upstream with the service's `x-current-user`, a denied one gets the
/// service's answer and never reaches the upstream.
#[test]
fn ext_authz_http_service_checks_each_request_with_the_authorization_service() {
    let file = "examples--ext_authz-config-http-service.yaml";
    assert!(loads(file));
    let up = Upstream::start("upstream-service");
    let authz = Authz::start();
    let (yaml, ports) = on_loopback(file, up.port());
    let _b = Baton::start(&authz_second(&yaml, "ext_authz-http-service", authz.port));
    let r = request(
        ports[0],
        "GET /service HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-current-user"), Some("user1"));
    // Only the allowed upstream header: not the service's others.
    assert_eq!(seen[0].header("x-extra"), None);
    let checks = authz.seen();
    assert_eq!(checks.len(), 1);
    assert!(
        checks[0].starts_with("GET /service HTTP/1.1\r\n"),
        "{}",
        checks[0]
    );
    let r = request(
        ports[0],
        "GET /service HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 401);
    assert_eq!(r.header("x-authz-reason"), Some("no token"));
    assert_eq!(up.requests(), 1);
}

/// envoyproxy/examples ext_authz/config/grpc-service/v3.yaml and opa-service/v3.yaml: every
/// request is checked with `Authorization/Check` over HTTP/2 on the second cluster (here the
/// tests' gRPC authorization service, `authz_grpc_support`) within the 250 ms timeout; an allowed
/// one reaches the upstream with the service's `x-current-user`, a denied one gets the
/// service's answer and never reaches the upstream.
#[test]
fn ext_authz_grpc_service_examples_check_each_request_over_grpc() {
    for (file, name) in [
        (
            "examples--ext_authz-config-grpc-service-v3.yaml",
            "ext_authz-grpc-service",
        ),
        (
            "examples--ext_authz-config-opa-service-v3.yaml",
            "ext_authz-opa-service",
        ),
    ] {
        assert!(loads(file));
        let up = Upstream::start("upstream-service");
        let authz = authz_grpc_support::GrpcAuthz::start(&format!("corpus-{name}"));
        let (yaml, ports) = on_loopback(file, up.port());
        let _b = Baton::start(&authz_second(&yaml, name, authz.port));
        let r = request(
            ports[0],
            "GET /service HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status(), 200, "{file}");
        let seen = up.seen();
        assert_eq!(seen.len(), 1, "{file}");
        assert_eq!(seen[0].header("x-current-user"), Some("user1"), "{file}");
        let checks = authz.seen();
        assert_eq!(checks.len(), 1, "{file}");
        assert_eq!(checks[0]["path"], Value::from("/service"), "{file}");
        let r = request(
            ports[0],
            "GET /service HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status(), 401, "{file}");
        assert_eq!(r.header("x-authz-reason"), Some("no token"), "{file}");
        assert_eq!(up.requests(), 1, "{file}");
    }
}

/// The fault-injection example's runtime scripts, on `srv` (mounted on /srv for baton): each
/// writes keys under `/srv/runtime/v1/envoy/` (or removes them: an empty value), then moves a
/// new symlink to `/srv/runtime/v1` onto `/srv/runtime/current`, which Envoy (and baton, by a
/// hot restart of its own) applies.
fn fault_runtime_script(srv: &Path, keys: &[(&str, &str)]) {
    for (k, v) in keys {
        let p = srv.join("runtime/v1/envoy").join(k);
        if v.is_empty() {
            let _ = std::fs::remove_file(&p);
            continue;
        }
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, format!("{v}\n")).expect("write key");
    }
    let new = srv.join("runtime/new");
    let _ = std::fs::remove_file(&new);
    std::os::unix::fs::symlink("/srv/runtime/v1", &new).expect("ln -s");
    std::fs::rename(&new, srv.join("runtime/current")).expect("mv -Tf new current");
}

#[test]
fn fault_injection_example_delays_and_aborts_as_its_runtime_scripts_say() {
    // envoyproxy/examples fault-injection: a fault filter whose abort and delay are 0 % until
    // the runtime (a disk layer at /srv/runtime/current, subdirectory envoy) says otherwise;
    // its container starts with /srv/runtime/current -> /srv/runtime/v1, empty. Its scripts
    // then set `fault.http.delay.fixed_delay_percent` and `fixed_duration_ms` (50 % and 3 s:
    // here 100 % and 0.3 s, so that every request is delayed, and briefly) or
    // `fault.http.abort.abort_percent` and `http_status` (100 %, 503), and its client sends
    // `GET /status/200` again and again.
    let file = "examples--fault-injection-envoy.yaml";
    assert!(loads(file));
    let up = Upstream::start("backend");
    let (yaml, ports) = on_loopback(file, up.port());
    let port = ports[0];
    let hot = common::hot::HotDir::new("fault_injection");
    let srv = hot.path.join("srv");
    std::fs::create_dir_all(srv.join("runtime/v1")).expect("mkdir");
    std::os::unix::fs::symlink("/srv/runtime/v1", srv.join("runtime/current")).expect("ln -s");
    let pid_file = common::hot::InCharge::new(hot.path.join("baton.pid"));
    let (sock, pid_arg) = (hot.sock_arg(), pid_file.display().to_string());
    let (srv_arg, cwd) = (
        srv.to_str().expect("utf-8 path").to_string(),
        hot.path.to_str().expect("utf-8 path").to_string(),
    );
    let mut b = Baton::spawn_wrapped(
        &bind_mounted(&srv_arg, "/srv", &cwd),
        port,
        &[
            "--config-yaml",
            &yaml,
            "--hot-restart-file",
            &sock,
            "--pid-file",
            &pid_arg,
        ],
    );
    b.wait_listening();
    let send = || {
        let t = std::time::Instant::now();
        let r = request(
            port,
            "GET /status/200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        (r.status(), t.elapsed())
    };
    assert_eq!(send().0, 200);
    // enable_delay_fault_injection.sh: every request waits its 0.3 s (a lower bound only).
    fault_runtime_script(
        &srv,
        &[
            ("fault/http/delay/fixed_delay_percent", "100"),
            ("fault/http/delay/fixed_duration_ms", "300"),
        ],
    );
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while send().1 < Duration::from_millis(250) && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, took) = send();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(250), "{took:?}\n{}", b.log());
    // enable_abort_fault_injection.sh: 503 after the delay.
    fault_runtime_script(
        &srv,
        &[
            ("fault/http/abort/abort_percent", "100"),
            ("fault/http/abort/http_status", "503"),
        ],
    );
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while send().0 != 503 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, took) = send();
    assert_eq!(status, 503, "{}", b.log());
    assert!(took >= Duration::from_millis(250), "{took:?}");
    // disable_delay_fault_injection.sh and disable_abort_fault_injection.sh: back to 200.
    fault_runtime_script(
        &srv,
        &[
            ("fault/http/delay/fixed_delay_percent", ""),
            ("fault/http/delay/fixed_duration_ms", ""),
            ("fault/http/abort/abort_percent", ""),
            ("fault/http/abort/http_status", ""),
        ],
    );
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while send().0 != 200 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(send().0, 200, "{}", b.log());
    common::hot::stop_in_charge(&mut b, &pid_file);
}

/// Envoy's HTTP/1.1 CONNECT pair (configs/): `encapsulate_in_http1_connect.yaml` carries each
/// TCP connection inside a CONNECT to `terminate_http1_connect.yaml`, which terminates it
/// and sends the payload to its cluster (here a test HTTP service in place of
/// www.google.com:443). curl through the terminator as a tunnelling proxy (`-p -x`, as the
/// config's comment suggests) and raw TCP through both reach the service.
#[test]
fn envoys_http11_connect_pair_carries_tcp_through_a_connect_tunnel() {
    let (enc, term) = (
        "envoy--configs-encapsulate_in_http1_connect.yaml",
        "envoy--configs-terminate_http1_connect.yaml",
    );
    assert!(loads(enc) && loads(term));
    let up = Upstream::start("behind-the-tunnel");
    // Both configs name their admin first: the listener's port is the one on_loopback gave.
    let (yaml, term_ports) = on_loopback(term, up.port());
    let _terminator = Baton::start(&yaml);
    let proxy = format!("127.0.0.1:{}", term_ports[0]);
    let url = format!("http://127.0.0.1:{}/direct", up.port());
    let body = common::curl_ok(&["-s", "-p", "-x", &proxy, &url]);
    assert_eq!(body, up.greeting());
    let (yaml, enc_ports) = on_loopback(enc, term_ports[0]);
    let _tunnel = Baton::start(&yaml);
    for path in ["/one", "/two"] {
        let r = request(
            enc_ports[0],
            &format!("GET {path} HTTP/1.1\r\nHost: svc\r\n\r\n"),
        );
        assert_eq!(r.status(), 200);
        assert_eq!(String::from_utf8_lossy(&r.body), up.greeting());
    }
    let paths: Vec<String> = up.seen().iter().map(|r| r.target.clone()).collect();
    assert!(
        paths.ends_with(&["/one".to_string(), "/two".to_string()]),
        "{paths:?}"
    );
}

/// Envoy's Google VRP edge config (configs/google-vrp/envoy-edge.yaml, the model of its
/// vulnerability reward programme's edge): TLS for its `certs/…` (here a test certificate for
/// example.com), `/content` to an HTTP/2 cluster (here nghttpd over h2c) with a route idle
/// timeout, everything else a direct `403 denied`, the fixed-heap overload monitor in its
/// `v2alpha` type (which Envoy still loads), headers with underscores refused, and its one
/// cluster written as a map rather than a list.
#[test]
fn envoys_google_vrp_edge_serves_content_over_http2_and_denies_the_rest() {
    let file = "envoy--configs-google-vrp-envoy-edge.yaml";
    assert!(loads(file));
    let certs = ExampleCerts::new("vrp_edge");
    let (page, origin) = page_behind_nghttpd(&certs, "content/page", 100_000);
    let (yaml, ports) = on_loopback(file, origin.1);
    let _b = Baton::start_in(certs.root(), &yaml);
    let port = ports[0];
    let fetch = |args: &[&str], path: &str| example_com_fetch(&certs, port, args, path);
    let page = String::from_utf8(page).expect("ascii");
    // Its TLS context lists no ALPN protocols, so (as from Envoy) a client offering h2 gets
    // HTTP/1.1; one speaking HTTP/2 by prior knowledge gets HTTP/2 (codec AUTO).
    let cases = [
        ("--http2", "1.1 200"),
        ("--http2-prior-knowledge", "2 200"),
        ("--http1.1", "1.1 200"),
    ];
    for (proto, want) in cases {
        let (body, tail) = fetch(&[proto], "/content/page");
        assert_eq!((body.len(), tail.as_str()), (page.len(), want));
        assert!(body == page, "{proto}: the page differs");
    }
    assert_eq!(
        fetch(&["--http2-prior-knowledge"], "/elsewhere"),
        ("denied\n".to_string(), "2 403".to_string())
    );
    // headers_with_underscores_action: REJECT_REQUEST.
    assert_eq!(
        fetch(&["--http1.1", "-H", "x_under: 1"], "/content/page").1,
        "1.1 400"
    );

    // With its origin config (envoy-origin.yaml) behind it, as the VRP runs them: the edge
    // speaks HTTP/2 to the origin (codec AUTO there), which answers `normal` to all but
    // `/blockedz`, the treasure the edge must not let through.
    let origin_file = "envoy--configs-google-vrp-envoy-origin.yaml";
    assert!(loads(origin_file));
    let (yaml, origin_ports) = on_loopback(origin_file, 1);
    let _origin = Baton::start(&yaml);
    let (yaml, ports) = on_loopback(file, origin_ports[0]);
    let _edge = Baton::start_in(certs.root(), &yaml);
    let fetch = |args: &[&str], path: &str| example_com_fetch(&certs, ports[0], args, path);
    assert_eq!(
        fetch(&["--http1.1"], "/content"),
        ("normal\n".to_string(), "1.1 200".to_string())
    );
    // Neither config normalises paths: a dot-segment reaches the origin as sent and is not
    // its `/blockedz` either.
    for (path, want) in [
        ("/blockedz", ("denied\n", "1.1 403")),
        ("/content/../blockedz", ("normal\n", "1.1 200")),
    ] {
        let (body, tail) = fetch(&["--http1.1", "--path-as-is"], path);
        assert_eq!((body.as_str(), tail.as_str()), want, "{path}");
    }
}

/// An HTTP/2 origin for the edge examples: nghttpd over h2c serving `len` letters at `path`
/// (under a docroot beside the example's certificates); the page and the server.
fn page_behind_nghttpd(certs: &ExampleCerts, path: &str, len: u32) -> (Vec<u8>, common::Nghttpd) {
    let docroot = certs.root().join("docroot");
    let file = docroot.join(path);
    std::fs::create_dir_all(file.parent().expect("a directory")).expect("docroot");
    let page: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&file, &page).expect("page");
    (page, common::Nghttpd::start(&docroot, None))
}

/// curl to `https://example.com:PORT/PATH` (resolved to 127.0.0.1, the examples' CA trusted)
/// with `args`: the body, and "HTTP-VERSION STATUS".
fn example_com_fetch(
    certs: &ExampleCerts,
    port: u16,
    args: &[&str],
    path: &str,
) -> (String, String) {
    let resolve = format!("example.com:{port}:127.0.0.1");
    let url = format!("https://example.com:{port}{path}");
    let ca = certs.ca();
    let mut all = vec![
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_version} %{http_code}",
        "--cacert",
        &ca,
    ];
    all.extend_from_slice(&["--resolve", &resolve]);
    all.extend_from_slice(args);
    all.push(&url);
    let out = common::curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or_default();
    (body.to_string(), tail.to_string())
}

/// Envoy's default config (configs/envoy-default.yaml, what its container image runs when
/// given none): every request to www.envoyproxy.io:443 over TLS, SNI and Host
/// `www.envoyproxy.io`, the access log on `/dev/stdout` (file logger). Here the upstream is a
/// local TLS server with a certificate for that name; it reports the SNI and TLS version it
/// saw.
#[test]
fn envoys_default_config_proxies_over_tls_by_name_and_logs_to_stdout() {
    let file = "envoy--configs-envoy-default.yaml";
    assert!(loads(file));
    let pki = tls_support::Pki::new("envoy_default");
    let cert = pki.leaf("origin", "/CN=www.envoyproxy.io", "DNS:www.envoyproxy.io");
    let origin = tls_support::PyTls::start(&cert, None);
    let (yaml, ports) = on_loopback(file, origin.port);
    let mut b = Baton::start(&yaml);
    let url = format!("http://127.0.0.1:{}/docs", ports[0]);
    for _ in 0..2 {
        let body = common::curl_ok(&["-s", "-A", "t/1", &url]);
        let f: Vec<&str> = body.split_whitespace().collect();
        assert_eq!(
            f.get(2..4),
            Some(&["www.envoyproxy.io", "TLSv1.3"][..]),
            "{body}"
        );
    }
    assert!(
        b.wait_log("\"GET /docs HTTP/1.1\" 200 - 0 ", Duration::from_secs(10)),
        "{}",
        b.log()
    );
    // Envoy's default format names the rewritten authority and the upstream host.
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"GET /docs HTTP/1.1\""))
        .expect("access log line");
    assert!(line.contains("\"www.envoyproxy.io\""), "{line}");
    assert!(
        line.ends_with(&format!("\"127.0.0.1:{}\"", origin.port)),
        "{line}"
    );
}
