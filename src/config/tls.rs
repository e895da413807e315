//! TLS configuration: Envoy's `DownstreamTlsContext` / `UpstreamTlsContext` (transport socket
//! `envoy.transport_sockets.tls`), a listener's `filter_chain_match` and `listener_filters`.
//! The serde mirror and its validation live together here; the checked model holds PEM text,
//! and the certificates are parsed (and the rustls configuration built) once at load, so a
//! bad key or certificate is an error naming its field.

use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::de::{from_value, join_key};
use super::model::{
    CertKey, DownstreamTls, FilterChainTls, SanMatcher, SanType, TlsParams, TlsVersion,
    UpstreamTls, Validation,
};
use super::raw::{self, Dur, EnumValue};
use super::validate::{err, extension_kind, no_filter, proto_enum, typed_payload, EnumEntry};
use super::ConfigError;

pub(super) const DOWNSTREAM_TYPE: &str =
    "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
pub(super) const UPSTREAM_TYPE: &str =
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
pub(super) const RAW_BUFFER_TYPE: &str =
    "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
pub(super) const TLS_INSPECTOR_TYPE: &str =
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";

/// Until the ClientHello has been read (Envoy's `listener_filters_timeout` default).
pub const DEFAULT_INSPECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The rest of a handshake when the chain sets no `transport_socket_connect_timeout` (Envoy
/// has none by default; a handshake that never finishes must not hold a connection forever).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- serde mirror

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilterChainMatch {
    pub destination_port: Option<u32>,
    #[serde(default)]
    pub prefix_ranges: Vec<raw::CidrRange>,
    #[serde(default)]
    pub source_prefix_ranges: Vec<raw::CidrRange>,
    #[serde(default)]
    pub direct_source_prefix_ranges: Vec<raw::CidrRange>,
    #[serde(default)]
    pub source_ports: Vec<u32>,
    #[serde(default)]
    pub server_names: Vec<String>,
    pub transport_protocol: Option<String>,
    #[serde(default)]
    pub application_protocols: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDownstream {
    common_tls_context: Option<RawCommon>,
    require_client_certificate: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    common_tls_context: Option<RawCommon>,
    sni: Option<String>,
    allow_renegotiation: Option<bool>,
    max_session_keys: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    tls_params: Option<RawParams>,
    #[serde(default)]
    tls_certificates: Vec<RawCertificate>,
    validation_context: Option<RawValidation>,
    #[serde(default)]
    alpn_protocols: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    tls_minimum_protocol_version: Option<EnumValue>,
    tls_maximum_protocol_version: Option<EnumValue>,
    #[serde(default)]
    cipher_suites: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    certificate_chain: Option<RawDataSource>,
    private_key: Option<RawDataSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    trusted_ca: Option<RawDataSource>,
    #[serde(default)]
    match_typed_subject_alt_names: Vec<RawSanMatcher>,
    trust_chain_verification: Option<EnumValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSanMatcher {
    san_type: EnumValue,
    /// A `StringMatcher`, read once the path is known.
    matcher: Value,
}

/// Envoy's `DataSource` with the binary variant TLS material may use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataSource {
    filename: Option<String>,
    inline_string: Option<String>,
    /// Base64, as protobuf's JSON mapping writes bytes.
    inline_bytes: Option<String>,
}

// ---------------------------------------------------------------- validation

const VERSIONS: &[EnumEntry<Option<TlsVersion>>] = &[
    ("TLS_AUTO", 0, Some(None)),
    ("TLSv1_0", 1, None),
    ("TLSv1_1", 2, None),
    ("TLSv1_2", 3, Some(Some(TlsVersion::V1_2))),
    ("TLSv1_3", 4, Some(Some(TlsVersion::V1_3))),
];

const SAN_TYPES: &[EnumEntry<SanType>] = &[
    ("SAN_TYPE_UNSPECIFIED", 0, None),
    ("EMAIL", 1, Some(SanType::Email)),
    ("DNS", 2, Some(SanType::Dns)),
    ("URI", 3, Some(SanType::Uri)),
    ("IP_ADDRESS", 4, Some(SanType::IpAddress)),
    ("OTHER_NAME", 5, None),
];

const TRUST_CHAIN: &[EnumEntry<()>] = &[
    ("VERIFY_TRUST_CHAIN", 0, Some(())),
    ("ACCEPT_UNTRUSTED", 1, None),
];

/// The TLS 1.2 suites rustls (ring provider) offers, by the OpenSSL names Envoy uses (the
/// TLS 1.3 ones come first in `CIPHER_NAMES` and are not configurable, as in Envoy).
const TLS12_SUITES: &[&str] = crate::tls::names::TLS12_NAMES;

/// A listener's filter chains, then its `default_filter_chain` (at `default_path`): each
/// one's match and transport (their network filters are `validate`'s; `terminal` is left 0
/// for it to set). No two chains may match alike.
pub fn filter_chains(
    chains: &[raw::FilterChain],
    default: Option<&raw::FilterChain>,
    path: &str,
    default_path: &str,
) -> Result<Vec<FilterChainTls>, ConfigError> {
    let mut out: Vec<FilterChainTls> = Vec::with_capacity(chains.len() + 1);
    for (i, c) in chains.iter().enumerate() {
        let cp = format!("{path}[{i}]");
        let f = filter_chain(c, &cp, false)?;
        if let Some(j) = out.iter().position(|o| same_match(o, &f)) {
            return Err(err(
                format!("{cp}.filter_chain_match"),
                format!("matches the same connections as filter_chains[{j}]"),
            ));
        }
        out.push(f);
    }
    if let Some(d) = default {
        if d.filter_chain_match.is_some() {
            return Err(err(
                format!("{default_path}.filter_chain_match"),
                "not used by Envoy on the default filter chain; remove it",
            ));
        }
        out.push(filter_chain(d, default_path, true)?);
    }
    Ok(out)
}

/// Whether two chains match the same connections (Envoy refuses such a listener).
fn same_match(a: &FilterChainTls, b: &FilterChainTls) -> bool {
    let overlap = |x: &[String], y: &[String]| {
        x.iter().any(|n| y.contains(n)) || (x.is_empty() && y.is_empty())
    };
    a.destination_port == b.destination_port
        && a.prefix_ranges == b.prefix_ranges
        && a.source_prefix_ranges == b.source_prefix_ranges
        && a.direct_source_prefix_ranges == b.direct_source_prefix_ranges
        && a.source_ports == b.source_ports
        && a.transport_protocol == b.transport_protocol
        && overlap(&a.server_names, &b.server_names)
        && overlap(&a.application_protocols, &b.application_protocols)
}

/// A filter chain's match, `transport_socket` (`None`: plain) and handshake timeout.
fn filter_chain(
    c: &raw::FilterChain,
    path: &str,
    fallback: bool,
) -> Result<FilterChainTls, ConfigError> {
    let mpath = format!("{path}.filter_chain_match");
    let mut f = FilterChainTls {
        name: c.name.clone().filter(|n| !n.is_empty()),
        destination_port: None,
        prefix_ranges: Vec::new(),
        server_names: Vec::new(),
        transport_protocol: None,
        application_protocols: Vec::new(),
        source_prefix_ranges: Vec::new(),
        direct_source_prefix_ranges: Vec::new(),
        source_ports: Vec::new(),
        fallback,
        terminal: 0,
        tls: None,
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
    };
    if let Some(m) = &c.filter_chain_match {
        if let Some(p) = m.destination_port {
            f.destination_port =
                Some(u16::try_from(p).ok().filter(|&p| p > 0).ok_or_else(|| {
                    err(format!("{mpath}.destination_port"), "must be 1 to 65535")
                })?);
        }
        let ranges = |r: &[raw::CidrRange], field: &str| {
            super::validate::cidr_ranges(r, &format!("{mpath}.{field}"))
                .map(|r| r.unwrap_or_default())
        };
        f.prefix_ranges = ranges(&m.prefix_ranges, "prefix_ranges")?;
        f.source_prefix_ranges = ranges(&m.source_prefix_ranges, "source_prefix_ranges")?;
        f.direct_source_prefix_ranges = ranges(
            &m.direct_source_prefix_ranges,
            "direct_source_prefix_ranges",
        )?;
        for (i, &p) in m.source_ports.iter().enumerate() {
            let port = u16::try_from(p)
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| err(format!("{mpath}.source_ports[{i}]"), "must be 1 to 65535"))?;
            f.source_ports.push(port);
        }
        for (i, n) in m.server_names.iter().enumerate() {
            server_name(n, &format!("{mpath}.server_names[{i}]"))?;
        }
        f.transport_protocol = match m.transport_protocol.as_deref() {
            None | Some("") => None,
            Some(p @ ("tls" | "raw_buffer")) => Some(p.to_string()),
            Some(other) => {
                return Err(err(
                    format!("{mpath}.transport_protocol"),
                    format!("unknown transport protocol \"{other}\" (supported: tls, raw_buffer)"),
                ))
            }
        };
        for (i, p) in m.application_protocols.iter().enumerate() {
            if p.is_empty() || p.len() > 255 {
                return Err(err(
                    format!("{mpath}.application_protocols[{i}]"),
                    "an ALPN protocol name is 1 to 255 bytes",
                ));
            }
        }
        f.application_protocols = m.application_protocols.clone();
        f.server_names = m
            .server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        // These are read from the ClientHello, which a build without TLS cannot parse.
        if !cfg!(feature = "tls") {
            let field = if !f.server_names.is_empty() {
                Some("server_names")
            } else if !f.application_protocols.is_empty() {
                Some("application_protocols")
            } else if f.transport_protocol.as_deref() == Some("tls") {
                Some("transport_protocol")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(err(
                    format!("{mpath}.{field}"),
                    "TLS is not compiled into this build of baton (cargo feature \"tls\"): \
                     the ClientHello is not read",
                ));
            }
        }
    }
    if let Some(ts) = &c.transport_socket {
        f.tls = downstream_socket(ts, &format!("{path}.transport_socket"))?;
    }
    match c.transport_socket_connect_timeout {
        Some(Dur(d)) if !d.is_zero() => f.handshake_timeout = d,
        Some(_) => {
            return Err(err(
                format!("{path}.transport_socket_connect_timeout"),
                "must be greater than 0",
            ))
        }
        None => {}
    }
    Ok(f)
}

/// An SNI name of `server_names`: a host name, or `*.` and one.
fn server_name(n: &str, path: &str) -> Result<(), ConfigError> {
    let host = n.strip_prefix("*.").unwrap_or(n);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(err(
            path,
            format!("\"{n}\" is not a host name or a \"*.\" wildcard"),
        ))
    }
}

