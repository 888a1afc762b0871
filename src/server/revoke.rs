//! The revocation commands (admins only), parsed from a line-protocol request or an HTTP form:
//!
//! ```text
//! REVOKE JTI <jti> <exp>              the token with this jti, until exp (Unix s; 0 = keep until removed)
//! REVOKE SUB <sub> <before> [<until>] every token of sub issued before <before>; the rule ends at <until>
//! REVOKE TOKEN <token>                a whole token: by its jti (until its exp) if it has one, else by digest
//! UNREVOKE JTI <jti> | SUB <sub> | TOKEN <token>
//! REVOCATIONS                         counts
//! REVOCATIONS LIST [<limit>]          the rules (default 100, at most 10,000)
//! ```
//!
//! A value with spaces or any other byte may be written as a JSON string: `REVOKE SUB "john doe" 1700000000`.

use crate::revocation::log::{MAX_VALUE, Op};
use crate::revocation::{Revocations, Rule, Target};

/// Why a revocation command line is not a command: the message names what is wrong or the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCommand(pub String);

impl From<String> for BadCommand {
    fn from(message: String) -> BadCommand {
        BadCommand(message)
    }
}

/// A parsed revocation command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Change the list (durably).
    Write(Op),
    Counts,
    List(usize),
}

/// Splits arguments: runs of non-spaces, or JSON strings.
fn words(mut s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(' ');
        if s.is_empty() {
            return Ok(out);
        }
        if s.starts_with('"') {
            let bytes = s.as_bytes();
            let mut i = 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return Err("unterminated JSON string".into());
            }
            let word: String =
                serde_json::from_str(&s[..=i]).map_err(|e| format!("bad JSON string: {e}"))?;
            out.push(word);
            s = &s[i + 1..];
            if !s.is_empty() && !s.starts_with(' ') {
                return Err("expected a space after a JSON string".into());
            }
        } else {
            let end = s.find(' ').unwrap_or(s.len());
            out.push(s[..end].to_string());
            s = &s[end..];
        }
    }
}

fn number(s: &str, what: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("{what} must be Unix seconds, got {:.40}", s))
}

fn value(s: String, what: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_VALUE {
        return Err(format!("{what} must be 1 to {MAX_VALUE} bytes"));
    }
    Ok(s)
}

/// The rule target for a whole token, from its unverified payload: its `jti` when it has one, else the
/// digest of its bytes; with the token's `exp` as the rule's end (0 without one).
pub fn token_target(token: &str) -> Result<(Target, u64), String> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (header.payload.signature)".into());
    };
    let bytes = crate::jws::b64::decode(payload.as_bytes())
        .map_err(|_| "the payload is not base64url".to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "the payload is not JSON".to_string())?;
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_f64)
        .filter(|e| *e > 0.0)
        .map_or(0, |e| e.ceil() as u64);
    // An empty jti identifies nothing (a jti rule cannot hold it): such a token is revoked by digest, as the
    // check identifies it (`Presented::jti`).
    Ok(
        match claims
            .get("jti")
            .and_then(serde_json::Value::as_str)
            .filter(|j| !j.is_empty())
        {
            Some(jti) => (Target::Jti(value(jti.to_string(), "jti")?), exp),
            None => (Target::token(token.as_bytes()), exp),
        },
    )
}

/// Why a `POST /revoke` form is not a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A missing, repeated, misplaced or malformed field: 400 naming it.
    Invalid(String),
    /// `token=` that is not a token jwtd could identify: RFC 7009 §2.2 answers 200 (nothing to revoke).
    NotAToken(String),
}

