//! Envoy's compressor filter (responses, gzip) and decompressor filter (requests, gzip): what
//! the request decides (`Plan`, `InflatePlan`), what the response head decides
//! (`respond`), the streaming deflate and inflate states, and the filters' counters.
//!
//! The zlib state (window and hash tables: about 2^(window_bits+2) + 2^(memory_level+9)
//! bytes for deflate, 2^window_bits for inflate, plus a `chunk_size` output buffer) is
//! allocated per compressed response or decompressed request only, and dropped with it: an
//! idle keep-alive connection holds none.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use super::codec::{tokens, RequestHead};
use crate::config::{Compressor, Decompressor, HttpFilterKind};
use crate::route::edits::HeaderList;
use crate::stats::{Counter, Stats};

/// One compressor filter's config and counters
/// (`http.<stat_prefix>.compressor.<library>.gzip.…`).
#[derive(Debug)]
pub struct CompressorRt {
    pub cfg: Compressor,
    /// The response direction's: `compressed`, `not_compressed`, `total_uncompressed_bytes`,
    /// `total_compressed_bytes`, `content_length_too_small` (under `response.` when
    /// `response_direction_config` is set).
    compressed: Counter,
    not_compressed: Counter,
    pub(crate) uncompressed_bytes: Counter,
    pub(crate) compressed_bytes: Counter,
    too_small: Counter,
    /// The response statistics of the Accept-Encoding decision and the ETag.
    no_accept_header: Counter,
    header_identity: Counter,
    header_compressor_used: Counter,
    header_wildcard: Counter,
    header_not_valid: Counter,
    not_compressed_etag: Counter,
    /// `request.not_compressed`: Envoy counts every request its request direction leaves
    /// alone, and baton compresses no request.
    request_not_compressed: Counter,
}

/// One decompressor filter's config and counters
/// (`http.<stat_prefix>.decompressor.<library>.gzip.…`).
#[derive(Debug)]
pub struct DecompressorRt {
    pub cfg: Decompressor,
    decompressed: Counter,
    not_decompressed: Counter,
    pub(crate) compressed_bytes: Counter,
    pub(crate) uncompressed_bytes: Counter,
    /// `decompressor_library.zlib_data_error`: a corrupt body, or one inflating past
    /// `max_inflate_ratio`.
    pub(crate) data_error: Counter,
}

/// The compression filters of every listener, by (listener, filter index).
#[derive(Debug, Default)]
pub(crate) struct CompressStats {
    compressors: HashMap<(usize, usize), Rc<CompressorRt>>,
    decompressors: HashMap<(usize, usize), Rc<DecompressorRt>>,
}

