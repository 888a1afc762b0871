//! Reading reply lines off a connection: buffered, bounded in length, and never waiting forever.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// How long a connection with requests outstanding may go without a byte of reply before the run fails
/// (a server that stops answering must not keep `jwtd bench` waiting forever).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest reply line accepted (a server streaming bytes without a newline must not grow the client's
/// memory without bound).
pub const MAX_REPLY: usize = 16 << 20;

/// Reads reply lines into `buf` until `n` have been counted, calling `each(index, line, arrival)`.
pub(super) struct Replies {
    buf: Vec<u8>,
    filled: usize,
    line_start: usize,
    /// See [`REPLY_TIMEOUT`].
    stall: Duration,
}

impl Replies {
    pub(super) fn new(stall: Duration) -> Replies {
        Replies {
            buf: vec![0u8; 256 * 1024],
            filled: 0,
            line_start: 0,
            stall,
        }
    }

    /// Reads once (waiting for data) and calls `each` for every complete line; returns how many.
    pub(super) async fn read<S: AsyncReadExt + Unpin>(
        &mut self,
        stream: &mut S,
        mut each: impl FnMut(&[u8], Instant),
    ) -> io::Result<usize> {
        if self.filled == self.buf.len() {
            if self.line_start > 0 {
                self.buf.copy_within(self.line_start..self.filled, 0);
                self.filled -= self.line_start;
                self.line_start = 0;
            } else {
                // One reply longer than the buffer.
                let len = self.buf.len();
                if len >= MAX_REPLY {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a reply longer than {MAX_REPLY} bytes without a newline"),
                    ));
                }
                self.buf.resize(len * 2, 0);
            }
        }
        let got = tokio::time::timeout(self.stall, stream.read(&mut self.buf[self.filled..]))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no reply for {} s while requests were outstanding: the server stopped answering",
                        self.stall.as_secs_f64()
                    ),
                )
            })??;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "jwtd closed the connection",
            ));
        }
        let arrival = Instant::now();
        let from = self.filled;
        self.filled += got;
        let mut lines = 0;
        for nl in memchr::memchr_iter(b'\n', &self.buf[from..self.filled]) {
            let end = from + nl;
            each(&self.buf[self.line_start..end], arrival);
            self.line_start = end + 1;
            lines += 1;
        }
        if self.line_start == self.filled {
            self.filled = 0;
            self.line_start = 0;
        }
        Ok(lines)
    }
}
