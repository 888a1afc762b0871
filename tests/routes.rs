//! Authorization at the gate, end to end against the daemon: `[[route]]` rules on HTTP auth requests (the
//! nginx, forward-auth and Envoy ways of naming the original request) and on `VERIFY <token> <METHOD>
//! <PATH>`; 403 versus 401; cache hits judged like misses; reloads swapping the routes; claims to headers.

mod common;

use std::path::Path;

use common::daemon::*;
use common::{data, token_with};
use jwtd::Alg;
use serde_json::{Value, json};

const A: &str = "https://a.example";
const B: &str = "https://b.example";

fn config(routes: &str) -> String {
    let keys = data("keys/HS256.public.jwks");
    format!(
        r#"
[http]
claim_headers = {{ "X-Jwt-Sub" = "sub", "X-Jwt-Country" = "address.country", "X-Jwt-Roles" = "roles" }}
payload_header = "X-Jwt-Payload"

[[issuer]]
iss = "{A}"
keys = ["{k}"]
audiences = ["api"]

[[issuer]]
iss = "{B}"
keys = ["{k}"]
audiences = ["api"]
{routes}"#,
        k = keys.display()
    )
}

const ROUTES: &str = r#"
[[route]]
path = "/orders"
methods = ["GET", "HEAD"]
scopes = ["read:orders"]

[[route]]
path = "/orders"
methods = ["POST"]
scopes = ["write:orders"]

[[route]]
path = "/admin"
any_scopes = ["admin", "ops"]
issuers = ["https://a.example"]
claims = { roles = { contains = "admin" }, "address.country" = { one_of = ["DE", "FR"] } }

[[route]]
path = "/billing"
audiences = ["billing-api"]
"#;

fn tok(iss: &str, extra: Value) -> String {
    let mut c = json!({"iss": iss, "sub": "alice", "aud": "api", "exp": 4_102_444_800u64});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    token_with(Alg::HS256, json!({}), &c)
}

/// An auth request for `token` (if any) with extra headers, on `path` of the daemon.
fn auth(
    socket: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: jwtd\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    http(socket, &req)
}

/// nginx's way: `X-Original-URI` and `X-Original-Method`.
fn nginx(socket: &Path, token: &str, method: &str, uri: &str) -> String {
    auth(
        socket,
        "GET",
        "/verify",
        Some(token),
        &[("X-Original-URI", uri), ("X-Original-Method", method)],
    )
}