impl CompressStats {
    /// Registers every compression filter's counters as Envoy names them.
    pub(crate) fn new(listeners: &[crate::context::ListenerRt], stats: &mut Stats) -> Self {
        let mut out = CompressStats::default();
        for (l, listener) in listeners.iter().enumerate() {
            let Some(http) = listener.http() else {
                continue;
            };
            let base = format!("http.{}.", http.hcm.stat_prefix);
            for (fi, f) in http.hcm.http_filters.iter().enumerate() {
                match &f.kind {
                    HttpFilterKind::Compressor(c) => {
                        let p = format!("{base}compressor.{}.gzip.", c.library);
                        let dir = if c.response_scope {
                            format!("{p}response.")
                        } else {
                            p.clone()
                        };
                        let mut at = |pre: &str, n: &str| stats.store.counter(&format!("{pre}{n}"));
                        for n in [
                            "compressed",
                            "total_uncompressed_bytes",
                            "total_compressed_bytes",
                            "content_length_too_small",
                        ] {
                            at(&format!("{p}request."), n);
                        }
                        at(&p, "header_compressor_overshadowed");
                        let rt = CompressorRt {
                            cfg: c.clone(),
                            compressed: at(&dir, "compressed"),
                            not_compressed: at(&dir, "not_compressed"),
                            uncompressed_bytes: at(&dir, "total_uncompressed_bytes"),
                            compressed_bytes: at(&dir, "total_compressed_bytes"),
                            too_small: at(&dir, "content_length_too_small"),
                            no_accept_header: at(&p, "no_accept_header"),
                            header_identity: at(&p, "header_identity"),
                            header_compressor_used: at(&p, "header_compressor_used"),
                            header_wildcard: at(&p, "header_wildcard"),
                            header_not_valid: at(&p, "header_not_valid"),
                            not_compressed_etag: at(&p, "not_compressed_etag"),
                            request_not_compressed: at(&format!("{p}request."), "not_compressed"),
                        };
                        out.compressors.insert((l, fi), Rc::new(rt));
                    }
                    HttpFilterKind::Decompressor(d) => {
                        let p = format!("{base}decompressor.{}.gzip.", d.library);
                        let mut at = |pre: &str, n: &str| stats.store.counter(&format!("{pre}{n}"));
                        for n in [
                            "decompressed",
                            "not_decompressed",
                            "total_compressed_bytes",
                            "total_uncompressed_bytes",
                        ] {
                            at(&format!("{p}response."), n);
                        }
                        let lib = format!("{p}decompressor_library.");
                        for n in [
                            "zlib_errno",
                            "zlib_stream_error",
                            "zlib_mem_error",
                            "zlib_buf_error",
                            "zlib_version_error",
                        ] {
                            at(&lib, n);
                        }
                        let rq = format!("{p}request.");
                        let rt = DecompressorRt {
                            cfg: d.clone(),
                            decompressed: at(&rq, "decompressed"),
                            not_decompressed: at(&rq, "not_decompressed"),
                            compressed_bytes: at(&rq, "total_compressed_bytes"),
                            uncompressed_bytes: at(&rq, "total_uncompressed_bytes"),
                            data_error: at(&lib, "zlib_data_error"),
                        };
                        out.decompressors.insert((l, fi), Rc::new(rt));
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

impl CompressStats {
    pub(crate) fn compressor(&self, at: (usize, usize)) -> Option<&Rc<CompressorRt>> {
        self.compressors.get(&at)
    }

    pub(crate) fn decompressor(&self, at: (usize, usize)) -> Option<&Rc<DecompressorRt>> {
        self.decompressors.get(&at)
    }
}

/// What the client's `Accept-Encoding` allows, decided as Envoy's `chooseEncoding` does with
/// gzip as the one compressor of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// No `Accept-Encoding` header.
    Absent,
    /// gzip chosen by name.
    Gzip,
    /// gzip chosen through `*`.
    Wildcard,
    /// `identity` won.
    Identity,
    /// Nothing usable (empty, or every candidate at q=0).
    NotValid,
}

/// Envoy's choice: tokens split on `,`; each `name;q=v` (an unparseable q drops the token);
/// a q of 0 takes gzip out of the candidates; of gzip, `identity` and `*` the highest q wins,
/// the first on a tie unless `choose_first` lets gzip take the tie. Names compare exactly.
pub fn accept(value: Option<&str>, choose_first: bool) -> Accept {
    let Some(v) = value else {
        return Accept::Absent;
    };
    let mut any = false;
    let mut gzip_allowed = true;
    // (encoding, q) of the current choice; identity at 0 to start with.
    let mut choice: (&str, f32) = ("identity", 0.0);
    let mut pairs: Vec<(&str, f32)> = Vec::new();
    for token in v.split(',').filter(|t| !t.is_empty()) {
        let (name, params) = match token.split_once(';') {
            Some((n, p)) => (n.trim(), Some(p)),
            None => (token.trim(), None),
        };
        let mut q = 1.0f32;
        if let Some((k, val)) = params.and_then(|p| p.split_once('=')) {
            if k.trim().eq_ignore_ascii_case("q") {
                match val.trim().parse::<f32>() {
                    Ok(x) if x.is_finite() => q = x,
                    _ => continue,
                }
            }
        }
        any = true;
        if q == 0.0 && name == "gzip" {
            gzip_allowed = false;
        }
        pairs.push((name, q));
    }
    if !any || !gzip_allowed {
        return Accept::NotValid;
    }
    for (name, q) in pairs {
        let candidate = name == "gzip" || name == "identity" || name == "*";
        if candidate && (q > choice.1 || (q == choice.1 && name == "gzip" && choose_first)) {
            choice = (name, q);
        }
    }
    match choice {
        (_, q) if q <= 0.0 => Accept::NotValid,
        ("identity", _) => Accept::Identity,
        ("*", _) => Accept::Wildcard,
        _ => Accept::Gzip,
    }
}

/// A request the compressor filter saw: its response may be compressed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rt: Rc<CompressorRt>,
    pub accept: Accept,
}

/// What the compressor filter does with a request: counts it, decides `Accept`, and says
/// whether `Accept-Encoding` is to be removed before the request goes upstream.
pub(super) fn on_request(
    rt: &Rc<CompressorRt>,
    req: &RequestHead<'_>,
    stats: &mut Stats,
) -> (Plan, bool) {
    stats.store.inc(rt.request_not_compressed);
    let value = super::filters::header(req, "accept-encoding");
    let plan = Plan {
        rt: rt.clone(),
        accept: accept(value, rt.cfg.choose_first),
    };
    let remove = value.is_some() && rt.cfg.enabled && rt.cfg.remove_accept_encoding_header;
    (plan, remove)
}

/// The value of `name` in a header list.
fn get<'l>(list: &'l HeaderList<'_>, name: &str) -> Option<&'l [u8]> {
    list.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

/// Whether a comma-separated value has `token` (any case).
fn has_token(v: &[u8], token: &str) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// What the response head needs from the exchange besides its headers.
pub struct ResponseFacts<'a> {
    /// The upstream's Content-Length, when the body is framed by one.
    pub content_length: Option<u64>,
    /// A body follows (not HEAD, 204, 304, a zero length or a tunnel).
    pub has_body: bool,
    /// The upstream's `Transfer-Encoding` values.
    pub transfer_encoding: Option<&'a [u8]>,
    pub tunnel: bool,
}

/// Envoy's `encodeHeaders` on the response head (`list`, after the route's edits): counts
/// the decision and edits the headers — `Vary: Accept-Encoding` whenever the response could
/// be compressed, and for one that is, `Content-Encoding: gzip` with a strong ETag removed.
/// `Some` (the deflate state) when the body is to be compressed; the caller then drops
/// Content-Length and frames the body itself. `count` adds one to a counter.
pub fn respond(
    plan: &Plan,
    list: &mut HeaderList<'_>,
    facts: &ResponseFacts<'_>,
    count: &mut dyn FnMut(Counter),
) -> Option<Box<Deflater>> {
    let rt = &plan.rt;
    let c = &rt.cfg;
    let big_enough = c.enabled
        && match facts.content_length {
            Some(n) if n < c.min_content_length => {
                count(rt.too_small);
                false
            }
            _ => true,
        };
    let content_type = get(list, "content-type").map(|v| {
        let v = v.split(|&b| b == b';').next().unwrap_or_default();
        super::codec::trim(v)
    });
    let type_allowed = content_type.is_none_or(|t| {
        c.content_types
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(t))
    });
    let no_transform = get(list, "cache-control").is_some_and(|v| has_token(v, "no-transform"));
    let etag_allowed = !(c.disable_on_etag_header && get(list, "etag").is_some());
    let compressible = big_enough
        && !facts.tunnel
        && type_allowed
        && !no_transform
        && {
            if !etag_allowed {
                count(rt.not_compressed_etag);
            }
            etag_allowed
        }
        && get(list, "content-encoding").is_none();
    // Envoy asks Accept-Encoding only with a body, when enabled and long enough; the
    // content type takes part in its choice (a type this filter does not compress leaves
    // no compressor to choose: not valid).
    let accepted = facts.has_body
        && big_enough
        && match (plan.accept, type_allowed) {
            (Accept::Absent, _) => {
                count(rt.no_accept_header);
                false
            }
            (_, false) | (Accept::NotValid, _) => {
                count(rt.header_not_valid);
                false
            }
            (Accept::Identity, _) => {
                count(rt.header_identity);
                false
            }
            (Accept::Wildcard, _) => {
                count(rt.header_wildcard);
                true
            }
            (Accept::Gzip, _) => {
                count(rt.header_compressor_used);
                true
            }
        };
    let te_allowed = facts.transfer_encoding.is_none_or(|v| {
        !["gzip", "br", "deflate", "compress", "zstd"]
            .iter()
            .any(|t| has_token(v, t))
    });
    let deflater = if accepted && compressible && te_allowed {
        Deflater::new(c)
    } else {
        None
    };
    if deflater.is_some() {
        // Envoy keeps a weak ETag and removes a strong one (it does not rewrite tags).
        list.retain(|(n, v)| {
            !(n.eq_ignore_ascii_case("etag")
                && v.len() > 2
                && !matches!(v.as_ref(), [b'w' | b'W', b'/', ..]))
        });
        list.push((Cow::Borrowed("content-encoding"), Cow::Borrowed(b"gzip")));
        count(rt.compressed);
    } else {
        count(rt.not_compressed);
    }
    if compressible {
        match list
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("vary"))
        {
            Some((_, v)) if has_token(v, "accept-encoding") => {}
            Some((_, v)) => {
                let mut nv = v.to_vec();
                nv.extend_from_slice(b", Accept-Encoding");
                *v = Cow::Owned(nv);
            }
            None => list.push((Cow::Borrowed("vary"), Cow::Borrowed(b"Accept-Encoding"))),
        }
    }
    deflater.map(|mut d| {
        d.rt = Some(plan.rt.clone());
        d
    })
}

/// A request the decompressor filter will inflate.
#[derive(Debug, Clone)]
pub struct InflatePlan {
    pub rt: Rc<DecompressorRt>,
}

/// What the decompressor filter does with a request head: `Some` when its body is gzip to be
/// inflated, with the `Content-Encoding` value left once `gzip` is taken off (`None`: the
/// header goes). Envoy's rule: a request with a body, the direction enabled, no
/// `Cache-Control: no-transform` (unless ignored), and gzip the first content coding.
pub(super) fn on_request_inflate(
    rt: &Rc<DecompressorRt>,
    req: &RequestHead<'_>,
    stats: &mut Stats,
) -> Option<(InflatePlan, Option<String>)> {
    use super::codec::Framing;
    let has_body = !matches!(req.framing, Framing::None | Framing::Length(0));
    if !has_body {
        return None;
    }
    let c = &rt.cfg;
    let no_transform = super::filters::header(req, "cache-control")
        .is_some_and(|v| has_token(v.as_bytes(), "no-transform"));
    let coding = super::filters::header(req, "content-encoding");
    let first = coding.map(|v| v.split(',').next().unwrap_or_default().trim());
    if !c.request_enabled
        || (no_transform && !c.ignore_no_transform)
        || !first.is_some_and(|f| f.eq_ignore_ascii_case("gzip"))
    {
        stats.store.inc(rt.not_decompressed);
        return None;
    }
    stats.store.inc(rt.decompressed);
    let rest = coding
        .and_then(|v| v.split_once(','))
        .map(|(_, r)| r.trim().to_string())
        .filter(|r| !r.is_empty());
    Some((InflatePlan { rt: rt.clone() }, rest))
}

pub use zlib::{Deflater, Inflater};

#[cfg(feature = "compression")]
mod zlib {
    use std::rc::Rc;

    use zlib_rs::{DeflateConfig, DeflateFlush, InflateFlush, Method, Status, Strategy};

    use super::{CompressorRt, DecompressorRt};
    use crate::config::Compressor;

    /// zlib's flag on window_bits for a gzip wrapper.
    const GZIP: i32 = 16;

    /// One response's deflate stream.
    pub struct Deflater {
        z: zlib_rs::Deflate,
        out: Box<[u8]>,
        /// Bytes in and out since the counters were last told.
        pub(crate) pending: (u64, u64),
        pub(crate) rt: Option<Rc<CompressorRt>>,
    }

    impl std::fmt::Debug for Deflater {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Deflater")
        }
    }

    impl Deflater {
        pub fn new(c: &Compressor) -> Option<Box<Deflater>> {
            let g = &c.gzip;
            let strategy = match g.strategy {
                1 => Strategy::Filtered,
                2 => Strategy::HuffmanOnly,
                3 => Strategy::Rle,
                4 => Strategy::Fixed,
                _ => Strategy::Default,
            };
            let config = DeflateConfig {
                level: g.level,
                method: Method::Deflated,
                window_bits: i32::from(g.window_bits) + GZIP,
                mem_level: i32::from(g.memory_level),
                strategy,
            };
            Some(Box::new(Deflater {
                z: zlib_rs::Deflate::new_with_config(config),
                out: vec![0; g.chunk_size as usize].into_boxed_slice(),
                pending: (0, 0),
                rt: None,
            }))
        }

        /// Compresses `input` (`flush`: also a sync flush, so what went in can be decoded
        /// from what came out; `finish`: the gzip trailer), giving each output piece (at
        /// most `chunk_size`) to `sink`.
        fn run(&mut self, mut input: &[u8], flush: DeflateFlush, sink: &mut dyn FnMut(&[u8])) {
            self.pending.0 += input.len() as u64;
            loop {
                let (in0, out0) = (self.z.total_in(), self.z.total_out());
                let st = self.z.compress(input, &mut self.out, flush);
                let used = (self.z.total_in() - in0) as usize;
                let made = (self.z.total_out() - out0) as usize;
                input = input.get(used..).unwrap_or_default();
                if let Some(piece) = self.out.get(..made).filter(|p| !p.is_empty()) {
                    self.pending.1 += made as u64;
                    sink(piece);
                }
                if matches!(st, Ok(Status::StreamEnd) | Err(_)) {
                    return;
                }
                // No progress at all is zlib's buffer error: nothing more to do now.
                if used == 0 && made == 0 {
                    return;
                }
                // Finishing goes on until the stream's end; otherwise done once the input is
                // taken and the output was not filled (nothing more is pending).
                if flush != DeflateFlush::Finish && input.is_empty() && made < self.out.len() {
                    return;
                }
            }
        }

        pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) {
            self.run(input, DeflateFlush::NoFlush, sink);
        }

        pub fn flush(&mut self, sink: &mut dyn FnMut(&[u8])) {
            self.run(&[], DeflateFlush::SyncFlush, sink);
        }

        pub fn finish(&mut self, sink: &mut dyn FnMut(&[u8])) {
            self.run(&[], DeflateFlush::Finish, sink);
        }
    }

