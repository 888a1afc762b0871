//! Strict base64url (RFC 7515 §2, RFC 4648 §5 without padding): one token has exactly one spelling.
//!
//! Rejected: padding `=`, whitespace, `+` and `/`, a length of 1 mod 4, and non-zero unused trailing bits
//! (the non-canonical spellings that let an attacker mint many byte strings for one signature).

/// A segment is not canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBase64;

/// Decoded length of a canonical `len`-character segment, or `None` if no canonical segment has that length.
pub fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        0 => Some(len / 4 * 3),
        r => Some(len / 4 * 3 + r - 1),
    }
}

/// Decodes `src` into uninitialised space, returning the decoded bytes (no zero-filling first).
pub fn decode_uninit<'d>(
    src: &[u8],
    dst: &'d mut [std::mem::MaybeUninit<u8>],
) -> Result<&'d mut [u8], InvalidBase64> {
    let n = decoded_len(src.len()).ok_or(InvalidBase64)?;
    let dst = dst.get_mut(..n).ok_or(InvalidBase64)?;
    base64_simd::URL_SAFE_NO_PAD
        .decode(src, base64_simd::Out::from_uninit_slice(dst))
        .map_err(|_| InvalidBase64)
}

/// Decodes `src` onto the end of `dst` (no zero-filling first).
pub fn decode_append(src: &[u8], dst: &mut Vec<u8>) -> Result<(), InvalidBase64> {
    decoded_len(src.len()).ok_or(InvalidBase64)?;
    base64_simd::URL_SAFE_NO_PAD
        .decode_append(src, dst)
        .map_err(|_| InvalidBase64)
}

/// Decodes `src` into a new vector.
pub fn decode(src: &[u8]) -> Result<Vec<u8>, InvalidBase64> {
    let mut out = Vec::with_capacity(decoded_len(src.len()).ok_or(InvalidBase64)?);
    decode_append(src, &mut out)?;
    Ok(out)
}

/// Encodes without padding.
pub fn encode(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_only() {
        assert_eq!(decode(b"Zm9v").unwrap(), b"foo");
        assert_eq!(decode(b"Zm8").unwrap(), b"fo");
        assert_eq!(decode(b"").unwrap(), b"");
        // Non-zero trailing bits: "Zm9" decodes to "fo" only with its last 2 bits zero ("Zm8" is canonical).
        assert!(decode(b"Zm9").is_err());
        for bad in [
            &b"Zm8="[..],
            b"Zm 8",
            b"Zm+8",
            b"Zm/8",
            b"Z",
            b"Zm9v\n",
            b"Zm9v?",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn round_trip_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..data.len() {
            let e = encode(&data[..n]);
            assert_eq!(decoded_len(e.len()), Some(n));
            assert_eq!(decode(e.as_bytes()).unwrap(), &data[..n]);
        }
    }
}