/// The transport socket's payload, chosen by `@type` as Envoy does (or by name: the TLS socket's
/// is `type_name` here); `None` for the explicit raw buffer. The TLS socket without a
/// `typed_config` is a context with every field unset, as Envoy reads it.
fn socket_payload(
    ts: &raw::TypedExtension,
    path: &str,
    type_name: &'static str,
) -> Result<Option<Value>, ConfigError> {
    let ty = extension_kind(
        ts,
        path,
        "transport socket here",
        &[type_name, RAW_BUFFER_TYPE],
    )?;
    let tpath = join_key(path, "typed_config");
    if ty == RAW_BUFFER_TYPE {
        // `RawBuffer` has no fields, but one given must be refused, not skipped (read before
        // `filter` is refused, so that one run lists both).
        if let Some(v) = typed_payload(&ts.typed_config, &tpath, RAW_BUFFER_TYPE)? {
            let _: raw::RawBuffer = from_value(&v, &tpath)?;
        }
        no_filter(ts, path)?;
        return Ok(None);
    }
    no_filter(ts, path)?;
    if !cfg!(feature = "tls") {
        return Err(err(
            path,
            "TLS is not compiled into this build of baton (cargo feature \"tls\")",
        ));
    }
    Ok(Some(
        typed_payload(&ts.typed_config, &tpath, type_name)?
            .unwrap_or_else(|| Value::Mapping(Default::default())),
    ))
}

