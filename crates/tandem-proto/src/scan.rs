//! A JSON scanner that validates text and finds where values end without building anything:
//! one pass, no allocation, the same few instructions a byte whatever the text's shape, so
//! that a `signal` nested 32 deep costs what a flat one of the same size does. It accepts
//! exactly what serde_json accepts when it skips a value (escapes need only be well formed;
//! a lone surrogate is the receiver's business, as it is in `JSON.parse`).

/// Why text is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Not JSON.
    Syntax,
    /// Arrays and objects nested deeper than allowed.
    TooDeep,
}

/// Containers a scan can track (one bit each).
const MAX_TRACKED_DEPTH: usize = 64;

/// The end of the JSON value that starts at `at` (after any whitespace), and the deepest
/// nesting of arrays and objects in it; more than `max_depth` (at most 64) is
/// [`ScanError::TooDeep`].
pub fn value_end(text: &[u8], at: usize, max_depth: usize) -> Result<(usize, usize), ScanError> {
    let max_depth = max_depth.min(MAX_TRACKED_DEPTH);
    // One bit per open container, innermost lowest: 1 for an object, 0 for an array.
    let mut objects: u64 = 0;
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = at;
    loop {
        // A value starts here.
        i = skip_ws(text, i);
        match text.get(i) {
            Some(&open @ (b'{' | b'[')) => {
                depth += 1;
                if depth > max_depth {
                    return Err(ScanError::TooDeep);
                }
                deepest = deepest.max(depth);
                objects = objects << 1 | u64::from(open == b'{');
                i = skip_ws(text, i + 1);
                let close = if open == b'{' { b'}' } else { b']' };
                if text.get(i) == Some(&close) {
                    i += 1;
                    depth -= 1;
                    objects >>= 1;
                } else {
                    if open == b'{' {
                        i = key(text, i)?;
                    }
                    continue;
                }
            }
            Some(b'"') => i = string_end(text, i)?,
            Some(b't') => i = literal(text, i, b"true")?,
            Some(b'f') => i = literal(text, i, b"false")?,
            Some(b'n') => i = literal(text, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = number_end(text, i)?,
            _ => return Err(ScanError::Syntax),
        }
        // A value ended: close what it ends, or go on to the next member.
        loop {
            if depth == 0 {
                return Ok((i, deepest));
            }
            i = skip_ws(text, i);
            let in_object = objects & 1 == 1;
            match (text.get(i), in_object) {
                (Some(b','), false) => {
                    i += 1;
                    break;
                }
                (Some(b','), true) => {
                    i = key(text, skip_ws(text, i + 1))?;
                    break;
                }
                (Some(b']'), false) | (Some(b'}'), true) => {
                    i += 1;
                    depth -= 1;
                    objects >>= 1;
                }
                _ => return Err(ScanError::Syntax),
            }
        }
    }
}

/// Past an object member's key and its colon.
fn key(text: &[u8], at: usize) -> Result<usize, ScanError> {
    if text.get(at) != Some(&b'"') {
        return Err(ScanError::Syntax);
    }
    let i = skip_ws(text, string_end(text, at)?);
    match text.get(i) {
        Some(b':') => Ok(i + 1),
        _ => Err(ScanError::Syntax),
    }
}

pub fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = text.get(i) {
        i += 1;
    }
    i
}

/// Past the string that starts (with its quote) at `at`.
pub fn string_end(text: &[u8], at: usize) -> Result<usize, ScanError> {
    let mut i = at + 1;
    loop {
        match text.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match text.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = text.get(i + 2..i + 6).ok_or(ScanError::Syntax)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(ScanError::Syntax);
                    }
                    i += 6;
                }
                _ => return Err(ScanError::Syntax),
            },
            Some(&c) if c < 0x20 => return Err(ScanError::Syntax),
            Some(_) => i += 1,
            None => return Err(ScanError::Syntax),
        }
    }
}

fn literal(text: &[u8], at: usize, word: &[u8]) -> Result<usize, ScanError> {
    match text.get(at..at + word.len()) {
        Some(found) if found == word => Ok(at + word.len()),
        _ => Err(ScanError::Syntax),
    }
}

/// Past the number at `at`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(text: &[u8], at: usize) -> Result<usize, ScanError> {
    let digits = |mut i: usize| {
        let start = i;
        while let Some(b'0'..=b'9') = text.get(i) {
            i += 1;
        }
        (i > start).then_some(i).ok_or(ScanError::Syntax)
    };
    let mut i = at + usize::from(text.get(at) == Some(&b'-'));
    i = match text.get(i) {
        Some(b'0') => {
            if let Some(b'0'..=b'9') = text.get(i + 1) {
                return Err(ScanError::Syntax);
            }
            i + 1
        }
        _ => digits(i)?,
    };
    if text.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if let Some(b'e' | b'E') = text.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = text.get(i) {
            i += 1;
        }
        i = digits(i)?;
    }
    Ok(i)
}

