//! Who a simulated user is: its mode, language, interests, country and country filter, drawn
//! from the distributions the `--video-share`, `--langs`, `--interest-tags`, `--countries` and
//! `--filter-share` flags describe. A user draws its profile once and keeps it across skips.
//!
//! This module only draws profiles and turns them into a `join`; the checks that the server
//! honoured them live in the client and in [`checks`](super::checks).

use clap::Args;
use rand::Rng;
use tandem_proto::Join;
use tokio_tungstenite::tungstenite::http::HeaderName;

/// Valid ISO 3166-1 alpha-2 codes that `--countries N` takes the first N of (never `ZZ`).
pub const COUNTRY_CODES: [&str; 40] = [
    "US", "DE", "FR", "GB", "BR", "IN", "JP", "ES", "IT", "NL", "SE", "PL", "CA", "AU", "MX", "AR",
    "TR", "RU", "UA", "KR", "ID", "PH", "VN", "TH", "EG", "NG", "ZA", "KE", "CH", "AT", "BE", "PT",
    "GR", "CZ", "RO", "HU", "DK", "NO", "FI", "IE",
];

/// Most interests the server accepts in one `join`.
const MAX_INTERESTS: usize = 20;

/// The flags that shape the simulated users' profiles.
#[derive(Args, Clone, Debug)]
pub struct ProfileArgs {
    /// Share of users that join with `mode: "video"`; the others join with `text`.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub video_share: f64,

    /// Languages the users join with and their weights, e.g. `en:0.8,de:0.2` (a language
    /// without a weight weighs 1).
    #[arg(long, default_value = "en", value_parser = parse_langs)]
    pub langs: Langs,

    /// Interest tags `t0`..`tK-1` the users draw their interests from, by a Zipf distribution
    /// (s = 1: `t0` is the most popular); 0 sends no interests.
    #[arg(long, default_value_t = 0)]
    pub interest_tags: usize,

    /// How many interests each user draws, uniformly from `MIN..MAX` (at most 20, and at
    /// most `--interest-tags`).
    #[arg(long, default_value = "1..3", value_parser = parse_count_range)]
    pub interests_per_user: CountRange,

    /// `interest_wait_ms` sent in every `join` with interests [default: not sent, the
    /// server's default applies].
    #[arg(long)]
    pub interest_wait_ms: Option<u64>,

    /// Countries the users come from, drawn uniformly from this many valid ISO codes (at
    /// most 40) and sent as the `--country-header` request header; 0 sends none. The server
    /// must be started with `--country-header` of the same name for it to count.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=40))]
    pub countries: u16,

    /// The request header that carries a user's country (with `--countries`).
    #[arg(long, default_value = "X-Country", value_parser = parse_header_name)]
    pub country_header: String,

    /// Share of users (with `--countries`) that join with a `countries` filter of 1 to 3
    /// codes of the same set, always their own among them.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub filter_share: f64,
}

impl ProfileArgs {
    /// The flags again, as (name, value) pairs a `--workers` child parses back.
    pub fn to_args(&self) -> Vec<(&'static str, String)> {
        let langs = self
            .langs
            .0
            .iter()
            .map(|(lang, weight)| format!("{lang}:{weight}"))
            .collect::<Vec<_>>()
            .join(",");
        let range = self.interests_per_user;
        let mut args = vec![
            ("--video-share", self.video_share.to_string()),
            ("--langs", langs),
            ("--interest-tags", self.interest_tags.to_string()),
            (
                "--interests-per-user",
                format!("{}..{}", range.min, range.max),
            ),
            ("--countries", self.countries.to_string()),
            ("--country-header", self.country_header.clone()),
            ("--filter-share", self.filter_share.to_string()),
        ];
        if let Some(wait) = self.interest_wait_ms {
            args.push(("--interest-wait-ms", wait.to_string()));
        }
        args
    }

