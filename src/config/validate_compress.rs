//! `envoy.filters.http.compressor` and `envoy.filters.http.decompressor` with the gzip
//! library. Every field is honoured or refused by path: brotli and zstd libraries, request
//! compression, response decompression and body buffering are refused, and a build without
//! the `compression` cargo feature refuses both filters.

use serde_yaml::Value;

use super::de::{from_value, join_key};
use super::model::{Compressor, Decompressor, GzipParams};
use super::raw;
use super::validate::{enum_or, err, typed_payload, EnumEntry};
use super::validate_local_reply::uint32;
use super::ConfigError;

pub const COMPRESSOR_TYPE: &str = "envoy.extensions.filters.http.compressor.v3.Compressor";
pub const DECOMPRESSOR_TYPE: &str = "envoy.extensions.filters.http.decompressor.v3.Decompressor";
const GZIP_COMPRESSOR: &str = "envoy.extensions.compression.gzip.compressor.v3.Gzip";
const GZIP_DECOMPRESSOR: &str = "envoy.extensions.compression.gzip.decompressor.v3.Gzip";

/// Envoy's content types compressed when `content_type` is empty (its
/// `defaultContentEncoding()` in the compressor filter).
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/html",
    "text/plain",
    "text/css",
    "application/javascript",
    "application/x-javascript",
    "text/javascript",
    "text/x-javascript",
    "text/ecmascript",
    "text/js",
    "text/jscript",
    "text/x-js",
    "application/ecmascript",
    "application/x-json",
    "application/xml",
    "application/json",
    "image/svg+xml",
    "text/xml",
    "application/xhtml+xml",
    "application/grpc-web",
    "application/grpc-web+proto",
];

/// `compression_level` (zlib's levels; `DEFAULT_COMPRESSION` is zlib's -1).
const LEVELS: &[EnumEntry<i32>] = &[
    ("DEFAULT_COMPRESSION", 0, Some(-1)),
    ("BEST_SPEED", 1, Some(1)),
    ("COMPRESSION_LEVEL_1", 1, Some(1)),
    ("COMPRESSION_LEVEL_2", 2, Some(2)),
    ("COMPRESSION_LEVEL_3", 3, Some(3)),
    ("COMPRESSION_LEVEL_4", 4, Some(4)),
    ("COMPRESSION_LEVEL_5", 5, Some(5)),
    ("COMPRESSION_LEVEL_6", 6, Some(6)),
    ("COMPRESSION_LEVEL_7", 7, Some(7)),
    ("COMPRESSION_LEVEL_8", 8, Some(8)),
    ("COMPRESSION_LEVEL_9", 9, Some(9)),
    ("BEST_COMPRESSION", 9, Some(9)),
];

/// `compression_strategy` (zlib's strategy numbers).
const STRATEGIES: &[EnumEntry<u8>] = &[
    ("DEFAULT_STRATEGY", 0, Some(0)),
    ("FILTERED", 1, Some(1)),
    ("HUFFMAN_ONLY", 2, Some(2)),
    ("RLE", 3, Some(3)),
    ("FIXED", 4, Some(4)),
];

/// The compression libraries Envoy has; only gzip is in baton.
const OTHER_LIBRARIES: &[(&str, &str)] = &[
    (
        "envoy.extensions.compression.brotli.compressor.v3.Brotli",
        "brotli",
    ),
    (
        "envoy.extensions.compression.brotli.decompressor.v3.Brotli",
        "brotli",
    ),
    (
        "envoy.extensions.compression.zstd.compressor.v3.Zstd",
        "zstd",
    ),
    (
        "envoy.extensions.compression.zstd.decompressor.v3.Zstd",
        "zstd",
    ),
];

/// Refuses the filter in a build without the `compression` feature.
fn compiled_in(path: &str) -> Result<(), ConfigError> {
    if cfg!(feature = "compression") {
        Ok(())
    } else {
        Err(err(
            path,
            "compression is not compiled into this build of baton (cargo feature \"compression\")",
        ))
    }
}

