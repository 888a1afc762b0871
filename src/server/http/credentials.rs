//! Finding a request's token: the configured header (default `Authorization: Bearer`), then the configured
//! cookie; a credential given twice is refused.

use hyper::header;

use super::Options;

/// Where a request's token was looked for, and what was found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Token<'a> {
    Found(&'a [u8]),
    /// No credentials at all: RFC 6750 §3.1 says answer without an error code.
    Absent,
    /// Credentials of the wrong shape (another scheme, an empty value).
    Malformed(&'static str),
    /// Two credentials (two `Authorization` headers, the token header or cookie twice): the first would be
    /// verified while a later hop may read the last (RFC 6750 §3.1: `invalid_request`, 400).
    Duplicate(&'static str),
}

/// Finds the token: the configured header (default `Authorization: Bearer`, scheme case-insensitive, RFC
/// 6750 §2.1), then the configured cookie.
pub(super) fn find_token<'a>(headers: &'a hyper::HeaderMap, opts: &Options) -> Token<'a> {
    let name = opts.token_header.as_ref().unwrap_or(&header::AUTHORIZATION);
    if headers.get_all(name).iter().nth(1).is_some() {
        return Token::Duplicate(if opts.token_header.is_none() {
            "more than one Authorization header"
        } else {
            "the token header is given more than once"
        });
    }
    let from_header = match &opts.token_header {
        None => headers.get(header::AUTHORIZATION).map(|v| {
            let v = v.as_bytes();
            match v.iter().position(|&b| b == b' ') {
                Some(i) if v[..i].eq_ignore_ascii_case(b"bearer") => v[i..].trim_ascii(),
                _ => b"",
            }
        }),
        Some(name) => headers.get(name).map(|v| {
            let v = v.as_bytes().trim_ascii();
            match v.get(..7) {
                Some(p) if p.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
                _ => v,
            }
        }),
    };
    match from_header {
        Some([]) => {
            return Token::Malformed("the token header is empty or not a Bearer credential");
        }
        Some(t) => return Token::Found(t),
        None => {}
    }
    let Some(name) = &opts.token_cookie else {
        return Token::Absent;
    };
    let mut found = None;
    for v in headers.get_all(header::COOKIE) {
        for t in cookies(v.as_bytes(), name.as_bytes()) {
            if found.is_some() {
                return Token::Duplicate("the token cookie is given more than once");
            }
            found = Some(t);
        }
    }
    match found {
        None => Token::Absent,
        Some([]) => Token::Malformed("the token cookie is empty"),
        Some(t) => Token::Found(t),
    }
}

/// The values of cookie `name` in a `Cookie` header (`a=1; b="2"`, RFC 6265 §4.2.1; quotes removed).
fn cookies<'a, 'n>(
    header: &'a [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    header.split(|&b| b == b';').filter_map(move |pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name).then(|| {
            let v = pair[eq + 1..].trim_ascii();
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v)
        })
    })
}

#[cfg(test)]
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    cookies(header, name).next()
}

#[cfg(test)]
mod tests {
    use super::super::parse_header_name;
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                parse_header_name(k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_other_schemes_are_malformed() {
        let o = Options::default();
        let t = |v: &str| match find_token(&headers(&[("authorization", v)]), &o) {
            Token::Found(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
            _ => None,
        };
        assert_eq!(t("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(t("bEaReR   abc  ").as_deref(), Some("abc"));
        assert_eq!(t("Basic abc"), None);
        assert_eq!(t("Bearer"), None);
        assert_eq!(find_token(&headers(&[]), &o), Token::Absent);
        assert!(matches!(
            find_token(&headers(&[("authorization", "Basic x")]), &o),
            Token::Malformed(_)
        ));
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        assert_eq!(cookie(b"a=1; b=2", b"b"), Some(&b"2"[..]));
        assert_eq!(cookie(b"a=1;b=\"2\"", b"b"), Some(&b"2"[..]));
        assert_eq!(cookie(b"ab=1", b"b"), None);
        assert_eq!(cookie(b"b", b"b"), None);
        let o = Options {
            token_cookie: Some("s".into()),
            ..Options::default()
        };
        let h = headers(&[("cookie", "x=1"), ("cookie", "s=tok")]);
        assert_eq!(find_token(&h, &o), Token::Found(b"tok"));
        assert!(matches!(
            find_token(&headers(&[("cookie", "s=")]), &o),
            Token::Malformed(_)
        ));
    }

    #[test]
    fn duplicate_credentials_are_refused() {
        let o = Options::default();
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        let o = Options {
            token_header: Some(parse_header_name("x-token").unwrap()),
            token_cookie: Some("s".into()),
            ..Options::default()
        };
        let h = headers(&[("x-token", "a"), ("x-token", "a")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        let h = headers(&[("cookie", "s=a; s=b")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        let h = headers(&[("cookie", "s=a"), ("cookie", "x=1; s=a")]);
        assert!(matches!(find_token(&h, &o), Token::Duplicate(_)));
        // One of each source is fine: the header wins.
        let h = headers(&[("x-token", "a"), ("cookie", "s=b")]);
        assert_eq!(find_token(&h, &o), Token::Found(b"a"));
    }
}