    /// Draws one user's profile.
    pub fn draw(&self, rng: &mut impl Rng) -> Profile {
        let video = rng.random_bool(self.video_share);
        let lang = self.langs.pick(rng).to_owned();
        let interests = self.draw_interests(rng);
        let n = self.countries as usize;
        let (country, filter) = if n == 0 {
            (None, Vec::new())
        } else {
            let own = COUNTRY_CODES[rng.random_range(0..n)];
            let mut filter = Vec::new();
            if rng.random_bool(self.filter_share) {
                let size = rng.random_range(1..=3.min(n));
                filter.push(own.to_owned());
                while filter.len() < size {
                    let code = COUNTRY_CODES[rng.random_range(0..n)];
                    if !filter.iter().any(|c| c == code) {
                        filter.push(code.to_owned());
                    }
                }
            }
            (Some(own.to_owned()), filter)
        };
        Profile {
            mode: if video { "video" } else { "text" },
            lang,
            interests,
            interest_wait_ms: self.interest_wait_ms,
            country,
            filter,
        }
    }

    /// Distinct tags drawn by Zipf (s = 1) over `t0`..`tK-1`, sorted.
    fn draw_interests(&self, rng: &mut impl Rng) -> Vec<String> {
        let k = self.interest_tags;
        if k == 0 {
            return Vec::new();
        }
        let CountRange { min, max } = self.interests_per_user;
        let want = rng.random_range(min..=max).min(k);
        // Harmonic weights 1/(i+1); sampled by inverting the cumulative sum.
        let cumulative: Vec<f64> = (1..=k)
            .scan(0.0, |sum, i| {
                *sum += 1.0 / i as f64;
                Some(*sum)
            })
            .collect();
        let total = cumulative[k - 1];
        let mut picked: Vec<usize> = Vec::with_capacity(want);
        while picked.len() < want {
            let x = rng.random_range(0.0..total);
            let tag = cumulative.partition_point(|&c| c <= x).min(k - 1);
            if !picked.contains(&tag) {
                picked.push(tag);
            }
        }
        let mut tags: Vec<String> = picked.into_iter().map(|i| format!("t{i}")).collect();
        tags.sort();
        tags
    }
}

/// One simulated user's profile, kept for the whole run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// `text` or `video`.
    pub mode: &'static str,
    /// The language joined with.
    pub lang: String,
    /// Interest tags, sorted (as the server lower-cases them, they are already normal).
    pub interests: Vec<String>,
    /// `interest_wait_ms` to send, if any.
    pub interest_wait_ms: Option<u64>,
    /// The country sent in the country header, if any.
    pub country: Option<String>,
    /// The `countries` filter; empty accepts everyone.
    pub filter: Vec<String>,
}

impl Profile {
    /// The `join` this user sends every time.
    pub fn join(&self) -> Join {
        Join {
            mode: Some(self.mode.to_owned()),
            lang: Some(self.lang.clone()),
            interests: self.interests.clone(),
            countries: self.filter.clone(),
            interest_wait_ms: if self.interests.is_empty() {
                None
            } else {
                self.interest_wait_ms
            },
            adult: true,
            ..Join::default()
        }
    }

    /// Whether this user's filter accepts a partner from `country`.
    pub fn accepts(&self, country: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|c| c.eq_ignore_ascii_case(country))
    }
}

/// `--langs`: languages with their weights, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub struct Langs(pub Vec<(String, f64)>);

impl Langs {
    fn pick(&self, rng: &mut impl Rng) -> &str {
        let total: f64 = self.0.iter().map(|(_, w)| w).sum();
        let mut x = rng.random_range(0.0..total);
        for (lang, weight) in &self.0 {
            if x < *weight {
                return lang;
            }
            x -= weight;
        }
        &self.0[self.0.len() - 1].0
    }
}

/// Parses `en:0.8,de:0.2`; a language is 2-8 ASCII letters, a weight positive.
pub fn parse_langs(text: &str) -> Result<Langs, String> {
    let mut langs = Vec::new();
    for item in text.split(',') {
        let (lang, weight) = match item.split_once(':') {
            Some((lang, weight)) => (
                lang,
                weight
                    .parse::<f64>()
                    .map_err(|_| format!("`{item}`: the weight is not a number"))?,
            ),
            None => (item, 1.0),
        };
        if !(2..=8).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("`{lang}` is not a language subtag (2-8 letters)"));
        }
        if !(weight.is_finite() && weight > 0.0) {
            return Err(format!("`{item}`: the weight must be positive"));
        }
        langs.push((lang.to_ascii_lowercase(), weight));
    }
    Ok(Langs(langs))
}

