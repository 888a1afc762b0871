//! A small blocking client for the line protocol: the reference for clients in other languages, and what the
//! tests and benchmarks use.
//!
//! ```no_run
//! let mut c = jwtd::client::Client::connect("jwtd.sock")?;
//! match c.verify("eyJ...")? {
//!     jwtd::client::Reply::Ok(claims) => println!("valid: {claims}"),
//!     jwtd::client::Reply::Err { code, message } => println!("rejected: {code} ({message})"),
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a request may wait for its reply (or for the socket to take it) before the client gives up, by
/// default; see [`Client::set_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest reply line accepted: a server streaming bytes without a newline cannot grow the client's
/// memory without bound (`REVOCATIONS LIST` of many long values is the largest legitimate reply).
pub const MAX_REPLY: u64 = 64 << 20;

/// One `VERIFY` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The token's claims, compact JSON.
    Ok(String),
    /// The rejection code (docs/ERRORS.md) and message.
    Err { code: String, message: String },
}

/// A connection to `jwtd serve`.
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    line: String,
}

/// Requests in flight at most while pipelining: small enough that requests and replies always fit in the
/// socket buffers (a client that writes without reading could otherwise deadlock with the server).
const WINDOW: usize = 64;

impl Client {
    /// Connects to the daemon's socket; requests time out after [`DEFAULT_TIMEOUT`].
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Client> {
        let writer = UnixStream::connect(path)?;
        let reader = BufReader::new(writer.try_clone()?);
        let mut c = Client {
            writer,
            reader,
            line: String::new(),
        };
        c.set_timeout(Some(DEFAULT_TIMEOUT))?;
        Ok(c)
    }

    /// How long a read or write may block (`None`: forever). A reply not arriving in time is an error of
    /// kind `WouldBlock` or `TimedOut`.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.writer.set_read_timeout(timeout)?;
        self.writer.set_write_timeout(timeout)
    }

    /// Verifies one token.
    pub fn verify(&mut self, token: &str) -> io::Result<Reply> {
        Ok(self.verify_many(&[token])?.remove(0))
    }

    /// Verifies many tokens, pipelined; replies come back in order.
    pub fn verify_many<T: AsRef<str>>(&mut self, tokens: &[T]) -> io::Result<Vec<Reply>> {
        let mut replies = Vec::with_capacity(tokens.len());
        let mut request = Vec::new();
        for window in tokens.chunks(WINDOW) {
            request.clear();
            for t in window {
                let t = t.as_ref();
                if t.contains('\n') {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a token cannot contain a newline",
                    ));
                }
                request.extend_from_slice(b"VERIFY ");
                request.extend_from_slice(t.as_bytes());
                request.push(b'\n');
            }
            self.writer.write_all(&request)?;
            for _ in window {
                replies.push(parse_reply(self.read_line()?)?);
            }
        }
        Ok(replies)
    }

    /// Sends one request line (e.g. `REVOKE JTI abc 0`) and returns the reply line, without its newline.
    pub fn request(&mut self, line: &str) -> io::Result<String> {
        if line.contains('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request cannot contain a newline",
            ));
        }
        self.writer.write_all(format!("{line}\n").as_bytes())?;
        self.read_line().map(str::to_owned)
    }

    /// `PING` → `PONG`.
    pub fn ping(&mut self) -> io::Result<()> {
        self.writer.write_all(b"PING\n")?;
        match self.read_line()? {
            "PONG" => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// `STATS`: the server's counters as JSON text.
    pub fn stats(&mut self) -> io::Result<String> {
        self.writer.write_all(b"STATS\n")?;
        let line = self.read_line()?;
        line.strip_prefix("STATS ")
            .map(str::to_owned)
            .ok_or_else(|| unexpected(line))
    }

    fn read_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_REPLY + 1)
            .read_line(&mut self.line)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply from jwtd in time (is the socket a jwtd daemon, and is it running?)",
                ),
                _ => e,
            })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "jwtd closed the connection",
            ));
        }
        if !self.line.ends_with('\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                if n as u64 > MAX_REPLY {
                    format!("a reply longer than {MAX_REPLY} bytes: not a jwtd daemon?")
                } else {
                    "the connection ended in the middle of a reply".to_string()
                },
            ));
        }
        Ok(self.line.trim_end_matches(['\n', '\r']))
    }
}

fn parse_reply(line: &str) -> io::Result<Reply> {
    if let Some(claims) = line.strip_prefix("OK ") {
        return Ok(Reply::Ok(claims.to_owned()));
    }
    if let Some(rest) = line.strip_prefix("ERR ") {
        let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
        return Ok(Reply::Err {
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }
    Err(unexpected(line))
}

fn unexpected(line: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from jwtd: {line:.80}"),
    )
}
