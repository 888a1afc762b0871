//! A strict, single-pass JSON reader (RFC 8259) for headers and claims, and the helpers around it.
//!
//! Why not serde_json here: verification needs, in one pass, the registered claims, duplicate-member
//! detection at every depth (RFC 7515 §5.2 / RFC 8725: one meaning per token), a nesting cap checked while
//! descending, and whether the document is compact. serde_json keeps the last duplicate, allows 128 levels,
//! and cannot tell us about whitespace, so it cost a pre-scan and a second pass; this reader does it all in
//! one. It borrows strings without escapes, validates UTF-8 and rejects control characters in strings,
//! lone surrogates, leading zeros, bare `.5`/`1.`, and trailing garbage. `tests/json_reader.rs` compares
//! it with serde_json on generated documents, and the fuzz target `json_reader` does the same.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::error::Error;

/// The hard ceiling on nesting, whatever a caller configures: the reader recurses once per level, and the
/// paths that read verified claims with serde_json (claim headers, introspection, `REVOKE TOKEN`) stop at
/// its recursion limit — a document this reader accepts must be one serde_json accepts.
pub const MAX_DEPTH_CEILING: usize = 127;

/// The kind of the next JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    /// For error messages: "a string", "an array", …
    pub fn name(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// A cursor over one JSON document. The document is a `&str`, so UTF-8 is validated once, up front, in one
/// fast pass; string values are then slices of it (`"` is ASCII, so slicing at quotes is always on a char
/// boundary) with no per-string validation.
pub struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
    whitespace: bool,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the document in error messages ("header", "payload").
    pub fn new(text: &'a str, max_depth: usize, what: &'static str) -> Reader<'a> {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            max_depth: max_depth.min(MAX_DEPTH_CEILING),
            whitespace: false,
            what,
        }
    }

    /// A reader over bytes that must be UTF-8.
    pub fn from_bytes(
        bytes: &'a [u8],
        max_depth: usize,
        what: &'static str,
    ) -> Result<Reader<'a>, Error> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::BadJson(format!(
                "{what} is not valid JSON: invalid UTF-8 at byte {}",
                e.valid_up_to()
            ))
        })?;
        Ok(Reader::new(text, max_depth, what))
    }

    /// Whether insignificant whitespace was seen so far (the document is not compact).
    pub fn saw_whitespace(&self) -> bool {
        self.whitespace
    }

    fn syntax(&self, msg: &str) -> Error {
        Error::BadJson(format!(
            "{} is not valid JSON: {msg} at byte {}",
            self.what, self.pos
        ))
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
            self.whitespace = true;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8, msg: &str) -> Result<(), Error> {
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(msg))
        }
    }

    /// The kind of the next value (skipping whitespace), without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Result<Kind, Error> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(_) => Err(self.syntax("unexpected character")),
            None => Err(self.syntax("unexpected end")),
        }
    }

    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(Error::TooDeep(self.max_depth));
        }
        Ok(())
    }

    /// Consumes the `{` that opens the document; anything else is `bad_json` naming what it is instead
    /// ("payload is an array, not a JSON object of claims").
    pub fn begin_document_object(&mut self, expected: &str) -> Result<(), Error> {
        match self.peek()? {
            Kind::Object => self.begin_object(),
            other => Err(Error::BadJson(format!(
                "{} is {}, not {expected}",
                self.what,
                other.name()
            ))),
        }
    }

    /// Consumes `{`. Then call [`Reader::next_key`] until it returns `None`.
    pub fn begin_object(&mut self) -> Result<(), Error> {
        self.expect(b'{', "expected an object")?;
        self.enter()
    }

    /// The next member name of the current object (its value is next), or `None` after the closing `}`.
    /// `first` starts true for each object.
    #[inline(always)]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>, Error> {
        // The compact case stays inline and in registers: returning the large Result through memory on
        // every member showed up as store-forwarding stalls in profiles.
        match self.next_key_compact(first) {
            Some(name) => Ok(Some(Cow::Borrowed(name))),
            None => self.next_key_general(first),
        }
    }

    /// Fast path for compact JSON: `,"name":` (or `"name":` first) with no whitespace and no escapes.
    #[inline(always)]
    fn next_key_compact(&mut self, first: &mut bool) -> Option<&'a str> {
        let at = self.pos + usize::from(!*first);
        if !(*first || self.bytes.get(self.pos) == Some(&b',')) || self.bytes.get(at) != Some(&b'"')
        {
            return None;
        }
        let (end, stop) = scan_string_body(self.bytes, at + 1);
        if stop != Stop::Quote || self.bytes.get(end + 1) != Some(&b':') {
            return None;
        }
        let text: &'a str = self.text;
        let name = text.get(at + 1..end)?;
        *first = false;
        self.pos = end + 2;
        Some(name)
    }

    #[inline(never)]
    fn next_key_general(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>, Error> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(b'}') => {
                self.pos += 1;
                self.depth -= 1;
                return Ok(None);
            }
            Some(b',') if !*first => {
                self.pos += 1;
                self.skip_ws();
            }
            Some(b'"') if *first => {}
            _ => {
                return Err(self.syntax(if *first {
                    "expected a member name or }"
                } else {
                    "expected , or }"
                }));
            }
        }
        *first = false;
        let key = self.string()?;
        self.expect(b':', "expected :")?;
        Ok(Some(key))
    }

    /// Consumes `[`. Then call [`Reader::next_element`] until it returns false.
    pub fn begin_array(&mut self) -> Result<(), Error> {
        self.expect(b'[', "expected an array")?;
        self.enter()
    }

    /// True when another element follows (read it next); false after the closing `]`.
    #[inline]
    pub fn next_element(&mut self, first: &mut bool) -> Result<bool, Error> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(b']') => {
                self.pos += 1;
                self.depth -= 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => Err(self.syntax("expected , or ]")),
        }
    }

    /// Reads a string value; borrowed when it has no escapes.
    #[inline(always)]
    pub fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        match self.plain_string() {
            Some(s) => Ok(Cow::Borrowed(s)),
            None => self.string_general(),
        }
    }

    /// Fast path: the next byte opens a string without escapes.
    #[inline(always)]
    fn plain_string(&mut self) -> Option<&'a str> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let (end, stop) = scan_string_body(self.bytes, start);
        if stop != Stop::Quote {
            return None;
        }
        let text: &'a str = self.text;
        let s = text.get(start..end)?;
        self.pos = end + 1;
        Some(s)
    }

    #[inline(never)]
    fn string_general(&mut self) -> Result<Cow<'a, str>, Error> {
        self.expect(b'"', "expected a string")?;
        let start = self.pos;
        let (end, stop) = scan_string_body(self.bytes, start);
        match stop {
            Stop::Quote => {
                let text: &'a str = self.text;
                let s = text
                    .get(start..end)
                    .ok_or_else(|| self.syntax("bad string"))?;
                self.pos = end + 1;
                Ok(Cow::Borrowed(s))
            }
            Stop::Escape => self.escaped_string(start),
            Stop::Control => {
                self.pos = end;
                Err(self.syntax("control character in string"))
            }
            Stop::End => {
                self.pos = end;
                Err(self.syntax("unterminated string"))
            }
        }
    }

    fn escaped_string(&mut self, start: usize) -> Result<Cow<'a, str>, Error> {
        let mut out = String::with_capacity(32);
        let mut i = start;
        loop {
            let (end, stop) = scan_string_body(self.bytes, i);
            out.push_str(
                self.text
                    .get(i..end)
                    .ok_or_else(|| self.syntax("bad string"))?,
            );
            self.pos = end;
            match stop {
                Stop::Quote => break,
                Stop::Control => return Err(self.syntax("control character in string")),
                Stop::End => return Err(self.syntax("unterminated string")),
                Stop::Escape => {}
            }
            let esc = *self
                .bytes
                .get(end + 1)
                .ok_or_else(|| self.syntax("unterminated escape"))?;
            i = end + 2;
            let c = match esc {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = self.hex4(i)?;
                    i += 4;
                    match hi {
                        0xD800..=0xDBFF => {
                            if self.bytes.get(i..i + 2) != Some(b"\\u") {
                                return Err(self.syntax("lone surrogate in string"));
                            }
                            let lo = self.hex4(i + 2)?;
                            if !(0xDC00..=0xDFFF).contains(&lo) {
                                return Err(self.syntax("lone surrogate in string"));
                            }
                            i += 6;
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            char::from_u32(cp).ok_or_else(|| self.syntax("bad escape"))?
                        }
                        0xDC00..=0xDFFF => return Err(self.syntax("lone surrogate in string")),
                        cp => char::from_u32(cp).ok_or_else(|| self.syntax("bad escape"))?,
                    }
                }
                _ => return Err(self.syntax("bad escape")),
            };
            out.push(c);
        }
        self.pos += 1;
        Ok(Cow::Owned(out))
    }

    fn hex4(&self, at: usize) -> Result<u32, Error> {
        let digits = self
            .bytes
            .get(at..at + 4)
            .ok_or_else(|| self.syntax("short \\u escape"))?;
        digits.iter().try_fold(0u32, |acc, &d| {
            let v = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax("bad \\u escape"))?;
            Ok(acc * 16 + v)
        })
    }

    /// Reads a number (RFC 8259 §6 grammar) as f64. Integers of up to 15 digits are exact without parsing.
    #[inline]
    pub fn number(&mut self) -> Result<f64, Error> {
        let (start, integral) = self.number_token()?;
        let text = &self.bytes[start..self.pos];
        if integral && text.len() <= 15 {
            let (neg, digits) = match text.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, text),
            };
            let v = digits
                .iter()
                .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')) as f64;
            return Ok(if neg { -v } else { v });
        }
        let s = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.syntax("bad number"))?;
        // Rust's parser gives ±inf past f64's range, where serde_json (and JavaScript's JSON consumers)
        // refuse: a claims document every other reader refuses must not verify (one parse, one truth).
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.syntax("number out of range")),
            Err(_) => Err(self.syntax("bad number")),
        }
    }

    /// Validates a number token, returning its start and whether it is a plain integer.
    #[inline]
    fn number_token(&mut self) -> Result<(usize, bool), Error> {
        self.skip_ws();
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let s = *i;
            while let Some(b'0'..=b'9') = b.get(*i) {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => {
                self.pos = i;
                return Err(self.syntax("bad number"));
            }
        }
        let mut integral = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integral = false;
            if digits(&mut i) == 0 {
                self.pos = i;
                return Err(self.syntax("bad number"));
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            integral = false;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                self.pos = i;
                return Err(self.syntax("bad number"));
            }
        }
        self.pos = i;
        Ok((start, integral))
    }

    /// Reads `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool, Error> {
        self.skip_ws();
        if self.bytes[self.pos..].starts_with(b"true") {
            self.pos += 4;
            Ok(true)
        } else if self.bytes[self.pos..].starts_with(b"false") {
            self.pos += 5;
            Ok(false)
        } else {
            Err(self.syntax("expected true or false"))
        }
    }

    fn null(&mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.bytes[self.pos..].starts_with(b"null") {
            self.pos += 4;
            Ok(())
        } else {
            Err(self.syntax("expected null"))
        }
    }

    /// Reads and discards any value, still rejecting duplicate members and nesting past the cap.
    pub fn skip(&mut self) -> Result<(), Error> {
        match self.peek()? {
            Kind::Object => {
                self.begin_object()?;
                let mut members = Members::default();
                let mut first = true;
                while let Some(name) = self.next_key(&mut first)? {
                    members.insert(name)?;
                    self.skip()?;
                }
                Ok(())
            }
            Kind::Array => {
                self.begin_array()?;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip()?;
                }
                Ok(())
            }
            Kind::String => self.string().map(drop),
            // Range-checked like a number that is read: out of f64's range is refused everywhere.
            Kind::Number => self.number().map(drop),
            Kind::Bool => self.boolean().map(drop),
            Kind::Null => self.null(),
        }
    }

    /// Requires the end of the document (trailing whitespace allowed).
    pub fn finish(&mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.syntax("trailing characters"))
        }
    }
}