    /// One request's inflate stream.
    pub struct Inflater {
        z: zlib_rs::Inflate,
        out: Box<[u8]>,
        pub(crate) rt: Rc<DecompressorRt>,
        /// Compressed bytes taken and inflated bytes made, in all.
        pub(crate) total: (u64, u64),
        /// Since the counters were last told.
        pub(crate) pending: (u64, u64),
        /// The stream ended (its trailer was read): what follows is dropped.
        pub(crate) done: bool,
        /// The stream is corrupt or inflated past the ratio: what follows is dropped.
        pub(crate) failed: bool,
        /// The failure was counted.
        pub(crate) reported: bool,
        /// Decoded request-body bytes not inflated yet: a turn stops inflating once it made
        /// as much as the upstream buffer has room for (at most one turn's input budget).
        pub(crate) carry: Vec<u8>,
    }

    impl std::fmt::Debug for Inflater {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Inflater")
        }
    }

    impl Inflater {
        pub fn new(rt: Rc<DecompressorRt>) -> Box<Inflater> {
            Box::new(Inflater {
                z: zlib_rs::Inflate::new(true, rt.cfg.window_bits + GZIP as u8),
                out: vec![0; rt.cfg.chunk_size as usize].into_boxed_slice(),
                rt,
                total: (0, 0),
                pending: (0, 0),
                done: false,
                failed: false,
                reported: false,
                carry: Vec::new(),
            })
        }

        /// The output buffer's size (`chunk_size`).
        pub fn chunk_size(&self) -> usize {
            self.out.len()
        }

        /// The first `made` bytes of the output buffer (what `inflate` just made).
        pub fn output(&self, made: usize) -> &[u8] {
            self.out.get(..made).unwrap_or_default()
        }

        /// Inflates from `input` into the output buffer; returns the input used and what
        /// was made (at most `chunk_size`). A corrupt stream, or one inflating past
        /// `max_inflate_ratio` times what came in, fails (Envoy's zlib_data_error) and the
        /// rest is dropped, as is anything after the stream's end.
        pub fn inflate(&mut self, input: &[u8]) -> (usize, &[u8]) {
            if self.done || self.failed {
                return (input.len(), &[]);
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let st = self
                .z
                .decompress(input, &mut self.out, InflateFlush::NoFlush);
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            self.total.0 += used as u64;
            self.total.1 += made as u64;
            self.pending.0 += used as u64;
            self.pending.1 += made as u64;
            let ratio = u64::from(self.rt.cfg.max_inflate_ratio);
            match st {
                Ok(Status::StreamEnd) => self.done = true,
                Ok(_) if self.total.1 > ratio.saturating_mul(self.total.0) => self.failed = true,
                Ok(_) => {}
                Err(_) => self.failed = true,
            }
            if self.failed {
                return (input.len(), &[]);
            }
            (used, self.out.get(..made).unwrap_or_default())
        }
    }
}

