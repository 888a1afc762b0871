//! The session endpoints' inputs and records (docs/SESSIONS.md): `/issue` and `/token` forms and the
//! `ISSUE`/`REFRESH` line arguments (anyone who can reach the socket or `--http-listen` sends them), and the
//! family and rotation records replay reads back. Parsing never panics; what a form parser accepts is within
//! its bounds; what a record decoder accepts encodes back to the same bytes and can be replayed.
#![no_main]

use jwtd::revocation::Revocations;
use jwtd::sessions::Lifetimes;
use jwtd::sessions::book::Families;
use jwtd::sessions::form;
use jwtd::sessions::record::{Family, MAX_CLAIMS, MAX_FIELD, Rotation};
use jwtd::sessions::token::SessionKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let fields: Vec<(String, String)> =
                form_urlencoded::parse(rest).into_owned().collect();
            if let Ok(i) = form::issue(&fields) {
                assert!(!i.sub.is_empty() && i.sub.len() <= MAX_FIELD);
                assert!(i.claims.as_ref().is_none_or(|c| c.len() <= MAX_CLAIMS + 2));
                // Accepted claims are a JSON object.
                if let Some(c) = &i.claims {
                    assert!(serde_json::from_str::<serde_json::Value>(c).unwrap().is_object());
                }
            }
            let basic = rest.first().map(|_| "client".to_string());
            if let Ok(r) = form::refresh(&fields, basic) {
                assert!(r.scope.as_ref().is_none_or(|s| s.len() <= MAX_FIELD));
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = form::refresh_line(text);
                let _ = form::issue_line(text);
            }
        }
        2 => {
            if let Ok(f) = Family::decode(rest) {
                assert_eq!(f.encode(), rest, "what is accepted re-encodes to the same bytes");
                let mut fams = Families::default();
                fams.put(f.clone());
                let set = Revocations::new();
                let key = SessionKey::from_bytes(&[1; 32]);
                let token = "a".repeat(43);
                let _ = fams.decide(
                    &key,
                    &token,
                    &f.current,
                    None,
                    None,
                    &set,
                    &Lifetimes::default(),
                    f.last_used,
                );
                fams.drop_ended(&set, &Lifetimes::default(), u64::MAX);
                assert!(fams.is_empty(), "everything has ended at the end of time");
            }
        }
        _ => {
            if let Ok(r) = Rotation::decode(rest) {
                assert_eq!(r.encode(), rest, "what is accepted re-encodes to the same bytes");
                let mut fams = Families::default();
                fams.rotate(&r);
                assert!(fams.is_empty(), "a rotation of an unknown family is ignored");
            }
        }
    }
});
