//! Arbitrary bytes as one line-protocol connection (the first byte picks an admin or an ordinary peer): the
//! framing, every verb's parser and handler (VERIFY, PING, STATS, RELOAD, REVOKE, UNREVOKE, REVOCATIONS),
//! the cache and the revocation store behind them. Checked: no panic, the connection ends, and exactly one
//! reply line per complete request line, in order — plus one `ERR too_large` when a line exceeds the cap
//! (after which the connection closes).
#![no_main]

#[path = "common.rs"]
mod common;

use jwtd::server::line::{self, Frame};
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

/// Reply lines the input must get.
fn expected_replies(mut input: &[u8]) -> (usize, bool) {
    let mut n = 0;
    loop {
        match line::frame(input, common::MAX_LINE) {
            Frame::Line { consumed, .. } => {
                n += 1;
                input = &input[consumed..];
            }
            Frame::Incomplete => return (n, false),
            Frame::TooLong => return (n + 1, true),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&who, input)) = data.split_first() else {
        return;
    };
    let shared = common::shared();
    let shutdown = CancellationToken::new();
    let out = common::converse(input, |server| async move {
        let _ = jwtd::server::conn::serve(server, &shared, &shutdown, common::admin_uid(who)).await;
    });
    let (want, too_long) = expected_replies(input);
    let got = out.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(got, want, "reply lines for {} request lines", want);
    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "a reply line was cut"
    );
    if too_long {
        assert!(
            out.split(|&b| b == b'\n')
                .rev()
                .nth(1)
                .is_some_and(|l| l.starts_with(b"ERR too_large")),
            "the last reply must be ERR too_large"
        );
    }
});
