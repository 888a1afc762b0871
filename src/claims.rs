//! The registered-claims policy (RFC 7519 §4.1, RFC 8725, RFC 9068): time rules with leeway, issuer,
//! audience, subject, required claims and explicit typing. Time is an argument; nothing here reads a clock.

use std::borrow::Cow;

use crate::error::Error;
use crate::json::{Kind, Members, Reader};

/// What a verifier demands of a token's claims. `Policy::default()` is the safe starting point:
/// `exp` required, 60 s leeway, `typ` absent, `JWT` or `at+jwt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// Reject tokens without `exp` (default true: a token without expiry is valid forever).
    pub require_exp: bool,
    /// Reject tokens whose `iat` is older than this many seconds (requires `iat`).
    pub max_age: Option<u64>,
    /// Accepted `iss` values; `None` accepts any issuer (and none).
    pub issuers: Option<Vec<String>>,
    /// Accepted audiences; the token's `aud` must name at least one. With `None`, a token that carries `aud`
    /// is rejected (RFC 7519 §4.1.3: a recipient must identify itself with a value in `aud`).
    pub audiences: Option<Vec<String>>,
    /// Audiences accepted only on behalf of routes that name them (`[[route]] audiences`): a token whose
    /// `aud` names one of these and none of `audiences` verifies, marked
    /// [`Registered::route_audience_only`]; whoever serves it must then refuse it unless the request's route
    /// names that audience (the daemon answers `wrong_audience`).
    pub route_audiences: Vec<String>,
    /// Reject tokens without `sub`.
    pub require_sub: bool,
    /// Further claims that must be present (any value).
    pub required_claims: Vec<String>,
    /// Accepted `typ` header values (RFC 8725 §3.11), compared as RFC 7515 §4.1.9 says: case-insensitively,
    /// with an `application/` prefix ignored.
    pub types: Vec<String>,
    /// Accept tokens with no `typ` header (default true: many identity providers send none).
    pub allow_missing_typ: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            leeway: 60,
            require_exp: true,
            max_age: None,
            issuers: None,
            audiences: None,
            route_audiences: Vec::new(),
            require_sub: false,
            required_claims: Vec::new(),
            types: vec!["JWT".into(), "at+jwt".into()],
            allow_missing_typ: true,
        }
    }
}

/// RFC 7515 §4.1.9: `typ` compares case-insensitively, with an `application/` prefix optional.
fn media_type_eq(a: &str, b: &str) -> bool {
    fn bare(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &s[12..],
            _ => s,
        }
    }
    bare(a).eq_ignore_ascii_case(bare(b))
}

/// A string claim: a span of the verified payload when it had no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Span { start: u32, len: u32 },
    Owned(Box<str>),
}

impl Text {
    #[inline]
    pub(crate) fn new(s: Cow<'_, str>, base: &[u8]) -> Text {
        let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match s {
            Cow::Borrowed(b) if start <= base.len() && start + b.len() <= base.len() => {
                Text::Span {
                    start: start as u32,
                    len: b.len() as u32,
                }
            }
            other => Text::Owned(other.into_owned().into_boxed_str()),
        }
    }

    pub fn resolve<'a>(&'a self, base: &'a str) -> &'a str {
        match self {
            Text::Span { start, len } => base
                .get(*start as usize..(*start + *len) as usize)
                .unwrap_or(""),
            Text::Owned(s) => s,
        }
    }
}

/// The registered claims of a verified token, with strings kept as spans of its payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Registered {
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    pub iss: Option<Text>,
    pub sub: Option<Text>,
    pub jti: Option<Text>,
    /// The session family (docs/SESSIONS.md), when `sid` is a string (anything else is not ours: ignored).
    pub sid: Option<Text>,
    /// The token's `aud` is accepted only by [`Policy::route_audiences`], not by the policy's own audiences.
    pub route_audience_only: bool,
}

