//! A user's checked preferences, made from a `join` message.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use super::{Country, CountryFilter, Gender, GenderFilter, InterestError, Interests, Tag};
use crate::entitlement::{unix_now, EntitlementKey, Feature};
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
    #[error("interests: at most 20 tags")]
    TooManyInterests,
    #[error("interests: a tag has at most 40 characters")]
    InterestTooLong,
    #[error("countries: each must be an ISO 3166-1 alpha-2 code such as \"DE\", at most 50")]
    BadCountry,
    #[error("interest_wait_ms must be at most {0}")]
    InterestWaitTooLong(u64),
    #[error("gender and want_gender take \"m\", \"f\" or \"x\"")]
    BadGender,
    #[error("same_college needs college: true")]
    SameCollegeWithoutCollege,
    #[error("{0}")]
    EntitlementRequired(String),
    #[error("{0}")]
    BadSpy(&'static str),
}

impl PrefError {
    /// The client error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AdultRequired => ErrorCode::AdultRequired,
            Self::BadMode
            | Self::BadLang
            | Self::TooManyInterests
            | Self::InterestTooLong
            | Self::BadCountry
            | Self::InterestWaitTooLong(_)
            | Self::BadGender
            | Self::SameCollegeWithoutCollege
            | Self::BadSpy(_) => ErrorCode::InvalidValue,
            Self::EntitlementRequired(_) => ErrorCode::EntitlementRequired,
        }
    }
}

/// What the server decides for a `join` the client left open, and the bounds it sets.
#[derive(Clone, Debug)]
pub struct JoinRules {
    /// Verifies entitlements; without it no premium feature is granted.
    pub entitlements: Option<Arc<EntitlementKey>>,
    /// From the connection's `Accept-Language`, else `en`.
    pub default_lang: Lang,
    /// `interest_wait_ms` when the client sends none.
    pub default_interest_wait: Duration,
    /// The longest `interest_wait_ms` a client may ask for.
    pub max_interest_wait: Duration,
}

impl Default for JoinRules {
    fn default() -> Self {
        Self {
            entitlements: None,
            default_lang: Lang::EN,
            default_interest_wait: Duration::from_secs(5),
            max_interest_wait: Duration::from_secs(60),
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
    pub interests: Interests,
    /// Never fall back to a partner without shared interests.
    pub interests_only: bool,
    /// How long to look for a shared interest first.
    pub interest_wait: Duration,
    /// Partners' countries accepted.
    pub countries: CountryFilter,
    /// Self-declared gender.
    pub gender: Option<Gender>,
    /// Partners' genders accepted (entitled).
    pub want_gender: GenderFilter,
    /// College mode: the verified college domain (entitled).
    pub college: Option<Tag>,
    /// College mode: the same college only.
    pub same_college: bool,
    /// When the entitlement behind `want_gender` or `college` runs out: re-queues after it
    /// are refused, so a connection kept open does not keep a premium filter for ever.
    pub premium_until: Option<std::time::Instant>,
    /// Spy mode: asking a question, or discussing one.
    pub spy: SpyMode,
}

/// Spy mode (Omegle's question mode): a spy asks a question and watches two strangers
/// discuss it. Text only; interests and filters do not apply; pairing is first come, first
/// served within the language, on the node the users are connected to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SpyMode {
    /// An ordinary one-on-one chat.
    #[default]
    Off,
    /// Asks this question, and only watches.
    Asks(Arc<str>),
    /// One of the two strangers who discuss a spy's question.
    Discusses,
}

impl SpyMode {
    /// The longest question, in characters.
    pub const MAX_QUESTION_CHARS: usize = 300;

    /// Whether this is a spy-mode ticket.
    pub fn is_on(&self) -> bool {
        !matches!(self, Self::Off)
    }

