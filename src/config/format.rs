//! Syntax check for Envoy substitution strings (`%REQ(x-foo)%`, `%START_TIME(%s)%`, `%%`), used
//! by header values and access-log formats. The model keeps the strings raw; checking them here
//! means a typo such as `%HOSTNAM%` fails at load instead of being written out literally.

/// Command operators the data path is expected to understand.
const OPERATORS: &[&str] = &[
    "START_TIME",
    "REQ",
    "RESP",
    "TRAILER",
    "REQ_WITHOUT_QUERY",
    "PROTOCOL",
    "RESPONSE_CODE",
    "RESPONSE_CODE_DETAILS",
    "RESPONSE_FLAGS",
    "BYTES_RECEIVED",
    "BYTES_SENT",
    "DURATION",
    "REQUEST_DURATION",
    "RESPONSE_DURATION",
    "RESPONSE_TX_DURATION",
    "UPSTREAM_HOST",
    "UPSTREAM_CLUSTER",
    "UPSTREAM_LOCAL_ADDRESS",
    "UPSTREAM_REMOTE_ADDRESS",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT",
    "UPSTREAM_TRANSPORT_FAILURE_REASON",
    "DOWNSTREAM_REMOTE_ADDRESS",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_PORT",
    "DOWNSTREAM_TLS_VERSION",
    "REQUESTED_SERVER_NAME",
    "DOWNSTREAM_PEER_SUBJECT",
    "HOSTNAME",
    "ROUTE_NAME",
    "CONNECTION_ID",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "LOCAL_REPLY_BODY",
    "ENVIRONMENT",
];

/// Operators that must carry an argument in parentheses.
const NEEDS_ARG: &[&str] = &["REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY", "ENVIRONMENT"];

/// One piece of a substitution string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// Literal text (`%%` already turned into `%`).
    Lit(String),
    /// `%NAME%`, `%NAME(arg)%` or `%NAME(arg):max%`.
    Op {
        name: &'a str,
        arg: Option<&'a str>,
        max: Option<usize>,
    },
}

/// Splits `s` into literals and command operators. This is the one parser of the syntax:
/// config checks, header-value templates and access-log formats all build on it, so they
/// cannot disagree about what a string means. Errors name the byte offset.
pub fn tokenize(s: &str) -> Result<Vec<Token<'_>>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < b.len() {
        let Some(off) = s[i..].find('%') else {
            lit.push_str(&s[i..]);
            break;
        };
        lit.push_str(&s[i..i + off]);
        let start = i + off;
        i = start + 1;
        if b.get(i) == Some(&b'%') {
            lit.push('%');
            i += 1;
            continue;
        }
        let name_start = i;
        while i < b.len() && (b[i].is_ascii_uppercase() || b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        let name = &s[name_start..i];
        if name.is_empty() {
            return Err(format!(
                "stray '%' at offset {start} (write %% for a literal percent sign)"
            ));
        }
        let mut arg = None;
        let mut max = None;
        if b.get(i) == Some(&b'(') {
            // Arguments may contain '%' (START_TIME formats) but not ')'.
            let close = s[i..]
                .find(')')
                .ok_or_else(|| format!("unterminated \"%{name}(\" at offset {start}"))?;
            arg = Some(&s[i + 1..i + close]);
            i += close + 1;
            if b.get(i) == Some(&b':') {
                i += 1;
                let digits = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                max = s[digits..i].parse().ok();
                if max.is_none() {
                    return Err(format!(
                        "bad length after \"%{name}(...):\" at offset {start}"
                    ));
                }
            }
        }
        if b.get(i) != Some(&b'%') {
            return Err(format!(
                "unterminated command operator \"%{name}\" at offset {start}"
            ));
        }
        i += 1;
        if !lit.is_empty() {
            out.push(Token::Lit(std::mem::take(&mut lit)));
        }
        out.push(Token::Op { name, arg, max });
    }
    if !lit.is_empty() {
        out.push(Token::Lit(lit));
    }
    Ok(out)
}

