//! `/config_dump`: the effective configuration (after validation, with every default applied)
//! as Envoy's `BootstrapConfigDump`, whose `bootstrap` is a v3 bootstrap baton loads back into
//! the same model (`tests` below prove the round trip). Written from the model by hand so the
//! model needs no serialisation derives.

use std::fmt::Write as _;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use crate::config::{
    AccessLog, BodyFormat, BodyFormatKind, Bootstrap, Cluster, ClusterSpec, CompareOp, Comparison,
    CustomTagValue, ForwardAction, HeaderMatchRule, HeaderMatcher, HeaderMutations,
    HeaderValueOption, HealthCheck, HealthCheckKind, HostRewrite, HttpConnectionManager,
    JsonFormat, Listener, LocalReplyConfig, LogFilter, PathMatch, PathRedirect, Provider,
    QueryParameterRule, RedirectAction, RegexRewrite, RetryPolicy, Route, RouteAction, RouteConfig,
    RouteMatch, SocketState, StatsMatcher, StringMatch, StringMatchKind, StripPort, TcpProxy,
    Terminal, Tracing,
};
use crate::stats::json_str;

pub(super) const T: &str = "type.googleapis.com/";

/// A map from `(key, value)` pairs; `None` values are left out.
pub(super) fn map(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(Value::from(k), v);
        }
    }
    Value::Mapping(m)
}

pub(super) fn s(v: &str) -> Option<Value> {
    Some(Value::from(v))
}

pub(super) fn n(v: impl Into<Value>) -> Option<Value> {
    Some(v.into())
}

pub(super) fn list(items: Vec<Value>) -> Option<Value> {
    Some(Value::Sequence(items))
}

