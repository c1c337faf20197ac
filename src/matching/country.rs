//! Countries: the server-decided country of a user, and the filter of countries a user
//! accepts partners from.

use std::fmt;

/// An ISO 3166-1 alpha-2 code, upper-case; `ZZ` when unknown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Unknown.
    pub const UNKNOWN: Country = Country(*b"ZZ");

    /// Two ASCII letters, any case; `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.trim().as_bytes();
        match bytes {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ascii")
    }
}

impl Default for Country {
    fn default() -> Self {
        Self::UNKNOWN
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The countries a user accepts partners from; empty accepts everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountryFilter(Box<[Country]>);

impl CountryFilter {
    /// The most countries one filter may name.
    pub const MAX: usize = 50;

    /// A filter from codes (sorted, duplicates dropped). The caller checks the length.
    pub fn new(mut codes: Vec<Country>) -> Self {
        codes.sort_unstable();
        codes.dedup();
        Self(codes.into_boxed_slice())
    }

    /// Whether a partner from `country` is accepted.
    pub fn accepts(&self, country: Country) -> bool {
        self.0.is_empty() || self.0.binary_search(&country).is_ok()
    }

    /// Whether the filter accepts everyone.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// The countries, sorted.
    pub fn codes(&self) -> &[Country] {
        &self.0
    }
}
