//! The session requests as clients send them — HTTP forms (`POST /issue`, `POST /token`) and line-protocol
//! arguments (`ISSUE <form>`, `REFRESH <refresh_token> [<client_id>]` or `REFRESH <form>`) — and the RFC
//! 6749 answers: §5.1 JSON on success, §5.2 JSON errors.
//!
//! Every field may appear once; unknown fields are refused (a typo must not silently issue a token without
//! the claim that was meant).

use serde_json::{Value, json};

use super::mint::RESERVED;
use super::record::{MAX_CLAIMS, MAX_FIELD};

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `invalid_client`, `invalid_scope`, `unsupported_grant_type`,
    /// or jwtd's own `forbidden`, `sessions_disabled`, `server_error`.
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    fn request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    /// The HTTP status: 401 for `invalid_client`, 403 `forbidden`, 503 `sessions_disabled`, 500
    /// `server_error`, else 400.
    pub fn status(&self) -> u16 {
        match self.code {
            "invalid_client" => 401,
            "forbidden" => 403,
            "sessions_disabled" => 503,
            "server_error" => 500,
            _ => 400,
        }
    }

    /// The §5.2 JSON body.
    pub fn to_json(&self) -> String {
        json!({"error": self.code, "error_description": self.description}).to_string()
    }
}

/// What `/issue` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub sub: String,
    pub client_id: Option<String>,
    pub scope: String,
    pub aud: Option<String>,
    /// A JSON object's compact text.
    pub claims: Option<String>,
}

/// What `/token` (`grant_type=refresh_token`) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    pub refresh_token: String,
    pub client_id: Option<String>,
    /// A narrower scope for the new access token (RFC 6749 §6).
    pub scope: Option<String>,
}

/// Picks each known field once.
fn fields<'a, const N: usize>(
    form: &'a [(String, String)],
    known: [&str; N],
) -> Result<[Option<&'a str>; N], OAuthError> {
    let mut out = [None; N];
    for (k, v) in form {
        let Some(i) = known.iter().position(|n| n == k) else {
            return Err(OAuthError::request(format!(
                "unknown field {:?} (known: {})",
                k.chars().take(40).collect::<String>(),
                known.join(", ")
            )));
        };
        if out[i].replace(v.as_str()).is_some() {
            return Err(OAuthError::request(format!("field {k} given twice")));
        }
    }
    Ok(out)
}

/// A text field: 1 to [`MAX_FIELD`] bytes, no control characters.
fn text(name: &str, v: &str) -> Result<String, OAuthError> {
    if v.is_empty() || v.len() > MAX_FIELD {
        return Err(OAuthError::request(format!(
            "{name} must be 1 to {MAX_FIELD} bytes"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(OAuthError::request(format!(
            "{name} holds a control character"
        )));
    }
    Ok(v.to_string())
}

/// A scope (RFC 6749 §3.3): scope-tokens of printable ASCII without `"` or `\`, one space apart.
fn scope(v: &str) -> Result<String, OAuthError> {
    if v.len() > MAX_FIELD {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope longer than {MAX_FIELD} bytes"),
        ));
    }
    let ok_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|c| c == 0x21 || (0x23..=0x5b).contains(&c) || (0x5d..=0x7e).contains(&c))
    };
    if !v.is_empty() && !v.split(' ').all(ok_token) {
        return Err(OAuthError::new(
            "invalid_scope",
            "scope must be scope-tokens (printable ASCII, no quote or backslash) separated by single spaces",
        ));
    }
    Ok(v.to_string())
}

/// Parses an issue form.
pub fn issue(form: &[(String, String)]) -> Result<Issue, OAuthError> {
    let [sub, client_id, scope_v, aud, claims] =
        fields(form, ["sub", "client_id", "scope", "aud", "claims"])?;
    let sub = text(
        "sub",
        sub.ok_or_else(|| OAuthError::request("sub is required"))?,
    )?;
    let claims = match claims {
        None => None,
        Some(c) => {
            if c.len() > MAX_CLAIMS {
                return Err(OAuthError::request(format!(
                    "claims longer than {MAX_CLAIMS} bytes"
                )));
            }
            let v: Value = serde_json::from_str(c)
                .map_err(|e| OAuthError::request(format!("claims is not JSON: {e}")))?;
            let Value::Object(m) = v else {
                return Err(OAuthError::request("claims must be a JSON object"));
            };
            if let Some(k) = m.keys().find(|k| RESERVED.contains(&k.as_str())) {
                return Err(OAuthError::request(format!(
                    "claims may not set {k} (jwtd sets it)"
                )));
            }
            Some(Value::Object(m).to_string())
        }
    };
    Ok(Issue {
        sub,
        client_id: client_id.map(|c| text("client_id", c)).transpose()?,
        scope: scope(scope_v.unwrap_or(""))?,
        aud: aud.map(|a| text("aud", a)).transpose()?,
        claims,
    })
}