fn status(response: &str) -> u16 {
    response[9..12].parse().unwrap()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next().unwrap();
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn code(response: &str) -> String {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn routes_decide_by_path_method_scope_issuer_and_claims() {
    let d = start_config("routes-decide", &config(ROUTES));
    let s = &d.socket;
    let reader = tok(A, json!({"scope": "read:orders profile"}));
    let writer = tok(A, json!({"scp": ["write:orders"]}));
    // Twice each: the second answer comes from the cache and must be judged the same.
    for _ in 0..2 {
        let ok = nginx(s, &reader, "GET", "/orders/7?page=2");
        assert_eq!(status(&ok), 200, "{ok}");
        assert_eq!(header(&ok, "x-jwt-sub"), Some("alice"));
        let no = nginx(s, &reader, "POST", "/orders");
        assert_eq!(status(&no), 403, "{no}");
        assert_eq!(code(&no), "insufficient_scope");
        assert_eq!(
            header(&no, "www-authenticate"),
            Some(
                r#"Bearer error="insufficient_scope", error_description="insufficient_scope", scope="write:orders""#
            )
        );
        assert_eq!(status(&nginx(s, &writer, "POST", "/orders")), 200);
        assert_eq!(status(&nginx(s, &writer, "GET", "/orders")), 403);
        // No route for DELETE, /ordersx or /public: the default (allow) lets a valid token through.
        assert_eq!(status(&nginx(s, &writer, "DELETE", "/orders")), 200);
        assert_eq!(status(&nginx(s, &reader, "GET", "/ordersx")), 200);
    }
    // Dot segments, doubled slashes and encoded dots cannot dodge the admin rule.
    for uri in [
        "/orders/../admin",
        "//admin/",
        "/orders/%2e%2e/admin/users",
        "/%61dmin",
    ] {
        let r = nginx(s, &reader, "GET", uri);
        assert_eq!(status(&r), 403, "{uri}: {r}");
        assert!(
            header(&r, "www-authenticate")
                .unwrap()
                .contains(r#"scope="admin ops""#),
            "{r}"
        );
    }
    // Encoded slashes are refused rather than guessed.
    let r = nginx(s, &reader, "GET", "/admin%2Fusers");
    assert_eq!(status(&r), 400, "{r}");
    let admin = |iss: &str, country: &str| {
        tok(
            iss,
            json!({"scope": "ops", "roles": ["user", "admin"], "address": {"country": country}}),
        )
    };
    let ok = nginx(s, &admin(A, "DE"), "GET", "/admin/users");
    assert_eq!(status(&ok), 200, "{ok}");
    assert_eq!(header(&ok, "x-jwt-country"), Some("DE"));
    assert_eq!(header(&ok, "x-jwt-roles"), Some("user,admin"));
    let wrong_country = nginx(s, &admin(A, "US"), "GET", "/admin");
    assert_eq!(
        (status(&wrong_country), code(&wrong_country).as_str()),
        (403, "claim_mismatch")
    );
    assert!(
        !wrong_country.contains("US"),
        "the claim's value is not echoed: {wrong_country}"
    );
    let other_issuer = nginx(s, &admin(B, "DE"), "GET", "/admin");
    assert_eq!(
        (status(&other_issuer), code(&other_issuer).as_str()),
        (403, "issuer_not_allowed")
    );
    // An invalid token is still 401, whatever the route.
    let forged = format!("{}x", &reader[..reader.len() - 1]);
    let bad = nginx(s, &forged, "GET", "/orders");
    assert_eq!(status(&bad), 401, "{bad}");
    // Routes exist and the request is not named: denied (fail closed).
    let unnamed = auth(s, "GET", "/verify", Some(&reader), &[]);
    assert_eq!(
        (status(&unnamed), code(&unnamed).as_str()),
        (403, "no_route")
    );
}

#[test]
fn each_proxy_way_of_naming_the_request_and_smuggling_refused() {
    let d = start_config("routes-proxies", &config(ROUTES));
    let s = &d.socket;
    let reader = tok(A, json!({"scope": "read:orders"}));
    // Traefik and Caddy forward-auth.
    let fwd = |method: &str, uri: &str| {
        auth(
            s,
            "GET",
            "/verify",
            Some(&reader),
            &[
                ("X-Forwarded-Uri", uri),
                ("X-Forwarded-Method", method),
                ("X-Forwarded-Host", "shop.example"),
            ],
        )
    };
    assert_eq!(status(&fwd("GET", "/orders")), 200);
    assert_eq!(status(&fwd("POST", "/orders")), 403);
    // Envoy ext_authz: the original path after the verify path, the original method.
    assert_eq!(
        status(&auth(s, "GET", "/verify/orders/7", Some(&reader), &[])),
        200
    );
    assert_eq!(
        status(&auth(s, "POST", "/verify/orders", Some(&reader), &[])),
        403
    );
    // nginx sets X-Original-*, and forwards a client's X-Forwarded-* naming a friendlier request: refused.
    let smuggled = auth(
        s,
        "GET",
        "/verify",
        Some(&reader),
        &[
            ("X-Original-URI", "/admin"),
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Uri", "/public"),
            ("X-Forwarded-Method", "GET"),
        ],
    );
    assert_eq!(status(&smuggled), 400, "{smuggled}");
    // Envoy's path and a client's header naming another request: refused too.
    let envoy_smuggled = auth(
        s,
        "GET",
        "/verify/admin",
        Some(&reader),
        &[("X-Original-URI", "/public"), ("X-Original-Method", "GET")],
    );
    assert_eq!(status(&envoy_smuggled), 400, "{envoy_smuggled}");
    // Only nginx believed: forward-auth headers are ignored, so the request is unnamed (denied).
    let only_nginx = config(ROUTES).replace("[http]\n", "[http]\noriginal_request = [\"nginx\"]\n");
    let d2 = start_config("routes-trust", &only_nginx);
    let r = auth(
        &d2.socket,
        "GET",
        "/verify",
        Some(&reader),
        &[
            ("X-Forwarded-Uri", "/public"),
            ("X-Forwarded-Method", "GET"),
        ],
    );
    assert_eq!((status(&r), code(&r).as_str()), (403, "no_route"), "{r}");
    assert_eq!(status(&nginx(&d2.socket, &reader, "GET", "/orders")), 200);
}

#[test]
fn the_line_protocol_asks_the_same_question() {
    let d = start_config("routes-line", &config(ROUTES));
    let reader = tok(A, json!({"scope": "read:orders"}));
    let out = ask(
        &d.socket,
        &[
            format!("VERIFY {reader} GET /orders/7"),
            format!("VERIFY {reader} POST /orders"),
            format!("VERIFY {reader} get /orders/../admin"),
            format!("VERIFY {reader}"),
            format!("VERIFY {reader} GET"),
            format!("VERIFY {reader} GET /a%2Fb"),
            format!("VERIFY {reader} POST /orders"),
        ],
    );
    assert!(out[0].starts_with("OK {"), "{out:?}");
    assert!(out[1].starts_with("ERR insufficient_scope "), "{out:?}");
    assert!(out[2].starts_with("ERR insufficient_scope "), "{out:?}");
    // Plain VERIFY: validity only, as before routes existed.
    assert!(out[3].starts_with("OK {"), "{out:?}");
    assert!(out[4].starts_with("ERR bad_request "), "{out:?}");
    assert!(out[5].starts_with("ERR bad_request "), "{out:?}");
    assert_eq!(out[6], out[1]);
    let st = stats(&d.socket);
    assert!(
        st["rejected"]["insufficient_scope"].as_u64().unwrap_or(0) >= 3,
        "{st}"
    );
}

#[test]
fn a_route_audience_is_good_on_that_route_only() {
    let d = start_config("routes-aud", &config(ROUTES));
    let s = &d.socket;
    let billing = tok(A, json!({"aud": "billing-api", "scope": "read:orders"}));
    assert_eq!(status(&nginx(s, &billing, "GET", "/billing/invoices")), 200);
    // Anywhere else the token is not for us: 401 wrong_audience, on HTTP and on the line protocol.
    let r = nginx(s, &billing, "GET", "/orders");
    assert_eq!(
        (status(&r), code(&r).as_str()),
        (401, "wrong_audience"),
        "{r}"
    );
    let r = nginx(s, &billing, "GET", "/public");
    assert_eq!(
        (status(&r), code(&r).as_str()),
        (401, "wrong_audience"),
        "{r}"
    );
    assert!(verify_line(s, &billing).starts_with("ERR wrong_audience "));
    // And the issuer's audience does not open the billing route.
    let api = tok(A, json!({"scope": "read:orders"}));
    let r = nginx(s, &api, "GET", "/billing");
    assert_eq!(
        (status(&r), code(&r).as_str()),
        (401, "wrong_audience"),
        "{r}"
    );
    assert_eq!(status(&nginx(s, &api, "GET", "/orders")), 200);
}

#[test]
fn a_reload_swaps_the_routes_and_cached_tokens_follow() {
    let dir = temp_dir("routes-reload");
    let d = start_config_with(
        dir.clone(),
        &config(ROUTES),
        std::process::Stdio::null(),
        &["--no-watch"],
    );
    let s = &d.socket;
    let reader = tok(A, json!({"scope": "read:orders"}));
    assert_eq!(status(&nginx(s, &reader, "GET", "/orders")), 200);
    assert_eq!(status(&nginx(s, &reader, "GET", "/public")), 200);
    let stricter = ROUTES.replace(
        "scopes = [\"read:orders\"]",
        "scopes = [\"read:orders:v2\"]",
    );
    write_config(
        &dir,
        &format!("default_route = \"deny\"\n{}", config(&stricter)),
    );
    let r = exchange(s, b"RELOAD\n");
    assert!(r.starts_with("OK "), "{r}");
    // The token is in the cache; the new rules apply to it at once.
    let r = nginx(s, &reader, "GET", "/orders");
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("read:orders:v2"), "{r}");
    let r = nginx(s, &reader, "GET", "/public");
    assert_eq!((status(&r), code(&r).as_str()), (403, "no_route"), "{r}");
    // A configuration with a broken route is refused as a whole; the running routes stay.
    write_config(
        &dir,
        &config("[[route]]\npath = \"/x\"\nscopes = [\"a b\"]\n"),
    );
    let r = exchange(s, b"RELOAD\n");
    assert!(
        r.starts_with("ERR reload_failed ") && r.contains("route[0].scopes"),
        "{r}"
    );
    assert_eq!(status(&nginx(s, &reader, "GET", "/public")), 403);
}

#[test]
fn require_scope_covers_every_request_in_flag_mode() {
    let d = start(
        "routes-flag",
        &["--require-scope", "read", "--require-scope", "write"],
    );
    let c = |scope: &str| {
        let mut c = common::live_claims();
        c["scope"] = json!(scope);
        token_with(Alg::HS256, json!({}), &c)
    };
    // With or without the original request named: one route covers everything.
    for headers in [
        vec![],
        vec![("X-Original-URI", "/x"), ("X-Original-Method", "GET")],
    ] {
        let ok = auth(
            &d.socket,
            "GET",
            "/verify",
            Some(&c("read write")),
            &headers,
        );
        assert_eq!(status(&ok), 200, "{ok}");
        let no = auth(&d.socket, "GET", "/verify", Some(&c("read")), &headers);
        assert_eq!(status(&no), 403, "{no}");
        assert!(no.contains(r#"scope="read write""#), "{no}");
    }
    let out = jwtd_refused(&["--require-scope", "a\"b"]);
    assert!(out.contains("not a scope"), "{out}");
}

fn jwtd_refused(extra: &[&str]) -> String {
    let keys = data("keys/HS256.public.jwks");
    let mut args = vec![
        "serve",
        "--keys",
        keys.to_str().unwrap(),
        "--socket",
        "/nonexistent/x.sock",
    ];
    args.extend_from_slice(extra);
    let out = common::jwtd(&args, None);
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_whole_payload_header_and_reserved_names() {
    let d = start_config("routes-payload", &config(""));
    let t = tok(A, json!({"scope": "x", "name": "Zoë"}));
    let r = auth(&d.socket, "GET", "/verify", Some(&t), &[]);
    assert_eq!(status(&r), 200, "{r}");
    let payload = header(&r, "x-jwt-payload").unwrap();
    let claims: Value =
        serde_json::from_slice(&jwtd::jws::b64::decode(payload.as_bytes()).unwrap()).unwrap();
    assert_eq!(claims["name"], "Zoë");
    // Claims can never be written to credential, hop-by-hop or original-request headers.
    for name in [
        "Authorization",
        "Connection",
        "X-Original-URI",
        "Transfer-Encoding",
    ] {
        let out = jwtd_refused(&["--claim-header", &format!("{name}=sub")]);
        assert!(out.contains("reserved"), "{name}: {out}");
    }
}

#[test]
fn a_routes_file_in_flag_mode_reloads_and_widens_the_audience() {
    let dir = temp_dir("routes-file");
    let file = dir.join("routes.toml");
    let write = |scope: &str| {
        std::fs::write(
            &file,
            format!(
                "[[route]]\npath = \"/orders\"\nscopes = [\"{scope}\"]\n\n[[route]]\npath = \"/billing\"\naudiences = [\"billing-api\"]\n"
            ),
        )
        .unwrap()
    };
    write("read:orders");
    let d = start_in(
        dir.clone(),
        &["--routes", file.to_str().unwrap(), "--no-watch"],
    );
    let t = token_with(Alg::HS256, json!({}), &common::live_claims());
    let mut billing = common::live_claims();
    billing["aud"] = json!("billing-api");
    let b = token_with(Alg::HS256, json!({}), &billing);
    let out = ask(
        &d.socket,
        &[
            format!("VERIFY {t} GET /orders/1"),
            format!("VERIFY {b} GET /billing/1"),
            format!("VERIFY {b} GET /orders/1"),
            format!("VERIFY {b}"),
        ],
    );
    assert!(out[0].starts_with("ERR insufficient_scope "), "{out:?}");
    assert!(out[1].starts_with("OK "), "{out:?}");
    assert!(out[2].starts_with("ERR wrong_audience "), "{out:?}");
    assert!(out[3].starts_with("ERR wrong_audience "), "{out:?}");
    // The token's scope is read:items: a reload that asks for it lets the (cached) token through.
    write("read:items");
    let r = exchange(&d.socket, b"RELOAD\n");
    assert!(r.starts_with("OK "), "{r}");
    assert!(verify_for(&d.socket, &t, "GET /orders/1").starts_with("OK "));
    // A broken routes file is refused whole.
    std::fs::write(&file, "[[route]]\npath = \"orders\"\n").unwrap();
    let r = exchange(&d.socket, b"RELOAD\n");
    assert!(
        r.starts_with("ERR reload_failed ") && r.contains("route[0].path"),
        "{r}"
    );
    assert!(verify_for(&d.socket, &t, "GET /orders/1").starts_with("OK "));
}

fn verify_for(socket: &Path, token: &str, request: &str) -> String {
    exchange(socket, format!("VERIFY {token} {request}\n").as_bytes())
}