    /// Spy mode from a `join` in `mode`; refuses what it cannot honour.
    fn from_join(join: &Join, mode: Mode) -> Result<Self, PrefError> {
        let question = join.question.as_deref().map(str::trim);
        if !join.spy && !join.spy_ok {
            return match question {
                Some(_) => Err(PrefError::BadSpy("question needs spy: true")),
                None => Ok(Self::Off),
            };
        }
        if join.spy && join.spy_ok {
            return Err(PrefError::BadSpy(
                "spy (ask) and spy_ok (discuss) exclude each other",
            ));
        }
        if mode != Mode::Text {
            return Err(PrefError::BadSpy("spy mode is text only"));
        }
        if !join.interests.is_empty()
            || !join.countries.is_empty()
            || !join.want_gender.is_empty()
            || join.college
        {
            return Err(PrefError::BadSpy(
                "interests and filters do not apply in spy mode",
            ));
        }
        if join.spy_ok {
            return match question {
                Some(_) => Err(PrefError::BadSpy("only the spy asks a question")),
                None => Ok(Self::Discusses),
            };
        }
        match question {
            Some(q) if !q.is_empty() && q.chars().count() <= Self::MAX_QUESTION_CHARS => {
                Ok(Self::Asks(Arc::from(q)))
            }
            _ => Err(PrefError::BadSpy(
                "spy needs a question of 1 to 300 characters",
            )),
        }
    }
}

impl Preferences {
    /// Random pairing in one partition: no interests, no filters.
    pub fn random(mode: Mode, lang: Lang, auto_reroll: bool) -> Self {
        Self {
            mode,
            lang,
            auto_reroll,
            interests: Interests::default(),
            interests_only: false,
            interest_wait: Duration::ZERO,
            countries: CountryFilter::default(),
            gender: None,
            want_gender: GenderFilter::default(),
            college: None,
            same_college: false,
            premium_until: None,
            spy: SpyMode::Off,
        }
    }

