//! A listener's `listener_filters`: the TLS inspector (baton always inspects the first bytes
//! of a connection on a listener with a TLS filter chain) and the PROXY protocol reader
//! (`envoy.filters.listener.proxy_protocol`); others are refused.

use serde::Deserialize;
use serde_yaml::Value;

use super::de::from_value;
use super::model::ProxyProtocol;
use super::raw::{self, EnumValue};
use super::validate::{err, extension_kind, no_filter, proto_enum, typed_payload, EnumEntry};
use super::ConfigError;

pub(super) const PROXY_PROTOCOL_TYPE: &str =
    "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";

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
            "not supported by baton (no upstream PROXY protocol uses them)",
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
