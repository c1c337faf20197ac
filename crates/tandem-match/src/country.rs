//! Countries: the server-decided country of a user, and the filter of countries a user
//! accepts partners from.

use std::fmt;
use std::sync::Arc;

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

    /// This country's bit in a [`CountrySet`].
    fn bit(self) -> u64 {
        let code = u64::from(u16::from_le_bytes(self.0));
        1 << (code.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
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

/// A set of countries in one word, one bit each, where several countries share a bit (a
/// one-word Bloom filter): a clear bit proves a country is not in the set; a set bit
/// proves nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountrySet(u64);

impl CountrySet {
    /// The set that may hold every country.
    pub const ALL: CountrySet = CountrySet(u64::MAX);

    /// Whether `country` may be in the set (`false` proves it is not).
    pub fn may_hold(self, country: Country) -> bool {
        self.0 & country.bit() != 0
    }

    /// Whether every country `other` may hold, this set may hold too.
    pub fn holds_all(self, other: CountrySet) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for CountrySet {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for CountrySet {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl FromIterator<Country> for CountrySet {
    fn from_iter<I: IntoIterator<Item = Country>>(countries: I) -> Self {
        Self(countries.into_iter().fold(0, |bits, c| bits | c.bit()))
    }
}

/// The countries a user accepts partners from; empty accepts everyone. Shared by every
/// ticket of the user without copying, as its interests are: the shard then usually drops a
/// paired user's filter by a count, and the session that made it frees it on its own thread
/// (the shard frees it when the session has closed meanwhile, or for another node's ticket,
/// which arrives parsed anew).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountryFilter(Option<Arc<[Country]>>);

impl CountryFilter {
    /// The most countries one filter may name.
    pub const MAX: usize = 50;

    /// A filter from codes (sorted, duplicates dropped). The caller checks the length.
    pub fn new(mut codes: Vec<Country>) -> Self {
        codes.sort_unstable();
        codes.dedup();
        Self((!codes.is_empty()).then(|| codes.into()))
    }

    /// Whether a partner from `country` is accepted.
    #[inline]
    pub fn accepts(&self, country: Country) -> bool {
        self.0
            .as_deref()
            .is_none_or(|codes| codes.binary_search(&country).is_ok())
    }

    /// The countries accepted, as a set: every country when the filter is open.
    pub fn accepted(&self) -> CountrySet {
        if self.is_open() {
            CountrySet::ALL
        } else {
            self.codes().iter().copied().collect()
        }
    }

    /// Whether the filter accepts everyone.
    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    /// The countries, sorted.
    pub fn codes(&self) -> &[Country] {
        self.0.as_deref().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    #[test]
    fn a_country_set_may_hold_its_countries_and_proves_others_absent() {
        let codes = ["DE", "AT", "FR", "JP", "BR"];
        let set: CountrySet = codes.iter().map(|c| country(c)).collect();
        assert!(codes.iter().all(|c| set.may_hold(country(c))));
        // Two letters from A to Z: 676 codes in 64 bits, so most are proved absent.
        let absent = (b'A'..=b'Z')
            .flat_map(|a| (b'A'..=b'Z').map(move |b| [a, b]))
            .map(Country)
            .filter(|c| !set.may_hold(*c))
            .count();
        assert!(absent > 676 / 2, "{absent} of 676 codes proved absent");
        assert!(CountrySet::ALL.holds_all(set));
        assert!(!CountrySet::default().may_hold(country("DE")));
        assert!(set.holds_all(CountrySet::default()));
    }

    #[test]
    fn an_open_filter_accepts_every_country_and_a_narrow_one_its_own() {
        assert_eq!(CountryFilter::default().accepted(), CountrySet::ALL);
        let filter = CountryFilter::new(vec![country("AT"), country("DE")]);
        let accepted = filter.accepted();
        assert!(accepted.may_hold(country("AT")) && accepted.may_hold(country("DE")));
        assert!(accepted.holds_all([country("DE")].into_iter().collect()));
    }
}