/// Without the `compression` feature the filters are refused at load, so no stream is ever
/// made; these stand in so the exchange compiles unchanged.
#[cfg(not(feature = "compression"))]
mod zlib {
    use std::rc::Rc;

    use super::{CompressorRt, DecompressorRt};
    use crate::config::Compressor;

    #[derive(Debug)]
    pub struct Deflater {
        pub(crate) pending: (u64, u64),
        pub(crate) rt: Option<Rc<CompressorRt>>,
    }

    impl Deflater {
        pub fn new(_: &Compressor) -> Option<Box<Deflater>> {
            None
        }
        pub fn feed(&mut self, _: &[u8], _: &mut dyn FnMut(&[u8])) {}
        pub fn flush(&mut self, _: &mut dyn FnMut(&[u8])) {}
        pub fn finish(&mut self, _: &mut dyn FnMut(&[u8])) {}
    }

    #[derive(Debug)]
    pub struct Inflater {
        pub(crate) rt: Rc<DecompressorRt>,
        pub(crate) pending: (u64, u64),
        pub(crate) failed: bool,
        pub(crate) reported: bool,
        pub(crate) carry: Vec<u8>,
    }

    impl Inflater {
        pub fn new(rt: Rc<DecompressorRt>) -> Box<Inflater> {
            Box::new(Inflater {
                rt,
                pending: (0, 0),
                failed: true,
                reported: true,
                carry: Vec::new(),
            })
        }
        pub fn chunk_size(&self) -> usize {
            0
        }
        pub fn output(&self, _: usize) -> &[u8] {
            &[]
        }
        pub fn inflate(&mut self, input: &[u8]) -> (usize, &[u8]) {
            (input.len(), &[])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "compression")]
    fn gzip(window_bits: u8, memory_level: u8, level: i32, chunk_size: u32) -> Compressor {
        Compressor {
            library: "l".into(),
            gzip: crate::config::GzipParams {
                level,
                strategy: 0,
                window_bits,
                memory_level,
                chunk_size,
            },
            enabled: true,
            min_content_length: 30,
            content_types: Vec::new(),
            disable_on_etag_header: false,
            remove_accept_encoding_header: false,
            choose_first: false,
            response_scope: true,
        }
    }