/// The operation a `POST /revoke` form asks for, built field by field (never through the line protocol's
/// text, where an empty field would shift the others):
///
/// - exactly one of `token`, `jti`, `sub`;
/// - `jti`: optional `exp` (Unix seconds, the token's exp; default 0: kept until removed);
/// - `sub`: required `before` (the cutoff), optional `until` (when the rule stops matching; default never);
/// - `unrevoke=1|true` (or `0|false`) lifts the rule; it takes the target field only;
/// - `token_type_hint` (RFC 7009) is accepted and ignored; any other field is refused.
pub fn from_form(fields: &[(String, String)]) -> Result<Op, FormError> {
    let invalid = |m: String| FormError::Invalid(m);
    const KNOWN: [&str; 8] = [
        "token",
        "jti",
        "sub",
        "exp",
        "before",
        "until",
        "unrevoke",
        "token_type_hint",
    ];
    for (name, _) in fields {
        if !KNOWN.contains(&name.as_str()) {
            return Err(invalid(format!(
                "unknown field {:?} (expected token, jti or sub, with exp, before, until or unrevoke)",
                truncate(name)
            )));
        }
        if fields.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(invalid(format!("field {name} is given more than once")));
        }
    }
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let unrevoke = match get("unrevoke") {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(v) => {
            return Err(invalid(format!(
                "unrevoke must be 1, true, 0 or false, got {:?}",
                truncate(v)
            )));
        }
    };
    let time = |k: &str| -> Result<Option<u64>, FormError> {
        get(k)
            .map(|v| number(v, k).map_err(FormError::Invalid))
            .transpose()
    };
    let only = |allowed: &[&str], what: &str| -> Result<(), FormError> {
        for k in ["exp", "before", "until"] {
            if get(k).is_some() && !allowed.contains(&k) {
                return Err(invalid(format!("field {k} does not apply to {what}")));
            }
        }
        Ok(())
    };
    let op = match (get("token"), get("jti"), get("sub")) {
        (Some(token), None, None) => {
            only(&[], if unrevoke { "unrevoke" } else { "token" })?;
            let (target, expires) = token_target(token).map_err(FormError::NotAToken)?;
            if unrevoke {
                Op::Unrevoke(target)
            } else {
                Op::Revoke(Rule {
                    target,
                    expires,
                    cutoff: 0,
                })
            }
        }
        (None, Some(jti), None) => {
            let target = Target::Jti(value(jti.to_string(), "jti").map_err(FormError::Invalid)?);
            if unrevoke {
                only(&[], "unrevoke")?;
                Op::Unrevoke(target)
            } else {
                only(&["exp"], "jti")?;
                Op::Revoke(Rule {
                    target,
                    expires: time("exp")?.unwrap_or(0),
                    cutoff: 0,
                })
            }
        }
        (None, None, Some(sub)) => {
            let target = Target::Sub(value(sub.to_string(), "sub").map_err(FormError::Invalid)?);
            if unrevoke {
                only(&[], "unrevoke")?;
                Op::Unrevoke(target)
            } else {
                only(&["before", "until"], "sub")?;
                let cutoff = time("before")?.ok_or_else(|| {
                    invalid(
                        "field before is required with sub: tokens of the subject issued before it are \
                         revoked (Unix seconds)"
                            .into(),
                    )
                })?;
                Op::Revoke(Rule {
                    target,
                    expires: time("until")?.unwrap_or(0),
                    cutoff,
                })
            }
        }
        _ => return Err(invalid("give exactly one of token, jti or sub".into())),
    };
    Ok(op)
}

