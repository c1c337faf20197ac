//! From a `join` message to checked [`Preferences`]: the node's rules, the entitlement
//! check for premium filters, and a typed refusal for everything else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::session::Preferences;
use tandem_match::{
    Country, CountryFilter, Gender, GenderFilter, InterestError, Interests, Lang, Mode, SpyMode,
    Tag,
};
use tandem_proto::{ErrorCode, Join};

use crate::entitlement::{unix_now, EntitlementKey, Feature};

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
    /// `interest_wait_ms` when the client sends none.
    pub default_interest_wait: Duration,
    /// The longest `interest_wait_ms` a client may ask for.
    pub max_interest_wait: Duration,
}

impl Default for JoinRules {
    fn default() -> Self {
        Self {
            entitlements: None,
            default_interest_wait: Duration::from_secs(5),
            max_interest_wait: Duration::from_secs(60),
        }
    }
}

/// Spy mode from a `join` in `mode`; refuses what it cannot honour.
fn spy_mode(join: &Join, mode: Mode) -> Result<SpyMode, PrefError> {
    let question = join.question.as_deref().map(str::trim);
    if !join.spy && !join.spy_ok {
        return match question {
            Some(_) => Err(PrefError::BadSpy("question needs spy: true")),
            None => Ok(SpyMode::Off),
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
            None => Ok(SpyMode::Discusses),
        };
    }
    match question {
        Some(q) if !q.is_empty() && q.chars().count() <= SpyMode::MAX_QUESTION_CHARS => {
            Ok(SpyMode::Asks(Arc::from(q)))
        }
        _ => Err(PrefError::BadSpy(
            "spy needs a question of 1 to 300 characters",
        )),
    }
}

/// Checks a `join` under the node's rules; `default_lang` (from the connection's
/// `Accept-Language`) is the language of a join that names none.
///
/// Filters this node cannot honour are refused rather than ignored: a filter that is
/// silently dropped would pair the user with someone they excluded.
pub fn preferences(
    join: &Join,
    rules: &JoinRules,
    default_lang: Lang,
) -> Result<Preferences, PrefError> {
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
                    "the entitlement does not grant college mode with a verified college".into(),
                )
            })?;
        Some(Tag::from(domain.to_lowercase()))
    } else {
        None
    };
    let spy = spy_mode(join, mode)?;
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
    Ok(Preferences {
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
        premium_until: claims
            .map(|c| Instant::now() + Duration::from_secs(c.exp.saturating_sub(unix_now()))),
        spy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_without_the_adult_confirmation_is_refused() {
        let join = Join::default();
        assert_eq!(
            preferences(&join, &JoinRules::default(), Lang::EN),
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
            preferences(&bad_mode, &rules, Lang::EN),
            Err(PrefError::BadMode)
        );
        let gender = Join {
            want_gender: vec!["f".into()],
            ..base.clone()
        };
        // Without an entitlement (and this server has no secret), never silently ignored.
        assert_eq!(
            preferences(&gender, &rules, Lang::EN).unwrap_err().code(),
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
                preferences(&join, &rules, Lang::EN),
                Err(PrefError::BadCountry)
            );
        }
        let long_wait = Join {
            interest_wait_ms: Some(3_600_000),
            ..base.clone()
        };
        assert!(matches!(
            preferences(&long_wait, &rules, Lang::EN),
            Err(PrefError::InterestWaitTooLong(_))
        ));
        let ok = preferences(&base, &rules, Lang::parse("fr").unwrap()).unwrap();
        assert_eq!((ok.mode, ok.lang.as_str()), (Mode::Text, "fr"));
        assert_eq!(ok.interest_wait, std::time::Duration::from_secs(5));
        let countries = Join {
            countries: vec!["de".into(), "AT".into(), "DE".into()],
            ..base.clone()
        };
        let ok = preferences(&countries, &rules, Lang::EN).unwrap();
        assert!(ok.countries.accepts(Country::parse("AT").unwrap()));
        assert!(!ok.countries.accepts(Country::UNKNOWN));
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
            preferences(&j, &rules, Lang::EN)
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
