//! A user's checked preferences, made from a `join` message.

use std::fmt;

use crate::protocol::{ErrorCode, Join};

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

/// Why a `join` was refused; each maps to one client error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefError {
    #[error("join needs adult: true, the confirmation that you are 18 or older")]
    AdultRequired,
    #[error("mode must be \"text\" or \"video\"")]
    BadMode,
    #[error("lang must be a language subtag of 2 to 8 letters, such as \"en\"")]
    BadLang,
    #[error("{0} is not offered by this server yet")]
    Unsupported(&'static str),
}

impl PrefError {
    /// The client error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AdultRequired => ErrorCode::AdultRequired,
            Self::BadMode | Self::BadLang => ErrorCode::InvalidValue,
            Self::Unsupported(_) => ErrorCode::Unsupported,
        }
    }
}

/// Checked preferences; what a ticket is made from at every (re-)queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferences {
    pub mode: Mode,
    pub lang: Lang,
    /// Re-queue at once when the partner skips.
    pub auto_reroll: bool,
}

impl Preferences {
    /// Checks a `join`. `default_lang` comes from the connection's `Accept-Language`.
    ///
    /// Filters this node cannot honour yet are refused rather than ignored: a filter that is
    /// silently dropped would pair the user with someone they excluded.
    pub fn from_join(join: &Join, default_lang: Lang) -> Result<Self, PrefError> {
        if !join.adult {
            return Err(PrefError::AdultRequired);
        }
        let mode = match join.mode.as_deref() {
            None | Some("text") => Mode::Text,
            Some("video") => Mode::Video,
            Some(_) => return Err(PrefError::BadMode),
        };
        let lang = match join.lang.as_deref() {
            None => default_lang,
            Some(text) => Lang::parse(text).ok_or(PrefError::BadLang)?,
        };
        if !join.countries.is_empty() {
            return Err(PrefError::Unsupported("the countries filter"));
        }
        if !join.want_gender.is_empty() {
            return Err(PrefError::Unsupported("the want_gender filter"));
        }
        Ok(Self {
            mode,
            lang,
            auto_reroll: join.auto_reroll,
        })
    }
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

    #[test]
    fn join_without_the_adult_confirmation_is_refused() {
        let join = Join::default();
        assert_eq!(
            Preferences::from_join(&join, Lang::EN),
            Err(PrefError::AdultRequired)
        );
    }

    #[test]
    fn unknown_modes_and_filters_are_refused_not_ignored() {
        let base = Join {
            adult: true,
            ..Join::default()
        };
        let bad_mode = Join {
            mode: Some("audio".into()),
            ..base.clone()
        };
        assert_eq!(
            Preferences::from_join(&bad_mode, Lang::EN),
            Err(PrefError::BadMode)
        );
        let filter = Join {
            countries: vec!["DE".into()],
            ..base.clone()
        };
        assert_eq!(
            Preferences::from_join(&filter, Lang::EN)
                .unwrap_err()
                .code(),
            ErrorCode::Unsupported
        );
        let ok = Preferences::from_join(&base, Lang::parse("fr").unwrap()).unwrap();
        assert_eq!((ok.mode, ok.lang.as_str()), (Mode::Text, "fr"));
    }
}
