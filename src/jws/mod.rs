//! The compact JWS layer (RFC 7515 §7.1): size caps, splitting into borrowed parts, strict base64url and
//! header parsing. Knows nothing of keys or claims.

pub mod b64;
pub mod header;

pub use header::Header;

use crate::error::Error;

/// Size and shape caps, all checked before the bytes they guard are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Whole token, in bytes (default 16 KiB).
    pub max_token_len: usize,
    /// Header segment, in base64url characters (default 4 KiB).
    pub max_header_len: usize,
    /// JSON nesting depth of header and payload (default 32).
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token_len: 16 * 1024,
            max_header_len: 4 * 1024,
            max_json_depth: 32,
        }
    }
}

/// A compact JWS split into its three base64url segments, borrowed from the token.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub header: &'a [u8],
    pub payload: &'a [u8],
    pub signature: &'a [u8],
    /// `header '.' payload`: the bytes the signature covers, exactly as received.
    pub signing_input: &'a [u8],
}

/// Splits `token` into its parts, checking size caps first and telling JWE and JSON serialization apart
/// from garbage so that users get a precise reason.
pub fn split<'a>(token: &'a [u8], limits: &Limits) -> Result<Parts<'a>, Error> {
    if token.len() > limits.max_token_len {
        return Err(Error::TooLarge(format!(
            "token is {} bytes, over the {}-byte limit",
            token.len(),
            limits.max_token_len
        )));
    }
    if token.is_empty() {
        return Err(Error::Malformed("empty token".into()));
    }
    if token.trim_ascii_start().first() == Some(&b'{') {
        return Err(Error::UnsupportedSerialization);
    }
    let mut dots = [0usize; 2];
    let mut count = 0usize;
    // Counting stops at 5 dots: enough to tell 3 segments from JWE's 5 and from garbage.
    for i in memchr::memchr_iter(b'.', token).take(5) {
        if count < 2 {
            dots[count] = i;
        }
        count += 1;
    }
    match count {
        2 => {}
        4 => return Err(Error::UnsupportedJwe),
        5 => return Err(Error::Malformed("more than 5 segments".into())),
        n => {
            return Err(Error::Malformed(format!(
                "{} segments, a compact JWS has exactly 3",
                n + 1
            )));
        }
    }
    let (d1, d2) = (dots[0], dots[1]);
    let header = &token[..d1];
    if header.is_empty() {
        return Err(Error::Malformed("empty header segment".into()));
    }
    if header.len() > limits.max_header_len {
        return Err(Error::TooLarge(format!(
            "header segment is {} bytes, over the {}-byte limit",
            header.len(),
            limits.max_header_len
        )));
    }
    Ok(Parts {
        header,
        payload: &token[d1 + 1..d2],
        signature: &token[d2 + 1..],
        signing_input: &token[..d2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_segments() {
        let p = split(b"aGVhZA.cGF5.c2ln", &Limits::default()).unwrap();
        assert_eq!(p.header, b"aGVhZA");
        assert_eq!(p.payload, b"cGF5");
        assert_eq!(p.signature, b"c2ln");
        assert_eq!(p.signing_input, b"aGVhZA.cGF5");
    }

    #[test]
    fn precise_errors_for_wrong_shapes() {
        let l = Limits::default();
        assert_eq!(
            split(b"a.b.c.d.e", &l).unwrap_err().code(),
            "unsupported_jwe"
        );
        assert_eq!(
            split(b" {\"payload\":\"x\"}", &l).unwrap_err().code(),
            "unsupported_serialization"
        );
        assert_eq!(split(b"a.b", &l).unwrap_err().code(), "malformed");
        assert_eq!(split(b"a.b.c.d", &l).unwrap_err().code(), "malformed");
        assert_eq!(split(b".b.c", &l).unwrap_err().code(), "malformed");
        assert_eq!(split(b"", &l).unwrap_err().code(), "malformed");
        let huge = vec![b'a'; 1 << 20];
        assert_eq!(split(&huge, &l).unwrap_err().code(), "too_large");
    }
}