fn downstream_socket(
    ts: &raw::TypedExtension,
    path: &str,
) -> Result<Option<DownstreamTls>, ConfigError> {
    let Some(v) = socket_payload(ts, path, DOWNSTREAM_TYPE)? else {
        return Ok(None);
    };
    let tpath = join_key(path, "typed_config");
    let r: RawDownstream = from_value(&v, &tpath)?;
    let cpath = join_key(&tpath, "common_tls_context");
    // A server context without a certificate cannot serve TLS (Envoy refuses it too).
    let no_cert = "a DownstreamTlsContext without a certificate cannot serve TLS";
    let c = r
        .common_tls_context
        .ok_or_else(|| err(&cpath, format!("required field is missing: {no_cert}")))?;
    let params = params(c.tls_params.as_ref(), &join_key(&cpath, "tls_params"))?;
    let (alpn_http11, alpn_h2) =
        alpn_protocols(&c.alpn_protocols, &join_key(&cpath, "alpn_protocols"), true)?;
    let cert = certificates(&c.tls_certificates, &join_key(&cpath, "tls_certificates"))?
        .ok_or_else(|| {
            err(
                join_key(&cpath, "tls_certificates"),
                format!("one certificate is required: {no_cert}"),
            )
        })?;
    let validation = match &c.validation_context {
        Some(vc) => validation(vc, &join_key(&cpath, "validation_context"))?,
        None => None,
    };
    let require_client_certificate = r.require_client_certificate.unwrap_or(false);
    if require_client_certificate && validation.is_none() {
        return Err(err(
            join_key(&tpath, "require_client_certificate"),
            "needs common_tls_context.validation_context.trusted_ca to verify client certificates",
        ));
    }
    let d = DownstreamTls {
        cert,
        params,
        alpn_http11,
        alpn_h2,
        require_client_certificate,
        validation,
    };
    #[cfg(feature = "tls")]
    crate::tls::server_config(&d).map_err(|e| err(&tpath, e))?;
    Ok(Some(d))
}

