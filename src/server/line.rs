//! The line protocol (docs/PROTOCOL.md), as a pure codec: framing requests out of a byte buffer and
//! formatting replies into one. No sockets here; `conn.rs` drives it.

use crate::error::Error;

/// One request line, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `VERIFY <token>`: is the token valid (no route applies).
    Verify(&'a [u8]),
    /// `VERIFY <token> <METHOD> <PATH>`: may this token make this request (the routes apply).
    VerifyFor {
        token: &'a [u8],
        method: &'a [u8],
        path: &'a [u8],
    },
    /// `VERIFY` with something after the token that is not `<METHOD> <PATH>`.
    BadVerify,
    Ping,
    Stats,
    /// Admin: re-read keys and configuration.
    Reload,
    /// Admin: a revocation command (`REVOKE …`, `UNREVOKE …`, `REVOCATIONS …`), verb and raw arguments.
    Revocation {
        verb: &'static str,
        args: &'a [u8],
    },
    /// A session command: `ISSUE <form>` (admins only), `REFRESH <refresh_token> [<client_id>]`, `LOGOUT
    /// <refresh_token>` (docs/SESSIONS.md).
    Session {
        verb: &'static str,
        args: &'a [u8],
    },
    /// An unknown verb (or a known verb used wrongly): answered with `ERR unknown_command`, connection kept.
    Unknown(&'a [u8]),
}

/// What the front of a read buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole line of `len` bytes (without the `\n`); `consumed` includes the `\n`.
    Line { len: usize, consumed: usize },
    /// No `\n` yet and still under the cap: read more. Not an error.
    Incomplete,
    /// No `\n` within `max_line` bytes: the client gets `ERR too_large` and the connection is closed.
    TooLong,
}

/// Finds the first line in `buf`. The terminator is `\n` or `\r\n`, and is not part of the line: the cap
/// counts the line's own bytes, so a line of exactly `max_line` bytes is served whichever way it ends.
pub fn frame(buf: &[u8], max_line: usize) -> Frame {
    // Room for the longest line and a CRLF.
    let window = &buf[..buf.len().min(max_line.saturating_add(2))];
    match memchr::memchr(b'\n', window) {
        Some(i) => {
            let len = if i > 0 && buf[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            if len > max_line {
                Frame::TooLong
            } else {
                Frame::Line {
                    len,
                    consumed: i + 1,
                }
            }
        }
        // More than the cap without an end: unless the byte past the cap is the `\r` of a CRLF still
        // arriving, the line is over the cap whatever comes next.
        None if buf.len() > max_line.saturating_add(1)
            || (buf.len() == max_line + 1 && buf[max_line] != b'\r') =>
        {
            Frame::TooLong
        }
        None => Frame::Incomplete,
    }
}

/// Parses one line (without its terminator). Verbs are upper case, separated from the argument by one space.
pub fn parse(line: &[u8]) -> Request<'_> {
    match line {
        b"PING" => Request::Ping,
        b"STATS" => Request::Stats,
        b"RELOAD" => Request::Reload,
        [b'V', b'E', b'R', b'I', b'F', b'Y', b' ', rest @ ..] => match memchr::memchr(b' ', rest) {
            None => Request::Verify(rest),
            Some(i) => {
                let (token, after) = (&rest[..i], &rest[i + 1..]);
                match memchr::memchr(b' ', after) {
                    Some(j) if j > 0 && j + 1 < after.len() => Request::VerifyFor {
                        token,
                        method: &after[..j],
                        path: &after[j + 1..],
                    },
                    _ => Request::BadVerify,
                }
            }
        },
        b"REVOCATIONS" => Request::Revocation {
            verb: "REVOCATIONS",
            args: b"",
        },
        other => {
            for verb in ["REVOKE", "UNREVOKE", "REVOCATIONS"] {
                if let Some(args) = other
                    .strip_prefix(verb.as_bytes())
                    .and_then(|rest| rest.strip_prefix(b" "))
                {
                    return Request::Revocation { verb, args };
                }
            }
            for verb in ["ISSUE", "REFRESH", "LOGOUT"] {
                if let Some(args) = other
                    .strip_prefix(verb.as_bytes())
                    .and_then(|rest| rest.strip_prefix(b" "))
                {
                    return Request::Session { verb, args };
                }
            }
            Request::Unknown(other)
        }
    }
}