/// Parses a token form (`grant_type=refresh_token`). `basic_client` is the client id of an HTTP Basic
/// `Authorization` header, if any (its secret is not checked: jwtd binds refresh tokens to client ids, it
/// does not authenticate clients).
pub fn refresh(
    form: &[(String, String)],
    basic_client: Option<String>,
) -> Result<Refresh, OAuthError> {
    let [grant, token, client_id, scope_v, _secret] = fields(
        form,
        [
            "grant_type",
            "refresh_token",
            "client_id",
            "scope",
            "client_secret",
        ],
    )?;
    match grant {
        Some("refresh_token") => {}
        Some(other) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!(
                    "grant_type {:?} is not served here; only refresh_token",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
        None => return Err(OAuthError::request("grant_type is required")),
    }
    let token = token.ok_or_else(|| OAuthError::request("refresh_token is required"))?;
    let client_id = match (client_id, basic_client) {
        (Some(a), Some(b)) if a != b => {
            return Err(OAuthError::request(
                "client_id in the form and in the Authorization header differ",
            ));
        }
        (Some(a), _) => Some(text("client_id", a)?),
        (None, b) => b,
    };
    Ok(Refresh {
        refresh_token: token.to_string(),
        client_id,
        scope: scope_v.map(scope).transpose()?,
    })
}

/// Parses `REFRESH` arguments: `<refresh_token> [<client_id>]`, or a token form.
pub fn refresh_line(args: &str) -> Result<Refresh, OAuthError> {
    if args.contains('=') {
        let form: Vec<(String, String)> = form_urlencoded::parse(args.as_bytes())
            .into_owned()
            .collect();
        let mut with_grant = form.clone();
        if !form.iter().any(|(k, _)| k == "grant_type") {
            with_grant.push(("grant_type".into(), "refresh_token".into()));
        }
        return refresh(&with_grant, None);
    }
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let token = words
        .next()
        .ok_or_else(|| OAuthError::request("REFRESH <refresh_token> [<client_id>]"))?;
    let client_id = words.next().map(|c| text("client_id", c)).transpose()?;
    if words.next().is_some() {
        return Err(OAuthError::request(
            "REFRESH <refresh_token> [<client_id>]: too many arguments",
        ));
    }
    Ok(Refresh {
        refresh_token: token.to_string(),
        client_id,
        scope: None,
    })
}

/// Parses `ISSUE` arguments, written as a form (`sub=alice&client_id=app&scope=read%20write`), as
/// space-separated fields (`sub=alice client_id=app scope=read`, each percent-decoded), or as a JSON object
/// (`{"sub":"alice","scope":"read write","claims":{"role":"ops"}}`).
pub fn issue_line(args: &str) -> Result<Issue, OAuthError> {
    let args = args.trim();
    let form: Vec<(String, String)> = if args.starts_with('{') {
        let v: Value = serde_json::from_str(args)
            .map_err(|e| OAuthError::request(format!("ISSUE arguments are not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(OAuthError::request("ISSUE arguments must be a JSON object"));
        };
        let mut form = Vec::with_capacity(m.len());
        for (k, v) in m {
            let text = match (k.as_str(), v) {
                ("claims", v @ Value::Object(_)) => v.to_string(),
                (_, Value::String(s)) => s,
                (k, _) => {
                    return Err(OAuthError::request(format!(
                        "{k} must be a string{}",
                        if k == "claims" { " or an object" } else { "" }
                    )));
                }
            };
            form.push((k, text));
        }
        form
    } else if args.contains(' ') && !args.contains('&') {
        args.split(' ')
            .filter(|w| !w.is_empty())
            .flat_map(|w| form_urlencoded::parse(w.as_bytes()).into_owned())
            .collect()
    } else {
        form_urlencoded::parse(args.as_bytes())
            .into_owned()
            .collect()
    };
    issue(&form)
}

/// The RFC 6749 §5.1 answer.
pub fn answer(
    access_token: &str,
    expires_in: u64,
    refresh_token: &str,
    scope: &str,
    sid: &str,
) -> String {
    let mut v = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh_token,
        "sid": sid,
    });
    if !scope.is_empty() {
        v["scope"] = json!(scope);
    }
    v.to_string()
}

/// Whether every scope-token of `asked` is in `granted` (RFC 6749 §6: a refresh may narrow the scope).
pub fn narrower(asked: &str, granted: &str) -> bool {
    asked
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|s| granted.split(' ').any(|g| g == s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(s.as_bytes()).into_owned().collect()
    }

    #[test]
    fn issue_forms() {
        let i = issue(&form(
            "sub=alice&client_id=app&scope=read%20write&claims=%7B%22role%22%3A%22x%22%7D",
        ))
        .unwrap();
        assert_eq!(i.sub, "alice");
        assert_eq!(i.client_id.as_deref(), Some("app"));
        assert_eq!(i.scope, "read write");
        assert_eq!(i.claims.as_deref(), Some(r#"{"role":"x"}"#));
        for (bad, want) in [
            ("", "sub is required"),
            ("sub=", "sub must be"),
            ("sub=a&sub=b", "twice"),
            ("sub=a&subject=b", "unknown field"),
            ("sub=a&claims=%5B%5D", "JSON object"),
            ("sub=a&claims=%7B", "not JSON"),
            ("sub=a&claims=%7B%22exp%22%3A1%7D", "may not set exp"),
            ("sub=a&claims=%7B%22sid%22%3A1%7D", "may not set sid"),
            ("sub=a%0A", "control"),
        ] {
            let e = issue(&form(bad)).unwrap_err();
            assert_eq!(e.code, "invalid_request", "{bad}");
            assert!(e.description.contains(want), "{bad}: {}", e.description);
        }
        assert_eq!(
            issue(&form("sub=a&scope=a%22b")).unwrap_err().code,
            "invalid_scope"
        );
        assert_eq!(
            issue(&form("sub=a&scope=a%20%20b")).unwrap_err().code,
            "invalid_scope"
        );
    }

    #[test]
    fn token_forms_and_error_codes() {
        let r = refresh(
            &form("grant_type=refresh_token&refresh_token=t&client_id=app"),
            None,
        )
        .unwrap();
        assert_eq!(
            (r.refresh_token.as_str(), r.client_id.as_deref()),
            ("t", Some("app"))
        );
        let r = refresh(
            &form("grant_type=refresh_token&refresh_token=t"),
            Some("app".into()),
        )
        .unwrap();
        assert_eq!(r.client_id.as_deref(), Some("app"));
        let code = |s: &str| refresh(&form(s), None).unwrap_err().code;
        assert_eq!(code("refresh_token=t"), "invalid_request");
        assert_eq!(
            code("grant_type=password&refresh_token=t"),
            "unsupported_grant_type"
        );
        assert_eq!(code("grant_type=refresh_token"), "invalid_request");
        assert_eq!(
            code("grant_type=refresh_token&refresh_token=t&refresh_token=u"),
            "invalid_request"
        );
        assert_eq!(
            code("grant_type=refresh_token&refresh_token=t&foo=1"),
            "invalid_request"
        );
        assert_eq!(
            refresh(
                &form("grant_type=refresh_token&refresh_token=t&client_id=a"),
                Some("b".into())
            )
            .unwrap_err()
            .code,
            "invalid_request"
        );
        assert_eq!(OAuthError::new("invalid_client", "x").status(), 401);
        assert_eq!(OAuthError::new("invalid_grant", "x").status(), 400);
    }

    #[test]
    fn line_arguments() {
        let r = refresh_line("tok app").unwrap();
        assert_eq!(
            (r.refresh_token.as_str(), r.client_id.as_deref()),
            ("tok", Some("app"))
        );
        assert_eq!(refresh_line("tok").unwrap().client_id, None);
        assert!(refresh_line("").is_err());
        assert!(refresh_line("a b c").is_err());
        let r = refresh_line("refresh_token=tok&client_id=app").unwrap();
        assert_eq!(r.client_id.as_deref(), Some("app"));
        assert_eq!(issue_line("sub=alice&scope=read").unwrap().scope, "read");
        // The same request three ways.
        let want = issue_line("sub=alice&client_id=web&scope=read%20write").unwrap();
        assert_eq!(
            issue_line("sub=alice client_id=web scope=read%20write").unwrap(),
            want
        );
        assert_eq!(
            issue_line(r#"{"sub":"alice","client_id":"web","scope":"read write"}"#).unwrap(),
            want
        );
        let j = issue_line(r#"{"sub":"a","claims":{"role":"ops"}}"#).unwrap();
        assert_eq!(j.claims.as_deref(), Some(r#"{"role":"ops"}"#));
        assert!(issue_line(r#"{"sub":1}"#).is_err());
        assert!(issue_line("[]").is_err());
        assert!(
            issue_line("sub=alice scope=read write")
                .unwrap_err()
                .description
                .contains("unknown field")
        );
        assert!(narrower("read", "read write"));
        assert!(!narrower("admin", "read write"));
    }
}
