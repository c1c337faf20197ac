//! The bucket: the hard partition of the pool. Users in different buckets never meet: text
//! and video chat apart, and each language apart.

use std::fmt;

/// Text or video chat; a hard partition: the two never meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Mode {
    #[default]
    Text,
    Video,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Video => "video",
        }
    }
}

/// A BCP 47 primary language subtag (2 to 8 ASCII letters, lower-cased), packed in 8 bytes
/// so that bucket keys are `Copy` and hash as one word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lang([u8; 8]);

impl Lang {
    /// English, the default when neither the client nor `Accept-Language` names one.
    pub const EN: Lang = Lang(*b"en\0\0\0\0\0\0");

    /// Checks and normalises a subtag; `None` unless 2 to 8 ASCII letters.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if !(2..=8).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let mut packed = [0u8; 8];
        for (slot, b) in packed.iter_mut().zip(text.bytes()) {
            *slot = b.to_ascii_lowercase();
        }
        Some(Self(packed))
    }

    /// The primary subtag of the first language in an `Accept-Language` header
    /// (`de-AT,de;q=0.9,en;q=0.8` gives `de`).
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let first = header.split(',').next()?;
        let tag = first.split(';').next()?.trim();
        Self::parse(tag.split(['-', '_']).next()?)
    }

    /// The subtag as text.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(8);
        std::str::from_utf8(&self.0[..len]).expect("ascii")
    }
}

impl Default for Lang {
    fn default() -> Self {
        Self::EN
    }
}

impl fmt::Debug for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lang({})", self.as_str())
    }
}

/// A hard partition: users in different buckets are never paired. Within one, the pool keeps
/// a random queue and a queue per interest tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub mode: Mode,
    pub lang: Lang,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_normalised_subtags() {
        assert_eq!(Lang::parse(" DE ").unwrap().as_str(), "de");
        assert_eq!(Lang::parse("fil").unwrap().as_str(), "fil");
        assert!(Lang::parse("e").is_none());
        assert!(Lang::parse("english!").is_none());
        assert!(Lang::parse("abcdefghi").is_none());
        assert_eq!(
            Lang::from_accept_language("de-AT,de;q=0.9,en;q=0.8").unwrap(),
            Lang::parse("de").unwrap()
        );
        assert!(Lang::from_accept_language("*").is_none());
    }
}