/// A cluster's `transport_socket`.
pub fn upstream_socket(
    ts: &raw::TypedExtension,
    path: &str,
) -> Result<Option<UpstreamTls>, ConfigError> {
    let Some(v) = socket_payload(ts, path, UPSTREAM_TYPE)? else {
        return Ok(None);
    };
    let tpath = join_key(path, "typed_config");
    let r: RawUpstream = from_value(&v, &tpath)?;
    if r.allow_renegotiation == Some(true) {
        return Err(err(
            join_key(&tpath, "allow_renegotiation"),
            "not supported by baton (rustls never renegotiates)",
        ));
    }
    let sni = match r.sni {
        Some(s) if !s.is_empty() => {
            if rustls_name_ok(&s) {
                Some(s)
            } else {
                return Err(err(
                    join_key(&tpath, "sni"),
                    format!("\"{s}\" is not a valid server name"),
                ));
            }
        }
        _ => None,
    };
    let cpath = join_key(&tpath, "common_tls_context");
    let (params, (alpn_http11, alpn_h2), cert, validation) = match &r.common_tls_context {
        None => (params(None, "")?, (false, false), None, None),
        Some(c) => (
            params(c.tls_params.as_ref(), &join_key(&cpath, "tls_params"))?,
            alpn_protocols(
                &c.alpn_protocols,
                &join_key(&cpath, "alpn_protocols"),
                false,
            )?,
            certificates(&c.tls_certificates, &join_key(&cpath, "tls_certificates"))?,
            match &c.validation_context {
                Some(vc) => validation(vc, &join_key(&cpath, "validation_context"))?,
                None => None,
            },
        ),
    };
    let u = UpstreamTls {
        sni,
        cert,
        params,
        alpn_http11,
        alpn_h2,
        validation,
        max_session_keys: r.max_session_keys.unwrap_or(1) as usize,
        verify_name: false,
    };
    #[cfg(feature = "tls")]
    crate::tls::client_config(&u).map_err(|e| err(&tpath, e))?;
    Ok(Some(u))
}

/// A DNS name or IP literal that TLS can carry as SNI (checked again by rustls).
fn rustls_name_ok(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
        || (s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }))
}