    /// Checks a `join` under the server's rules.
    ///
    /// Filters this node cannot honour yet are refused rather than ignored: a filter that is
    /// silently dropped would pair the user with someone they excluded.
    pub fn from_join(join: &Join, rules: &JoinRules) -> Result<Self, PrefError> {
        let default_lang = rules.default_lang;
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
        let gender = match join.gender.as_deref() {
            None | Some("") => None,
            Some(text) => Some(Gender::parse(text).ok_or(PrefError::BadGender)?),
        };
        let want_gender = join
            .want_gender
            .iter()
            .map(|g| Gender::parse(g))
            .collect::<Option<Vec<_>>>()
            .ok_or(PrefError::BadGender)?;
        if join.same_college && !join.college {
            return Err(PrefError::SameCollegeWithoutCollege);
        }
        // Premium features need a valid entitlement; only look at it when one is asked for.
        let claims = if !want_gender.is_empty() || join.college {
            let token = join.entitlement.as_deref().ok_or_else(|| {
                PrefError::EntitlementRequired(
                    "want_gender and college need an entitlement from the operator".into(),
                )
            })?;
            let key = rules.entitlements.as_ref().ok_or_else(|| {
                PrefError::EntitlementRequired(
                    "this server grants no entitlements (no --entitlement-secret)".into(),
                )
            })?;
            Some(
                key.verify(token, unix_now())
                    .map_err(|e| PrefError::EntitlementRequired(e.to_string()))?,
            )
        } else {
            None
        };
        if !want_gender.is_empty()
            && !claims
                .as_ref()
                .is_some_and(|c| c.grants(Feature::GenderFilter))
        {
            return Err(PrefError::EntitlementRequired(
                "the entitlement does not grant the gender filter".into(),
            ));
        }
        let college = if join.college {
            let domain = claims
                .as_ref()
                .filter(|c| c.grants(Feature::College))
                .and_then(|c| c.college.as_deref())
                .ok_or_else(|| {
                    PrefError::EntitlementRequired(
                        "the entitlement does not grant college mode with a verified college"
                            .into(),
                    )
                })?;
            Some(Tag::from(domain.to_lowercase()))
        } else {
            None
        };
        let spy = SpyMode::from_join(join, mode)?;
        let interests = Interests::parse(&join.interests).map_err(|e| match e {
            InterestError::TooMany => PrefError::TooManyInterests,
            InterestError::TooLong => PrefError::InterestTooLong,
        })?;
        if join.countries.len() > CountryFilter::MAX {
            return Err(PrefError::BadCountry);
        }
        let countries = join
            .countries
            .iter()
            .map(|c| Country::parse(c).filter(|c| *c != Country::UNKNOWN))
            .collect::<Option<Vec<_>>>()
            .ok_or(PrefError::BadCountry)?;
        let interest_wait = match join.interest_wait_ms {
            None => rules.default_interest_wait,
            Some(ms) if Duration::from_millis(ms) <= rules.max_interest_wait => {
                Duration::from_millis(ms)
            }
            Some(_) => {
                return Err(PrefError::InterestWaitTooLong(
                    rules.max_interest_wait.as_millis() as u64,
                ))
            }
        };
        Ok(Self {
            mode,
            lang,
            auto_reroll: join.auto_reroll,
            interests,
            interests_only: join.interests_only,
            interest_wait,
            countries: CountryFilter::new(countries),
            gender,
            want_gender: GenderFilter::of(want_gender),
            college,
            same_college: join.same_college,
            premium_until: claims.map(|c| {
                std::time::Instant::now() + Duration::from_secs(c.exp.saturating_sub(unix_now()))
            }),
            spy,
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
            Preferences::from_join(&join, &JoinRules::default()),
            Err(PrefError::AdultRequired)
        );
    }

    #[test]
    fn unknown_modes_and_filters_are_refused_not_ignored() {
        let base = Join {
            adult: true,
            ..Join::default()
        };
        let rules = JoinRules::default();
        let bad_mode = Join {
            mode: Some("audio".into()),
            ..base.clone()
        };
        assert_eq!(
            Preferences::from_join(&bad_mode, &rules),
            Err(PrefError::BadMode)
        );
        let gender = Join {
            want_gender: vec!["f".into()],
            ..base.clone()
        };
        // Without an entitlement (and this server has no secret), never silently ignored.
        assert_eq!(
            Preferences::from_join(&gender, &rules).unwrap_err().code(),
            ErrorCode::EntitlementRequired
        );
        for bad in [
            vec!["DEU".to_string()],
            vec!["D1".into()],
            vec!["ZZ".into()],
        ] {
            let join = Join {
                countries: bad,
                ..base.clone()
            };
            assert_eq!(
                Preferences::from_join(&join, &rules),
                Err(PrefError::BadCountry)
            );
        }
        let long_wait = Join {
            interest_wait_ms: Some(3_600_000),
            ..base.clone()
        };
        assert!(matches!(
            Preferences::from_join(&long_wait, &rules),
            Err(PrefError::InterestWaitTooLong(_))
        ));
        let french = JoinRules {
            default_lang: Lang::parse("fr").unwrap(),
            ..rules.clone()
        };
        let ok = Preferences::from_join(&base, &french).unwrap();
        assert_eq!((ok.mode, ok.lang.as_str()), (Mode::Text, "fr"));
        assert_eq!(ok.interest_wait, std::time::Duration::from_secs(5));
        let countries = Join {
            countries: vec!["de".into(), "AT".into(), "DE".into()],
            ..base.clone()
        };
        let ok = Preferences::from_join(&countries, &rules).unwrap();
        assert!(ok
            .countries
            .accepts(crate::matching::Country::parse("AT").unwrap()));
        assert!(!ok.countries.accepts(crate::matching::Country::UNKNOWN));
    }

    #[test]
    fn spy_mode_is_text_only_needs_a_question_and_takes_no_filters() {
        let rules = JoinRules::default();
        let join = |f: &dyn Fn(&mut Join)| {
            let mut j = Join {
                adult: true,
                ..Join::default()
            };
            f(&mut j);
            Preferences::from_join(&j, &rules)
        };
        let asks = join(&|j| {
            j.spy = true;
            j.question = Some("  Cats or dogs?  ".into());
        })
        .unwrap();
        assert_eq!(asks.spy, SpyMode::Asks(Arc::from("Cats or dogs?")));
        assert_eq!(join(&|j| j.spy_ok = true).unwrap().spy, SpyMode::Discusses);
        assert_eq!(join(&|_| {}).unwrap().spy, SpyMode::Off);
        let refused: [&dyn Fn(&mut Join); 7] = [
            &|j| j.spy = true,
            &|j| {
                j.spy = true;
                j.question = Some("   ".into());
            },
            &|j| {
                j.spy = true;
                j.question = Some("?".repeat(301));
            },
            &|j| {
                j.spy_ok = true;
                j.mode = Some("video".into());
            },
            &|j| {
                j.spy = true;
                j.spy_ok = true;
                j.question = Some("q".into());
            },
            &|j| j.question = Some("q".into()),
            &|j| {
                j.spy_ok = true;
                j.interests = vec!["music".into()];
            },
        ];
        for (i, f) in refused.iter().enumerate() {
            let err = join(*f).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidValue, "case {i}: {err}");
        }
    }
}
