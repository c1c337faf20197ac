//! Interest tags: normalised once at join, compared as sorted lists.
//!
//! Each tag also gets a [`Fingerprint`] at join, in the user's session: the waiting pool
//! (one shard's serial work) then finds a tag's queue by an integer, without hashing or
//! comparing text.

use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock};

/// One normalised interest tag.
pub type Tag = Arc<str>;

/// A tag's identity for the waiting pool: 128 bits from two SipHash functions under keys
/// drawn at random when the process starts (std's `RandomState`, whose two instances share
/// half their key; SipHash is built to behave as unrelated functions under such keys). Two
/// different tags would have to agree on both 64-bit halves, about a 2^-128 chance per pair,
/// and a client cannot aim for a collision without the keys, which it never sees.
/// Fingerprints never leave the process (other nodes receive the text and make their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u128);

static FINGERPRINT_KEYS: LazyLock<[std::collections::hash_map::RandomState; 2]> =
    LazyLock::new(Default::default);

impl Fingerprint {
    /// The fingerprint of a normalised tag.
    pub fn of(tag: &str) -> Self {
        let [a, b] = &*FINGERPRINT_KEYS;
        Self((a.hash_one(tag) as u128) << 64 | b.hash_one(tag) as u128)
    }
}

/// One interest of a user: the tag and its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interest {
    tag: TagText,
    pub print: Fingerprint,
}

impl Interest {
    /// The normalised tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

/// Bytes of tag text kept inline; longer tags (up to 40 characters of up to 4 bytes) have
/// an allocation of their own.
const INLINE_TAG: usize = 30;

/// A tag's text, inline when short (most tags are), so that a user's interests are one
/// allocation: the shard frees a partner's interests with one free, not one per tag, each a
/// cache miss in a pool of a million.
#[derive(Clone, PartialEq, Eq)]
enum TagText {
    Inline { len: u8, bytes: [u8; INLINE_TAG] },
    Heap(Box<str>),
}

impl TagText {
    fn new(tag: String) -> Self {
        if tag.len() > INLINE_TAG {
            return Self::Heap(tag.into_boxed_str());
        }
        let mut bytes = [0; INLINE_TAG];
        bytes[..tag.len()].copy_from_slice(tag.as_bytes());
        Self::Inline {
            len: tag.len() as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for TagText {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize])
                .expect("made from a whole str of at most INLINE_TAG bytes"),
            Self::Heap(text) => text,
        }
    }
}

impl std::fmt::Debug for TagText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// A user's interests: normalised, sorted, without duplicates; shared by every ticket of the
/// user without copying. No interests allocate nothing (most users have none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interests(Option<Arc<[Interest]>>);

/// Why a list of interests was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterestError {
    TooMany,
    TooLong,
}

/// How many items two sorted lists without duplicates share (one merge pass).
pub(super) fn count_shared<T: Ord>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

impl Interests {
    /// At most this many tags.
    pub const MAX_TAGS: usize = 20;
    /// At most this many characters per tag.
    pub const MAX_CHARS: usize = 40;

    /// Normalises tags: trimmed, lower-cased (Unicode-aware), empty ones and duplicates
    /// dropped. More than 20 distinct tags, or a tag over 40 characters, is refused.
    pub fn parse(raw: &[String]) -> Result<Self, InterestError> {
        let mut tags: Vec<String> = Vec::with_capacity(raw.len().min(Self::MAX_TAGS));
        for tag in raw {
            let tag = tag.trim().to_lowercase();
            if tag.is_empty() {
                continue;
            }
            if tag.chars().count() > Self::MAX_CHARS {
                return Err(InterestError::TooLong);
            }
            tags.push(tag);
        }
        tags.sort_unstable();
        tags.dedup();
        if tags.len() > Self::MAX_TAGS {
            return Err(InterestError::TooMany);
        }
        if tags.is_empty() {
            return Ok(Self(None));
        }
        Ok(Self(Some(
            tags.into_iter()
                .map(|tag| Interest {
                    print: Fingerprint::of(&tag),
                    tag: TagText::new(tag),
                })
                .collect(),
        )))
    }

    /// The interests, sorted by tag.
    pub fn list(&self) -> &[Interest] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// The tags, sorted.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &str> {
        self.list().iter().map(Interest::tag)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many tags both have.
    pub fn overlap_count(&self, other: &Interests) -> usize {
        self.shared(other).count()
    }

    /// The tags both have, sorted: the same list whichever side asks.
    pub fn overlap(&self, other: &Interests) -> Vec<String> {
        self.shared(other).map(|tag| tag.to_string()).collect()
    }

    /// The tags both have, in order (one merge pass over the two sorted lists).
    fn shared<'a>(&'a self, other: &'a Interests) -> impl Iterator<Item = &'a str> {
        let (a, b) = (self.list(), other.list());
        let (mut i, mut j) = (0, 0);
        std::iter::from_fn(move || {
            while i < a.len() && j < b.len() {
                match a[i].tag().cmp(b[j].tag()) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                        return Some(a[i - 1].tag());
                    }
                }
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(raw: &[&str]) -> Result<Interests, InterestError> {
        Interests::parse(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn tags_are_trimmed_lower_cased_and_deduplicated() {
        let i = tags(&[" Music ", "MUSIC", "Ünïcode", "", "  "]).unwrap();
        let names: Vec<&str> = i.tags().collect();
        assert_eq!(names, ["music", "ünïcode"]);
    }

    #[test]
    fn too_many_or_too_long_tags_are_refused() {
        let many: Vec<String> = (0..21).map(|n| format!("t{n}")).collect();
        assert_eq!(Interests::parse(&many), Err(InterestError::TooMany));
        let dupes: Vec<String> = (0..40).map(|n| format!("t{}", n % 20)).collect();
        assert!(Interests::parse(&dupes).is_ok(), "duplicates do not count");
        assert_eq!(tags(&[&"é".repeat(41)]), Err(InterestError::TooLong));
        assert!(tags(&[&"é".repeat(40)]).is_ok());
    }

    #[test]
    fn short_and_long_tags_keep_their_text() {
        let long = "é".repeat(40); // 80 bytes: past the inline space
        let edge = "x".repeat(INLINE_TAG); // exactly the inline space
        let past = "y".repeat(INLINE_TAG + 1);
        let i = tags(&["a", &edge, &past, &long]).unwrap();
        let names: Vec<&str> = i.tags().collect();
        assert_eq!(names, ["a", edge.as_str(), past.as_str(), long.as_str()]);
        let j = tags(&[&long, "a"]).unwrap();
        assert_eq!(i.overlap(&j), ["a".to_string(), long]);
    }

    #[test]
    fn the_overlap_is_the_same_from_both_sides() {
        let a = tags(&["chess", "music", "rust"]).unwrap();
        let b = tags(&["art", "music", "rust", "zen"]).unwrap();
        assert_eq!(a.overlap(&b), ["music", "rust"]);
        assert_eq!(b.overlap(&a), a.overlap(&b));
        assert_eq!(a.overlap_count(&b), 2);
    }
}
