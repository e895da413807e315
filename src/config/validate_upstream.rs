//! A cluster's upstream HTTP protocol options: the typed extension
//! `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` under
//! `typed_extension_protocol_options`, or the deprecated cluster fields it replaced. An
//! upstream speaks HTTP/1.1, or HTTP/2 when `http2_protocol_options` is set (explicitly: the
//! protocol chosen by ALPN or by the downstream's is refused); HTTP/3 is refused.

use serde_yaml::Value;
use std::time::Duration;

use super::de::{from_value, join_key};
use super::model::UpstreamHttp;
use super::raw;
use super::validate::{enum_or, err, timeout, typed_payload};
use super::ConfigError;

/// The one extension baton reads under `typed_extension_protocol_options`.
pub const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

const NO_HTTP2_DOWNSTREAM: &str =
    "not supported by baton (an upstream protocol following the downstream's: use explicit_http_config)";
const NO_HTTP3: &str = "not supported by baton (HTTP/3 upstreams are not supported)";

/// The raw fields a cluster may carry its HTTP protocol options in.
pub struct ClusterFields<'a> {
    pub typed: &'a Option<Value>,
    pub common: Option<&'a raw::HttpProtocolOptions>,
    pub http1: Option<&'a raw::UpstreamHttp1Options>,
    pub http2: Option<&'a raw::Http2ProtocolOptions>,
    pub upstream: Option<&'a raw::UpstreamHttpOptions>,
}

/// The cluster's options (Envoy's defaults when none are given). As in Envoy, the typed
/// extension and the deprecated fields may not both be used.
pub fn options(f: ClusterFields<'_>, path: &str) -> Result<UpstreamHttp, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let legacy =
        f.common.is_some() || f.http1.is_some() || f.http2.is_some() || f.upstream.is_some();
    if let (Some(_), Some(_)) = (f.http1, f.http2) {
        return Err(err(
            p("http2_protocol_options"),
            "must not be set with http_protocol_options (one protocol per cluster)",
        ));
    }
    let typed = match f.typed {
        None | Some(Value::Null) => None,
        Some(Value::Mapping(m)) if m.is_empty() => None,
        Some(v) => Some(typed_options(v, &p("typed_extension_protocol_options"))?),
    };
    if legacy {
        log::warn!(
            "{path}: common_http_protocol_options, http_protocol_options, \
             http2_protocol_options and upstream_http_protocol_options on a cluster are \
             deprecated in Envoy v3; use typed_extension_protocol_options ({HTTP_OPTIONS})"
        );
    }
    match typed {
        Some(_) if legacy => Err(err(
            p("typed_extension_protocol_options"),
            "must not be set with the deprecated common_http_protocol_options, \
             http_protocol_options, http2_protocol_options or upstream_http_protocol_options \
             (as in Envoy)",
        )),
        Some(o) => Ok(o),
        None => build(
            f.common,
            f.http1.map(|h| (h, p("http_protocol_options"))),
            f.http2.map(|h| (h, p("http2_protocol_options"))),
            f.upstream,
            path,
        ),
    }
}

/// `typed_extension_protocol_options`: a map from extension name to an `Any`.
fn typed_options(v: &Value, path: &str) -> Result<UpstreamHttp, ConfigError> {
    let Value::Mapping(m) = v else {
        return Err(err(path, "expected a map of extension names"));
    };
    let mut out = None;
    for (k, v) in m {
        let Some(name) = k.as_str() else {
            return Err(err(path, "expected extension names as keys"));
        };
        let kpath = join_key(path, name);
        if name != HTTP_OPTIONS {
            return Err(err(
                kpath,
                format!("unknown or unsupported extension \"{name}\" (supported: {HTTP_OPTIONS})"),
            ));
        }
        let payload = typed_payload(&Some(v.clone()), &kpath, HTTP_OPTIONS)?
            .unwrap_or(Value::Mapping(Default::default()));
        let o: raw::UpstreamProtocolOptions = from_value(&payload, &kpath)?;
        out = Some(extension(&o, &kpath)?);
    }
    Ok(out.unwrap_or_default())
}