impl Policy {
    /// Checks a token's `typ` header against the accepted types.
    pub fn check_typ(&self, typ: Option<&str>) -> Result<(), Error> {
        match typ {
            None if self.allow_missing_typ => Ok(()),
            None => Err(Error::WrongType("(missing)".into())),
            Some(t) if self.types.iter().any(|a| media_type_eq(a, t)) => Ok(()),
            Some(t) => Err(Error::WrongType(t.to_string())),
        }
    }

    /// Parses the payload `bytes` as a claims object (nesting capped at `max_depth`) and applies every rule
    /// at `now` (Unix seconds). `base` is the buffer string spans are measured from. Also says whether the
    /// payload had insignificant whitespace (so that the caller can compact it).
    pub fn check(
        &self,
        text: &str,
        base: &str,
        now: u64,
        max_depth: usize,
    ) -> Result<Checked, Error> {
        let mut parsed = self.parse(text, base, max_depth)?;
        self.check_parsed(&parsed, now)?;
        // Past the check, an `aud` the policy's own audiences refuse was accepted by a route audience.
        parsed.registered.route_audience_only = parsed.audience_ok == Some(false);
        Ok(Checked {
            registered: parsed.registered,
            had_whitespace: parsed.had_whitespace,
        })
    }

    /// The time rules alone (exp, nbf, iat, max age) at `now`.
    pub fn check_time(&self, r: &Registered, now: u64) -> Result<(), Error> {
        let now = now as f64;
        let leeway = self.leeway as f64;
        match r.exp {
            Some(exp) if now >= exp + leeway => return Err(Error::Expired),
            None if self.require_exp => return Err(Error::MissingClaim("exp".into())),
            _ => {}
        }
        if let Some(nbf) = r.nbf
            && now + leeway < nbf
        {
            return Err(Error::NotYetValid);
        }
        if let Some(iat) = r.iat
            && iat > now + leeway
        {
            return Err(Error::IssuedInFuture);
        }
        if let Some(max_age) = self.max_age {
            match r.iat {
                None => return Err(Error::MissingClaim("iat".into())),
                Some(iat) if now - iat > max_age as f64 + leeway => return Err(Error::TooOld),
                _ => {}
            }
        }
        Ok(())
    }

    /// The range `[start, until)` of Unix times at which [`Policy::check_time`] accepts these claims, given
    /// that it accepts them at `now` (else an empty range at `now`): what a cache of verdicts may serve. It is
    /// found with `check_time` itself, so it agrees with it second for second. `until` is `u64::MAX` when
    /// nothing ends the verdict before 2^53 s.
    pub fn window(&self, r: &Registered, now: u64) -> (u64, u64) {
        const LIMIT: u64 = 1 << 53;
        let ok = |n: u64| self.check_time(r, n).is_ok();
        if now >= LIMIT || !ok(now) {
            return (now, now);
        }
        let leeway = self.leeway as f64;
        let clamp = |x: f64| x.clamp(0.0, LIMIT as f64) as u64;
        // Each rule is monotone in time, so the accepted times form one interval around `now`. Guess its ends
        // from the rules' arithmetic, then settle them with `check_time` itself (float rounding can put a
        // guess one second off); a guess that does not settle quickly falls back to bisection.
        let mut until = LIMIT;
        if let Some(exp) = r.exp {
            until = until.min(clamp((exp + leeway).ceil()));
        }
        if let (Some(max_age), Some(iat)) = (self.max_age, r.iat) {
            until = until.min(clamp((iat + max_age as f64 + leeway).floor()).saturating_add(1));
        }
        let until = settle(until.clamp(now + 1, LIMIT), now + 1, LIMIT, |n| !ok(n));
        let until = if until == LIMIT && ok(LIMIT) {
            u64::MAX
        } else {
            until
        };
        let mut start = 0;
        for t in [r.nbf, r.iat].into_iter().flatten() {
            start = start.max(clamp((t - leeway).ceil()));
        }
        let start = settle(start.min(now), 0, now, ok);
        (start, until)
    }