/// What a decoder needs of a message's top-level object before choosing how to read it: the
/// raw text of its `type`, `chat` and `data` values (each as written, quotes included).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head<'a> {
    pub kind: Option<&'a str>,
    pub chat: Option<&'a str>,
    pub data: Option<&'a str>,
    /// The deepest nesting inside `data`.
    pub data_depth: usize,
}

/// Scans a whole message: a JSON object (and nothing after it but whitespace) whose values
/// nest at most `max_depth` deep. `None` when it is not that (or names a field twice): the
/// full decoder then says what is wrong.
pub fn head(text: &str, max_depth: usize) -> Option<Head<'_>> {
    let bytes = text.as_bytes();
    let mut head = Head::default();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return (skip_ws(bytes, i + 1) == bytes.len()).then_some(head);
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, i).ok()?;
        let raw = &text[i + 1..key_end - 1];
        // A key spelled with escapes is the key it spells.
        let name: std::borrow::Cow<str> = if raw.contains('\\') {
            serde_json::from_str(&text[i..key_end]).ok()?
        } else {
            raw.into()
        };
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(bytes, i + 1);
        let (end, depth) = value_end(bytes, start, max_depth).ok()?;
        let value = &text[start..end];
        let slot = match name.as_ref() {
            "type" => Some(&mut head.kind),
            "chat" => Some(&mut head.chat),
            "data" => {
                head.data_depth = depth;
                Some(&mut head.data)
            }
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.replace(value).is_some() {
                return None;
            }
        }
        i = skip_ws(bytes, end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return (skip_ws(bytes, i + 1) == bytes.len()).then_some(head),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> Result<usize, ScanError> {
        let (end, depth) = value_end(text.as_bytes(), 0, 64)?;
        if skip_ws(text.as_bytes(), end) == text.len() {
            Ok(depth)
        } else {
            Err(ScanError::Syntax)
        }
    }

    #[test]
    fn valid_json_is_accepted_with_its_depth() {
        for (text, depth) in [
            ("0", 0),
            ("-0.5e+10", 0),
            ("12E3", 0),
            (" true ", 0),
            ("null", 0),
            (r#""a\"b\\c\u00e9\/""#, 0),
            ("[]", 1),
            ("{}", 1),
            (r#"{"a": [1, {"b": []}], "c": "}]"}"#, 4),
            ("[[[[]]], [], {\"x\": [[]]}]", 4),
            ("[\n1,\t2\r]", 1),
        ] {
            assert_eq!(whole(text), Ok(depth), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "True",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "[1 2]",
            "\"abc",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"\u{1}\"",
            "[",
            "]",
            "{",
            "[1}",
            "{\"a\":1]",
            "1 2",
            "{}}",
            "[]]",
        ] {
            assert_eq!(whole(text), Err(ScanError::Syntax), "{text:?}");
        }
    }

    proptest::proptest! {
        /// On text made of JSON's own pieces, the scanner agrees with serde_json about what is
        /// a JSON value.
        #[test]
        fn it_accepts_exactly_what_serde_json_accepts(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "{", "}", "[", "]", ",", ":", " ", "\"", "\"a\"", "\"\\n\"", "\"\\u00e9\"",
                "\\", "0", "-1", "1.5", "2e3", "01", "1.", "true", "nul", "null", "x", "\n",
                "\"k\":", "\"\u{1}\"",
            ]), 0..24)
        ) {
            let text: String = pieces.concat();
            let serde = serde_json::from_str::<&serde_json::value::RawValue>(&text).is_ok();
            proptest::prop_assert_eq!(whole(&text).is_ok(), serde, "{:?}", text);
        }
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(value_end(nested(32).as_bytes(), 0, 32), Ok((64, 32)));
        assert_eq!(
            value_end(nested(33).as_bytes(), 0, 32),
            Err(ScanError::TooDeep)
        );
        assert_eq!(
            value_end(nested(100_000).as_bytes(), 0, 64),
            Err(ScanError::TooDeep)
        );
    }

    #[test]
    fn the_head_finds_type_chat_and_data_as_written() {
        let text = r#" { "data" : {"sdp": [1, [2]]}, "x": [{}], "type":"signal","chat":"01" } "#;
        assert_eq!(
            head(text, 64),
            Some(Head {
                kind: Some(r#""signal""#),
                chat: Some(r#""01""#),
                data: Some(r#"{"sdp": [1, [2]]}"#),
                data_depth: 3,
            })
        );
        assert_eq!(head("{}", 64), Some(Head::default()));
        let escaped = head(r#"{"t\u0079pe":"signal","\u0063hat":"01"}"#, 64).unwrap();
        assert_eq!(
            (escaped.kind, escaped.chat),
            (Some(r#""signal""#), Some(r#""01""#))
        );
        for refused in [
            r#"{"type":"a","type":"b"}"#,
            r#"{"type":"a"} x"#,
            r#"["type"]"#,
            r#"{"type":"a",}"#,
        ] {
            assert_eq!(head(refused, 64), None, "{refused}");
        }
    }
}
