//! Envoy's JSON formats (`json_format`): the configured object compiled once into JSON text
//! with holes, Envoy's way. Keys are sorted; a string value that is one command operator alone
//! keeps its type (a status or a duration is a number, a missing value is `null`, no response flags `"-"`); any other
//! string with operators is a JSON string with `-` for a missing value; numbers, booleans,
//! null, lists and nested objects are written as configured. A line ends with a newline.

use super::format::{Format, JsonKind, Names, Slots};
use super::record::Rq;
use crate::config::JsonFormat as Config;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// JSON text as it is.
    Raw(String),
    /// One operator alone, typed (`Format::json_kind`).
    Value(Format, JsonKind),
    /// A string with operators: rendered, then quoted.
    Str(Format),
}

/// A compiled JSON format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFormat {
    parts: Vec<Part>,
}

impl JsonFormat {
    /// Compiles a checked `json_format`, registering the request headers it prints.
    pub fn compile(c: &Config, slots: &mut Slots) -> JsonFormat {
        let mut parts = Vec::new();
        build(c, slots, &mut parts);
        parts.push(Part::Raw("\n".into()));
        // Adjacent raw pieces are one.
        let mut merged: Vec<Part> = Vec::new();
        for p in parts {
            match (merged.last_mut(), p) {
                (Some(Part::Raw(a)), Part::Raw(b)) => a.push_str(&b),
                (_, p) => merged.push(p),
            }
        }
        JsonFormat { parts: merged }
    }

    /// Appends the rendered object (and its newline).
    pub fn render(&self, out: &mut Vec<u8>, rq: &Rq, names: &Names<'_>) {
        let mut tmp = Vec::new();
        for p in &self.parts {
            match p {
                Part::Raw(s) => out.extend_from_slice(s.as_bytes()),
                Part::Value(f, kind) => {
                    tmp.clear();
                    f.render_value(&mut tmp, rq, names);
                    match kind {
                        JsonKind::DashString if tmp.is_empty() => quote(out, b"-"),
                        JsonKind::Number | JsonKind::String if tmp.is_empty() => {
                            out.extend_from_slice(b"null")
                        }
                        JsonKind::Number => out.extend_from_slice(&tmp),
                        _ => quote(out, &tmp),
                    }
                }
                Part::Str(f) => {
                    tmp.clear();
                    f.render(&mut tmp, rq, names);
                    quote(out, &tmp);
                }
            }
        }
    }
}

fn build(c: &Config, slots: &mut Slots, parts: &mut Vec<Part>) {
    let raw = |parts: &mut Vec<Part>, s: &str| parts.push(Part::Raw(s.to_string()));
    match c {
        Config::Null => raw(parts, "null"),
        Config::Bool(b) => raw(parts, if *b { "true" } else { "false" }),
        Config::Number(n) => raw(parts, n),
        Config::String(s) if !s.contains('%') => {
            let mut q = Vec::new();
            quote(&mut q, s.as_bytes());
            parts.push(Part::Raw(String::from_utf8_lossy(&q).into_owned()));
        }
        Config::String(s) => {
            let f = Format::compile_local_reply(s, slots, false);
            parts.push(match f.json_kind() {
                Some(k) => Part::Value(f, k),
                None => Part::Str(f),
            });
        }
        Config::List(items) => {
            raw(parts, "[");
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    raw(parts, ",");
                }
                build(x, slots, parts);
            }
            raw(parts, "]");
        }
        Config::Object(fields) => {
            let mut sorted: Vec<&(String, Config)> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            raw(parts, "{");
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    raw(parts, ",");
                }
                let mut q = Vec::new();
                quote(&mut q, k.as_bytes());
                q.push(b':');
                parts.push(Part::Raw(String::from_utf8_lossy(&q).into_owned()));
                build(x, slots, parts);
            }
            raw(parts, "}");
        }
    }
}

/// Appends `v` as a JSON string: quotes, backslashes and control characters escaped, other
/// text (UTF-8) as it is.
pub fn quote(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    for ch in String::from_utf8_lossy(v).chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::record::{Captured, Flags};
    use std::time::Instant;

    #[test]
    fn typed_values_sorted_keys_and_strings() {
        let cfg = Config::Object(vec![
            ("status".into(), Config::String("%RESPONSE_CODE%".into())),
            ("body".into(), Config::String("%LOCAL_REPLY_BODY%".into())),
            (
                "msg".into(),
                Config::String("code %RESPONSE_CODE% \"%REQ(x-nope)%\"".into()),
            ),
            ("ua".into(), Config::String("%REQ(user-agent)%".into())),
            ("lit".into(), Config::Number("1.5".into())),
            (
                "nested".into(),
                Config::Object(vec![
                    ("ok".into(), Config::Bool(true)),
                    ("flags".into(), Config::String("%RESPONSE_FLAGS%".into())),
                ]),
            ),
            (
                "list".into(),
                Config::List(vec![Config::Null, Config::String("a\tb".into())]),
            ),
        ]);
        let mut slots = Slots::default();
        let f = JsonFormat::compile(&cfg, &mut slots);
        let mut rq = Rq::new(Instant::now(), 0, "10.0.0.1:5".parse().unwrap(), 1);
        rq.cap = Some(Box::new(Captured::new(&slots)));
        rq.status = 503;
        rq.flags.set(Flags::UF);
        rq.local_body = Some("".into());
        let mut out = Vec::new();
        f.render(&mut out, &rq, &Names::default());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"body\":\"\",\"list\":[null,\"a\\tb\"],\"lit\":1.5,\
             \"msg\":\"code 503 \\\"-\\\"\",\"nested\":{\"flags\":\"UF\",\"ok\":true},\
             \"status\":503,\"ua\":null}\n"
        );
    }
}
