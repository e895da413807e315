//! `http2_protocol_options` (`envoy.config.core.v3.Http2ProtocolOptions`) of a connection
//! manager: what its HTTP/2 clients are advertised, honoured field by field; the rest refused
//! by path. Ranges as Envoy's protocol.proto validates them.

use super::de::join_key;
use super::model::Http2Options;
use super::raw::Http2ProtocolOptions;
use super::validate::err;
use super::ConfigError;

/// Fields not honoured, with why.
fn refused(o: &Http2ProtocolOptions) -> Option<(&'static str, &'static str)> {
    let flood = "not supported by baton (its HTTP/2 buffers are bounded by size instead)";
    let checks: [(&str, bool, &str); 12] = [
        (
            "allow_connect",
            o.allow_connect == Some(true),
            "not supported by baton (no extended CONNECT over HTTP/2)",
        ),
        (
            "allow_metadata",
            o.allow_metadata == Some(true),
            "not supported by baton (no METADATA frames)",
        ),
        (
            "max_outbound_frames",
            o.max_outbound_frames.is_some(),
            flood,
        ),
        (
            "max_outbound_control_frames",
            o.max_outbound_control_frames.is_some(),
            flood,
        ),
        (
            "max_consecutive_inbound_frames_with_empty_payload",
            o.max_consecutive_inbound_frames_with_empty_payload
                .is_some(),
            flood,
        ),
        (
            "max_inbound_priority_frames_per_stream",
            o.max_inbound_priority_frames_per_stream.is_some(),
            flood,
        ),
        (
            "max_inbound_window_update_frames_per_data_frame_sent",
            o.max_inbound_window_update_frames_per_data_frame_sent
                .is_some(),
            flood,
        ),
        (
            "custom_settings_parameters",
            o.custom_settings_parameters.is_some(),
            "not supported by baton",
        ),
        (
            "connection_keepalive",
            o.connection_keepalive.is_some(),
            "not supported by baton (no HTTP/2 PING keepalive)",
        ),
        (
            "use_oghttp2_codec",
            o.use_oghttp2_codec.is_some(),
            "not supported by baton (it has its own codec)",
        ),
        (
            "max_metadata_size",
            o.max_metadata_size.is_some(),
            "not supported by baton (no METADATA frames)",
        ),
        (
            "enable_huffman_encoding",
            o.enable_huffman_encoding.is_some(),
            "not supported by baton (its encoder sends literals)",
        ),
    ];
    checks
        .into_iter()
        .find(|(_, set, _)| *set)
        .map(|(f, _, why)| (f, why))
}

/// The options for a connection manager's HTTP/2 clients.
pub fn downstream(o: &Http2ProtocolOptions, path: &str) -> Result<Http2Options, ConfigError> {
    if let Some((field, why)) = refused(o) {
        return Err(err(join_key(path, field), why));
    }
    const WINDOW: std::ops::RangeInclusive<u32> = 65_535..=0x7fff_ffff;
    let window = |v: Option<u32>, f: &str| match v {
        None => Ok(65_535),
        Some(w) if WINDOW.contains(&w) => Ok(w),
        Some(w) => Err(err(
            join_key(path, f),
            format!("{w} out of range (65535..=2147483647)"),
        )),
    };
    if let Some(m) = o.max_concurrent_streams {
        // Any allowed value holds: baton advertises 1, which is within it.
        if !(1..=0x7fff_ffff).contains(&m) {
            return Err(err(
                join_key(path, "max_concurrent_streams"),
                format!("{m} out of range (1..=2147483647)"),
            ));
        }
    }
    Ok(Http2Options {
        hpack_table_size: o.hpack_table_size.unwrap_or(4096),
        initial_stream_window_size: window(
            o.initial_stream_window_size,
            "initial_stream_window_size",
        )?,
        initial_connection_window_size: window(
            o.initial_connection_window_size,
            "initial_connection_window_size",
        )?,
        stream_error_on_invalid_http_messaging: o
            .override_stream_error_on_invalid_http_message
            .or(o.stream_error_on_invalid_http_messaging)
            .unwrap_or(false),
    })
}