fn params(p: Option<&RawParams>, path: &str) -> Result<TlsParams, ConfigError> {
    let mut out = TlsParams {
        min: TlsVersion::V1_2,
        max: TlsVersion::V1_3,
        cipher_suites: Vec::new(),
    };
    let Some(p) = p else {
        return Ok(out);
    };
    let version = |v: &Option<EnumValue>, f: &str| -> Result<Option<TlsVersion>, ConfigError> {
        match v {
            None => Ok(None),
            Some(v) => proto_enum(v, &join_key(path, f), VERSIONS),
        }
    };
    if let Some(v) = version(
        &p.tls_minimum_protocol_version,
        "tls_minimum_protocol_version",
    )? {
        out.min = v;
    }
    if let Some(v) = version(
        &p.tls_maximum_protocol_version,
        "tls_maximum_protocol_version",
    )? {
        out.max = v;
    }
    if out.min > out.max {
        return Err(err(
            join_key(path, "tls_maximum_protocol_version"),
            "is lower than tls_minimum_protocol_version",
        ));
    }
    for (i, entry) in p.cipher_suites.iter().enumerate() {
        // OpenSSL's equal-preference groups "[A|B]" are accepted; their order is kept.
        let inner = entry.trim_start_matches('[').trim_end_matches(']');
        for name in inner.split('|').map(str::trim) {
            if !TLS12_SUITES.contains(&name) {
                return Err(err(
                    format!("{path}.cipher_suites[{i}]"),
                    format!(
                        "cipher suite \"{name}\" is not offered by baton (rustls; supported: {})",
                        TLS12_SUITES.join(", ")
                    ),
                ));
            }
            out.cipher_suites.push(name.to_string());
        }
    }
    if !out.cipher_suites.is_empty() && out.min == TlsVersion::V1_3 {
        return Err(err(
            join_key(path, "cipher_suites"),
            "applies to TLS 1.2 only, but tls_minimum_protocol_version is TLSv1_3",
        ));
    }
    Ok(out)
}

/// `alpn_protocols`: `h2` and `http/1.1`. Returns (`http/1.1` offered, `h2` offered). A
/// server's list is its preference and baton prefers HTTP/2 when the client offers it, so
/// there `h2` comes first (`server`). A client's: h2 is offered first; the cluster's protocol
/// must match, checked with the cluster.
fn alpn_protocols(list: &[String], path: &str, server: bool) -> Result<(bool, bool), ConfigError> {
    let (mut http11, mut h2) = (false, false);
    // Envoy joins the list with commas and splits it again, so one entry may name several
    // protocols (`["h2,http/1.1"]`, as Envoy's own edge example writes it).
    let names = list
        .iter()
        .enumerate()
        .flat_map(|(i, entry)| entry.split(',').map(move |p| (i, p.trim())));
    for (i, p) in names {
        match p {
            "http/1.1" => http11 = true,
            "h2" if http11 && server => {
                return Err(err(
                    format!("{path}[{i}]"),
                    "h2 after http/1.1 is not supported by baton (it prefers h2: list it first)",
                ))
            }
            "h2" => h2 = true,
            _ => {
                return Err(err(
                    format!("{path}[{i}]"),
                    format!("protocol \"{p}\" is not supported by baton (supported: h2, http/1.1)"),
                ))
            }
        }
    }
    Ok((http11, h2))
}

fn certificates(list: &[RawCertificate], path: &str) -> Result<Option<CertKey>, ConfigError> {
    let c = match list {
        [] => return Ok(None),
        [one] => one,
        [_, ..] => {
            return Err(err(
                format!("{path}[1]"),
                "only one certificate per TLS context is supported",
            ))
        }
    };
    let p = format!("{path}[0]");
    let need = |d: &Option<RawDataSource>, f: &str| {
        let fp = join_key(&p, f);
        d.as_ref()
            .ok_or_else(|| err(&fp, "required field is missing"))
            .and_then(|d| data_source(d, &fp))
    };
    Ok(Some(CertKey {
        chain_pem: need(&c.certificate_chain, "certificate_chain")?,
        key_pem: need(&c.private_key, "private_key")?,
        key_file: c.private_key.as_ref().and_then(|k| k.filename.clone()),
    }))
}