/// A field name or value quoted in an error, cut short.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses the arguments of `verb` (REVOKE, UNREVOKE or REVOCATIONS).
pub fn parse(verb: &str, args: &str) -> Result<Command, BadCommand> {
    let w = words(args)?;
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match (verb, w.as_slice()) {
        ("REVOKE", ["JTI", jti, exp]) => Ok(Command::Write(Op::Revoke(Rule {
            target: Target::Jti(value(jti.to_string(), "jti")?),
            expires: number(exp, "exp")?,
            cutoff: 0,
        }))),
        ("REVOKE", ["SUB", sub, before, rest @ ..]) if rest.len() <= 1 => {
            Ok(Command::Write(Op::Revoke(Rule {
                target: Target::Sub(value(sub.to_string(), "sub")?),
                cutoff: number(before, "before")?,
                expires: rest.first().map_or(Ok(0), |u| number(u, "until"))?,
            })))
        }
        ("REVOKE", ["TOKEN", token]) => {
            let (target, expires) = token_target(token)?;
            Ok(Command::Write(Op::Revoke(Rule {
                target,
                expires,
                cutoff: 0,
            })))
        }
        ("UNREVOKE", ["JTI", jti]) => Ok(Command::Write(Op::Unrevoke(Target::Jti(value(
            jti.to_string(),
            "jti",
        )?)))),
        ("UNREVOKE", ["SUB", sub]) => Ok(Command::Write(Op::Unrevoke(Target::Sub(value(
            sub.to_string(),
            "sub",
        )?)))),
        ("UNREVOKE", ["TOKEN", token]) => {
            Ok(Command::Write(Op::Unrevoke(token_target(token)?.0)))
        }
        ("REVOCATIONS", []) => Ok(Command::Counts),
        ("REVOCATIONS", ["LIST"]) => Ok(Command::List(100)),
        ("REVOCATIONS", ["LIST", n]) => n
            .parse::<usize>()
            .map(|n| Command::List(n.min(10_000)))
            .map_err(|_| format!("limit must be a number, got {n:.20}").into()),
        ("REVOKE", _) => Err(
            "expected REVOKE JTI <jti> <exp> | REVOKE SUB <sub> <before> [<until>] | REVOKE TOKEN <token>"
                .to_string()
                .into(),
        ),
        ("UNREVOKE", _) => Err(
            "expected UNREVOKE JTI <jti> | UNREVOKE SUB <sub> | UNREVOKE TOKEN <token>"
                .to_string()
                .into(),
        ),
        _ => Err("expected REVOCATIONS or REVOCATIONS LIST [<limit>]"
            .to_string()
            .into()),
    }
}

/// The kind of rule an operation is about (for logs: never the value).
pub fn kind(op: &Op) -> &'static str {
    match op {
        Op::Revoke(r) => r.target.kind(),
        Op::Unrevoke(t) => t.kind(),
        Op::Session(_) => "session",
    }
}

/// The JSON answer to a durable write: what changed.
pub fn written(op: &Op, changed: bool) -> String {
    match op {
        Op::Revoke(r) => serde_json::json!({"revoked": r.target.kind(), "new": changed}),
        Op::Unrevoke(t) => serde_json::json!({"unrevoked": t.kind(), "found": changed}),
        Op::Session(_) => serde_json::json!({"session": true}),
    }
    .to_string()
}

/// The JSON answer to `REVOCATIONS`.
pub fn counts(r: &Revocations) -> String {
    let c = r.counts();
    serde_json::json!({"jti": c.jti, "sub": c.sub, "token": c.token}).to_string()
}