/// Appends `OK <claims>\n`.
pub fn ok(out: &mut Vec<u8>, claims_json: &str) {
    out.extend_from_slice(b"OK ");
    out.extend_from_slice(claims_json.as_bytes());
    out.push(b'\n');
}

/// Appends `ERR <code> <message>\n`.
pub fn err(out: &mut Vec<u8>, e: &Error) {
    use std::io::Write as _;
    // Writing into a Vec cannot fail; the message never contains a newline (Error's Display escapes).
    let _ = writeln!(out, "ERR {} {e}", e.code());
}

/// Appends an `ERR` reply for a protocol-level problem (not a token rejection).
pub fn protocol_err(out: &mut Vec<u8>, code: &str, message: &str) {
    out.extend_from_slice(b"ERR ");
    out.extend_from_slice(code.as_bytes());
    out.push(b' ');
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_and_tells_incomplete_from_too_long() {
        assert_eq!(
            frame(b"PING\nPI", 10),
            Frame::Line {
                len: 4,
                consumed: 5
            }
        );
        assert_eq!(
            frame(b"PING\r\n", 10),
            Frame::Line {
                len: 4,
                consumed: 6
            }
        );
        assert_eq!(
            frame(b"\n", 10),
            Frame::Line {
                len: 0,
                consumed: 1
            }
        );
        assert_eq!(frame(b"PIN", 10), Frame::Incomplete);
        assert_eq!(frame(b"", 10), Frame::Incomplete);
        assert_eq!(frame(b"0123456789", 10), Frame::Incomplete);
        assert_eq!(frame(b"0123456789A", 10), Frame::TooLong);
        assert_eq!(
            frame(b"0123456789\n", 10),
            Frame::Line {
                len: 10,
                consumed: 11
            }
        );
        assert_eq!(frame(b"0123456789A\n", 10), Frame::TooLong);
        // The cap counts the line, not its terminator: CRLF and LF alike.
        assert_eq!(
            frame(b"0123456789\r\n", 10),
            Frame::Line {
                len: 10,
                consumed: 12
            }
        );
        assert_eq!(frame(b"0123456789\r", 10), Frame::Incomplete);
        assert_eq!(frame(b"0123456789A\r\n", 10), Frame::TooLong);
        assert_eq!(frame(b"0123456789AB", 10), Frame::TooLong);
        // A huge buffer is only searched up to the cap.
        let big = vec![b'a'; 1 << 20];
        assert_eq!(frame(&big, 100), Frame::TooLong);
    }

    #[test]
    fn parses_verbs_strictly() {
        assert_eq!(parse(b"PING"), Request::Ping);
        assert_eq!(parse(b"STATS"), Request::Stats);
        assert_eq!(parse(b"VERIFY a.b.c"), Request::Verify(b"a.b.c"));
        assert_eq!(parse(b"VERIFY "), Request::Verify(b""));
        assert_eq!(
            parse(b"VERIFY a.b.c GET /orders/7?x=1 y"),
            Request::VerifyFor {
                token: b"a.b.c",
                method: b"GET",
                path: b"/orders/7?x=1 y"
            }
        );
        for bad in [
            &b"VERIFY a.b.c GET"[..],
            b"VERIFY a.b.c ",
            b"VERIFY a.b.c GET ",
            b"VERIFY a.b.c  /x",
        ] {
            assert_eq!(
                parse(bad),
                Request::BadVerify,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse(b"ping"), Request::Unknown(b"ping"));
        assert_eq!(parse(b"VERIFY"), Request::Unknown(b"VERIFY"));
        assert_eq!(parse(b"PING x"), Request::Unknown(b"PING x"));
        assert_eq!(parse(b""), Request::Unknown(b""));
    }

    #[test]
    fn replies_are_single_lines() {
        let mut out = Vec::new();
        ok(&mut out, r#"{"sub":"a"}"#);
        err(&mut out, &Error::UnknownKey("kid\nx".into()));
        protocol_err(
            &mut out,
            "unknown_command",
            "expected VERIFY, PING or STATS",
        );
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], r#"OK {"sub":"a"}"#);
        assert!(lines[1].starts_with("ERR unknown_key "));
        assert!(lines[2].starts_with("ERR unknown_command "));
    }
}
