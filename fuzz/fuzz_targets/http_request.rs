//! Arbitrary bytes as one HTTP/1.1 connection to the daemon (in memory): hyper's parser, then jwtd's routing,
//! token extraction (Authorization, cookie), /verify, /introspect (form bodies), /revoke (admin, forms),
//! /healthz, /metrics. The first byte picks an admin or an ordinary peer. Checked: no panic, the connection
//! ends, and whatever comes back is an HTTP/1.x response.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

fuzz_target!(|data: &[u8]| {
    let Some((&who, input)) = data.split_first() else {
        return;
    };
    let shared = common::shared();
    let shutdown = CancellationToken::new();
    let out = common::converse(input, |server| async move {
        let _ = jwtd::server::http::serve(server, shared, &shutdown, common::admin_uid(who)).await;
    });
    assert!(
        // HTTP/1.0 requests are answered in HTTP/1.0.
        out.is_empty() || out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(&out[..out.len().min(80)])
    );
});
