//! The original request's path, made comparable: what a route rule sees. A rule for `/admin` must hold
//! whatever spelling reaches the backend as `/admin`, so the path is normalised the way servers resolve it —
//! and what servers disagree on is refused rather than guessed.
//!
//! - The query (`?…`) and fragment (`#…`) are not part of the path.
//! - Percent-encoded unreserved characters (RFC 3986 §2.3: letters, digits, `-._~`) are decoded, so `%2e%2e`
//!   is `..` and `/%61dmin` is `/admin`; other escapes stay encoded, with upper-case hex.
//! - An encoded `/` or `\` (`%2F`, `%5C`), a raw `\`, a malformed escape, a NUL or another control
//!   character: refused. Servers differ on whether `%2F` separates segments (nginx decodes it, many frameworks
//!   do not), so no answer would be safe.
//! - Empty segments (`//`) collapse; dot segments are resolved (RFC 3986 §5.2.4), never above the root.

use std::borrow::Cow;

/// Why a path cannot be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not an absolute path (`/…`).
    NotAbsolute,
    /// `%2F` or `%5C`: a slash whose meaning depends on the server.
    EncodedSlash,
    /// A `\`, which some servers take for `/`.
    Backslash,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A NUL or another control character (raw or encoded).
    Control,
    /// Not UTF-8 (line protocol).
    NotUtf8,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path does not start with /",
            PathError::EncodedSlash => "the path has an encoded slash (%2F or %5C)",
            PathError::Backslash => "the path has a backslash",
            PathError::BadEscape => "the path has a malformed %-escape",
            PathError::Control => "the path has a control character",
            PathError::NotUtf8 => "the path is not UTF-8",
        })
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `raw` (a request target's path, possibly with a query) normalised, or why it cannot be.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let path = match memchr::memchr2(b'?', b'#', raw.as_bytes()) {
        Some(i) => &raw[..i],
        None => raw,
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    rebuild(path).map(Cow::Owned)
}

/// [`normalize`] for a path given as bytes (the line protocol's): one pass over the usual request (visible
/// ASCII, already normal); anything else must be UTF-8 and takes the long way.
pub fn normalize_bytes(raw: &[u8]) -> Result<Cow<'_, str>, PathError> {
    if let Some(end) = normal_ascii(raw)
        && let Ok(path) = std::str::from_utf8(&raw[..end])
    {
        return Ok(Cow::Borrowed(path));
    }
    // Only the path must be text: the query and fragment are not looked at.
    let end = memchr::memchr2(b'?', b'#', raw).unwrap_or(raw.len());
    normalize(std::str::from_utf8(&raw[..end]).map_err(|_| PathError::NotUtf8)?)
}

/// Where the path part of `raw` ends, if it is visible ASCII without `%` or `\\` and already normal (see
/// [`is_normal`]).
fn normal_ascii(raw: &[u8]) -> Option<usize> {
    if raw.first() != Some(&b'/') {
        return None;
    }
    let mut start = 1;
    for (i, &c) in raw.iter().enumerate().skip(1) {
        match c {
            b'/' | b'?' | b'#' => {
                let last = c != b'/';
                if matches!(&raw[start..i], b"." | b"..") || (!last && start == i) {
                    return None;
                }
                if last {
                    return Some(i);
                }
                start = i + 1;
            }
            b'%' | b'\\' => return None,
            0x21..=0x7e => {}
            _ => return None,
        }
    }
    (!matches!(&raw[start..], b"." | b"..")).then_some(raw.len())
}

/// [`normalize`] the long way: decode, check, resolve the segments, rebuild.
fn rebuild(path: &str) -> Result<String, PathError> {
    // Decode what may be decoded; check the rest.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (
                    bytes.get(i + 1).and_then(|&c| hex(c)),
                    bytes.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::BadEscape),
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' {
                    return Err(PathError::EncodedSlash);
                }
                if v < 0x20 || v == 0x7f {
                    return Err(PathError::Control);
                }
                if unreserved(v) {
                    decoded.push(v as char);
                } else {
                    decoded.push('%');
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                    decoded.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::Control),
            _ => {
                // Copy the whole UTF-8 sequence starting here (a `str`, so it is valid).
                let len = utf8_len(b);
                decoded.push_str(&path[i..i + len]);
                i += len;
            }
        }
    }
    // Segments: drop empty and `.`, resolve `..` (never above the root).
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut norm = String::with_capacity(decoded.len());
    for s in &out {
        norm.push('/');
        norm.push_str(s);
    }
    // A trailing slash is kept (`/orders/` stays distinct from `/orders` for exact rules; prefixes treat
    // them alike).
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    if norm.is_empty() || trailing {
        norm.push('/');
    }
    Ok(norm)
}

