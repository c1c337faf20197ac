//! Interest tags: normalised once at join, compared as sorted lists.

use std::sync::Arc;

/// One normalised interest tag.
pub type Tag = Arc<str>;

/// A user's interests: normalised, sorted, without duplicates; shared by every ticket of the
/// user without copying. No interests allocate nothing (most users have none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interests(Option<Arc<[Tag]>>);

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
        Ok(Self(Some(tags.into_iter().map(Tag::from).collect())))
    }

    /// The tags, sorted.
    pub fn tags(&self) -> &[Tag] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many tags both have.
    pub fn overlap_count(&self, other: &Interests) -> usize {
        count_shared(self.tags(), other.tags())
    }

    /// The tags both have, sorted: the same list whichever side asks.
    pub fn overlap(&self, other: &Interests) -> Vec<String> {
        let (mut i, mut j) = (0, 0);
        let (a, b) = (self.tags(), other.tags());
        let mut common = Vec::new();
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common.push(a[i].to_string());
                    i += 1;
                    j += 1;
                }
            }
        }
        common
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
        let names: Vec<&str> = i.tags().iter().map(|t| t.as_ref()).collect();
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
    fn the_overlap_is_the_same_from_both_sides() {
        let a = tags(&["chess", "music", "rust"]).unwrap();
        let b = tags(&["art", "music", "rust", "zen"]).unwrap();
        assert_eq!(a.overlap(&b), ["music", "rust"]);
        assert_eq!(b.overlap(&a), a.overlap(&b));
        assert_eq!(a.overlap_count(&b), 2);
    }
}