    #[cfg(feature = "compression")]
    fn inflater(max_inflate_ratio: u32) -> Box<Inflater> {
        let mut stats = Stats::new(&[], &[]);
        Inflater::new(Rc::new(DecompressorRt {
            cfg: crate::config::Decompressor {
                library: "l".into(),
                window_bits: 15,
                chunk_size: 4096,
                max_inflate_ratio,
                request_enabled: true,
                ignore_no_transform: false,
            },
            decompressed: stats.store.counter("a"),
            not_decompressed: stats.store.counter("b"),
            compressed_bytes: stats.store.counter("c"),
            uncompressed_bytes: stats.store.counter("d"),
            data_error: stats.store.counter("e"),
        }))
    }

    #[test]
    fn accept_encoding_follows_envoys_choice() {
        assert_eq!(accept(None, false), Accept::Absent);
        assert_eq!(accept(Some(""), false), Accept::NotValid);
        assert_eq!(accept(Some("gzip"), false), Accept::Gzip);
        assert_eq!(accept(Some("deflate, gzip;q=0.5"), false), Accept::Gzip);
        assert_eq!(accept(Some("br"), false), Accept::NotValid);
        assert_eq!(accept(Some("*"), false), Accept::Wildcard);
        assert_eq!(accept(Some("gzip;q=0, *"), false), Accept::NotValid);
        assert_eq!(
            accept(Some("gzip;q=0.5, identity"), false),
            Accept::Identity
        );
        assert_eq!(accept(Some("identity, gzip"), false), Accept::Identity);
        assert_eq!(accept(Some("identity, gzip"), true), Accept::Gzip);
        assert_eq!(accept(Some("gzip;q=abc"), false), Accept::NotValid);
        assert_eq!(accept(Some("gzip;level=1"), false), Accept::Gzip);
        assert_eq!(accept(Some("GZIP"), false), Accept::NotValid);
    }

