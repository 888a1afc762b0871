//! The requests a run sends: one line each, with the reply it must get, and the order to send them in.

use std::io;
use std::sync::Arc;

use super::live;
use super::tokens::Outcome;

/// What a reply must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `OK …`
    Ok,
    /// `ERR <code> …`
    Code(&'static str),
    /// Any `ERR`.
    Rejected,
    /// Anything (not checked).
    Any,
    /// `OK …` or `ERR <code> …`.
    OkOr(&'static str),
    /// A token revoked during the run by the [`live::Live`] revocation in this slot: judged by the phase the
    /// revocation was in when the request was sent and when its reply came (see [`live`]).
    Revocable(u32),
}

impl From<Outcome> for Accept {
    fn from(e: Outcome) -> Accept {
        match e {
            Outcome::Ok => Accept::Ok,
            Outcome::Err(code) => Accept::Code(code),
        }
    }
}

/// Requests to send: one line each, with the reply it must get, and the order to send them in.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    pub(super) lines: Vec<Box<[u8]>>,
    pub(super) accept: Vec<Accept>,
    /// Indices into `lines`, sent in this order (cycling); empty = `lines` in order.
    order: Vec<u32>,
    /// Revocations issued during the runs, for the requests that accept [`Accept::Revocable`].
    pub(super) live: Arc<live::Live>,
}

impl Requests {
    /// Adds a `VERIFY` of `token`; `expect_ok` is whether the daemon must accept it.
    pub fn push(&mut self, token: &str, expect_ok: bool) -> io::Result<()> {
        let accept = if expect_ok {
            Accept::Ok
        } else {
            Accept::Rejected
        };
        self.push_verify(token, accept)
    }

    /// Adds a `VERIFY` of `token` that must get `accept`.
    pub fn push_verify(&mut self, token: &str, accept: Accept) -> io::Result<()> {
        self.push_verify_for(token, None, accept)
    }

    /// Adds a `VERIFY` of `token` for `request` (`"GET /orders/7"`: the routes apply), if given.
    pub fn push_verify_for(
        &mut self,
        token: &str,
        request: Option<&str>,
        accept: Accept,
    ) -> io::Result<()> {
        if token.is_empty() || token.contains([' ', '\n']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a token must be one non-empty line without spaces",
            ));
        }
        match request {
            Some(r) => self.push_request(&format!("VERIFY {token} {r}"), accept),
            None => self.push_request(&format!("VERIFY {token}"), accept),
        }
    }

    /// Adds any one-line request (`REVOKE JTI x 0`, `PING`); `expect_ok` is whether its reply must be `OK …`
    /// (a `PONG` counts as not OK).
    pub fn push_line(&mut self, line: &str, expect_ok: bool) -> io::Result<()> {
        let accept = if expect_ok {
            Accept::Ok
        } else {
            Accept::Rejected
        };
        self.push_request(line, accept)
    }

    fn push_request(&mut self, line: &str, accept: Accept) -> io::Result<()> {
        if line.contains('\n') || line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request must be one non-empty line",
            ));
        }
        self.lines
            .push(format!("{line}\n").into_bytes().into_boxed_slice());
        self.accept.push(accept);
        Ok(())
    }

    /// Sends requests in this order (indices of pushed requests, cycling) instead of push order.
    pub fn set_order(&mut self, order: Vec<u32>) -> io::Result<()> {
        if order.iter().any(|&i| i as usize >= self.lines.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the order names a request that does not exist",
            ));
        }
        self.order = order;
        Ok(())
    }

    /// The revocations that [`Accept::Revocable`] requests refer to (issued with [`live::Live::issue`] while a
    /// run goes on).
    pub fn set_live(&mut self, live: Arc<live::Live>) {
        self.live = live;
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Length of the send order.
    pub(super) fn order_len(&self) -> usize {
        if self.order.is_empty() {
            self.lines.len()
        } else {
            self.order.len()
        }
    }

    /// The request at position `i` of the send order.
    #[inline]
    pub(super) fn at(&self, i: usize) -> usize {
        if self.order.is_empty() {
            i
        } else {
            self.order[i] as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_must_name_existing_requests() {
        let mut c = Requests::default();
        c.push_line("PING", false).unwrap();
        assert!(c.set_order(vec![0, 0, 0]).is_ok());
        assert!(c.set_order(vec![1]).is_err());
        assert!(c.push_line("A\nB", true).is_err());
        assert!(c.push_verify("", Accept::Ok).is_err());
    }
}