/// The library's name and its gzip settings; brotli and zstd are refused naming them.
fn library(
    lib: Option<raw::TypedExtension>,
    path: &str,
    gzip_type: &str,
) -> Result<(String, Value), ConfigError> {
    let Some(lib) = lib else {
        return Err(err(path, "required field is missing"));
    };
    if lib.filter.is_some() {
        return Err(err(join_key(path, "filter"), "unknown field"));
    }
    let tpath = join_key(path, "typed_config");
    let url = match &lib.typed_config {
        Some(Value::Mapping(m)) => m.get("@type").and_then(Value::as_str),
        _ => None,
    };
    let ty = url.and_then(|u| u.rsplit('/').next()).unwrap_or_default();
    if let Some((_, name)) = OTHER_LIBRARIES.iter().find(|(t, _)| *t == ty) {
        return Err(err(
            join_key(&tpath, "@type"),
            format!(
                "the {name} library is not supported by baton (it has gzip: \
                 type.googleapis.com/{gzip_type})"
            ),
        ));
    }
    let Some(v) = typed_payload(&lib.typed_config, &tpath, gzip_type)? else {
        return Err(err(tpath, "required field is missing"));
    };
    Ok((lib.name, v))
}

/// An optional uint32 within `lo..=hi`, else `default`.
fn ranged(v: Option<i64>, path: &str, lo: u32, hi: u32, default: u32) -> Result<u32, ConfigError> {
    let Some(n) = v else {
        return Ok(default);
    };
    let n = uint32(Some(n), path)?;
    if n < lo || n > hi {
        return Err(err(path, format!("{n} out of range ({lo} to {hi})")));
    }
    Ok(n)
}

/// A `RuntimeFeatureFlag`: its `default_value` (required, as in Envoy) and `runtime_key`
/// (required, non-empty). No runtime layer can set the key (baton's runtime refuses keys it
/// does not implement), so the default is the value, as in Envoy for a key nothing sets.
fn feature_flag(f: Option<raw::RuntimeFeatureFlag>, path: &str) -> Result<bool, ConfigError> {
    let Some(f) = f else {
        return Ok(true);
    };
    let Some(on) = f.default_value else {
        return Err(err(
            join_key(path, "default_value"),
            "required field is missing",
        ));
    };
    if f.runtime_key.as_deref().is_none_or(str::is_empty) {
        return Err(err(
            join_key(path, "runtime_key"),
            "required field is missing",
        ));
    }
    Ok(on)
}