fn validation(v: &RawValidation, path: &str) -> Result<Option<Validation>, ConfigError> {
    if let Some(t) = &v.trust_chain_verification {
        proto_enum(t, &join_key(path, "trust_chain_verification"), TRUST_CHAIN)?;
    }
    let mut san_matchers = Vec::new();
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        let mp = format!("{path}.match_typed_subject_alt_names[{i}]");
        san_matchers.push(SanMatcher {
            san_type: proto_enum(&m.san_type, &join_key(&mp, "san_type"), SAN_TYPES)?,
            matcher: {
                let p = join_key(&mp, "matcher");
                super::validate_route::string_match(from_value(&m.matcher, &p)?, &p)?
            },
        });
    }
    let Some(ca) = &v.trusted_ca else {
        if !san_matchers.is_empty() {
            return Err(err(
                join_key(path, "trusted_ca"),
                "required with match_typed_subject_alt_names",
            ));
        }
        return Ok(None);
    };
    Ok(Some(Validation {
        trusted_ca_pem: data_source(ca, &join_key(path, "trusted_ca"))?,
        san_matchers,
    }))
}

/// TLS material: a file (read now: renewing a certificate is a hot restart), inline text or
/// base64 bytes.
fn data_source(d: &RawDataSource, path: &str) -> Result<Vec<u8>, ConfigError> {
    match (&d.filename, &d.inline_string, &d.inline_bytes) {
        (Some(f), None, None) => std::fs::read(f)
            .map_err(|e| err(join_key(path, "filename"), format!("cannot read {f}: {e}"))),
        (None, Some(s), None) => Ok(s.as_bytes().to_vec()),
        (None, None, Some(b)) => {
            base64(b).ok_or_else(|| err(join_key(path, "inline_bytes"), "invalid base64"))
        }
        (None, None, None) => Err(err(
            path,
            "one of filename, inline_string, inline_bytes is required",
        )),
        _ => Err(err(
            path,
            "only one of filename, inline_string, inline_bytes may be set",
        )),
    }
}

/// Standard base64 (padding optional, whitespace ignored), as protobuf JSON writes bytes.
pub(super) fn base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64("aGVs\nbG8h").as_deref(), Some(&b"hello!"[..]));
        assert!(base64("a*b").is_none());
    }

    #[test]
    fn alpn_entries_split_on_commas_as_envoy_does() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            alpn_protocols(&l(&["h2,http/1.1"]), "p", true).ok(),
            Some((true, true))
        );
        assert_eq!(
            alpn_protocols(&l(&["h2", "http/1.1"]), "p", true).ok(),
            Some((true, true))
        );
        let e = alpn_protocols(&l(&["http/1.1,h3"]), "p", true).unwrap_err();
        assert_eq!(e.path, "p[0]");
        assert!(alpn_protocols(&l(&["http/1.1,h2"]), "p", true).is_err());
    }

    #[test]
    fn server_names_checked() {
        assert!(server_name("example.com", "p").is_ok());
        assert!(server_name("*.example.com", "p").is_ok());
        assert!(server_name("*", "p").is_err());
        assert!(server_name("a..b", "p").is_err());
        assert!(server_name("foo.*.com", "p").is_err());
    }

    #[test]
    fn cipher_suites_refused_by_name() {
        let p = RawParams {
            tls_minimum_protocol_version: None,
            tls_maximum_protocol_version: None,
            cipher_suites: vec!["[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]".into()],
        };
        assert_eq!(params(Some(&p), "x").map(|p| p.cipher_suites.len()), Ok(2));
        let p = RawParams {
            cipher_suites: vec!["AES128-SHA".into()],
            ..p
        };
        let e = params(Some(&p), "x").unwrap_err();
        assert_eq!(e.path, "x.cipher_suites[0]");
        assert!(e.message.contains("AES128-SHA"), "{e}");
    }

    #[test]
    fn old_versions_refused() {
        let p = RawParams {
            tls_minimum_protocol_version: Some(EnumValue::Name("TLSv1_0".into())),
            tls_maximum_protocol_version: None,
            cipher_suites: vec![],
        };
        let e = params(Some(&p), "x").unwrap_err();
        assert_eq!(e.path, "x.tls_minimum_protocol_version");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_build_without_tls_refuses_transport_sockets() {
        let ts: raw::TypedExtension = serde_yaml::from_str(
            "{name: envoy.transport_sockets.tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext}}",
        )
        .expect("yaml");
        let e = upstream_socket(&ts, "c.transport_socket").expect_err("refused");
        assert_eq!(e.path, "c.transport_socket");
        assert!(e.message.contains("cargo feature \"tls\""), "{e}");
    }
}