/// Where [`scan_string_body`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Quote,
    Escape,
    Control,
    End,
}

/// Scans a string body from `i` to the first `"`, `\\`, control character or the end, eight bytes at a
/// time (SWAR: string contents are most of a token's bytes). Returns the stop index and why it stopped.
#[inline]
fn scan_string_body(bytes: &[u8], mut i: usize) -> (usize, Stop) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let classify = |b: u8| match b {
        b'"' => Stop::Quote,
        b'\\' => Stop::Escape,
        _ => Stop::Control,
    };
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes equal to `"` or `\\` (has-zero of x XOR pattern) or below 0x20 (has-less-than). Borrows can
        // flag bytes above a true hit but never below one, so the lowest flag is exactly the first hit.
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let mask = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if mask == 0 {
            i += 8;
            continue;
        }
        i += (mask.trailing_zeros() / 8) as usize;
        return (i, classify(bytes[i]));
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return (i, classify(b));
        }
        i += 1;
    }
    (i, Stop::End)
}

/// Validates a whole document strictly (syntax, duplicates, depth) without keeping anything.
pub fn validate(bytes: &[u8], max_depth: usize, what: &'static str) -> Result<(), Error> {
    let mut r = Reader::from_bytes(bytes, max_depth, what)?;
    r.skip()?;
    r.finish()
}

