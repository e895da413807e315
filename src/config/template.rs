//! Header values with Envoy's substitution variables (`%DOWNSTREAM_REMOTE_ADDRESS%`,
//! `%REQ(x-foo)%`, `%START_TIME(%s)%`...), compiled once at load into literal and variable parts
//! so the data path only concatenates. Only the variables baton can evaluate for headers are
//! accepted; anything else is a load error, never a literal `%FOO%` on the wire.

use super::format::Token;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// One substitution variable a header value may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    DownstreamRemote,
    DownstreamRemoteNoPort,
    Hostname,
    /// The strftime-style format; `None` is Envoy's default (ISO 8601 with milliseconds, UTC).
    StartTime(Option<String>),
    UpstreamHost,
    /// `%REQ(a?b):N%`: the first present of the (lower-cased) names, truncated to N bytes.
    Req {
        names: Vec<String>,
        max: Option<usize>,
    },
    Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(Var),
}

/// A compiled header value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Variables accepted in header values, for error messages.
pub const HEADER_VARIABLES: &str = "DOWNSTREAM_REMOTE_ADDRESS, \
DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, HOSTNAME, START_TIME, UPSTREAM_HOST, REQ(header), PROTOCOL";

/// What a template is evaluated against. `upstream` is `None` until a host is chosen.
pub struct Vars<'a> {
    pub peer: SocketAddr,
    pub start: SystemTime,
    pub minor: u8,
    pub upstream: Option<SocketAddr>,
    /// Looks a request header up by lower-cased name (pseudo-headers included).
    pub req: &'a dyn Fn(&str) -> Option<String>,
}

impl Template {
    /// Parses an Envoy header value; the error names the offending operator.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        for t in super::format::tokenize(s)? {
            let (name, arg, max) = match t {
                Token::Lit(l) => {
                    parts.push(Part::Lit(l));
                    continue;
                }
                Token::Op { name, arg, max } => (name, arg, max),
            };
            let var = match (name, arg) {
                ("DOWNSTREAM_REMOTE_ADDRESS", None) => Var::DownstreamRemote,
                ("DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", None) => Var::DownstreamRemoteNoPort,
                ("HOSTNAME", None) => Var::Hostname,
                ("START_TIME", a) => Var::StartTime(a.filter(|f| !f.is_empty()).map(String::from)),
                ("UPSTREAM_HOST", None) => Var::UpstreamHost,
                ("PROTOCOL", None) => Var::Protocol,
                ("REQ", Some(a)) if !a.is_empty() => Var::Req {
                    names: a
                        .split('?')
                        .map(|n| n.trim().to_ascii_lowercase())
                        .collect(),
                    max,
                },
                ("REQ", _) => return Err("\"%REQ%\" needs a header name, e.g. %REQ(x-foo)%".into()),
                (n, _) => {
                    return Err(format!(
                        "\"%{n}%\" is not supported in header values by baton \
                         (supported: {HEADER_VARIABLES})"
                    ))
                }
            };
            parts.push(Part::Var(var));
        }
        Ok(Template { parts })
    }

    /// A value with no variables: `s` as written, `%` included.
    pub fn text(s: &str) -> Template {
        Template {
            parts: vec![Part::Lit(s.to_string())],
        }
    }

    /// The value as-is when it has no variables (the common case: no work per request).
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// The request header names the value reads (`%REQ(a?b)%`), lower-cased.
    pub fn req_names(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .flat_map(|p| match p {
                Part::Var(Var::Req { names, .. }) => names.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
    }

    /// True when the value names the upstream host (evaluated only once one is chosen).
    pub fn uses_upstream(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::UpstreamHost)))
    }

    /// Evaluates everything known from the request, keeping `%UPSTREAM_HOST%` for later.
    pub fn bind(&self, v: &Vars<'_>) -> Template {
        let mut parts: Vec<Part> = Vec::new();
        for p in &self.parts {
            let next = match p {
                Part::Var(Var::UpstreamHost) if v.upstream.is_none() => p.clone(),
                Part::Lit(s) => Part::Lit(s.clone()),
                Part::Var(var) => Part::Lit(eval(var, v)),
            };
            match (parts.last_mut(), next) {
                (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
                (_, n) => parts.push(n),
            }
        }
        Template { parts }
    }

    /// Renders the value; variables with no value (no upstream yet) become "".
    pub fn render(&self, v: &Vars<'_>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(var) => out.push_str(&eval(var, v)),
            }
        }
        out
    }

    /// Renders a template whose only possible variable left is `%UPSTREAM_HOST%` (see `bind`).
    pub fn render_upstream(&self, upstream: Option<SocketAddr>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(Var::UpstreamHost) => {
                    if let Some(a) = upstream {
                        out.push_str(&a.to_string());
                    }
                }
                Part::Var(_) => {}
            }
        }
        out
    }
}

