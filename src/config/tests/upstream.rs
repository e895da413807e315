//! A cluster's upstream HTTP protocol options (`typed_extension_protocol_options` and the
//! deprecated cluster fields): what loads into the model, Envoy's defaults, and every
//! refusal naming its field.

use super::*;
use std::time::Duration;

const C: &str = "static_resources.clusters[0]";
const KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The first cluster's options with the typed extension holding `fields` (flow-map entries).
fn typed(fields: &str) -> Result<UpstreamHttp, String> {
    let mut d = doc();
    set(
        &mut d,
        &format!("{C}.typed_extension_protocol_options"),
        &format!(r#"{{{KEY}: {{"@type": type.googleapis.com/{KEY}, {fields}}}}}"#),
    );
    check(&d)
        .map(|b| b.clusters[0].http.clone())
        .map_err(|e| e.to_string())
}

fn refused(fields: &str) -> String {
    match typed(fields) {
        Ok(o) => panic!("{fields} loaded: {o:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_are_envoys() {
    let o = ok_with(&[]).clusters[0].http.clone();
    assert_eq!(o, UpstreamHttp::default());
    assert_eq!(o.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(o.max_requests_per_connection, None);
    assert_eq!(o.max_connection_duration, None);
    assert_eq!(o.max_headers_count, 100);
    assert!(!o.proper_case_headers);
    assert_eq!(typed("").unwrap(), UpstreamHttp::default());
}

#[test]
fn the_typed_extension_loads_into_the_model() {
    let o = typed(
        "common_http_protocol_options: {idle_timeout: 0s, max_requests_per_connection: 5, \
         max_connection_duration: 90s, max_headers_count: 20, \
         headers_with_underscores_action: REJECT_REQUEST}, \
         explicit_http_config: {http_protocol_options: {accept_http_10: true, \
         header_key_format: {proper_case_words: {}}}}, \
         upstream_http_protocol_options: {auto_sni: false, auto_san_validation: false}",
    )
    .unwrap();
    assert_eq!(o.idle_timeout, None);
    assert_eq!(o.max_requests_per_connection, Some(5));
    assert_eq!(o.max_connection_duration, Some(Duration::from_secs(90)));
    assert_eq!(o.max_headers_count, 20);
    assert!(o.proper_case_headers);
    // 0 is "no limit", as in Envoy.
    let o = typed("common_http_protocol_options: {max_requests_per_connection: 0}").unwrap();
    assert_eq!(o.max_requests_per_connection, None);
    // use_downstream_protocol_config: downstream is HTTP/1 here, so its HTTP/1 options apply.
    let o = typed(
        "use_downstream_protocol_config: {http_protocol_options: \
         {header_key_format: {proper_case_words: {}}}}",
    )
    .unwrap();
    assert!(o.proper_case_headers);
}

#[test]
fn the_deprecated_cluster_fields_load_as_the_extension_and_not_with_it() {
    let b = ok_with(&[
        (
            &format!("{C}.common_http_protocol_options"),
            "{max_requests_per_connection: 3, idle_timeout: 2s}",
        ),
        (
            &format!("{C}.http_protocol_options"),
            "{header_key_format: {proper_case_words: {}}}",
        ),
    ]);
    let o = &b.clusters[0].http;
    assert_eq!(o.max_requests_per_connection, Some(3));
    assert_eq!(o.idle_timeout, Some(Duration::from_secs(2)));
    assert!(o.proper_case_headers);
    let e = err_with(&[
        (
            &format!("{C}.common_http_protocol_options"),
            "{max_requests_per_connection: 3}",
        ),
        (
            &format!("{C}.typed_extension_protocol_options"),
            &format!(r#"{{{KEY}: {{"@type": type.googleapis.com/{KEY}}}}}"#),
        ),
    ]);
    assert!(
        e.contains(&format!(
            "{C}.typed_extension_protocol_options: must not be set with"
        )),
        "{e}"
    );
    // The deprecated http2_protocol_options makes an HTTP/2 cluster, with Envoy's defaults.
    let b = ok_with(&[(&format!("{C}.http2_protocol_options"), "{}")]);
    assert_eq!(
        b.clusters[0].http.http2,
        Some(UpstreamHttp2 {
            hpack_table_size: 4096,
            initial_stream_window_size: 268_435_456,
            initial_connection_window_size: 268_435_456,
        })
    );
    let e = err_with(&[
        (&format!("{C}.http2_protocol_options"), "{}"),
        (&format!("{C}.http_protocol_options"), "{}"),
    ]);
    assert!(
        e.contains(&format!(
            "{C}.http2_protocol_options: must not be set with http_protocol_options"
        )),
        "{e}"
    );
}

#[test]
fn http2_options_load_or_are_refused_by_path() {
    let o = typed(
        "explicit_http_config: {http2_protocol_options: {hpack_table_size: 0, \
         max_concurrent_streams: 100, initial_stream_window_size: 65535, \
         initial_connection_window_size: 1048576, allow_connect: false, allow_metadata: false, \
         stream_error_on_invalid_http_messaging: true, \
         override_stream_error_on_invalid_http_message: false}}",
    )
    .unwrap();
    assert_eq!(
        o.http2,
        Some(UpstreamHttp2 {
            hpack_table_size: 0,
            initial_stream_window_size: 65_535,
            initial_connection_window_size: 1_048_576,
        })
    );
    let h = "explicit_http_config.http2_protocol_options";
    for (field, want) in [
        (
            "allow_connect: true",
            "allow_connect: not supported by baton (upgrades and CONNECT",
        ),
        (
            "allow_metadata: true",
            "allow_metadata: not supported by baton",
        ),
        (
            "max_concurrent_streams: 0",
            "max_concurrent_streams: 0 out of range",
        ),
        (
            "initial_stream_window_size: 65534",
            "initial_stream_window_size: 65534 out of range",
        ),
        (
            "initial_connection_window_size: 2147483648",
            "initial_connection_window_size: 2147483648 out of range",
        ),
        (
            "max_outbound_frames: 10",
            "max_outbound_frames: not supported by baton (HTTP/2 flood",
        ),
        (
            "max_inbound_priority_frames_per_stream: 10",
            "max_inbound_priority_frames_per_stream: not supported by baton",
        ),
        (
            "connection_keepalive: {interval: 1s}",
            "connection_keepalive: not supported by baton",
        ),
        (
            "custom_settings_parameters: []",
            "custom_settings_parameters: not supported by baton",
        ),
        (
            "hpack_tablesize: 1",
            "hpack_tablesize: unknown or unsupported field",
        ),
    ] {
        let e = refused(&format!(
            "explicit_http_config: {{http2_protocol_options: {{{field}}}}}"
        ));
        assert!(e.contains(&format!("{KEY}.{h}.{want}")), "{field}: {e}");
    }
    let e =
        refused("explicit_http_config: {http_protocol_options: {}, http2_protocol_options: {}}");
    assert!(
        e.contains("only one of http_protocol_options and http2_protocol_options"),
        "{e}"
    );
    // The deprecated field is checked the same way, at its own path.
    let e = err_with(&[(
        &format!("{C}.http2_protocol_options"),
        "{allow_connect: true}",
    )]);
    assert!(
        e.contains(&format!(
            "{C}.http2_protocol_options.allow_connect: not supported"
        )),
        "{e}"
    );
}

#[test]
fn every_refusal_names_its_path() {
    let p = format!("{C}.typed_extension_protocol_options.{KEY}");
    for (fields, want) in [
        (
            "explicit_http_config: {http3_protocol_options: {}}",
            "explicit_http_config.http3_protocol_options: not supported by baton (HTTP/3 upstreams are not supported)",
        ),
        (
            "use_downstream_protocol_config: {http2_protocol_options: {}}",
            "use_downstream_protocol_config.http2_protocol_options: not supported by baton (an upstream protocol following the downstream's",
        ),
        ("auto_config: {}", "auto_config: not supported by baton"),
        ("http_filters: []", "http_filters: not supported by baton"),
        ("header_validation_config: {}", "header_validation_config: not supported by baton"),
        (
            "upstream_http_protocol_options: {override_auto_sni_header: x}",
            "upstream_http_protocol_options.override_auto_sni_header: not supported by baton",
        ),
        (
            "common_http_protocol_options: {max_headers_count: 0}",
            "common_http_protocol_options.max_headers_count: 0 out of range",
        ),
        (
            "common_http_protocol_options: {max_headers_count: 101}",
            "common_http_protocol_options.max_headers_count: 101 out of range",
        ),
        (
            "common_http_protocol_options: {max_stream_duration: 1s}",
            "common_http_protocol_options.max_stream_duration: unknown or unsupported field",
        ),
        (
            "common_http_protocol_options: {headers_with_underscores_action: NOPE}",
            "common_http_protocol_options.headers_with_underscores_action: unknown value",
        ),
        (
            "explicit_http_config: {http_protocol_options: {enable_trailers: true}}",
            "explicit_http_config.http_protocol_options.enable_trailers: unknown or unsupported field",
        ),
        (
            "explicit_http_config: {http_protocol_options: {header_key_format: {stateful_formatter: {}}}}",
            "explicit_http_config.http_protocol_options.header_key_format.stateful_formatter: not supported by baton",
        ),
        (
            "explicit_http_config: {http_protocol_options: {}}, use_downstream_protocol_config: {http_protocol_options: {}}",
            "use_downstream_protocol_config: only one of",
        ),
    ] {
        let e = refused(fields);
        assert!(e.contains(&format!("{p}.{want}")), "{fields}: {e}");
    }
    // Another extension, or a wrong type under the key.
    let e = err_with(&[(
        &format!("{C}.typed_extension_protocol_options"),
        r#"{envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions}}"#,
    )]);
    assert!(
        e.contains(&format!(
            "{C}.typed_extension_protocol_options.envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions: unknown or unsupported extension"
        )),
        "{e}"
    );
    let e = err_with(&[(
        &format!("{C}.typed_extension_protocol_options"),
        &format!(
            r#"{{{KEY}: {{"@type": type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions}}}}"#
        ),
    )]);
    assert!(e.contains(&format!("{p}.@type: unknown type")), "{e}");
}

#[test]
fn outlier_detection_loads_with_envoys_defaults_and_refuses_by_path() {
    let b = ok_with(&[(&format!("{C}.outlier_detection"), "{}")]);
    assert_eq!(
        b.clusters[0].outlier_detection,
        Some(OutlierDetection::default())
    );
    let d = OutlierDetection::default();
    assert_eq!((d.consecutive_5xx, d.max_ejection_percent), (5, 10));
    assert_eq!(d.interval, Duration::from_secs(10));
    assert_eq!(d.base_ejection_time, Duration::from_secs(30));
    assert_eq!(d.max_ejection_time, Duration::from_secs(300));
    assert_eq!(d.enforcing_consecutive_gateway_failure, 0);
    let b = ok_with(&[(
        &format!("{C}.outlier_detection"),
        "{consecutive_5xx: 3, interval: 1s, enforcing_failure_percentage: 0, \
         max_ejection_time_jitter: 0s, split_external_local_origin_errors: true}",
    )]);
    let o = b.clusters[0].outlier_detection.clone().unwrap();
    assert_eq!(o.consecutive_5xx, 3);
    assert_eq!(o.interval, Duration::from_secs(1));
    assert!(o.split_external_local_origin_errors);
    let p = format!("{C}.outlier_detection");
    for (fields, want) in [
        (
            "{enforcing_failure_percentage: 10}",
            "enforcing_failure_percentage: not supported by baton (failure-percentage ejection)",
        ),
        (
            "{failure_percentage_threshold: 90}",
            "failure_percentage_threshold: not supported by baton",
        ),
        (
            "{max_ejection_time_jitter: 1s}",
            "max_ejection_time_jitter: not supported by baton",
        ),
        (
            "{max_ejection_percent: 101}",
            "max_ejection_percent: 101 out of range",
        ),
        (
            "{enforcing_success_rate: 200}",
            "enforcing_success_rate: 200 out of range",
        ),
        ("{interval: 0s}", "interval: must be greater than 0s"),
        (
            "{base_ejection_time: 400s}",
            "max_ejection_time: must not be smaller than base_ejection_time",
        ),
        (
            "{consecutive_50x: 1}",
            "consecutive_50x: unknown or unsupported field",
        ),
    ] {
        let e = err_with(&[(&p, fields)]);
        assert!(e.contains(&format!("{p}.{want}")), "{fields}: {e}");
    }
}