    fn check_parsed(&self, p: &Parsed<'_>, now: u64) -> Result<(), Error> {
        let r = &p.registered;
        self.check_time(r, now)?;
        if self.issuers.is_some() {
            match p.issuer_ok {
                None => return Err(Error::MissingClaim("iss".into())),
                Some(false) => return Err(Error::WrongIssuer),
                Some(true) => {}
            }
        }
        match (&self.audiences, p.audience_ok) {
            (Some(_), None) => return Err(Error::MissingClaim("aud".into())),
            (_, Some(false)) if !p.route_audience_ok => return Err(Error::WrongAudience),
            _ => {}
        }
        if self.require_sub && r.sub.is_none() {
            return Err(Error::MissingClaim("sub".into()));
        }
        if let Some(missing) = p.missing {
            return Err(Error::MissingClaim(missing.to_string()));
        }
        Ok(())
    }
}

/// The registered claims jwtd reads itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Exp,
    Nbf,
    Iat,
    Iss,
    Sub,
    Jti,
    Aud,
    Sid,
}

impl Claim {
    fn name(self) -> &'static str {
        match self {
            Claim::Exp => "exp",
            Claim::Nbf => "nbf",
            Claim::Iat => "iat",
            Claim::Iss => "iss",
            Claim::Sub => "sub",
            Claim::Jti => "jti",
            Claim::Aud => "aud",
            Claim::Sid => "sid",
        }
    }
}

impl Registered {
    fn classify(name: &str) -> Option<Claim> {
        Some(match name {
            "exp" => Claim::Exp,
            "nbf" => Claim::Nbf,
            "iat" => Claim::Iat,
            "iss" => Claim::Iss,
            "sub" => Claim::Sub,
            "jti" => Claim::Jti,
            "aud" => Claim::Aud,
            "sid" => Claim::Sid,
            _ => return None,
        })
    }
}

/// The smallest `n` in `[lo, hi]` with `pred(n)`, for a predicate that is false then true on that range and
/// true at `hi`; starts from `guess` and steps, bisecting if the guess is more than a few steps off.
fn settle(guess: u64, lo: u64, hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    let mut n = guess.clamp(lo, hi);
    for _ in 0..4 {
        match (pred(n), n > lo && pred(n - 1)) {
            (true, false) => return n,
            (true, true) => n -= 1,
            (false, _) if n < hi => n += 1,
            (false, _) => return hi,
        }
    }
    // Bisection: pred(a) is false (or a = lo - 1), pred(b) is true.
    let (mut a, mut b) = (lo, hi);
    if pred(a) {
        return a;
    }
    while b - a > 1 {
        let mid = a + (b - a) / 2;
        if pred(mid) { b = mid } else { a = mid }
    }
    b
}

/// The outcome of [`Policy::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub registered: Registered,
    pub had_whitespace: bool,
}

struct Parsed<'p> {
    registered: Registered,
    /// `None`: no `iss`; `Some(ok)`: whether it is accepted (always true without an issuer policy).
    issuer_ok: Option<bool>,
    /// `None`: no `aud`; `Some(ok)`: whether one value is accepted by the policy's audiences.
    audience_ok: Option<bool>,
    /// One value is accepted by the route audiences.
    route_audience_ok: bool,
    /// The first required claim that is absent.
    missing: Option<&'p str>,
    had_whitespace: bool,
}

fn bad_type(name: &str, want: &str, got: Kind) -> Error {
    Error::BadClaim(format!("claim {name} must be {want}, not {}", got.name()))
}