fn eval(var: &Var, v: &Vars<'_>) -> String {
    match var {
        Var::DownstreamRemote => v.peer.to_string(),
        Var::DownstreamRemoteNoPort => v.peer.ip().to_string(),
        Var::Hostname => hostname().to_string(),
        Var::StartTime(f) => start_time(v.start, f.as_deref()),
        Var::UpstreamHost => v.upstream.map(|a| a.to_string()).unwrap_or_default(),
        Var::Protocol if v.minor == 2 => "HTTP/2".to_string(),
        Var::Protocol => format!("HTTP/1.{}", v.minor),
        Var::Req { names, max } => {
            let mut s = names.iter().find_map(|n| (v.req)(n)).unwrap_or_default();
            if let Some(m) = max {
                let mut m = (*m).min(s.len());
                while !s.is_char_boundary(m) {
                    m -= 1;
                }
                s.truncate(m);
            }
            s
        }
    }
}

/// The machine's host name, looked up once.
pub fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    })
}

/// Formats a time as Envoy's `%START_TIME(fmt)%` does: strftime (UTC) plus `%s` (epoch
/// seconds), `%f`/`%Nf` (fraction digits, default 9) and `%E3S`-style seconds with fraction.
pub fn start_time(t: SystemTime, fmt: Option<&str>) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let fmt = fmt.unwrap_or("%Y-%m-%dT%H:%M:%E3SZ");
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, da) = crate::util::civil_from_days(days);
    let (h, mi, se) = (rem / 3600, (rem / 60) % 60, rem % 60);
    let frac = |n: usize| format!("{nanos:09}")[..n.clamp(1, 9)].to_string();
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = it.next() else {
            out.push('%');
            break;
        };
        match spec {
            'Y' => out.push_str(&y.to_string()),
            'y' => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            'm' => out.push_str(&format!("{mo:02}")),
            'd' => out.push_str(&format!("{da:02}")),
            'e' => out.push_str(&format!("{da:2}")),
            'H' => out.push_str(&format!("{h:02}")),
            'M' => out.push_str(&format!("{mi:02}")),
            'S' => out.push_str(&format!("{se:02}")),
            's' => out.push_str(&secs.to_string()),
            'T' => out.push_str(&format!("{h:02}:{mi:02}:{se:02}")),
            'F' => out.push_str(&format!("{y}-{mo:02}-{da:02}")),
            'z' => out.push_str("+0000"),
            'Z' => out.push_str("UTC"),
            'f' => out.push_str(&frac(9)),
            '%' => out.push('%'),
            d @ '1'..='9' if it.peek() == Some(&'f') => {
                it.next();
                out.push_str(&frac(d as usize - '0' as usize));
            }
            'E' => {
                let n = it.next();
                let s = it.next();
                match (n, s) {
                    (Some(n @ '0'..='9'), Some('S')) => {
                        out.push_str(&format!("{se:02}"));
                        let n = n as usize - '0' as usize;
                        if n > 0 {
                            out.push('.');
                            out.push_str(&frac(n));
                        }
                    }
                    _ => out.push_str("%E"),
                }
            }
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vars<'a>(req: &'a dyn Fn(&str) -> Option<String>) -> Vars<'a> {
        Vars {
            peer: "10.0.0.1:5555".parse().unwrap(),
            start: UNIX_EPOCH + Duration::from_millis(784_111_777_123),
            minor: 1,
            upstream: None,
            req,
        }
    }

    #[test]
    fn parses_and_renders_every_variable() {
        let req = |n: &str| (n == "x-a").then(|| "hello".to_string());
        let v = vars(&req);
        let t = Template::parse("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %PROTOCOL% %REQ(x-b?X-A):3% 100%%").unwrap();
        assert_eq!(t.render(&v), "10.0.0.1:5555 10.0.0.1 HTTP/1.1 hel 100%");
        let t =
            Template::parse("%START_TIME%|%START_TIME(%s)%|%START_TIME(%Y/%m/%d %T.%3f)%").unwrap();
        assert_eq!(
            t.render(&v),
            "1994-11-06T08:49:37.123Z|784111777|1994/11/06 08:49:37.123"
        );
        assert_eq!(Template::parse("plain").unwrap().literal(), Some("plain"));
    }

    #[test]
    fn upstream_host_is_bound_late() {
        let req = |_: &str| None;
        let v = vars(&req);
        let t = Template::parse("%UPSTREAM_HOST%/%PROTOCOL%").unwrap();
        assert!(t.uses_upstream());
        let b = t.bind(&v);
        assert_eq!(
            b.render_upstream(Some("127.0.0.1:8080".parse().unwrap())),
            "127.0.0.1:8080/HTTP/1.1"
        );
        assert_eq!(b.render_upstream(None), "/HTTP/1.1");
    }

    #[test]
    fn rejects_what_it_cannot_evaluate() {
        assert!(Template::parse("%RESPONSE_CODE%").is_err());
        assert!(Template::parse("%REQ%").is_err());
        assert!(Template::parse("50%").is_err());
        assert!(Template::parse("%HOSTNAME").is_err());
    }
}