/// Envoy's duration text: seconds with up to nine fraction digits.
pub(super) fn dur(d: Duration) -> Option<Value> {
    let mut out = d.as_secs().to_string();
    if d.subsec_nanos() != 0 {
        let frac = format!("{:09}", d.subsec_nanos());
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('s');
    s(&out)
}

/// An optional timeout: `0s` is how Envoy says "disabled".
fn timeout(d: Option<Duration>) -> Option<Value> {
    dur(d.unwrap_or_default())
}

/// `LogicalDns` → `LOGICAL_DNS`, `V4Only` → `V4_ONLY`: Envoy's enum spelling of a variant.
pub(super) fn shout(variant: impl std::fmt::Debug) -> Option<Value> {
    let name = format!("{variant:?}");
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    s(&out)
}

/// The dump, computed once at start-up (the config never changes in a running process).
/// `node` is the node as running (the command line's `--service-node`/`--service-cluster`
/// applied).
pub fn config_dump(b: &Bootstrap, node: &(String, String)) -> String {
    let has_node = b.node.is_some() || !node.0.is_empty() || !node.1.is_empty();
    let bootstrap = map(vec![
        (
            "node",
            has_node.then(|| map(vec![("id", s(&node.0)), ("cluster", s(&node.1))])),
        ),
        (
            "admin",
            b.admin.as_ref().map(|a| {
                map(vec![
                    (
                        "address",
                        a.address.map(|ad| address(&ad.ip().to_string(), ad.port())),
                    ),
                    ("access_log_path", a.access_log_path.as_deref().and_then(s)),
                    (
                        "access_log",
                        (!a.access_log.is_empty()).then(|| Value::Sequence(access_logs(&a.access_log))),
                    ),
                ])
            }),
        ),
        (
            "static_resources",
            Some(map(vec![
                (
                    "listeners",
                    list(b.listeners.iter().map(|l| listener(l, b)).collect()),
                ),
                ("clusters", list(b.clusters.iter().map(cluster).collect())),
            ])),
        ),
        (
            "overload_manager",
            b.max_downstream_connections.map(|max| {
                map(vec![(
                    "resource_monitors",
                    list(vec![map(vec![
                        (
                            "name",
                            s("envoy.resource_monitors.global_downstream_max_connections"),
                        ),
                        (
                            "typed_config",
                            Some(map(vec![
                                ("@type", s(&format!("{T}envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"))),
                                ("max_active_downstream_connections", n(max)),
                            ])),
                        ),
                    ])]),
                )])
            }),
        ),
        (
            "stats_sinks",
            list(
                b.stats_sinks
                    .iter()
                    .map(|k| {
                        let (name, ty) = if k.tagged {
                            ("envoy.stat_sinks.dog_statsd", "DogStatsdSink")
                        } else {
                            ("envoy.stat_sinks.statsd", "StatsdSink")
                        };
                        map(vec![
                            ("name", s(name)),
                            (
                                "typed_config",
                                Some(map(vec![
                                    ("@type", s(&format!("{T}envoy.config.metrics.v3.{ty}"))),
                                    (
                                        "address",
                                        Some(address(&k.address.ip().to_string(), k.address.port())),
                                    ),
                                    ("prefix", s(&k.prefix)),
                                    (
                                        "max_bytes_per_datagram",
                                        (k.max_bytes_per_datagram > 0)
                                            .then(|| Value::from(k.max_bytes_per_datagram)),
                                    ),
                                ])),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("stats_flush_interval", dur(b.stats_flush_interval)),
        ("stats_config", stats_config(&b.stats_matcher)),
    ]);
    let dump = map(vec![(
        "configs",
        list(vec![map(vec![
            (
                "@type",
                s(&format!("{T}envoy.admin.v3.BootstrapConfigDump")),
            ),
            ("bootstrap", Some(bootstrap)),
        ])]),
    )]);
    let mut out = String::new();
    json(&mut out, &dump, 0);
    out.push('\n');
    out
}

/// Writes `v` as indented JSON (Envoy's dump is indented too).
fn json(out: &mut String, v: &Value, depth: usize) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(d));
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(num) => {
            let _ = write!(out, "{num}");
        }
        Value::String(text) => json_str(out, text),
        Value::Sequence(items) if items.is_empty() => out.push_str("[]"),
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json(out, item, depth + 1);
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Mapping(m) if m.is_empty() => out.push_str("{}"),
        Value::Mapping(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json_str(out, k.as_str().unwrap_or_default());
                out.push_str(": ");
                json(out, item, depth + 1);
            }
            indent(out, depth);
            out.push('}');
        }
        Value::Tagged(t) => json(out, &t.value, depth),
    }
}

fn address(host: &str, port: u16) -> Value {
    map(vec![(
        "socket_address",
        Some(map(vec![("address", s(host)), ("port_value", n(port))])),
    )])
}

fn listener(l: &Listener, b: &Bootstrap) -> Value {
    let mut limit = Vec::new();
    if let Some(cl) = &l.connection_limit {
        limit.push(map(vec![
            ("name", s("envoy.filters.network.connection_limit")),
            (
                "typed_config",
                Some(map(vec![
                    (
                        "@type",
                        s(&format!(
                            "{T}envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit"
                        )),
                    ),
                    ("stat_prefix", s(&cl.stat_prefix)),
                    ("max_connections", n(cl.max_connections)),
                ])),
            ),
        ]));
    }
    let filters = |t: &Terminal| {
        let mut f = limit.clone();
        f.push(match t {
            Terminal::Http(h) => map(vec![
                ("name", s("envoy.filters.network.http_connection_manager")),
                ("typed_config", Some(hcm(h, b))),
            ]),
            Terminal::Tcp(t) => map(vec![
                ("name", s("envoy.filters.network.tcp_proxy")),
                ("typed_config", Some(tcp_proxy(t, b))),
            ]),
        });
        f
    };
    let chain = |c: &crate::config::FilterChainTls| {
        let names = c.server_names.iter().map(|n| Value::from(n.as_str()));
        let alpn = c
            .application_protocols
            .iter()
            .map(|n| Value::from(n.as_str()));
        let cidrs = |r: &[(std::net::IpAddr, u8)]| {
            let each = r.iter().map(|(ip, len)| {
                map(vec![
                    ("address_prefix", s(&ip.to_string())),
                    ("prefix_len", n(*len)),
                ])
            });
            (!r.is_empty()).then(|| Value::Sequence(each.collect()))
        };
        let ports = c.source_ports.iter().map(|&p| Value::from(p));
        let m = map(vec![
            ("destination_port", c.destination_port.and_then(n)),
            ("prefix_ranges", cidrs(&c.prefix_ranges)),
            ("source_prefix_ranges", cidrs(&c.source_prefix_ranges)),
            (
                "direct_source_prefix_ranges",
                cidrs(&c.direct_source_prefix_ranges),
            ),
            (
                "source_ports",
                (!c.source_ports.is_empty()).then(|| Value::Sequence(ports.collect())),
            ),
            ("server_names", list(names.collect())),
            (
                "transport_protocol",
                c.transport_protocol.as_deref().and_then(s),
            ),
            (
                "application_protocols",
                (!c.application_protocols.is_empty()).then(|| Value::Sequence(alpn.collect())),
            ),
        ]);
        let terminal = l.terminals.get(c.terminal);
        map(vec![
            ("name", c.name.as_deref().and_then(s)),
            ("filters", terminal.and_then(|t| list(filters(t)))),
            ("filter_chain_match", (!c.fallback).then_some(m)),
            ("transport_socket", c.tls.as_ref().map(tls::downstream)),
            ("transport_socket_connect_timeout", dur(c.handshake_timeout)),
        ])
    };
    let chains = l
        .filter_chains
        .iter()
        .filter(|c| !c.fallback)
        .map(chain)
        .collect();
    let default_chain = l.filter_chains.iter().find(|c| c.fallback).map(chain);
    let inspector = extension(
        "envoy.filters.listener.tls_inspector",
        "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
        Vec::new(),
    );
    let any_tls = crate::chains::needs_hello(&l.filter_chains);
    // The PROXY protocol reader first: baton reads the header before anything else.
    let proxy = l.proxy_protocol.as_ref().map(|p| {
        let mut disallowed = Vec::new();
        if !p.accept_v1 {
            disallowed.push(Value::from("V1"));
        }
        if !p.accept_v2 {
            disallowed.push(Value::from("V2"));
        }
        extension(
            "envoy.filters.listener.proxy_protocol",
            "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol",
            vec![
                (
                    "allow_requests_without_proxy_protocol",
                    p.allow_without.then_some(Value::Bool(true)),
                ),
                (
                    "disallowed_versions",
                    (!disallowed.is_empty()).then(|| Value::Sequence(disallowed)),
                ),
                (
                    "stat_prefix",
                    (!p.stat_prefix.is_empty()).then(|| Value::from(p.stat_prefix.as_str())),
                ),
            ],
        )
    });
    let listener_filters: Vec<Value> = proxy
        .into_iter()
        .chain(any_tls.then_some(inspector))
        .collect();
    map(vec![
        ("name", s(&l.name)),
        (
            "address",
            Some(address(&l.address.ip().to_string(), l.address.port())),
        ),
        (
            "per_connection_buffer_limit_bytes",
            n(l.per_connection_buffer_limit_bytes),
        ),
        (
            "listener_filters",
            (!listener_filters.is_empty()).then(|| Value::Sequence(listener_filters)),
        ),
        ("listener_filters_timeout", dur(l.inspect_timeout)),
        ("enable_reuse_port", n(l.socket.reuse_port)),
        (
            "tcp_fast_open_queue_length",
            l.socket.fast_open_queue.and_then(n),
        ),
        (
            "socket_options",
            list(
                l.socket
                    .options
                    .iter()
                    .map(|o| {
                        map(vec![
                            ("description", s(&o.description)),
                            ("level", n(o.level)),
                            ("name", n(o.name)),
                            ("int_value", n(o.value)),
                            (
                                "state",
                                s(match o.state {
                                    SocketState::Prebind => "STATE_PREBIND",
                                    SocketState::Bound => "STATE_BOUND",
                                    SocketState::Listening => "STATE_LISTENING",
                                }),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("traffic_direction", shout(l.traffic_direction)),
        ("filter_chains", list(chains)),
        ("default_filter_chain", default_chain),
    ])
}

/// The filters before the router, in order, then the router.
fn http_filters(h: &HttpConnectionManager) -> Vec<Value> {
    let mut out: Vec<Value> = h.http_filters.iter().map(filters::http_filter).collect();
    out.push(map(vec![
        ("name", s("envoy.filters.http.router")),
        (
            "typed_config",
            Some(map(vec![(
                "@type",
                s(&format!(
                    "{T}envoy.extensions.filters.http.router.v3.Router"
                )),
            )])),
        ),
    ]));
    out
}

fn tcp_proxy(t: &TcpProxy, b: &Bootstrap) -> Value {
    let mut pairs = vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
            )),
        ),
        ("stat_prefix", s(&t.stat_prefix)),
    ];
    pairs.extend(cluster_spec(&t.cluster, b));
    pairs.push(("idle_timeout", timeout(t.idle_timeout)));
    pairs.push(("max_connect_attempts", n(t.max_connect_attempts)));
    pairs.push((
        "max_downstream_connection_duration",
        t.max_downstream_connection_duration.and_then(dur),
    ));
    pairs.push(("access_log", list(access_logs(&t.access_log))));
    map(pairs)
}

/// `cluster` or `weighted_clusters`, by name.
fn cluster_spec(spec: &ClusterSpec, b: &Bootstrap) -> Vec<(&'static str, Option<Value>)> {
    let name = |i: usize| b.clusters.get(i).map_or("", |c| c.name.as_str());
    match spec {
        ClusterSpec::Single(c) => vec![("cluster", s(name(*c)))],
        ClusterSpec::Weighted(list_) => vec![(
            "weighted_clusters",
            Some(map(vec![(
                "clusters",
                list(
                    list_
                        .iter()
                        .map(|(c, w)| map(vec![("name", s(name(*c))), ("weight", n(*w))]))
                        .collect(),
                ),
            )])),
        )],
    }
}

/// File access loggers (stdout and stderr ones are files at `/dev/stdout`, `/dev/stderr`).
fn access_logs(logs: &[AccessLog]) -> Vec<Value> {
    logs.iter()
        .map(|a| {
            map(vec![
                ("name", s("envoy.access_loggers.file")),
                (
                    "typed_config",
                    Some(map(vec![
                        (
                            "@type",
                            s(&format!(
                                "{T}envoy.extensions.access_loggers.file.v3.FileAccessLog"
                            )),
                        ),
                        ("path", s(&a.path)),
                        (
                            "log_format",
                            Some(match &a.json {
                                Some(j) => map(vec![("json_format", Some(json_format(j)))]),
                                None => map(vec![(
                                    "text_format_source",
                                    Some(map(vec![("inline_string", s(&a.format))])),
                                )]),
                            }),
                        ),
                    ])),
                ),
                ("filter", a.filter.as_ref().map(log_filter)),
            ])
        })
        .collect()
}

fn hcm(h: &HttpConnectionManager, b: &Bootstrap) -> Value {
    let logs = access_logs(&h.access_log);
    map(vec![
        (
            "@type",
            s(&format!("{T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager")),
        ),
        ("stat_prefix", s(&h.stat_prefix)),
        ("codec_type", shout(h.codec_type)),
        (
            "upgrade_configs",
            list(
                h.upgrades
                    .iter()
                    .map(|(t, on)| map(vec![("upgrade_type", s(t)), ("enabled", n(*on))]))
                    .collect(),
            ),
        ),
        ("route_config", Some(route_config(&h.route_config, b))),
        ("http_filters", list(http_filters(h))),
        (
            "common_http_protocol_options",
            Some(map(vec![
                ("idle_timeout", timeout(h.idle_timeout)),
                (
                    "max_connection_duration",
                    h.max_connection_duration.and_then(dur),
                ),
                ("max_headers_count", n(h.max_headers_count)),
                (
                    "max_requests_per_connection",
                    h.max_requests_per_connection.and_then(n),
                ),
                (
                    "headers_with_underscores_action",
                    shout(h.headers_with_underscores),
                ),
            ])),
        ),
        ("request_headers_timeout", timeout(h.request_headers_timeout)),
        ("request_timeout", timeout(h.request_timeout)),
        ("stream_idle_timeout", timeout(h.stream_idle_timeout)),
        ("max_request_headers_kb", n(h.max_request_headers_kb)),
        ("server_name", s(&h.server_name)),
        (
            "server_header_transformation",
            shout(h.server_header_transformation),
        ),
        ("use_remote_address", n(h.use_remote_address)),
        ("xff_num_trusted_hops", n(h.xff_num_trusted_hops)),
        ("generate_request_id", n(h.generate_request_id)),
        ("normalize_path", n(h.normalize_path)),
        ("merge_slashes", n(h.merge_slashes)),
        (
            "strip_matching_host_port",
            n(h.strip_host_port == StripPort::Matching),
        ),
        (
            "strip_any_host_port",
            n(h.strip_host_port == StripPort::Any),
        ),
        ("strip_trailing_host_dot", n(h.strip_trailing_host_dot)),
        (
            "path_with_escaped_slashes_action",
            shout(h.escaped_slashes),
        ),
        ("skip_xff_append", n(h.skip_xff_append)),
        ("add_user_agent", n(h.add_user_agent)),
        ("proxy_100_continue", n(h.proxy_100_continue)),
        (
            "delayed_close_timeout",
            timeout(h.delayed_close_timeout),
        ),
        (
            "forward_client_cert_details",
            shout(h.forward_client_cert_details),
        ),
        (
            "preserve_external_request_id",
            n(h.preserve_external_request_id),
        ),
        ("via", h.via.as_deref().and_then(s)),
        ("access_log", list(logs)),
        ("local_reply_config", h.local_reply.as_ref().map(local_reply)),
        ("tracing", h.tracing.as_deref().map(tracing)),
    ])
}

/// The connection manager's `tracing` (an `environment` tag as the value it was read as).
fn tracing(t: &Tracing) -> Value {
    let pct = |v: u32| Some(map(vec![("value", n(f64::from(v) / 100.0))]));
    let tags = t
        .custom_tags
        .iter()
        .map(|c| {
            let value = match &c.value {
                CustomTagValue::Literal(v) => ("literal", Some(map(vec![("value", s(v))]))),
                CustomTagValue::Header { name, default } => (
                    "request_header",
                    Some(map(vec![("name", s(name)), ("default_value", s(default))])),
                ),
            };
            map(vec![("tag", s(&c.tag)), value])
        })
        .collect();
    let provider = match &t.provider {
        Provider::Zipkin(z) => map(vec![
            ("name", s("envoy.tracers.zipkin")),
            (
                "typed_config",
                Some(map(vec![
                    (
                        "@type",
                        s(&format!("{T}envoy.config.trace.v3.ZipkinConfig")),
                    ),
                    ("collector_cluster", s(&z.cluster_name)),
                    ("collector_endpoint", s(&z.endpoint)),
                    ("collector_endpoint_version", s("HTTP_JSON")),
                    ("collector_hostname", s(&z.hostname)),
                    ("trace_id_128bit", n(z.trace_id_128bit)),
                    ("shared_span_context", n(z.shared_span_context)),
                ])),
            ),
        ]),
        Provider::Datadog(d) => map(vec![
            ("name", s("envoy.tracers.datadog")),
            (
                "typed_config",
                Some(map(vec![
                    (
                        "@type",
                        s(&format!("{T}envoy.config.trace.v3.DatadogConfig")),
                    ),
                    ("collector_cluster", s(&d.cluster_name)),
                    ("service_name", s(&d.service)),
                    ("collector_hostname", s(&d.hostname)),
                ])),
            ),
        ]),
    };
    map(vec![
        ("client_sampling", pct(t.client_sampling)),
        ("random_sampling", pct(t.random_sampling)),
        ("overall_sampling", pct(t.overall_sampling)),
        ("max_path_tag_length", n(t.max_path_tag_length as u64)),
        ("custom_tags", list(tags)),
        ("provider", Some(provider)),
    ])
}

/// A list of `HeaderValueOption`s.
pub(super) fn header_options(list: &[HeaderValueOption]) -> Option<Value> {
    Some(Value::Sequence(
        list.iter()
            .map(|o| {
                map(vec![
                    (
                        "header",
                        Some(map(vec![("key", s(&o.name)), ("value", s(&o.value))])),
                    ),
                    ("append_action", shout(o.append_action)),
                    ("keep_empty_value", n(o.keep_empty_value)),
                ])
            })
            .collect(),
    ))
}

/// The four header-edit lists of one level, appended to `pairs`.
fn edits(pairs: &mut Vec<(&str, Option<Value>)>, h: &HeaderMutations) {
    request_edits(pairs, h);
    let keys = ["response_headers_to_add", "response_headers_to_remove"];
    edit_pair(
        pairs,
        keys,
        &h.response_headers_to_add,
        &h.response_headers_to_remove,
    );
}

/// The request side of `edits` (all a health check has).
fn request_edits(pairs: &mut Vec<(&str, Option<Value>)>, h: &HeaderMutations) {
    let keys = ["request_headers_to_add", "request_headers_to_remove"];
    edit_pair(
        pairs,
        keys,
        &h.request_headers_to_add,
        &h.request_headers_to_remove,
    );
}

/// One side's additions and removals under `keys`.
fn edit_pair(
    pairs: &mut Vec<(&str, Option<Value>)>,
    [add_key, remove_key]: [&'static str; 2],
    add: &[HeaderValueOption],
    remove: &[String],
) {
    pairs.push((add_key, header_options(add)));
    pairs.push((remove_key, names(remove)));
}

fn names(names: &[String]) -> Option<Value> {
    list(names.iter().map(|x| Value::from(x.as_str())).collect())
}

fn route_config(rc: &RouteConfig, b: &Bootstrap) -> Value {
    let vhosts = rc
        .virtual_hosts
        .iter()
        .map(|vh| {
            let mut pairs = vec![
                ("name", s(&vh.name)),
                (
                    "domains",
                    list(vh.domains.iter().map(|d| Value::from(d.as_str())).collect()),
                ),
                (
                    "routes",
                    list(
                        vh.routes
                            .iter()
                            .map(|r| route(r, b, vh.retry_policy.as_ref()))
                            .collect(),
                    ),
                ),
                (
                    "retry_policy",
                    vh.retry_policy.as_ref().and_then(retry_policy),
                ),
                ("require_tls", shout(vh.require_tls)),
                (
                    "typed_per_filter_config",
                    filters::per_filter(&vh.filter_configs),
                ),
                ("cors", filters::legacy_cors(vh.cors.as_ref())),
            ];
            edits(&mut pairs, &vh.headers);
            map(pairs)
        })
        .collect();
    let mut pairs = vec![
        ("name", s(&rc.name)),
        ("virtual_hosts", list(vhosts)),
        (
            "most_specific_header_mutations_wins",
            n(rc.most_specific_header_mutations_wins),
        ),
    ];
    edits(&mut pairs, &rc.headers);
    map(pairs)
}

fn route(r: &Route, b: &Bootstrap, inherited: Option<&RetryPolicy>) -> Value {
    let mut pairs = vec![
        ("name", s(&r.name)),
        ("match", Some(route_match(&r.matcher))),
    ];
    match &r.action {
        RouteAction::Forward(f) => pairs.push(("route", Some(forward(f, b, inherited)))),
        RouteAction::DirectResponse { status, body } => pairs.push((
            "direct_response",
            Some(map(vec![
                ("status", n(*status)),
                (
                    "body",
                    body.as_deref()
                        .map(|text| map(vec![("inline_string", s(text))])),
                ),
            ])),
        )),
        RouteAction::Redirect(rd) => pairs.push(("redirect", Some(redirect(rd)))),
    }
    pairs.push((
        "typed_per_filter_config",
        filters::per_filter(&r.filter_configs),
    ));
    if let Some(d) = &r.decorator {
        pairs.push((
            "decorator",
            Some(map(vec![
                ("operation", s(&d.operation)),
                ("propagate", n(d.propagate)),
            ])),
        ));
    }
    edits(&mut pairs, &r.headers);
    map(pairs)
}

fn regex(pattern: &str) -> Option<Value> {
    Some(map(vec![("regex", s(pattern))]))
}

/// Header matchers as a route's `match.headers` (and the health check filter's `headers`).
/// `stats_config` with its matcher; nothing without one.
fn stats_config(m: &StatsMatcher) -> Option<Value> {
    let patterns = |l: &[StringMatch]| {
        Some(map(vec![(
            "patterns",
            list(l.iter().map(string_match).collect()),
        )]))
    };
    let matcher = match m {
        StatsMatcher::All => return None,
        StatsMatcher::Nothing => map(vec![("reject_all", n(true))]),
        StatsMatcher::Except(l) => map(vec![("exclusion_list", patterns(l))]),
        StatsMatcher::Only(l) => map(vec![("inclusion_list", patterns(l))]),
    };
    Some(map(vec![("stats_matcher", Some(matcher))]))
}

fn header_matchers(hs: &[HeaderMatcher]) -> Vec<Value> {
    hs.iter().map(header_matcher).collect()
}

pub(super) fn string_match(m: &StringMatch) -> Value {
    let (key, value) = match &m.kind {
        StringMatchKind::Exact(v) => ("exact", s(v)),
        StringMatchKind::Prefix(v) => ("prefix", s(v)),
        StringMatchKind::Suffix(v) => ("suffix", s(v)),
        StringMatchKind::Contains(v) => ("contains", s(v)),
        StringMatchKind::SafeRegex(re) => ("safe_regex", regex(re.pattern())),
    };
    map(vec![(key, value), ("ignore_case", n(m.ignore_case))])
}

pub(super) fn header_matcher(h: &HeaderMatcher) -> Value {
    let rule = match &h.rule {
        HeaderMatchRule::Value(sm) => ("string_match", Some(string_match(sm))),
        HeaderMatchRule::Present(p) => ("present_match", n(*p)),
        HeaderMatchRule::Range { start, end } => (
            "range_match",
            Some(map(vec![("start", n(*start)), ("end", n(*end))])),
        ),
    };
    map(vec![
        ("name", s(&h.name)),
        rule,
        ("invert_match", n(h.invert)),
    ])
}

/// `local_reply_config` as configured (bodies and text formats read from files are shown
/// inline).
fn local_reply(c: &LocalReplyConfig) -> Value {
    let mappers = c
        .mappers
        .iter()
        .map(|m| {
            map(vec![
                ("filter", Some(log_filter(&m.filter))),
                ("status_code", m.status_code.and_then(n)),
                (
                    "body",
                    m.body
                        .as_deref()
                        .map(|b| map(vec![("inline_string", s(b))])),
                ),
                (
                    "body_format_override",
                    m.body_format_override.as_ref().map(body_format),
                ),
                ("headers_to_add", header_options(&m.headers_to_add)),
            ])
        })
        .collect();
    map(vec![
        ("mappers", list(mappers)),
        ("body_format", c.body_format.as_ref().map(body_format)),
    ])
}

fn log_filter(f: &LogFilter) -> Value {
    let cmp = |c: &Comparison| {
        let op = match c.op {
            CompareOp::Eq => "EQ",
            CompareOp::Ge => "GE",
            CompareOp::Le => "LE",
            CompareOp::Ne => "NE",
        };
        Some(map(vec![(
            "comparison",
            Some(map(vec![
                ("op", s(op)),
                (
                    "value",
                    Some(map(vec![
                        ("default_value", n(c.value)),
                        // The key is required; no runtime layer can set it (docs/config.md).
                        ("runtime_key", s("baton.unset")),
                    ])),
                ),
            ])),
        )]))
    };
    let many = |l: &[LogFilter]| {
        Some(map(vec![(
            "filters",
            list(l.iter().map(log_filter).collect()),
        )]))
    };
    match f {
        LogFilter::Status(c) => map(vec![("status_code_filter", cmp(c))]),
        LogFilter::Duration(c) => map(vec![("duration_filter", cmp(c))]),
        LogFilter::Header(h) => map(vec![(
            "header_filter",
            Some(map(vec![("header", Some(header_matcher(h)))])),
        )]),
        LogFilter::ResponseFlags(names) => map(vec![(
            "response_flag_filter",
            Some(map(vec![(
                "flags",
                list(names.iter().map(|x| Value::from(x.as_str())).collect()),
            )])),
        )]),
        LogFilter::NotHealthCheck => map(vec![("not_health_check_filter", Some(map(vec![])))]),
        LogFilter::Traceable => map(vec![("traceable_filter", Some(map(vec![])))]),
        LogFilter::Runtime(r) => {
            let denominator = match r.denominator {
                10_000 => "TEN_THOUSAND",
                1_000_000 => "MILLION",
                _ => "HUNDRED",
            };
            map(vec![(
                "runtime_filter",
                Some(map(vec![
                    ("runtime_key", s(&r.runtime_key)),
                    (
                        "percent_sampled",
                        Some(map(vec![
                            ("numerator", n(r.numerator)),
                            ("denominator", s(denominator)),
                        ])),
                    ),
                    ("use_independent_randomness", n(r.independent)),
                ])),
            )])
        }
        LogFilter::GrpcStatus { statuses, exclude } => map(vec![(
            "grpc_status_filter",
            Some(map(vec![
                (
                    "statuses",
                    list(statuses.iter().map(|&c| Value::from(c)).collect()),
                ),
                ("exclude", n(*exclude)),
            ])),
        )]),
        LogFilter::And(l) => map(vec![("and_filter", many(l))]),
        LogFilter::Or(l) => map(vec![("or_filter", many(l))]),
    }
}

fn body_format(f: &BodyFormat) -> Value {
    let kind = match &f.kind {
        BodyFormatKind::Text(t) => ("text_format", s(t)),
        BodyFormatKind::Json(j) => ("json_format", Some(json_format(j))),
    };
    map(vec![
        kind,
        ("omit_empty_values", n(f.omit_empty_values)),
        ("content_type", s(&f.content_type)),
    ])
}

fn json_format(j: &JsonFormat) -> Value {
    match j {
        JsonFormat::Null => Value::Null,
        JsonFormat::Bool(b) => Value::Bool(*b),
        JsonFormat::Number(t) => serde_yaml::from_str(t).unwrap_or(Value::Null),
        JsonFormat::String(t) => Value::from(t.as_str()),
        JsonFormat::List(l) => Value::Sequence(l.iter().map(json_format).collect()),
        JsonFormat::Object(fields) => {
            let mut m = Mapping::new();
            for (k, v) in fields {
                m.insert(Value::from(k.as_str()), json_format(v));
            }
            Value::Mapping(m)
        }
    }
}

fn route_match(m: &RouteMatch) -> Value {
    let (key, value) = match &m.path {
        PathMatch::Prefix(p) => ("prefix", s(p)),
        PathMatch::Path(p) => ("path", s(p)),
        PathMatch::SafeRegex(re) => ("safe_regex", regex(re.pattern())),
        PathMatch::Connect => ("connect_matcher", Some(map(vec![]))),
    };
    let headers = header_matchers(&m.headers);
    let query = m
        .query_parameters
        .iter()
        .map(|q| {
            let rule = match &q.rule {
                QueryParameterRule::Value(sm) => ("string_match", Some(string_match(sm))),
                QueryParameterRule::Present => ("present_match", n(true)),
            };
            map(vec![("name", s(&q.name)), rule])
        })
        .collect();
    map(vec![
        (key, value),
        ("case_sensitive", n(m.case_sensitive)),
        ("headers", list(headers)),
        ("query_parameters", list(query)),
        ("grpc", m.grpc.then(|| map(vec![]))),
    ])
}

/// The model keeps a substitution in the regex crate's syntax (`${1}`, `$$`); Envoy writes
/// RE2's (`\1`, `$`, `\\`).
fn re2_substitution(sub: &str) -> String {
    let mut out = String::new();
    let mut rest = sub;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(group) = rest
            .strip_prefix("${")
            .and_then(|r| r.split_once('}'))
            .filter(|(digits, _)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        {
            out.push('\\');
            out.push_str(group.0);
            rest = group.1;
        } else {
            if c == '\\' {
                out.push('\\');
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn regex_rewrite(r: &RegexRewrite) -> Option<Value> {
    Some(map(vec![
        ("pattern", regex(r.pattern.pattern())),
        ("substitution", s(&re2_substitution(&r.substitution))),
    ]))
}

/// `inherited`: the virtual host's retry policy, which this route may carry as its own.
fn forward(f: &ForwardAction, b: &Bootstrap, inherited: Option<&RetryPolicy>) -> Value {
    let mut pairs = cluster_spec(&f.cluster, b);
    pairs.push(("prefix_rewrite", f.prefix_rewrite.as_deref().and_then(s)));
    pairs.push((
        "regex_rewrite",
        f.regex_rewrite.as_ref().and_then(regex_rewrite),
    ));
    match &f.host_rewrite {
        Some(HostRewrite::Literal(h)) => pairs.push(("host_rewrite_literal", s(h))),
        Some(HostRewrite::Auto) => pairs.push(("auto_host_rewrite", n(true))),
        None => {}
    }
    pairs.push(("timeout", timeout(f.timeout)));
    pairs.push(("idle_timeout", f.idle_timeout.and_then(timeout)));
    let upgrades: Vec<Value> = f
        .upgrades
        .iter()
        .map(|u| {
            map(vec![
                ("upgrade_type", s(&u.upgrade_type)),
                ("enabled", n(u.enabled)),
                ("connect_config", u.terminate_connect.then(|| map(vec![]))),
            ])
        })
        .collect();
    pairs.push(("cors", filters::legacy_cors(f.cors.as_deref())));
    if !upgrades.is_empty() {
        pairs.push(("upgrade_configs", list(upgrades)));
    }
    if !f.hash_policy.is_empty() {
        pairs.push((
            "hash_policy",
            list(f.hash_policy.iter().map(hash_entry).collect()),
        ));
    }
    if !f.mirrors.is_empty() {
        let name = |i: usize| b.clusters.get(i).map_or("", |c| c.name.as_str());
        let policies = f
            .mirrors
            .iter()
            .map(|m| {
                let target = match &m.target {
                    crate::config::MirrorTarget::Cluster(c) => ("cluster", s(name(*c))),
                    crate::config::MirrorTarget::Header(h) => ("cluster_header", s(h)),
                };
                map(vec![
                    target,
                    (
                        "runtime_fraction",
                        m.fraction.as_ref().map(filters::fraction),
                    ),
                    (
                        "disable_shadow_host_suffix_append",
                        (!m.host_suffix).then(|| n(true)).flatten(),
                    ),
                ])
            })
            .collect();
        pairs.push(("request_mirror_policies", list(policies)));
    }
    // A policy the virtual host gave this route is shown there, not repeated here.
    if let Some(rp) = f.retry_policy.as_ref().filter(|rp| Some(*rp) != inherited) {
        pairs.push(("retry_policy", retry_policy(rp)));
    }
    map(pairs)
}

/// A route's `hash_policy[]` entry.
fn hash_entry(h: &crate::config::HashPolicy) -> Value {
    use crate::config::HashKey;
    let key = match &h.key {
        HashKey::Header(n) => ("header", map(vec![("header_name", s(n))])),
        HashKey::Cookie(n) => ("cookie", map(vec![("name", s(n))])),
        HashKey::SourceIp => ("connection_properties", map(vec![("source_ip", n(true))])),
        HashKey::QueryParameter(q) => ("query_parameter", map(vec![("name", s(q))])),
    };
    map(vec![
        (key.0, Some(key.1)),
        ("terminal", h.terminal.then(|| true.into())),
    ])
}

/// A retry policy as Envoy writes it (`retry_on` as its comma-separated conditions).
fn retry_policy(rp: &RetryPolicy) -> Option<Value> {
    let on = &rp.retry_on;
    let conditions: Vec<&str> = [
        (on.five_xx, "5xx"),
        (on.gateway_error, "gateway-error"),
        (on.reset, "reset"),
        (on.connect_failure, "connect-failure"),
        (on.retriable_4xx, "retriable-4xx"),
        (on.retriable_status_codes, "retriable-status-codes"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    Some(map(vec![
        ("retry_on", s(&conditions.join(","))),
        ("num_retries", n(rp.num_retries)),
        ("per_try_timeout", rp.per_try_timeout.and_then(dur)),
        (
            "retriable_status_codes",
            list(
                rp.retriable_status_codes
                    .iter()
                    .map(|c| Value::from(*c))
                    .collect(),
            ),
        ),
        (
            "retry_back_off",
            Some(map(vec![
                ("base_interval", dur(rp.back_off_base)),
                ("max_interval", dur(rp.back_off_max)),
            ])),
        ),
    ]))
}

fn redirect(rd: &RedirectAction) -> Value {
    let code = match rd.response_code {
        302 => "FOUND",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        _ => "MOVED_PERMANENTLY",
    };
    let path = match &rd.path {
        PathRedirect::Keep => None,
        PathRedirect::Path(p) => Some(("path_redirect", s(p))),
        PathRedirect::Prefix(p) => Some(("prefix_rewrite", s(p))),
        PathRedirect::Regex(r) => Some(("regex_rewrite", regex_rewrite(r))),
    };
    let mut pairs = vec![
        ("scheme_redirect", rd.scheme.as_deref().and_then(s)),
        ("host_redirect", rd.host.as_deref().and_then(s)),
        ("port_redirect", rd.port.and_then(n)),
        ("response_code", s(code)),
        ("strip_query", n(rd.strip_query)),
    ];
    pairs.extend(path);
    map(pairs)
}

fn cluster(c: &Cluster) -> Value {
    let endpoint = |e: &crate::config::EndpointAddr| {
        let hc =
            (e.health_check_port.is_some() || !e.health_check_hostname.is_empty()).then(|| {
                map(vec![
                    ("port_value", e.health_check_port.and_then(n)),
                    (
                        "hostname",
                        (!e.health_check_hostname.is_empty())
                            .then(|| e.health_check_hostname.clone().into()),
                    ),
                ])
            });
        map(vec![
            (
                "endpoint",
                Some(map(vec![
                    ("address", Some(address(&e.host, e.port))),
                    (
                        "hostname",
                        (!e.hostname.is_empty()).then(|| e.hostname.clone().into()),
                    ),
                    ("health_check_config", hc),
                ])),
            ),
            ("load_balancing_weight", n(e.weight)),
        ])
    };
    let b = &c.balancing;
    // One entry per configured `endpoints[]` entry (locality).
    let groups: Vec<Value> = b
        .localities
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let eps = c.endpoints.iter().filter(|e| e.locality == i);
            let locality = map(vec![
                (
                    "region",
                    (!l.region.is_empty()).then(|| l.region.clone().into()),
                ),
                ("zone", (!l.zone.is_empty()).then(|| l.zone.clone().into())),
                (
                    "sub_zone",
                    (!l.sub_zone.is_empty()).then(|| l.sub_zone.clone().into()),
                ),
            ]);
            map(vec![
                ("locality", Some(locality)),
                ("lb_endpoints", list(eps.map(endpoint).collect())),
                (
                    "load_balancing_weight",
                    (l.weight > 0).then(|| l.weight.into()),
                ),
                ("priority", (l.priority > 0).then(|| l.priority.into())),
            ])
        })
        .collect();
    let load_assignment = (!c.load_assignment_cluster_name.is_empty()).then(|| {
        map(vec![
            ("cluster_name", s(&c.load_assignment_cluster_name)),
            ("endpoints", list(groups)),
            (
                "policy",
                Some(map(vec![(
                    "overprovisioning_factor",
                    n(b.overprovisioning_factor),
                )])),
            ),
        ])
    });
    map(vec![
        ("name", s(&c.name)),
        ("type", shout(c.discovery)),
        ("lb_policy", shout(c.lb_policy)),
        ("dns_lookup_family", shout(c.dns_lookup_family)),
        ("connect_timeout", dur(c.connect_timeout)),
        ("dns_refresh_rate", dur(c.dns_refresh_rate)),
        (
            "per_connection_buffer_limit_bytes",
            n(c.per_connection_buffer_limit_bytes),
        ),
        ("load_assignment", load_assignment),
        ("transport_socket", cluster_socket(c)),
        (
            "health_checks",
            c.health_check
                .as_ref()
                .and_then(|h| list(vec![health_check(h)])),
        ),
        (
            "common_lb_config",
            Some(map(vec![
                (
                    "healthy_panic_threshold",
                    Some(map(vec![("value", n(c.healthy_panic_threshold))])),
                ),
                (
                    "locality_weighted_lb_config",
                    b.locality_weighted.then(|| map(vec![])),
                ),
                (
                    "consistent_hashing_lb_config",
                    b.hash_by_hostname
                        .then(|| map(vec![("use_hostname_for_hashing", n(true))])),
                ),
            ])),
        ),
        (
            "ring_hash_lb_config",
            (c.lb_policy == crate::config::LbPolicy::RingHash).then(|| {
                map(vec![
                    ("minimum_ring_size", n(b.ring_min)),
                    ("maximum_ring_size", n(b.ring_max)),
                ])
            }),
        ),
        (
            "maglev_lb_config",
            (c.lb_policy == crate::config::LbPolicy::Maglev)
                .then(|| map(vec![("table_size", n(b.maglev_size))])),
        ),
        (
            "least_request_lb_config",
            (c.lb_policy == crate::config::LbPolicy::LeastRequest).then(|| {
                map(vec![
                    ("choice_count", n(b.choice_count)),
                    (
                        "active_request_bias",
                        Some(map(vec![("default_value", n(b.active_request_bias))])),
                    ),
                ])
            }),
        ),
        (
            "upstream_connection_options",
            c.tcp_keepalive.map(|k| {
                map(vec![(
                    "tcp_keepalive",
                    Some(map(vec![
                        ("keepalive_probes", k.probes.and_then(n)),
                        ("keepalive_time", k.time.and_then(n)),
                        ("keepalive_interval", k.interval.and_then(n)),
                    ])),
                )])
            }),
        ),
        (
            "typed_extension_protocol_options",
            Some(upstream_http(&c.http)),
        ),
        (
            "outlier_detection",
            c.outlier_detection.as_ref().map(outlier_detection),
        ),
    ])
}

/// A cluster's outlier detection, every default written out.
fn outlier_detection(o: &crate::config::OutlierDetection) -> Value {
    map(vec![
        ("consecutive_5xx", n(o.consecutive_5xx)),
        (
            "consecutive_gateway_failure",
            n(o.consecutive_gateway_failure),
        ),
        (
            "consecutive_local_origin_failure",
            n(o.consecutive_local_origin_failure),
        ),
        (
            "split_external_local_origin_errors",
            n(o.split_external_local_origin_errors),
        ),
        ("interval", dur(o.interval)),
        ("base_ejection_time", dur(o.base_ejection_time)),
        ("max_ejection_time", dur(o.max_ejection_time)),
        ("max_ejection_percent", n(o.max_ejection_percent)),
        ("always_eject_one_host", n(o.always_eject_one_host)),
        ("enforcing_consecutive_5xx", n(o.enforcing_consecutive_5xx)),
        (
            "enforcing_consecutive_gateway_failure",
            n(o.enforcing_consecutive_gateway_failure),
        ),
        (
            "enforcing_consecutive_local_origin_failure",
            n(o.enforcing_consecutive_local_origin_failure),
        ),
        ("enforcing_success_rate", n(o.enforcing_success_rate)),
        (
            "enforcing_local_origin_success_rate",
            n(o.enforcing_local_origin_success_rate),
        ),
        (
            "success_rate_minimum_hosts",
            n(o.success_rate_minimum_hosts),
        ),
        (
            "success_rate_request_volume",
            n(o.success_rate_request_volume),
        ),
        ("success_rate_stdev_factor", n(o.success_rate_stdev_factor)),
        (
            "successful_active_health_check_uneject_host",
            n(o.successful_active_health_check_uneject_host),
        ),
    ])
}

/// A cluster's upstream HTTP protocol options, as the typed extension.
/// A cluster's transport socket: TLS or none, wrapped in the upstream PROXY protocol socket
/// when it has one (the inner socket then spelled out, raw_buffer if plain).
fn cluster_socket(c: &crate::config::Cluster) -> Option<Value> {
    let inner = c.tls.as_ref().map(tls::upstream);
    let Some(v) = c.proxy_protocol else {
        return inner;
    };
    let raw = || {
        extension(
            "envoy.transport_sockets.raw_buffer",
            "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
            Vec::new(),
        )
    };
    let version = match v {
        crate::proxy_protocol::Version::V1 => "V1",
        crate::proxy_protocol::Version::V2 => "V2",
    };
    Some(extension(
        "envoy.transport_sockets.upstream_proxy_protocol",
        "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
        vec![
            ("config", Some(map(vec![("version", s(version))]))),
            ("transport_socket", Some(inner.unwrap_or_else(raw))),
        ],
    ))
}

/// An extension: its `name`, and a `typed_config` of type `ty` with `fields`.
fn extension(name: &str, ty: &str, fields: Vec<(&str, Option<Value>)>) -> Value {
    let mut config = vec![("@type", s(&format!("{T}{ty}")))];
    config.extend(fields);
    map(vec![("name", s(name)), ("typed_config", Some(map(config)))])
}

fn upstream_http(h: &crate::config::UpstreamHttp) -> Value {
    let http1 = h.proper_case_headers.then(|| {
        map(vec![(
            "header_key_format",
            Some(map(vec![("proper_case_words", Some(map(vec![])))])),
        )])
    });
    let options = map(vec![
        (
            "@type",
            s(&format!(
                "{T}envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
            )),
        ),
        (
            "common_http_protocol_options",
            Some(map(vec![
                ("idle_timeout", timeout(h.idle_timeout)),
                (
                    "max_connection_duration",
                    h.max_connection_duration.and_then(dur),
                ),
                ("max_headers_count", n(h.max_headers_count as u64)),
                (
                    "max_requests_per_connection",
                    h.max_requests_per_connection.and_then(n),
                ),
            ])),
        ),
        (
            "upstream_http_protocol_options",
            (h.auto_sni || h.auto_san_validation).then(|| {
                map(vec![
                    ("auto_sni", n(h.auto_sni)),
                    ("auto_san_validation", n(h.auto_san_validation)),
                ])
            }),
        ),
        (
            "explicit_http_config",
            Some(map(vec![(
                "http_protocol_options",
                Some(http1.unwrap_or_else(|| map(vec![]))),
            )])),
        ),
    ]);
    map(vec![(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        Some(options),
    )])
}

/// A cluster's active health check, every default written out.
fn health_check(h: &HealthCheck) -> Value {
    let hex = |b: &[u8]| {
        let text: String = b.iter().map(|x| format!("{x:02X}")).collect();
        map(vec![("text", s(&text))])
    };
    let kind = match &h.kind {
        HealthCheckKind::Http {
            method,
            host,
            path,
            expected_statuses,
            retriable_statuses,
            headers,
        } => {
            let ranges = |r: &[(u16, u16)]| {
                let r = r
                    .iter()
                    .map(|&(a, b)| map(vec![("start", n(a)), ("end", n(b))]));
                list(r.collect())
            };
            let mut pairs = vec![
                (
                    "host",
                    (!host.is_empty()).then(|| Value::from(host.as_str())),
                ),
                ("path", s(path)),
                ("method", s(method)),
                ("expected_statuses", ranges(expected_statuses)),
                ("retriable_statuses", ranges(retriable_statuses)),
            ];
            request_edits(&mut pairs, headers);
            ("http_health_check", Some(map(pairs)))
        }
        HealthCheckKind::Tcp { send, receive } => (
            "tcp_health_check",
            Some(map(vec![
                ("send", (!send.is_empty()).then(|| hex(send))),
                ("receive", list(receive.iter().map(|r| hex(r)).collect())),
            ])),
        ),
    };
    map(vec![
        ("timeout", dur(h.timeout)),
        ("interval", dur(h.interval)),
        ("initial_jitter", dur(h.initial_jitter)),
        ("interval_jitter", dur(h.interval_jitter)),
        ("interval_jitter_percent", n(h.interval_jitter_percent)),
        ("unhealthy_threshold", n(h.unhealthy_threshold)),
        ("healthy_threshold", n(h.healthy_threshold)),
        ("reuse_connection", n(h.reuse_connection)),
        ("no_traffic_interval", dur(h.no_traffic_interval)),
        (
            "no_traffic_healthy_interval",
            dur(h.no_traffic_healthy_interval),
        ),
        ("unhealthy_interval", dur(h.unhealthy_interval)),
        ("unhealthy_edge_interval", dur(h.unhealthy_edge_interval)),
        ("healthy_edge_interval", dur(h.healthy_edge_interval)),
        kind,
    ])
}

mod filters;
mod rbac;
mod tls;

#[cfg(test)]
mod tests;