    #[cfg(feature = "compression")]
    #[test]
    fn deflate_then_inflate_gives_the_bytes_back() {
        let Some(mut d) = Deflater::new(&gzip(9, 1, -1, 4096)) else {
            panic!("no deflater");
        };
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
        let mut gz = Vec::new();
        for part in body.chunks(7000) {
            d.feed(part, &mut |p| gz.extend_from_slice(p));
            d.flush(&mut |p| gz.extend_from_slice(p));
        }
        d.finish(&mut |p| gz.extend_from_slice(p));
        assert!(gz.len() < body.len() / 2, "{} bytes", gz.len());
        assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]));
        let mut inf = inflater(100);
        let mut back = Vec::new();
        let mut input = &gz[..];
        while !inf.done && !inf.failed {
            let (used, made) = inf.inflate(input);
            back.extend_from_slice(made);
            input = &input[used..];
        }
        assert!(!inf.failed);
        assert_eq!(back, body);
    }

    #[cfg(feature = "compression")]
    #[test]
    fn an_inflate_ratio_past_the_limit_fails() {
        // A megabyte of zeros deflates to about a kilobyte: a ratio near 1000.
        let Some(mut d) = Deflater::new(&gzip(15, 9, 9, 65536)) else {
            panic!("no deflater");
        };
        let mut gz = Vec::new();
        d.feed(&vec![0u8; 1 << 20], &mut |p| gz.extend_from_slice(p));
        d.finish(&mut |p| gz.extend_from_slice(p));
        let mut inf = inflater(10);
        let mut input = &gz[..];
        let mut made_all = 0;
        for _ in 0..1000 {
            if inf.done || inf.failed {
                break;
            }
            let (used, made) = inf.inflate(input);
            made_all += made.len();
            input = &input[used..];
        }
        assert!(inf.failed);
        assert!(made_all < 1 << 20);
    }
}