/// The JSON answer to `REVOCATIONS LIST`.
pub fn list(r: &Revocations, limit: usize) -> String {
    let mut rules = r.rules();
    rules.sort_by(|a, b| a.target.cmp(&b.target));
    let items: Vec<serde_json::Value> = rules
        .iter()
        .take(limit)
        .map(|rule| {
            let value = match &rule.target {
                Target::Jti(s) | Target::Sub(s) | Target::Sid(s) => s.clone(),
                Target::Token(d) => crate::crypto::hex(d),
            };
            let mut v = serde_json::json!({"kind": rule.target.kind(), "value": value, "expires": rule.expires});
            if matches!(rule.target, Target::Sub(_)) {
                v["before"] = rule.cutoff.into();
            }
            v
        })
        .collect();
    serde_json::json!({"total": rules.len(), "rules": items}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_plain_and_json_words() {
        assert_eq!(
            parse("REVOKE", "JTI abc 1700000000"),
            Ok(Command::Write(Op::Revoke(Rule {
                target: Target::Jti("abc".into()),
                expires: 1_700_000_000,
                cutoff: 0
            })))
        );
        assert_eq!(
            parse("REVOKE", r#"SUB "john doe" 100 200"#),
            Ok(Command::Write(Op::Revoke(Rule {
                target: Target::Sub("john doe".into()),
                expires: 200,
                cutoff: 100
            })))
        );
        assert_eq!(
            parse("UNREVOKE", r#"JTI "a\"b""#),
            Ok(Command::Write(Op::Unrevoke(Target::Jti("a\"b".into()))))
        );
        assert_eq!(parse("REVOCATIONS", ""), Ok(Command::Counts));
        assert_eq!(parse("REVOCATIONS", "LIST 5"), Ok(Command::List(5)));
        for (verb, bad) in [
            ("REVOKE", "JTI abc"),
            ("REVOKE", "JTI abc soon"),
            ("REVOKE", "SUB x"),
            ("REVOKE", "JTI \"unterminated 5"),
            ("REVOKE", "TOKEN not-a-token"),
            ("REVOKE", "JTI \"\" 5"),
            ("UNREVOKE", "SUB"),
            ("REVOCATIONS", "LIST many"),
        ] {
            assert!(parse(verb, bad).is_err(), "{verb} {bad}");
        }
    }

    #[test]
    fn a_whole_token_is_revoked_by_jti_when_it_has_one() {
        use crate::jws::b64;
        let token = |claims: &str| {
            format!(
                "{}.{}.c2ln",
                b64::encode(br#"{"alg":"HS256"}"#),
                b64::encode(claims.as_bytes())
            )
        };
        assert_eq!(
            token_target(&token(r#"{"jti":"j1","exp":1700000000.5}"#)),
            Ok((Target::Jti("j1".into()), 1_700_000_001))
        );
        let t = token(r#"{"sub":"a"}"#);
        assert_eq!(token_target(&t), Ok((Target::token(t.as_bytes()), 0)));
        let t = token(r#"{"jti":"","exp":5}"#);
        assert_eq!(
            token_target(&t),
            Ok((Target::token(t.as_bytes()), 5)),
            "an empty jti: by digest"
        );
    }

    #[test]
    fn forms_become_typed_operations_or_name_the_bad_field() {
        let f = |body: &str| -> Result<Op, FormError> {
            let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            from_form(&fields)
        };
        let sub = |cutoff, expires| {
            Ok(Op::Revoke(Rule {
                target: Target::Sub("alice".into()),
                expires,
                cutoff,
            }))
        };
        let jti = |expires| {
            Ok(Op::Revoke(Rule {
                target: Target::Jti("j".into()),
                expires,
                cutoff: 0,
            }))
        };
        assert_eq!(f("sub=alice&before=100"), sub(100, 0));
        assert_eq!(f("sub=alice&before=100&until=200"), sub(100, 200));
        assert_eq!(f("until=200&before=100&sub=alice"), sub(100, 200));
        assert_eq!(f("jti=j"), jti(0));
        assert_eq!(f("jti=j&exp=5"), jti(5));
        assert_eq!(
            f("sub=alice&unrevoke=1"),
            Ok(Op::Unrevoke(Target::Sub("alice".into())))
        );
        assert_eq!(
            f("jti=j&unrevoke=true"),
            Ok(Op::Unrevoke(Target::Jti("j".into())))
        );
        assert_eq!(f("jti=j&unrevoke=0"), jti(0));
        assert!(matches!(f("token=nope"), Err(FormError::NotAToken(_))));
        assert!(matches!(
            f("token=nope&token_type_hint=access_token"),
            Err(FormError::NotAToken(_))
        ));
        let invalid = |body: &str, names: &str| match f(body) {
            Err(FormError::Invalid(m)) => assert!(m.contains(names), "{body}: {m}"),
            other => panic!("{body}: {other:?}"),
        };
        invalid("sub=alice", "before");
        invalid("sub=alice&until=200", "before");
        invalid("sub=alice&before=", "before");
        invalid("sub=alice&before=soon", "before");
        invalid("sub=alice&before=1&until=x", "until");
        invalid("sub=alice&before=1&exp=2", "exp");
        invalid("sub=&before=1", "sub");
        invalid("jti=j&exp=soon", "exp");
        invalid("jti=j&before=1", "before");
        invalid("jti=&exp=1", "jti");
        invalid("jti=j&unrevoke=yes", "unrevoke");
        invalid("jti=j&unrevoke=1&exp=5", "exp");
        invalid("sub=a&unrevoke=1&before=5", "before");
        invalid("token=x&exp=5", "exp");
        invalid("", "exactly one");
        invalid("before=1", "exactly one");
        invalid("jti=a&sub=b&before=1", "exactly one");
        invalid("token=x&jti=a", "exactly one");
        invalid("sub=a&sub=b&before=1", "more than once");
        invalid("sub=a&before=1&before=2", "more than once");
        invalid("jti=a&color=red", "unknown field");
    }
}
