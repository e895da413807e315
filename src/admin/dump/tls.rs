//! TLS contexts in `/config_dump`. Private keys are never shown: a key read from a file is
//! dumped as that file name, an inline one as `[redacted]` (as Envoy does), so a dump of a
//! config with inline keys does not load back.

use serde_yaml::Value;

use super::{list, map, n, s, shout, string_match, T};
use crate::config::{CertKey, DownstreamTls, TlsParams, TlsVersion, UpstreamTls, Validation};

fn pem(bytes: &[u8]) -> Option<Value> {
    s(&String::from_utf8_lossy(bytes))
}

fn version(v: TlsVersion) -> Option<Value> {
    s(match v {
        TlsVersion::V1_2 => "TLSv1_2",
        TlsVersion::V1_3 => "TLSv1_3",
    })
}

fn params(p: &TlsParams) -> Value {
    let suites = p.cipher_suites.iter().map(|c| Value::from(c.as_str()));
    map(vec![
        ("tls_minimum_protocol_version", version(p.min)),
        ("tls_maximum_protocol_version", version(p.max)),
        ("cipher_suites", list(suites.collect())),
    ])
}

fn cert(c: &CertKey) -> Value {
    let key = match &c.key_file {
        Some(f) => map(vec![("filename", s(f))]),
        None => map(vec![("inline_string", s("[redacted]"))]),
    };
    map(vec![
        (
            "certificate_chain",
            Some(map(vec![("inline_string", pem(&c.chain_pem))])),
        ),
        ("private_key", Some(key)),
    ])
}

fn validation(v: &Validation) -> Value {
    let sans = v
        .san_matchers
        .iter()
        .map(|m| {
            map(vec![
                ("san_type", shout(m.san_type)),
                ("matcher", Some(string_match(&m.matcher))),
            ])
        })
        .collect();
    map(vec![
        (
            "trusted_ca",
            Some(map(vec![("inline_string", pem(&v.trusted_ca_pem))])),
        ),
        ("match_typed_subject_alt_names", list(sans)),
    ])
}

/// The ALPN protocols a context offers, in the order offered.
fn alpn(h2: bool, http11: bool) -> Vec<&'static str> {
    [("h2", h2), ("http/1.1", http11)]
        .iter()
        .filter_map(|(a, on)| on.then_some(*a))
        .collect()
}

fn common(
    p: &TlsParams,
    c: Option<&CertKey>,
    v: Option<&Validation>,
    alpn: &[&str],
) -> Option<Value> {
    Some(map(vec![
        ("tls_params", Some(params(p))),
        ("tls_certificates", list(c.map(cert).into_iter().collect())),
        ("validation_context", v.map(validation)),
        (
            "alpn_protocols",
            (!alpn.is_empty())
                .then(|| Value::Sequence(alpn.iter().map(|a| Value::from(*a)).collect())),
        ),
    ]))
}

fn socket(ty: &str, ctx: Vec<(&str, Option<Value>)>) -> Value {
    let mut pairs = vec![(
        "@type",
        s(&format!(
            "{T}envoy.extensions.transport_sockets.tls.v3.{ty}"
        )),
    )];
    pairs.extend(ctx);
    map(vec![
        ("name", s("envoy.transport_sockets.tls")),
        ("typed_config", Some(map(pairs))),
    ])
}

pub fn downstream(d: &DownstreamTls) -> Value {
    socket(
        "DownstreamTlsContext",
        vec![
            (
                "common_tls_context",
                common(
                    &d.params,
                    Some(&d.cert),
                    d.validation.as_ref(),
                    &alpn(d.alpn_h2, d.alpn_http11),
                ),
            ),
            (
                "require_client_certificate",
                n(d.require_client_certificate),
            ),
        ],
    )
}

pub fn upstream(u: &UpstreamTls) -> Value {
    socket(
        "UpstreamTlsContext",
        vec![
            ("sni", u.sni.as_deref().and_then(s)),
            (
                "common_tls_context",
                common(
                    &u.params,
                    u.cert.as_ref(),
                    u.validation.as_ref(),
                    &alpn(u.alpn_h2, u.alpn_http11),
                ),
            ),
            ("max_session_keys", n(u.max_session_keys as u64)),
        ],
    )
}
