//! The original request as attackers can spell it, and the route table that judges it: never a panic. The
//! first byte picks what the rest is: a line-protocol `<METHOD> <PATH>`, or a path as an `X-Original-URI`.
//! A path that normalises is a fixed point of normalisation, starts with `/`, has no `//` and no dot segment
//! (so no spelling gets under a prefix it left), and the borrowed fast path agrees with the long way; the
//! route found for it is the first, as written, whose prefix covers it.
#![no_main]

use jwtd::routes::path::{normalize, normalize_bytes, under};
use jwtd::routes::target::from_line;
use jwtd::routes::{Route, Routes, Target};
use libfuzzer_sys::fuzz_target;

fn route(path: &str, methods: Option<&[&str]>) -> Route {
    Route {
        methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
        ..Route::at(path)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let table = vec![
        route("/admin", None),
        route("/orders", Some(&["POST"])),
        route("/orders", Some(&["GET", "HEAD"])),
        route("/orders/7/items", None),
        route("/a", None),
        route("/", Some(&["DELETE"])),
    ];
    let routes = Routes::new(table.clone(), which & 2 != 0);
    let target = if which & 1 == 0 {
        let Some(space) = rest.iter().position(|&b| b == b' ') else {
            return;
        };
        match from_line(&rest[..space], &rest[space + 1..]) {
            Ok(t) => t,
            Err(_) => return,
        }
    } else {
        // The query and fragment are not the path: only the path part must be text.
        let end = rest.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(rest.len());
        let via_bytes = normalize_bytes(rest);
        let Ok(text) = std::str::from_utf8(&rest[..end]) else {
            assert!(via_bytes.is_err());
            return;
        };
        let Ok(n) = normalize(text) else {
            assert!(via_bytes.is_err());
            return;
        };
        assert_eq!(via_bytes.unwrap(), n);
        Target::known("GET", n.into_owned())
    };
    let Target::Known { method, path } = &target else {
        return;
    };
    assert!(path.starts_with('/') && !path.contains("//"), "{path:?}");
    assert_eq!(normalize(path).unwrap(), path.as_ref());
    for seg in path.split('/') {
        assert!(seg != "." && seg != "..", "{path:?}");
    }
    let scan = table.iter().position(|r| {
        under(path, &r.path)
            && r.methods
                .as_ref()
                .is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(method)))
    });
    assert_eq!(routes.find(&target), scan, "{method} {path}");
});