/// Checks `s`; the error says what is wrong and where (byte offset) in the string.
pub fn check(s: &str) -> Result<(), String> {
    for t in tokenize(s)? {
        let Token::Op { name, arg, .. } = t else {
            continue;
        };
        if !OPERATORS.contains(&name) {
            return Err(format!("unknown command operator \"%{name}%\""));
        }
        if NEEDS_ARG.contains(&name) && arg.is_none_or(str::is_empty) {
            return Err(format!(
                "\"%{name}%\" needs an argument, e.g. %{name}(x-foo)%"
            ));
        }
    }
    Ok(())
}

/// Operators the checker knows that baton's access log refuses: Envoy counts the bytes of
/// its own header map (pseudo-headers and headers it added, without the HTTP/1 framing),
/// which baton does not build, and a different number would mislead.
const NOT_IN_ACCESS_LOGS: &[&str] = &["REQUEST_HEADERS_BYTES", "RESPONSE_HEADERS_BYTES"];

/// `check`, plus the operators an access-log format may not use.
pub fn check_access_log(s: &str) -> Result<(), String> {
    check(s)?;
    for t in tokenize(s)? {
        if let Token::Op { name, .. } = t {
            if NOT_IN_ACCESS_LOGS.contains(&name) {
                return Err(format!(
                    "\"%{name}%\" is not supported by baton (Envoy counts the bytes of its \
                     internal header map, which baton does not have)"
                ));
            }
        }
    }
    Ok(())
}

/// `check_access_log`, plus what a local reply's body format may not use: `%RESP(...)%` (the
/// reply's own headers are not captured for it).
pub fn check_local_reply(s: &str) -> Result<(), String> {
    check_access_log(s)?;
    for t in tokenize(s)? {
        if let Token::Op { name: "RESP", .. } = t {
            return Err("\"%RESP(...)%\" is not supported by baton in local reply formats".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_envoy_forms() {
        assert_eq!(check("plain"), Ok(()));
        assert_eq!(check("100%% sure"), Ok(()));
        assert_eq!(check("%DOWNSTREAM_REMOTE_ADDRESS% via %HOSTNAME%"), Ok(()));
        assert_eq!(check("%REQ(x-foo)% %REQ(USER-AGENT):10%"), Ok(()));
        assert_eq!(check("%START_TIME(%Y-%m-%dT%H:%M:%S%z)%"), Ok(()));
        assert_eq!(
            check(super::super::model::DEFAULT_ACCESS_LOG_FORMAT),
            Ok(())
        );
    }

    #[test]
    fn tokenizes_literals_and_operators() {
        use super::{tokenize, Token};
        assert_eq!(
            tokenize("a%%b %REQ(x-y?z):5% %HOSTNAME%!").unwrap(),
            vec![
                Token::Lit("a%b ".into()),
                Token::Op {
                    name: "REQ",
                    arg: Some("x-y?z"),
                    max: Some(5)
                },
                Token::Lit(" ".into()),
                Token::Op {
                    name: "HOSTNAME",
                    arg: None,
                    max: None
                },
                Token::Lit("!".into()),
            ]
        );
    }

    #[test]
    fn rejects_typos() {
        assert_eq!(
            check("%HOSTNAM%"),
            Err("unknown command operator \"%HOSTNAM%\"".into())
        );
        assert_eq!(
            check("a %PROTOCOL"),
            Err("unterminated command operator \"%PROTOCOL\" at offset 2".into())
        );
        assert_eq!(
            check("%REQ(x"),
            Err("unterminated \"%REQ(\" at offset 0".into())
        );
        assert_eq!(
            check("50% off"),
            Err("stray '%' at offset 2 (write %% for a literal percent sign)".into())
        );
        assert_eq!(
            check("%REQ%"),
            Err("\"%REQ%\" needs an argument, e.g. %REQ(x-foo)%".into())
        );
    }
}