/// One `HttpProtocolOptions` extension.
fn extension(o: &raw::UpstreamProtocolOptions, path: &str) -> Result<UpstreamHttp, ConfigError> {
    let p = |k: &str| join_key(path, k);
    if o.auto_config.is_some() {
        // Envoy's auto_config picks HTTP/2 when ALPN offers it and refuses a transport
        // without ALPN (plain TCP): neither has an HTTP/1-only meaning.
        return Err(err(
            p("auto_config"),
            "not supported by baton (protocol selection by ALPN; baton's upstreams are HTTP/1.1 only: use explicit_http_config.http_protocol_options)",
        ));
    }
    if o.http_filters.is_some() {
        return Err(err(
            p("http_filters"),
            "not supported by baton (upstream HTTP filters)",
        ));
    }
    if o.header_validation_config.is_some() {
        return Err(err(
            p("header_validation_config"),
            "not supported by baton (header validators)",
        ));
    }
    let mut http1 = None;
    let mut http2 = None;
    for (field, cfg) in [
        ("explicit_http_config", &o.explicit_http_config),
        (
            "use_downstream_protocol_config",
            &o.use_downstream_protocol_config,
        ),
    ] {
        let Some(c) = cfg else { continue };
        let cpath = p(field);
        if c.http3_protocol_options.is_some() {
            return Err(err(join_key(&cpath, "http3_protocol_options"), NO_HTTP3));
        }
        if c.http2_protocol_options.is_some() && field == "use_downstream_protocol_config" {
            return Err(err(
                join_key(&cpath, "http2_protocol_options"),
                NO_HTTP2_DOWNSTREAM,
            ));
        }
        if c.http_protocol_options.is_some() && c.http2_protocol_options.is_some() {
            return Err(err(
                cpath,
                "only one of http_protocol_options and http2_protocol_options may be set",
            ));
        }
        if (http1.is_some() || http2.is_some())
            && (c.http_protocol_options.is_some() || c.http2_protocol_options.is_some())
        {
            return Err(err(
                cpath,
                "only one of explicit_http_config and use_downstream_protocol_config may be set",
            ));
        }
        if let Some(h) = &c.http_protocol_options {
            http1 = Some((h, join_key(&cpath, "http_protocol_options")));
        }
        if let Some(h) = &c.http2_protocol_options {
            http2 = Some((h, join_key(&cpath, "http2_protocol_options")));
        }
    }
    build(
        o.common_http_protocol_options.as_ref(),
        http1,
        http2,
        o.upstream_http_protocol_options.as_ref(),
        path,
    )
}

/// The options from their three parts, wherever they were written (the extension, or the
/// deprecated cluster fields): `common_http_protocol_options` and
/// `upstream_http_protocol_options` under `path`, the HTTP/1 options at their own path.
fn build(
    common_o: Option<&raw::HttpProtocolOptions>,
    http1: Option<(&raw::UpstreamHttp1Options, String)>,
    http2: Option<(&raw::Http2ProtocolOptions, String)>,
    upstream: Option<&raw::UpstreamHttpOptions>,
    path: &str,
) -> Result<UpstreamHttp, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let mut out = common(common_o, &p("common_http_protocol_options"))?;
    if let Some((h, hpath)) = http1 {
        out.proper_case_headers = http1_options(h, &hpath)?;
    }
    if let Some((h, hpath)) = http2 {
        out.http2 = Some(http2_options(h, &hpath)?);
    }
    if let Some(u) = upstream {
        (out.auto_sni, out.auto_san_validation) =
            upstream_options(u, &p("upstream_http_protocol_options"))?;
    }
    Ok(out)
}

/// `common_http_protocol_options` of a cluster.
fn common(c: Option<&raw::HttpProtocolOptions>, path: &str) -> Result<UpstreamHttp, ConfigError> {
    let mut out = UpstreamHttp::default();
    let Some(c) = c else {
        return Ok(out);
    };
    let p = |k: &str| join_key(path, k);
    out.idle_timeout = timeout(c.idle_timeout, Some(Duration::from_secs(3600)));
    out.max_connection_duration = timeout(c.max_connection_duration, None);
    out.max_requests_per_connection = c.max_requests_per_connection.filter(|&n| n > 0);
    if let Some(n) = c.max_headers_count {
        let max = crate::http::codec::MAX_HEADERS;
        if n == 0 || n as usize > max {
            return Err(err(
                p("max_headers_count"),
                format!("{n} out of range (1..={max}: baton parses at most {max} headers)"),
            ));
        }
        out.max_headers_count = n as usize;
    }
    // Envoy: "does not have any impact if added to cluster config" (it applies to client
    // requests only); the value is checked and, as there, changes nothing.
    enum_or(
        &c.headers_with_underscores_action,
        &p("headers_with_underscores_action"),
        super::validate::UNDERSCORES,
        super::model::Underscores::Allow,
    )?;
    Ok(out)
}