/// A count drawn uniformly from `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountRange {
    /// Fewest.
    pub min: usize,
    /// Most (included).
    pub max: usize,
}

/// Parses `1..3` or a single count, at most 20.
pub fn parse_count_range(text: &str) -> Result<CountRange, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}` is not a count"))
    };
    let (min, max) = match text.split_once("..") {
        Some((min, max)) => (number(min)?, number(max)?),
        None => (number(text)?, number(text)?),
    };
    if min > max || max > MAX_INTERESTS {
        return Err(format!("`{text}`: need MIN <= MAX <= {MAX_INTERESTS}"));
    }
    Ok(CountRange { min, max })
}

/// Parses a share between 0 and 1.
pub fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("`{text}` is not a share between 0 and 1")),
    }
}

/// Checks that a header name is one HTTP accepts.
pub fn parse_header_name(text: &str) -> Result<String, String> {
    HeaderName::from_bytes(text.as_bytes())
        .map(|_| text.to_owned())
        .map_err(|_| format!("`{text}` is not an HTTP header name"))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn args(flags: &[&str]) -> ProfileArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            profile: ProfileArgs,
        }
        Cli::parse_from(std::iter::once("tandem").chain(flags.iter().copied())).profile
    }

    #[test]
    fn defaults_send_a_plain_text_join_in_english() {
        let profile = args(&[]).draw(&mut StdRng::seed_from_u64(1));
        assert_eq!(profile.mode, "text");
        assert_eq!(profile.lang, "en");
        assert!(profile.interests.is_empty() && profile.filter.is_empty());
        assert_eq!(profile.country, None);
        assert_eq!(profile.join().interest_wait_ms, None);
    }

    #[test]
    fn profiles_follow_the_distributions() {
        let flags = args(&[
            "--video-share=0.3",
            "--langs=en:0.7,de:0.3",
            "--interest-tags=50",
            "--countries=5",
            "--filter-share=0.3",
        ]);
        let mut rng = StdRng::seed_from_u64(7);
        let profiles: Vec<Profile> = (0..4000).map(|_| flags.draw(&mut rng)).collect();
        let share = |f: &dyn Fn(&Profile) -> bool| {
            profiles.iter().filter(|p| f(p)).count() as f64 / profiles.len() as f64
        };
        assert!((share(&|p| p.mode == "video") - 0.3).abs() < 0.05);
        assert!((share(&|p| p.lang == "de") - 0.3).abs() < 0.05);
        assert!((share(&|p| !p.filter.is_empty()) - 0.3).abs() < 0.05);
        // Zipf: t0 is about twice as popular as t1.
        let t0 = share(&|p| p.interests.contains(&"t0".to_owned()));
        let t1 = share(&|p| p.interests.contains(&"t1".to_owned()));
        assert!(t0 > 1.5 * t1, "t0 {t0} t1 {t1}");
        for p in &profiles {
            assert!((1..=3).contains(&p.interests.len()));
            assert!(p.interests.windows(2).all(|w| w[0] < w[1]));
            let own = p.country.as_deref().unwrap();
            assert!(COUNTRY_CODES[..5].contains(&own));
            assert!(p.filter.is_empty() || p.filter.iter().any(|c| c == own));
            assert!(p.filter.len() <= 3 && p.accepts(own));
        }
    }

    #[test]
    fn flags_survive_the_trip_to_a_worker() {
        let flags = args(&[
            "--video-share=0.25",
            "--langs=en:0.8,de:0.2",
            "--interest-tags=9",
            "--interests-per-user=2..4",
            "--interest-wait-ms=300",
            "--countries=3",
            "--country-header=CF-IPCountry",
            "--filter-share=1",
        ]);
        let pairs = flags.to_args();
        let again = args(
            &pairs
                .iter()
                .flat_map(|(name, value)| [*name, value.as_str()])
                .collect::<Vec<_>>(),
        );
        assert_eq!(again.to_args(), flags.to_args());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse_langs("en:0").is_err());
        assert!(parse_langs("e1").is_err());
        assert!(parse_count_range("3..1").is_err());
        assert!(parse_count_range("1..21").is_err());
        assert!(parse_share("1.5").is_err());
        assert!(parse_header_name("no spaces").is_err());
        assert!(!COUNTRY_CODES.contains(&"ZZ"));
    }
}