/// Member names seen in one object; rejects a repeat. A 64-bit Bloom mask answers "new name" for almost
/// every member without comparing strings; the usual handful of names live inline (no allocation); escaped
/// names and large objects spill to the heap, hashed beyond a few dozen so a hostile object with thousands
/// of members stays linear.
pub struct Members<'de> {
    bloom: u64,
    inline: [&'de str; Members::INLINE],
    len: usize,
    spill: Vec<Cow<'de, str>>,
    large: Option<HashSet<Cow<'de, str>>>,
}

impl Default for Members<'_> {
    fn default() -> Self {
        Members {
            bloom: 0,
            inline: [""; Members::INLINE],
            len: 0,
            spill: Vec::new(),
            large: None,
        }
    }
}

/// A cheap 6-bit hash for the Bloom mask: the length and the first and last (up to) 8 bytes. Equal names
/// always hash equal; unequal ones sometimes do, and then a string comparison settles it.
fn name_hash(s: &str) -> u64 {
    let b = s.as_bytes();
    let n = b.len();
    let word = |at: usize| {
        u64::from_le_bytes(
            b.get(at..at + 8)
                .and_then(|w| w.try_into().ok())
                .unwrap_or([0; 8]),
        )
    };
    let (head, tail) = if n >= 8 {
        (word(0), word(n - 8))
    } else {
        (b.iter().fold(0u64, |h, &c| (h << 8) | u64::from(c)), 0)
    };
    // Multiply-shift: the top bits mix every input bit.
    (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58
}

impl<'de> Members<'de> {
    const INLINE: usize = 16;
    const LINEAR_MAX: usize = 32;

    /// Records `name`; `Err(DuplicateMember)` if it was already there.
    pub fn insert(&mut self, name: Cow<'de, str>) -> Result<(), Error> {
        let bit = bloom_bit(&name);
        if self.contains_with(bit, &name) {
            return Err(Error::DuplicateMember(name.into_owned()));
        }
        if let Some(set) = &mut self.large {
            set.insert(name);
            return Ok(());
        }
        self.bloom |= bit;
        match name {
            Cow::Borrowed(b) if self.len < Self::INLINE => {
                self.inline[self.len] = b;
                self.len += 1;
            }
            name => {
                self.spill.push(name);
                if self.spill.len() > Self::LINEAR_MAX {
                    let mut set: HashSet<Cow<'de, str>> = self.spill.drain(..).collect();
                    set.extend(self.inline[..self.len].iter().map(|&n| Cow::Borrowed(n)));
                    self.len = 0;
                    self.large = Some(set);
                }
            }
        }
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.contains_with(bloom_bit(name), name)
    }

    #[inline]
    fn contains_with(&self, bit: u64, name: &str) -> bool {
        if let Some(set) = &self.large {
            return set.contains(name);
        }
        self.bloom & bit != 0
            && (self.inline[..self.len].contains(&name) || self.spill.iter().any(|n| n == name))
    }
}

fn bloom_bit(name: &str) -> u64 {
    1 << (name_hash(name) % 64)
}

/// Removes whitespace outside strings. Only meaningful for a document the reader has accepted.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(doc: &str) -> Result<(), Error> {
        validate(doc.as_bytes(), 32, "doc")
    }

    #[test]
    fn duplicates_rejected_at_any_depth_even_when_escaped() {
        assert!(strict(r#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        assert_eq!(
            strict(r#"{"a":1,"a":2}"#).unwrap_err().code(),
            "duplicate_member"
        );
        assert_eq!(
            strict(r#"{"x":[{"d":1,"d":2}]}"#).unwrap_err().code(),
            "duplicate_member"
        );
        assert_eq!(
            strict(r#"{"ab":1,"a\u0062":2}"#).unwrap_err().code(),
            "duplicate_member"
        );
    }

    #[test]
    fn many_members_switch_to_hashing_and_still_catch_duplicates() {
        let mut doc = String::from("{");
        for i in 0..100 {
            doc.push_str(&format!("\"k{i}\":{i},"));
        }
        assert!(strict(&format!("{}\"z\":0}}", doc)).is_ok());
        assert_eq!(
            strict(&format!("{}\"k7\":0}}", doc)).unwrap_err().code(),
            "duplicate_member"
        );
    }

    #[test]
    fn depth_is_capped_as_the_parser_descends() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(strict(&deep).unwrap_err().code(), "too_deep");
        assert!(strict(&format!("{}{}", "[".repeat(32), "]".repeat(32))).is_ok());
        assert_eq!(
            strict(&format!("{}{}", "[".repeat(33), "]".repeat(33)))
                .unwrap_err()
                .code(),
            "too_deep"
        );
        assert!(strict(r#"{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#).is_ok());
        // A configured cap above the ceiling is clamped, so recursion stays bounded.
        let r = validate(
            format!("{}{}", "[".repeat(300), "]".repeat(300)).as_bytes(),
            1_000_000,
            "doc",
        );
        assert_eq!(r.unwrap_err().code(), "too_deep");
    }

    #[test]
    fn grammar() {
        for ok in [
            "{}",
            "[]",
            "0",
            "-0",
            "1.5e-3",
            "1E+2",
            "\"\"",
            "true",
            "false",
            "null",
            " [1 , 2 ] ",
            r#"{"a":[{},[],"",0]}"#,
            r#""\u00e9\ud83d\ude00\n\/""#,
            "\"é😀\"",
        ] {
            assert!(strict(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\tb\"",
            "\"a\nb\"",
            "[1 2]",
            "{} {}",
            "\"abc",
            "NaN",
            "Infinity",
            "'a'",
        ] {
            assert_eq!(strict(bad).unwrap_err().code(), "bad_json", "{bad:?}");
        }
        assert_eq!(
            validate(b"\"\xff\"", 32, "doc").unwrap_err().code(),
            "bad_json"
        );
    }

    #[test]
    fn strings_borrow_unless_escaped_and_numbers_parse() {
        let mut r = Reader::new(r#"["plain","es\"c",12345,-1.25e2,1700000000.5]"#, 32, "doc");
        r.begin_array().unwrap();
        let mut first = true;
        assert!(r.next_element(&mut first).unwrap());
        assert!(matches!(r.string().unwrap(), Cow::Borrowed("plain")));
        assert!(r.next_element(&mut first).unwrap());
        assert_eq!(r.string().unwrap(), Cow::<str>::Owned("es\"c".into()));
        assert!(r.next_element(&mut first).unwrap());
        assert_eq!(r.number().unwrap(), 12345.0);
        assert!(r.next_element(&mut first).unwrap());
        assert_eq!(r.number().unwrap(), -125.0);
        assert!(r.next_element(&mut first).unwrap());
        assert_eq!(r.number().unwrap(), 1_700_000_000.5);
        assert!(!r.next_element(&mut first).unwrap());
        r.finish().unwrap();
        assert!(!r.saw_whitespace());
        let mut r = Reader::new("{ \"a\":1}", 32, "doc");
        r.skip().unwrap();
        assert!(r.saw_whitespace());
    }

    #[test]
    fn compact_keeps_string_contents() {
        let doc = "{ \"a b\" :\r\n [1, \"c \\\" dé\"] }";
        assert_eq!(compact(doc), "{\"a b\":[1,\"c \\\" dé\"]}");
    }

    #[test]
    fn what_the_reader_accepts_serde_json_accepts_at_the_ceiling_and_number_range() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let deepest = nested(MAX_DEPTH_CEILING);
        assert!(validate(deepest.as_bytes(), usize::MAX, "payload").is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&deepest).is_ok());
        let deeper = nested(MAX_DEPTH_CEILING + 1);
        assert!(validate(deeper.as_bytes(), usize::MAX, "payload").is_err());
        assert!(
            serde_json::from_str::<serde_json::Value>(&deeper).is_err(),
            "the ceiling is exactly serde_json's limit"
        );
        for n in ["1e400", "-1e400", &format!("1{}", "0".repeat(400))] {
            let doc = format!(r#"{{"x":{n}}}"#);
            let e = validate(doc.as_bytes(), 32, "payload").unwrap_err();
            assert!(e.to_string().contains("out of range"), "{n}: {e}");
            assert!(serde_json::from_str::<serde_json::Value>(&doc).is_err());
        }
        for n in ["1e308", "1e-400", "123456789012345678901234567890"] {
            let doc = format!(r#"{{"x":{n}}}"#);
            assert!(validate(doc.as_bytes(), 32, "payload").is_ok(), "{n}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&doc).is_ok(),
                "{n}"
            );
        }
    }
}