/// An upstream `http_protocol_options`: whether header names are proper-cased. The
/// server-side fields (`accept_http_10`, `default_host_for_http_10`, `allow_absolute_url`)
/// are, as in Envoy's HTTP/1 client codec, not used on an upstream connection.
fn http1_options(h: &raw::UpstreamHttp1Options, path: &str) -> Result<bool, ConfigError> {
    let _server_side_only = (
        h.accept_http_10,
        &h.default_host_for_http_10,
        h.allow_absolute_url,
    );
    let Some(f) = &h.header_key_format else {
        return Ok(false);
    };
    let fpath = join_key(path, "header_key_format");
    if f.stateful_formatter.is_some() {
        return Err(err(
            join_key(&fpath, "stateful_formatter"),
            "not supported by baton (stateful header formatters)",
        ));
    }
    Ok(f.proper_case_words.is_some())
}

/// `upstream_http_protocol_options`: (`auto_sni`, `auto_san_validation`). A header other than
/// the Host for the name (`override_auto_sni_header`) is not implemented.
fn upstream_options(u: &raw::UpstreamHttpOptions, path: &str) -> Result<(bool, bool), ConfigError> {
    if u.override_auto_sni_header.is_some() {
        return Err(err(
            join_key(path, "override_auto_sni_header"),
            "not supported by baton (the server name is the request's Host)",
        ));
    }
    Ok((
        u.auto_sni.unwrap_or(false),
        u.auto_san_validation.unwrap_or(false),
    ))
}

/// A cluster's `Http2ProtocolOptions`: what we advertise is honoured; what one stream at a
/// time makes moot is checked; the rest is refused by path.
fn http2_options(
    h: &raw::Http2ProtocolOptions,
    path: &str,
) -> Result<super::model::UpstreamHttp2, ConfigError> {
    let p = |k: &str| join_key(path, k);
    let window = |v: Option<u32>, k: &str| match v {
        None => Ok(268_435_456),
        Some(n) if (65_535..=0x7fff_ffff).contains(&n) => Ok(n),
        Some(n) => Err(err(p(k), format!("{n} out of range (65535..=2147483647)"))),
    };
    if let Some(n) = h.max_concurrent_streams {
        // Honoured trivially: baton opens one stream at a time per connection.
        if !(1..=0x7fff_ffff).contains(&n) {
            return Err(err(
                p("max_concurrent_streams"),
                format!("{n} out of range (1..=2147483647)"),
            ));
        }
    }
    for (k, on) in [
        ("allow_connect", h.allow_connect),
        ("allow_metadata", h.allow_metadata),
    ] {
        if on == Some(true) {
            let what = if k == "allow_connect" {
                "not supported by baton (upgrades and CONNECT over HTTP/2 upstreams)"
            } else {
                "not supported by baton (HTTP/2 METADATA frames)"
            };
            return Err(err(p(k), what));
        }
    }
    // Both values are honoured alike: a malformed response resets its stream, and the
    // connection, whose one stream that was, is closed with the failed exchange.
    let _either_way = (
        h.stream_error_on_invalid_http_messaging,
        h.override_stream_error_on_invalid_http_message,
    );
    for (k, v) in [
        ("max_outbound_frames", &h.max_outbound_frames),
        (
            "max_outbound_control_frames",
            &h.max_outbound_control_frames,
        ),
        (
            "max_consecutive_inbound_frames_with_empty_payload",
            &h.max_consecutive_inbound_frames_with_empty_payload,
        ),
        (
            "max_inbound_priority_frames_per_stream",
            &h.max_inbound_priority_frames_per_stream,
        ),
        (
            "max_inbound_window_update_frames_per_data_frame_sent",
            &h.max_inbound_window_update_frames_per_data_frame_sent,
        ),
    ] {
        if v.is_some() {
            return Err(err(
                p(k),
                "not supported by baton (HTTP/2 flood limits by frame count; the transcoder bounds its buffers by bytes)",
            ));
        }
    }
    for (k, v, what) in [
        (
            "custom_settings_parameters",
            &h.custom_settings_parameters,
            "custom SETTINGS parameters",
        ),
        (
            "connection_keepalive",
            &h.connection_keepalive,
            "HTTP/2 PING keepalive",
        ),
        (
            "use_oghttp2_codec",
            &h.use_oghttp2_codec,
            "a choice of HTTP/2 codec",
        ),
        (
            "max_metadata_size",
            &h.max_metadata_size,
            "HTTP/2 METADATA frames",
        ),
        (
            "enable_huffman_encoding",
            &h.enable_huffman_encoding,
            "a choice of Huffman encoding",
        ),
    ] {
        if v.is_some() {
            return Err(err(p(k), format!("not supported by baton ({what})")));
        }
    }
    Ok(super::model::UpstreamHttp2 {
        hpack_table_size: h.hpack_table_size.unwrap_or(4096),
        initial_stream_window_size: window(
            h.initial_stream_window_size,
            "initial_stream_window_size",
        )?,
        initial_connection_window_size: window(
            h.initial_connection_window_size,
            "initial_connection_window_size",
        )?,
    })
}