impl Policy {
    fn parse<'p>(&'p self, text: &str, base: &str, max_depth: usize) -> Result<Parsed<'p>, Error> {
        let mut r = Reader::new(text, max_depth, "payload");
        r.begin_document_object("a JSON object of claims")?;
        let mut members = Members::default();
        let mut p = Parsed {
            registered: Registered::default(),
            issuer_ok: None,
            audience_ok: None,
            route_audience_ok: false,
            missing: None,
            had_whitespace: false,
        };
        let mut first = true;
        while let Some(name) = r.next_key(&mut first)? {
            // Classify and record the name before reading the value, so it does not live across the value
            // parsers (keeping it alive cost store-forwarding stalls in profiles).
            let claim = Registered::classify(&name);
            members.insert(name)?;
            match claim {
                Some(c @ (Claim::Exp | Claim::Nbf | Claim::Iat)) => {
                    let t = match r.peek()? {
                        Kind::Number => r.number()?,
                        other => return Err(bad_type(c.name(), "a NumericDate (number)", other)),
                    };
                    if !t.is_finite() {
                        return Err(Error::BadClaim(format!(
                            "claim {} is out of range",
                            c.name()
                        )));
                    }
                    let field = match c {
                        Claim::Exp => &mut p.registered.exp,
                        Claim::Nbf => &mut p.registered.nbf,
                        _ => &mut p.registered.iat,
                    };
                    *field = Some(t);
                }
                Some(c @ (Claim::Iss | Claim::Sub | Claim::Jti)) => {
                    let s = match r.peek()? {
                        Kind::String => r.string()?,
                        other => return Err(bad_type(c.name(), "a string", other)),
                    };
                    if c == Claim::Iss {
                        p.issuer_ok = Some(
                            self.issuers
                                .as_ref()
                                .is_none_or(|set| set.iter().any(|i| *i == s)),
                        );
                    }
                    let text = Some(Text::new(s, base.as_bytes()));
                    match c {
                        Claim::Iss => p.registered.iss = text,
                        Claim::Sub => p.registered.sub = text,
                        _ => p.registered.jti = text,
                    }
                }
                Some(Claim::Sid) => match r.peek()? {
                    Kind::String => {
                        let s = r.string()?;
                        p.registered.sid = Some(Text::new(s, base.as_bytes()));
                    }
                    _ => r.skip()?,
                },
                Some(Claim::Aud) => {
                    let (own, route) = self.read_aud(&mut r)?;
                    p.audience_ok = Some(own);
                    p.route_audience_ok = route;
                }
                None => r.skip()?,
            }
        }
        r.finish()?;
        p.had_whitespace = r.saw_whitespace();
        p.missing = self
            .required_claims
            .iter()
            .find(|c| !members.contains(c))
            .map(String::as_str);
        Ok(p)
    }

    /// `aud`: a string or an array of strings (RFC 7519 §4.1.3). Yields whether one value is accepted by
    /// the policy's audiences, and whether one is by the route audiences.
    fn read_aud(&self, r: &mut Reader<'_>) -> Result<(bool, bool), Error> {
        const WANT: &str = "a string or an array of strings";
        let accepts = |v: &str| {
            (
                self.audiences
                    .as_ref()
                    .is_some_and(|set| set.iter().any(|a| a == v)),
                self.route_audiences.iter().any(|a| a == v),
            )
        };
        match r.peek()? {
            Kind::String => Ok(accepts(&r.string()?)),
            Kind::Array => {
                r.begin_array()?;
                let (mut own, mut route) = (false, false);
                let mut first = true;
                while r.next_element(&mut first)? {
                    match r.peek()? {
                        Kind::String => {
                            let (o, rt) = accepts(&r.string()?);
                            own |= o;
                            route |= rt;
                        }
                        other => return Err(bad_type("aud", WANT, other)),
                    }
                }
                Ok((own, route))
            }
            other => Err(bad_type("aud", WANT, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn check(policy: &Policy, claims: &str) -> Result<Registered, Error> {
        policy.check(claims, claims, NOW, 32).map(|c| c.registered)
    }

    fn code(policy: &Policy, claims: &str) -> &'static str {
        check(policy, claims).unwrap_err().code()
    }

    #[test]
    fn window_agrees_with_check_time_second_for_second() {
        // A seeded generator (the same cases every run), from proptest's deterministic RNG.
        use proptest::prelude::Rng as _;
        let mut rng = proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        );
        let below = |rng: &mut proptest::test_runner::TestRng, n: u64| {
            ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
        };
        let mut nonempty = 0;
        for case in 0..20_000 {
            let base = 1_700_000_000.0;
            let frac = |rng: &mut proptest::test_runner::TestRng| {
                if below(rng, 2) == 0 {
                    below(rng, 3) as f64 * 0.25
                } else {
                    0.0
                }
            };
            let opt = |rng: &mut proptest::test_runner::TestRng, spread: u64| {
                (below(rng, 4) != 0)
                    .then(|| base + below(rng, spread) as f64 - (spread / 2) as f64 + frac(rng))
            };
            let r = Registered {
                exp: opt(&mut rng, 400),
                nbf: opt(&mut rng, 400),
                iat: opt(&mut rng, 400),
                ..Registered::default()
            };
            let p = Policy {
                leeway: below(&mut rng, 4) * 30,
                max_age: (below(&mut rng, 2) == 0).then(|| below(&mut rng, 300)),
                require_exp: below(&mut rng, 2) == 0,
                ..Policy::default()
            };
            let now = 1_700_000_000 - 250 + below(&mut rng, 500);
            let (start, until) = p.window(&r, now);
            let ok = |n: u64| p.check_time(&r, n).is_ok();
            if !ok(now) {
                assert_eq!((start, until), (now, now), "case {case}");
                continue;
            }
            nonempty += 1;
            assert!(
                start <= now && now < until,
                "case {case}: {start} {now} {until}"
            );
            let probes = [
                start.saturating_sub(2),
                start.saturating_sub(1),
                start,
                start + 1,
                until - 1,
            ]
            .into_iter()
            .chain([
                until,
                until.saturating_add(1),
                now + below(&mut rng, 1000),
                now.saturating_sub(below(&mut rng, 1000)),
            ]);
            // (u64::MAX stands for "never ends"; times past 2^53 s are not probed.)
            for n in probes.filter(|&n| n < 1 << 53) {
                assert_eq!(
                    ok(n),
                    start <= n && n < until,
                    "case {case}: n={n} window=[{start}, {until}) {r:?} {p:?}"
                );
            }
        }
        assert!(nonempty > 2_000, "{nonempty}");
        // No time claims and exp not required: forever.
        let p = Policy {
            require_exp: false,
            ..Policy::default()
        };
        assert_eq!(p.window(&Registered::default(), 5), (0, u64::MAX));
    }

    #[test]
    fn time_rules_with_leeway() {
        let p = Policy::default();
        assert!(check(&p, &format!(r#"{{"exp":{}}}"#, NOW + 1)).is_ok());
        assert!(
            check(&p, &format!(r#"{{"exp":{}}}"#, NOW - 59)).is_ok(),
            "inside leeway"
        );
        assert_eq!(code(&p, &format!(r#"{{"exp":{}}}"#, NOW - 60)), "expired");
        assert!(
            check(&p, &format!(r#"{{"exp":{}.5}}"#, NOW)).is_ok(),
            "fractional"
        );
        assert_eq!(code(&p, r#"{"sub":"x"}"#), "missing_claim");
        assert_eq!(code(&p, r#"{"exp":"1700000000"}"#), "bad_claim");
        assert_eq!(code(&p, r#"{"exp":null}"#), "bad_claim");
        assert_eq!(code(&p, r#"{"exp":true}"#), "bad_claim");
        let exp = NOW + 1000;
        assert_eq!(
            code(&p, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 61)),
            "not_yet_valid"
        );
        assert!(check(&p, &format!(r#"{{"exp":{exp},"nbf":{}}}"#, NOW + 60)).is_ok());
        assert_eq!(
            code(&p, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW + 61)),
            "issued_in_future"
        );
        let aged = Policy {
            max_age: Some(300),
            ..Policy::default()
        };
        assert_eq!(
            code(&aged, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 361)),
            "too_old"
        );
        assert!(check(&aged, &format!(r#"{{"exp":{exp},"iat":{}}}"#, NOW - 100)).is_ok());
        assert_eq!(code(&aged, &format!(r#"{{"exp":{exp}}}"#)), "missing_claim");
    }

    #[test]
    fn issuer_audience_subject_required() {
        let exp = NOW + 100;
        let p = Policy {
            issuers: Some(vec!["https://idp".into()]),
            audiences: Some(vec!["api".into(), "web".into()]),
            require_sub: true,
            required_claims: vec!["scope".into()],
            ..Policy::default()
        };
        let ok = format!(
            r#"{{"exp":{exp},"iss":"https://idp","aud":["x","web"],"sub":"u","scope":""}}"#
        );
        assert!(check(&p, &ok).is_ok());
        let single =
            format!(r#"{{"exp":{exp},"iss":"https://idp","aud":"api","sub":"u","scope":1}}"#);
        assert!(check(&p, &single).is_ok());
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"evil","aud":"api","sub":"u"}}"#)
            ),
            "wrong_issuer"
        );
        assert_eq!(
            code(&p, &format!(r#"{{"exp":{exp},"aud":"api","sub":"u"}}"#)),
            "missing_claim"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":["x"],"sub":"u"}}"#)
            ),
            "wrong_audience"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":[1],"sub":"u"}}"#)
            ),
            "bad_claim"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":"api","scope":1}}"#)
            ),
            "missing_claim"
        );
        assert_eq!(
            code(
                &p,
                &format!(r#"{{"exp":{exp},"iss":"https://idp","aud":"api","sub":"u"}}"#)
            ),
            "missing_claim"
        );
        // No audience configured: a token addressed to someone is not for us.
        assert_eq!(
            code(
                &Policy::default(),
                &format!(r#"{{"exp":{exp},"aud":"api"}}"#)
            ),
            "wrong_audience"
        );
    }

    #[test]
    fn duplicates_and_shape() {
        let p = Policy::default();
        assert_eq!(code(&p, r#"{"exp":1,"exp":2}"#), "duplicate_member");
        assert_eq!(
            code(&p, r#"{"exp":99999999999,"a":{"b":1,"b":2}}"#),
            "duplicate_member"
        );
        assert_eq!(code(&p, r#"[1]"#), "bad_json");
        assert_eq!(code(&p, r#"{"exp":1"#), "bad_json");
    }

    #[test]
    fn typ_rules() {
        let p = Policy::default();
        assert!(p.check_typ(None).is_ok());
        assert!(p.check_typ(Some("JWT")).is_ok());
        assert!(p.check_typ(Some("jwt")).is_ok());
        assert!(p.check_typ(Some("application/at+jwt")).is_ok());
        assert_eq!(
            p.check_typ(Some("secevent+jwt")).unwrap_err().code(),
            "wrong_type"
        );
        let strict = Policy {
            types: vec!["at+jwt".into()],
            allow_missing_typ: false,
            ..Policy::default()
        };
        assert_eq!(strict.check_typ(None).unwrap_err().code(), "wrong_type");
        assert_eq!(
            strict.check_typ(Some("JWT")).unwrap_err().code(),
            "wrong_type"
        );
    }

    #[test]
    fn spans_resolve_and_escaped_strings_are_owned() {
        let doc = r#"{"exp":99999999999,"iss":"plain","sub":"a\"b"}"#;
        let r = check(&Policy::default(), doc).unwrap();
        assert_eq!(r.iss.as_ref().unwrap().resolve(doc), "plain");
        assert!(matches!(r.iss, Some(Text::Span { .. })));
        assert_eq!(r.sub.as_ref().unwrap().resolve(doc), "a\"b");
        assert!(matches!(r.sub, Some(Text::Owned(_))));
    }
}
