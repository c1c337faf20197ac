//! Self-declared gender, and the set of genders a user accepts (a premium filter).

/// `m`, `f` or `x`, as the user declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gender {
    M,
    F,
    X,
}

impl Gender {
    /// `m`, `f` or `x` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "m" | "M" => Some(Self::M),
            "f" | "F" => Some(Self::F),
            "x" | "X" => Some(Self::X),
            _ => None,
        }
    }

    /// `m`, `f` or `x`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::M => "m",
            Self::F => "f",
            Self::X => "x",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Self::M => 1,
            Self::F => 2,
            Self::X => 4,
        }
    }
}

/// The genders a user accepts partners of; empty accepts everyone, including users who
/// declared none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenderFilter(u8);

impl GenderFilter {
    /// A filter of these genders.
    pub fn of(genders: impl IntoIterator<Item = Gender>) -> Self {
        Self(genders.into_iter().fold(0, |bits, g| bits | g.bit()))
    }

    /// Whether a partner of `gender` is accepted.
    #[inline]
    pub fn accepts(self, gender: Option<Gender>) -> bool {
        self.0 == 0 || gender.is_some_and(|g| self.0 & g.bit() != 0)
    }

    /// Whether it accepts everyone.
    pub fn is_open(self) -> bool {
        self.0 == 0
    }

    /// The filter as a bit set (m = 1, f = 2, x = 4), for the inter-node wire.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// A filter from [`bits`](Self::bits); unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & 7)
    }
}
