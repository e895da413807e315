//! The PROXY protocol in the config: a listener's `listener_filters` (the TLS inspector, which
//! changes nothing as baton always inspects the first bytes of a connection on a listener
//! with a TLS filter chain, and the PROXY protocol reader
//! `envoy.filters.listener.proxy_protocol`; others are refused), and a cluster's upstream
//! PROXY protocol transport socket (`envoy.transport_sockets.upstream_proxy_protocol`).

use serde::Deserialize;
use serde_yaml::Value;

use super::de::from_value;
use super::model::ProxyProtocol;
use super::raw::{self, EnumValue};
use super::validate::{err, extension_kind, no_filter, proto_enum, typed_payload, EnumEntry};
use super::ConfigError;
use crate::proxy_protocol::Version;

pub(super) const PROXY_PROTOCOL_TYPE: &str =
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";
pub(super) const UPSTREAM_PROXY_PROTOCOL_TYPE: &str =
    "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport";

/// `ProxyProtocolUpstreamTransport`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    config: Option<RawConfig>,
    transport_socket: Option<raw::TypedExtension>,
    allow_unspecified_address: Option<bool>,
    tlv_as_pool_key: Option<bool>,
}

/// `envoy.config.core.v3.ProxyProtocolConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<EnumValue>,
    pass_through_tlvs: Option<Value>,
    #[serde(default)]
    added_tlvs: Vec<Value>,
}

/// A cluster's `transport_socket`: the upstream PROXY protocol socket's version and the
/// socket it wraps (`None`, the socket as it is, when it is not that socket).
pub fn upstream_socket(
    ts: &raw::TypedExtension,
    path: &str,
) -> Result<(Option<Version>, Option<raw::TypedExtension>), ConfigError> {
    let here = [
        UPSTREAM_PROXY_PROTOCOL_TYPE,
        super::tls::UPSTREAM_TYPE,
        super::tls::RAW_BUFFER_TYPE,
    ];
    if extension_kind(ts, path, "transport socket here", &here)? != UPSTREAM_PROXY_PROTOCOL_TYPE {
        return Ok((None, None));
    }
    no_filter(ts, path)?;
    let tpath = format!("{path}.typed_config");
    let Some(v) = typed_payload(&ts.typed_config, &tpath, UPSTREAM_PROXY_PROTOCOL_TYPE)? else {
        return Err(err(
            format!("{tpath}.transport_socket"),
            "required field is missing",
        ));
    };
    let r: RawUpstream = from_value(&v, &tpath)?;
    for (field, on) in [
        ("allow_unspecified_address", r.allow_unspecified_address),
        ("tlv_as_pool_key", r.tlv_as_pool_key),
    ] {
        if on == Some(true) {
            return Err(err(format!("{tpath}.{field}"), "not supported by baton"));
        }
    }
    let mut version = Version::V1;
    if let Some(c) = r.config {
        let cpath = format!("{tpath}.config");
        if c.pass_through_tlvs.is_some() {
            return Err(err(
                format!("{cpath}.pass_through_tlvs"),
                "not supported by baton (the listener filter keeps no TLVs to pass)",
            ));
        }
        if !c.added_tlvs.is_empty() {
            return Err(err(format!("{cpath}.added_tlvs"), "not supported by baton"));
        }
        if let Some(v) = &c.version {
            version = match proto_enum(v, &format!("{cpath}.version"), VERSIONS)? {
                1 => Version::V1,
                _ => Version::V2,
            };
        }
    }
    let Some(inner) = r.transport_socket else {
        return Err(err(
            format!("{tpath}.transport_socket"),
            "required field is missing",
        ));
    };
    // The inner socket is read as any cluster's: raw_buffer or TLS (a second PROXY socket
    // inside is refused there, by its type).
    Ok((Some(version), Some(inner)))
}

/// `ProxyProtocol` (the listener filter's config).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxyProtocol {
    #[serde(default)]
    rules: Vec<Value>,
    allow_requests_without_proxy_protocol: Option<bool>,
    pass_through_tlvs: Option<Value>,
    #[serde(default)]
    disallowed_versions: Vec<EnumValue>,
    stat_prefix: Option<String>,
}

/// `envoy.config.core.v3.ProxyProtocolConfig.Version`.
const VERSIONS: &[EnumEntry<u8>] = &[("V1", 0, Some(1)), ("V2", 1, Some(2))];

/// The listener's PROXY protocol reader, if it has one (the TLS inspector has no settings).
pub fn listener_filters(
    filters: &[raw::TypedExtension],
    path: &str,
) -> Result<Option<ProxyProtocol>, ConfigError> {
    let inspector = super::tls::TLS_INSPECTOR_TYPE;
    let mut proxy = None;
    let mut inspector_at = None;
    for (i, f) in filters.iter().enumerate() {
        let fp = format!("{path}[{i}]");
        let ty = extension_kind(f, &fp, "listener filter", &[inspector, PROXY_PROTOCOL_TYPE])?;
        no_filter(f, &fp)?;
        let tpath = format!("{fp}.typed_config");
        let payload = typed_payload(&f.typed_config, &tpath, ty)?;
        if ty == inspector {
            // Only the JA3/JA4 fingerprint switches exist; baton computes no fingerprints.
            if payload
                .as_ref()
                .and_then(Value::as_mapping)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(err(tpath, "no fields are supported (JA3/JA4 fingerprints)"));
            }
            inspector_at.get_or_insert(i);
            continue;
        }
        if proxy.is_some() {
            return Err(err(fp, "a second proxy_protocol listener filter"));
        }
        // baton reads the header before anything else; Envoy, with the inspector first,
        // would look for a ClientHello where the header is.
        if let Some(at) = inspector_at {
            return Err(err(
                fp,
                format!(
                    "must come before the TLS inspector ({path}[{at}]): baton reads the PROXY header first"
                ),
            ));
        }
        proxy = Some(proxy_protocol(payload, &tpath)?);
    }
    Ok(proxy)
}

fn proxy_protocol(v: Option<Value>, path: &str) -> Result<ProxyProtocol, ConfigError> {
    let r: RawProxyProtocol = match v {
        Some(v) => from_value(&v, path)?,
        None => from_value(&Value::Mapping(Default::default()), path)?,
    };
    if !r.rules.is_empty() {
        return Err(err(
            format!("{path}.rules"),
            "not supported by baton (TLVs to dynamic metadata: baton has no dynamic metadata)",
        ));
    }
    if r.pass_through_tlvs.is_some() {
        return Err(err(
            format!("{path}.pass_through_tlvs"),
            "not supported by baton (its upstream PROXY protocol socket passes no TLVs)",
        ));
    }
    let (mut v1, mut v2) = (true, true);
    for (i, d) in r.disallowed_versions.iter().enumerate() {
        match proto_enum(d, &format!("{path}.disallowed_versions[{i}]"), VERSIONS)? {
            1 => v1 = false,
            _ => v2 = false,
        }
    }
    if !v1 && !v2 {
        return Err(err(
            format!("{path}.disallowed_versions"),
            "every PROXY protocol version is disallowed (Envoy refuses this too)",
        ));
    }
    Ok(ProxyProtocol {
        accept_v1: v1,
        accept_v2: v2,
        allow_without: r.allow_requests_without_proxy_protocol.unwrap_or(false),
        stat_prefix: r.stat_prefix.unwrap_or_default(),
    })
}