/// Whether `path` (absolute, without query) is already what [`normalize`] would make of it: nothing to
/// decode or refuse, no empty segment but a trailing one, no dot segment. Most requests are: one scan, no
/// rebuilding.
fn is_normal(path: &str) -> bool {
    // One pass; `start` is where the current segment began (just after its '/').
    let b = path.as_bytes();
    let mut start = 1;
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            b'/' => {
                if matches!(&b[start..i], b"" | b"." | b"..") {
                    return false;
                }
                start = i + 1;
            }
            b'%' | b'\\' | 0x7f => return false,
            _ if c < 0x20 => return false,
            _ => {}
        }
    }
    // The last segment may be empty (a trailing slash), never a dot segment.
    !matches!(&b[start.min(b.len())..], b"." | b"..")
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Whether the normalised `path` is under the normalised `prefix`, segment-aware: `/orders` covers
/// `/orders`, `/orders/` and `/orders/7`, not `/ordersx`; `/` covers everything.
pub fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_what_servers_resolve() {
        for (raw, want) in [
            ("/orders", "/orders"),
            ("/orders/", "/orders/"),
            ("/orders?x=1", "/orders"),
            ("/orders#frag", "/orders"),
            ("/orders/../admin", "/admin"),
            ("/orders/%2e%2e/admin", "/admin"),
            ("/orders/%2E%2E/admin", "/admin"),
            ("/orders/.%2e/admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("//admin", "/admin"),
            ("/admin//users", "/admin/users"),
            ("/../../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/a%7eb", "/a~b"),
            ("/a%20b", "/a%20b"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/é", "/é"),
            ("/", "/"),
            ("/..", "/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_what_servers_disagree_on() {
        for (raw, want) in [
            ("orders", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("/admin%2Fusers", PathError::EncodedSlash),
            ("/admin%2fusers", PathError::EncodedSlash),
            ("/admin%5cusers", PathError::EncodedSlash),
            ("/admin\\users", PathError::Backslash),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%", PathError::BadEscape),
            ("/a%00", PathError::Control),
            ("/a\u{0}b", PathError::Control),
            ("/a%0a", PathError::Control),
            ("/a\tb", PathError::Control),
        ] {
            assert_eq!(normalize(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn prefixes_are_segment_aware() {
        assert!(under("/orders", "/orders"));
        assert!(under("/orders/", "/orders"));
        assert!(under("/orders/7", "/orders"));
        assert!(under("/orders/7", "/orders/"));
        assert!(!under("/ordersx", "/orders"));
        assert!(!under("/order", "/orders"));
        assert!(under("/anything", "/"));
        assert!(under("/", "/"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Paths made of the pieces that matter: segments, dots, slashes, escapes of dots and letters.
    fn path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just("//".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E".to_string()),
            Just("%61".to_string()),
            Just("%20".to_string()),
            "[a-z]{1,3}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()))
    }

    proptest! {
        #[test]
        fn normal_forms_are_fixed_points_without_dot_segments(p in path()) {
            let n = normalize(&p).unwrap();
            prop_assert_eq!(normalize(&n).unwrap(), n.clone());
            prop_assert!(n.starts_with('/'));
            prop_assert!(!n.contains("//"));
            for seg in n.split('/') {
                prop_assert!(seg != "." && seg != "..", "{} -> {}", p, n);
                prop_assert!(!seg.to_ascii_lowercase().contains("%2e"), "{} -> {}", p, n);
            }
        }

        #[test]
        fn the_fast_path_agrees_with_the_long_way(p in path(), q in "(\\?[a-z=&/.%]{0,6})?") {
            prop_assert_eq!(normalize(&p).map(Cow::into_owned), rebuild(&p), "{}", p);
            let with_query = format!("{p}{q}");
            prop_assert_eq!(
                normalize_bytes(with_query.as_bytes()).map(Cow::into_owned),
                normalize(&with_query).map(Cow::into_owned),
                "{}",
                with_query
            );
        }

        #[test]
        fn a_dot_dot_never_stays_under_the_prefix_it_left(prefix in "[a-z]{1,4}", rest in "[a-z]{1,4}") {
            for dots in ["..", "%2e%2e", ".%2E", "%2E."] {
                let n = normalize(&format!("/{prefix}/{dots}/{rest}")).unwrap().into_owned();
                prop_assert_eq!(n, format!("/{rest}"));
            }
        }
    }
}