/// `Compressor` (the filter's `typed_config` payload).
pub fn compressor(c: raw::Compressor, path: &str) -> Result<Compressor, ConfigError> {
    compiled_in(path)?;
    let p = |k: &str| join_key(path, k);
    if let Some(v) = &c.request_direction_config {
        if !matches!(v, Value::Mapping(m) if m.is_empty()) {
            return Err(err(
                p("request_direction_config"),
                "not supported by baton (request compression; responses are compressed)",
            ));
        }
    }
    let lpath = p("compressor_library");
    let (library, v) = library(c.compressor_library, &lpath, GZIP_COMPRESSOR)?;
    let gpath = join_key(&lpath, "typed_config");
    let g: raw::GzipCompressor = from_value(&v, &gpath)?;
    let gp = |k: &str| join_key(&gpath, k);
    let gzip = GzipParams {
        level: enum_or(&g.compression_level, &gp("compression_level"), LEVELS, -1)?,
        strategy: enum_or(
            &g.compression_strategy,
            &gp("compression_strategy"),
            STRATEGIES,
            0,
        )?,
        window_bits: ranged(g.window_bits, &gp("window_bits"), 9, 15, 12)? as u8,
        memory_level: ranged(g.memory_level, &gp("memory_level"), 1, 9, 5)? as u8,
        chunk_size: ranged(g.chunk_size, &gp("chunk_size"), 4096, 65536, 4096)?,
    };
    // Envoy reads the deprecated top-level fields only when `response_direction_config` is
    // absent; both given is a conflict it would resolve silently, so it is refused here.
    let deprecated = c.content_length.is_some()
        || !c.content_type.is_empty()
        || c.disable_on_etag_header.is_some()
        || c.remove_accept_encoding_header.is_some()
        || c.runtime_enabled.is_some();
    let response_scope = c.response_direction_config.is_some();
    let (common, etag, remove, epath) = match c.response_direction_config {
        Some(r) => {
            if deprecated {
                return Err(err(
                    p("response_direction_config"),
                    "the deprecated content_length, content_type, disable_on_etag_header, \
                     remove_accept_encoding_header and runtime_enabled are ignored by Envoy \
                     beside response_direction_config: move them into it",
                ));
            }
            if r.uncompressible_response_codes.is_some() {
                return Err(err(
                    p("response_direction_config.uncompressible_response_codes"),
                    "not supported by baton",
                ));
            }
            let common = r.common_config.unwrap_or_default();
            (
                common,
                r.disable_on_etag_header,
                r.remove_accept_encoding_header,
                p("response_direction_config.common_config"),
            )
        }
        None => (
            raw::CompressorCommon {
                enabled: c.runtime_enabled,
                min_content_length: c.content_length,
                content_type: c.content_type,
            },
            c.disable_on_etag_header,
            c.remove_accept_encoding_header,
            path.to_string(),
        ),
    };
    let ep = |k: &str| join_key(&epath, k);
    let (enabled_key, length_key) = if response_scope {
        ("enabled", "min_content_length")
    } else {
        ("runtime_enabled", "content_length")
    };
    let enabled = feature_flag(common.enabled, &ep(enabled_key))?;
    // Envoy: 0 (or unset) is its default of 30.
    let min = uint32(common.min_content_length, &ep(length_key))?;
    let content_types = if common.content_type.is_empty() {
        DEFAULT_CONTENT_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect()
    } else {
        common
            .content_type
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    Ok(Compressor {
        library,
        gzip,
        enabled,
        min_content_length: if min == 0 { 30 } else { u64::from(min) },
        content_types,
        disable_on_etag_header: etag.unwrap_or(false),
        remove_accept_encoding_header: remove.unwrap_or(false),
        choose_first: c.choose_first.unwrap_or(false),
        response_scope,
    })
}

/// `Decompressor` (the filter's `typed_config` payload).
pub fn decompressor(d: raw::Decompressor, path: &str) -> Result<Decompressor, ConfigError> {
    compiled_in(path)?;
    let p = |k: &str| join_key(path, k);
    let lpath = p("decompressor_library");
    let (library, v) = library(d.decompressor_library, &lpath, GZIP_DECOMPRESSOR)?;
    let gpath = join_key(&lpath, "typed_config");
    let g: raw::GzipDecompressor = from_value(&v, &gpath)?;
    let gp = |k: &str| join_key(&gpath, k);
    let window_bits = ranged(g.window_bits, &gp("window_bits"), 9, 15, 15)? as u8;
    let chunk_size = ranged(g.chunk_size, &gp("chunk_size"), 4096, 65536, 4096)?;
    let max_inflate_ratio = ranged(g.max_inflate_ratio, &gp("max_inflate_ratio"), 1, 1032, 100)?;
    let rq = d.request_direction_config.unwrap_or_default();
    let rpath = p("request_direction_config.common_config");
    let rc = rq.common_config.unwrap_or_default();
    if rc.max_buffered_bytes.is_some() {
        return Err(err(
            join_key(&rpath, "max_buffered_bytes"),
            "not supported by baton (the inflated body is streamed, never buffered)",
        ));
    }
    let request_enabled = feature_flag(rc.enabled, &join_key(&rpath, "enabled"))?;
    // Response decompression is not implemented: it must be off. Envoy's default is on, so
    // it must be turned off explicitly. With it off, `advertise_accept_encoding` (which
    // only acts with response decompression on) changes nothing, as in Envoy.
    let spath = p("response_direction_config.common_config");
    let rs = d.response_direction_config.unwrap_or_default();
    let sc = rs.common_config.unwrap_or_default();
    if sc.max_buffered_bytes.is_some() {
        return Err(err(
            join_key(&spath, "max_buffered_bytes"),
            "not supported by baton (response decompression)",
        ));
    }
    let epath = join_key(&spath, "enabled");
    if feature_flag(sc.enabled, &epath)? {
        return Err(err(
            epath,
            "response decompression is not supported by baton: it is on unless \
             enabled.default_value is false (request bodies are decompressed)",
        ));
    }
    Ok(Decompressor {
        library,
        window_bits,
        chunk_size,
        max_inflate_ratio,
        request_enabled,
        ignore_no_transform: rc.ignore_no_transform_header.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    /// A build without the `compression` feature refuses both filters, saying why.
    #[cfg(not(feature = "compression"))]
    #[test]
    fn without_the_feature_the_filters_are_refused() {
        let e = super::compiled_in("p")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.contains("cargo feature \"compression\""), "{e}");
    }

    #[cfg(feature = "compression")]
    #[test]
    fn with_the_feature_the_filters_are_built_in() {
        assert!(super::compiled_in("p").is_ok());
    }
}
