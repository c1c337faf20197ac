//! Text filtering: every chat line is looked at before it reaches the partner, and a line a
//! rule withholds never does; its sender gets `error filtered` naming the rule.
//!
//! The rules, in the order they are applied:
//! - **phrases**: the operator's list of words, phrases and patterns (`--filter-file`, read
//!   again when it changes), for phishing and scam wording;
//! - **links**: a link or an e-mail address (found with `linkify`, with or without a scheme)
//!   in a chat's first lines, until both sides have written `N` lines (`--filter-links
//!   until:N`, the default `until:3`), or `always`, or `never`: spam bots paste their link
//!   before anyone has talked;
//! - **blast**: the same or a near-identical line (compared by its letters only, lower-cased)
//!   sent by one client or one address into `--blast-chats` different chats within
//!   `--blast-window` is withheld from that chat on, and counts as a strike toward the
//!   automatic ban rule;
//! - **profanity** (off by default): `--profanity mask` masks what `rustrict` finds,
//!   `block` withholds the line.
//!
//! Filtering holds no chat text: the blast rule keeps a 64-bit fingerprint of a line's
//! letters per sender, with the chats it went to, for the window; nothing else of a line
//! outlives its check.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};
use regex::{Regex, RegexSet, RegexSetBuilder};
use tandem_ids::ChatId;

/// When links and e-mail addresses are withheld (`--filter-links`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPolicy {
    /// Never.
    Never,
    /// In every line.
    Always,
    /// Until both sides of the chat have written this many lines.
    UntilBothWrote(u32),
}

impl std::str::FromStr for LinkPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            _ => text
                .strip_prefix("until:")
                .and_then(|n| n.parse().ok())
                .map(Self::UntilBothWrote)
                .ok_or_else(|| format!("expected never, always or until:N, not `{text}`")),
        }
    }
}

/// What is done with profanity (`--profanity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profanity {
    /// Nothing.
    Off,
    /// Masked with asterisks; the line goes on.
    Mask,
    /// The line is withheld.
    Block,
}

impl std::str::FromStr for Profanity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(Self::Off),
            "mask" => Ok(Self::Mask),
            "block" => Ok(Self::Block),
            _ => Err(format!("expected off, mask or block, not `{text}`")),
        }
    }
}

/// The operator's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSettings {
    pub links: LinkPolicy,
    /// Different chats the same line may reach before it is withheld; 0 turns the rule off.
    pub blast_chats: u32,
    /// Within how long.
    pub blast_window: Duration,
    /// The operator's phrase list.
    pub phrases: Option<PathBuf>,
    pub profanity: Profanity,
}

impl Default for FilterSettings {
    fn default() -> Self {
        Self {
            links: LinkPolicy::UntilBothWrote(3),
            blast_chats: 5,
            blast_window: Duration::from_secs(600),
            phrases: None,
            profanity: Profanity::Off,
        }
    }
}

/// A rule that withholds (or masks) lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterRule {
    Phrase,
    Link,
    Blast,
    Profanity,
}

impl FilterRule {
    const ALL: [FilterRule; 4] = [Self::Phrase, Self::Link, Self::Blast, Self::Profanity];

    /// Its label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phrase => "phrase",
            Self::Link => "link",
            Self::Blast => "blast",
            Self::Profanity => "profanity",
        }
    }

    /// What the sender is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Phrase => "this line contains words this site does not allow; it was not sent",
            Self::Link => {
                "links and e-mail addresses are not sent until you have talked a little; it was not sent"
            }
            Self::Blast => {
                "you sent this line into many chats; write something of your own (it was not sent)"
            }
            Self::Profanity => "this line contains profanity; it was not sent",
        }
    }
}

/// What happens to a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It goes to the partner, as written.
    Pass,
    /// It goes to the partner as this (profanity masked).
    Masked(String),
    /// It does not go.
    Withhold(FilterRule),
    /// It does not go: a blast. `strike`: the first time this client blasted this line in
    /// the window, which counts toward the automatic rule (once, and never for a blast seen
    /// only by its address, which others behind it may share).
    Blast { strike: bool },
}

/// Lines written so far in the chat, by each side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub mine: u32,
    pub theirs: u32,
}

/// Who sends a line, as the blast rule counts: the client, and its address.
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    pub client: u64,
    pub ip: Option<IpAddr>,
}

/// Letters a line needs before the blast rule looks at it ("hi", "asl?" go to every chat).
pub const BLAST_MIN_LETTERS: usize = 12;

/// Fingerprints remembered at most; past it, expired ones go, then half of the rest.
pub const MAX_BLAST_ENTRIES: usize = 1 << 16;

/// Lines the phrase file may hold.
pub const MAX_PHRASES: usize = 10_000;

/// A node's text filter.
pub struct Filter {
    settings: FilterSettings,
    links: linkify::LinkFinder,
    phrases: RwLock<Arc<Phrases>>,
    blasts: Mutex<HashMap<(u64, u64), Sent>>,
    pub stats: FilterStats,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The operator's list, compiled.
#[derive(Default)]
struct Phrases {
    set: Option<RegexSet>,
    /// The file's modification time and length when it was read.
    version: Option<(SystemTime, u64)>,
}

/// Where a line went lately.
struct Sent {
    first: Instant,
    chats: Vec<ChatId>,
    /// Whether this client's blast of this line was counted as a strike in the window.
    struck: bool,
}

/// Why the phrase file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PhraseError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Pattern {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: more than {MAX_PHRASES} lines")]
    TooMany { path: String },
}

impl Filter {
    /// A filter under `settings`; fails if the phrase file cannot be read.
    pub fn new(settings: FilterSettings) -> Result<Self, PhraseError> {
        let mut links = linkify::LinkFinder::new();
        links.url_must_have_scheme(false);
        links.kinds(&[linkify::LinkKind::Url, linkify::LinkKind::Email]);
        let filter = Self {
            settings,
            links,
            phrases: RwLock::new(Arc::new(Phrases::default())),
            blasts: Mutex::new(HashMap::new()),
            stats: FilterStats::default(),
        };
        filter.reload()?;
        Ok(filter)
    }

    /// Reads the phrase file again if it changed; whether it did. A file that does not read
    /// or compile leaves the list as it was.
    pub fn reload(&self) -> Result<bool, PhraseError> {
        let Some(path) = &self.settings.phrases else {
            return Ok(false);
        };
        let shown = path.display().to_string();
        let read_err = |source| PhraseError::Read {
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let version = Some((meta.modified().map_err(read_err)?, meta.len()));
        if self.phrases.read().version == version {
            return Ok(false);
        }
        let loaded = std::fs::read_to_string(path)
            .map_err(read_err)
            .and_then(|text| compile(&text, &shown));
        match loaded {
            Ok((set, len)) => {
                *self.phrases.write() = Arc::new(Phrases { set, version });
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                self.stats.phrases.store(len as u64, Ordering::Relaxed);
                Ok(true)
            }
            Err(err) => {
                self.stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    /// Reads the phrase file again whenever it changes, checking every `interval`, for as
    /// long as it runs.
    pub async fn follow(self: Arc<Self>, interval: Duration) {
        if self.settings.phrases.is_none() {
            return;
        }
        loop {
            tokio::time::sleep(interval).await;
            match self.reload() {
                Ok(true) => tracing::info!(
                    phrases = self.stats.phrases.load(Ordering::Relaxed),
                    "filter phrases reloaded"
                ),
                Ok(false) => {}
                Err(err) => tracing::warn!(error = %err, "filter phrases not reloaded"),
            }
        }
    }

    /// Checks `text`, written by `sender` into `chat` (where `written` lines were written
    /// so far) at `now`.
    pub fn check(
        &self,
        text: &str,
        written: Written,
        sender: Sender,
        chat: ChatId,
        now: Instant,
    ) -> Verdict {
        let verdict = self.judge(text, written, sender, chat, now);
        match &verdict {
            Verdict::Pass => {}
            Verdict::Masked(_) => {
                self.stats.masked.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Withhold(rule) => self.withheld(*rule),
            Verdict::Blast { .. } => self.withheld(FilterRule::Blast),
        }
        verdict
    }

    fn withheld(&self, rule: FilterRule) {
        let at = (FilterRule::ALL.iter().position(|r| *r == rule)).unwrap_or(0);
        self.stats.withheld[at].fetch_add(1, Ordering::Relaxed);
    }

    fn judge(
        &self,
        text: &str,
        written: Written,
        sender: Sender,
        chat: ChatId,
        now: Instant,
    ) -> Verdict {
        // Every line counts toward a blast, withheld or not: the pattern is the sending.
        let blast = self.blasting(text, sender, chat, now);
        let phrases = Arc::clone(&self.phrases.read());
        let links_held = match self.settings.links {
            LinkPolicy::Never => false,
            LinkPolicy::Always => true,
            LinkPolicy::UntilBothWrote(n) => written.mine < n || written.theirs < n,
        };
        if phrases.set.is_some() || links_held {
            // As it reads: compatibility forms folded, invisible characters gone, so that
            // `free\u{200b}bitcoin` or `ｓｐａｍ.example` hide nothing.
            let seen = readable(text);
            if phrases.set.as_ref().is_some_and(|set| set.is_match(&seen)) {
                return Verdict::Withhold(FilterRule::Phrase);
            }
            if links_held && self.links.links(&seen).next().is_some() {
                return Verdict::Withhold(FilterRule::Link);
            }
        }
        if let Some(strike) = blast {
            return Verdict::Blast { strike };
        }
        match self.settings.profanity {
            Profanity::Off => Verdict::Pass,
            Profanity::Block if rustrict::CensorStr::is_inappropriate(text) => {
                Verdict::Withhold(FilterRule::Profanity)
            }
            Profanity::Block => Verdict::Pass,
            Profanity::Mask => {
                let masked = rustrict::CensorStr::censor(text);
                if masked == text {
                    Verdict::Pass
                } else {
                    Verdict::Masked(masked)
                }
            }
        }
    }

    /// Records `text` from `sender` into `chat`. `None`: not a blast; `Some(strike)`: it
    /// went into too many chats, and `strike` says whether the client itself just did so
    /// for the first time in the window.
    fn blasting(&self, text: &str, sender: Sender, chat: ChatId, now: Instant) -> Option<bool> {
        let threshold = self.settings.blast_chats as usize;
        if threshold == 0 {
            return None;
        }
        let print = fingerprint(text)?;
        let window = self.settings.blast_window;
        let mut blasts = self.blasts.lock();
        if blasts.len() >= MAX_BLAST_ENTRIES {
            blasts.retain(|_, sent| now.saturating_duration_since(sent.first) < window);
            if blasts.len() >= MAX_BLAST_ENTRIES / 2 {
                let mut kept = 0;
                blasts.retain(|_, _| {
                    kept += 1;
                    kept % 2 == 0
                });
            }
        }
        let address = sender.ip.map(address_key);
        let mut blasted = false;
        let mut strike = false;
        for (key, own) in [(Some(sender.client), true), (address, false)] {
            let Some(key) = key else { continue };
            let sent = blasts.entry((key, print)).or_insert_with(|| Sent {
                first: now,
                chats: Vec::new(),
                struck: false,
            });
            if now.saturating_duration_since(sent.first) >= window {
                sent.first = now;
                sent.chats.clear();
                sent.struck = false;
            }
            if !sent.chats.contains(&chat) && sent.chats.len() < threshold {
                sent.chats.push(chat);
            }
            if sent.chats.len() >= threshold {
                blasted = true;
                if own && !sent.struck {
                    sent.struck = true;
                    strike = true;
                }
            }
        }
        blasted.then_some(strike)
    }

    /// Fingerprints remembered now.
    pub fn remembered(&self) -> usize {
        self.blasts.lock().len()
    }
}

/// `text` as a reader sees it: NFKC (fullwidth and other compatibility forms folded) and
/// without the invisible characters that can split a word or a link.
fn readable(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc().filter(|&c| !invisible(c)).collect()
}

/// Characters that show nothing: zero-width spaces and joiners, direction marks, soft
/// hyphens, variation selectors, fillers, tags.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}'
        | '\u{17b5}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}'
        | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// A line's fingerprint: a hash of its letters, lower-cased; `None` when it has too few to
/// tell a blast from a greeting.
fn fingerprint(text: &str) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut letters = 0;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        for lower in c.to_lowercase() {
            lower.hash(&mut hasher);
        }
        letters += 1;
    }
    (letters >= BLAST_MIN_LETTERS).then(|| hasher.finish())
}

/// An address as the blast rule counts it: IPv6 by its /64, tagged apart from client keys.
fn address_key(ip: IpAddr) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    "address".hash(&mut hasher);
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().hash(&mut hasher),
        IpAddr::V6(v6) => v6.octets()[..8].hash(&mut hasher),
    }
    hasher.finish()
}

/// Compiles a phrase file: one phrase or pattern per line; blank lines and `#` comments
/// skipped; `re:` starts a regular expression; any other line is a phrase, matched without
/// regard to case, with any run of spaces between its words, as whole words.
fn compile(text: &str, path: &str) -> Result<(Option<RegexSet>, usize), PhraseError> {
    let mut patterns = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let pattern = match line.strip_prefix("re:") {
            Some(pattern) => pattern.trim().to_owned(),
            None => {
                let words: Vec<String> = line.split_whitespace().map(regex::escape).collect();
                format!(r"\b{}\b", words.join(r"\s+"))
            }
        };
        // Each on its own first, so that an error names its line.
        Regex::new(&format!("(?i){pattern}")).map_err(|err| PhraseError::Pattern {
            path: path.to_owned(),
            line: n + 1,
            message: err.to_string(),
        })?;
        patterns.push(pattern);
        if patterns.len() > MAX_PHRASES {
            return Err(PhraseError::TooMany {
                path: path.to_owned(),
            });
        }
    }
    if patterns.is_empty() {
        return Ok((None, 0));
    }
    let set = RegexSetBuilder::new(&patterns)
        .case_insensitive(true)
        .size_limit(64 << 20)
        .build()
        .map_err(|err| PhraseError::Pattern {
            path: path.to_owned(),
            line: 0,
            message: err.to_string(),
        })?;
    Ok((Some(set), patterns.len()))
}

/// What the filter counts.
#[derive(Debug, Default)]
pub struct FilterStats {
    withheld: [AtomicU64; FilterRule::ALL.len()],
    masked: AtomicU64,
    /// Blast strikes handed to the automatic rule.
    pub strikes: AtomicU64,
    reloads: AtomicU64,
    reload_errors: AtomicU64,
    phrases: AtomicU64,
}

impl FilterStats {
    /// Appends the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        use std::fmt::Write;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tandem_filtered_total Chat lines withheld from the partner, by rule.\n# TYPE tandem_filtered_total counter"
        );
        for (rule, count) in FilterRule::ALL.iter().zip(&self.withheld) {
            let _ = writeln!(
                out,
                "tandem_filtered_total{{node=\"{node}\",rule=\"{}\"}} {}",
                rule.as_str(),
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_filter_masked_total Chat lines sent with profanity masked.\n# TYPE tandem_filter_masked_total counter\ntandem_filter_masked_total{{node=\"{node}\"}} {}",
            load(&self.masked)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_filter_strikes_total Blasts counted as strikes toward the automatic ban rule.\n# TYPE tandem_filter_strikes_total counter\ntandem_filter_strikes_total{{node=\"{node}\"}} {}",
            load(&self.strikes)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_filter_phrases Phrases and patterns of the operator's list in force.\n# TYPE tandem_filter_phrases gauge\ntandem_filter_phrases{{node=\"{node}\"}} {}",
            load(&self.phrases)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_filter_reloads_total Readings of the phrase file, by outcome.\n# TYPE tandem_filter_reloads_total counter\ntandem_filter_reloads_total{{node=\"{node}\",result=\"ok\"}} {}\ntandem_filter_reloads_total{{node=\"{node}\",result=\"error\"}} {}",
            load(&self.reloads),
            load(&self.reload_errors)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(settings: FilterSettings) -> Filter {
        Filter::new(settings).unwrap()
    }

    const FRESH: Written = Written { mine: 0, theirs: 0 };
    const TALKED: Written = Written { mine: 3, theirs: 3 };

    fn sender(client: u64) -> Sender {
        Sender {
            client,
            ip: Some("192.0.2.1".parse().unwrap()),
        }
    }

    #[test]
    fn links_and_addresses_wait_until_both_sides_have_talked() {
        let f = filter(FilterSettings::default());
        let now = Instant::now();
        for line in [
            "free followers at spam.example",
            "see https://phish.example/login",
            "write me: bot@spam.example",
        ] {
            assert_eq!(
                f.check(line, FRESH, sender(1), ChatId(1), now),
                Verdict::Withhold(FilterRule::Link),
                "{line}"
            );
            let almost = Written { mine: 3, theirs: 2 };
            assert_eq!(
                f.check(line, almost, sender(1), ChatId(1), now),
                Verdict::Withhold(FilterRule::Link)
            );
            assert_eq!(
                f.check(line, TALKED, sender(1), ChatId(1), now),
                Verdict::Pass
            );
        }
        assert_eq!(
            f.check("hi! 3.5 stars, e.g. ok", FRESH, sender(1), ChatId(1), now),
            Verdict::Pass
        );
        assert_eq!(
            f.check("spam\u{200b}.example", FRESH, sender(1), ChatId(1), now),
            Verdict::Withhold(FilterRule::Link),
            "split by an invisible space"
        );
        let never = filter(FilterSettings {
            links: LinkPolicy::Never,
            ..FilterSettings::default()
        });
        assert_eq!(
            never.check("spam.example", FRESH, sender(1), ChatId(1), now),
            Verdict::Pass
        );
        let always = filter(FilterSettings {
            links: LinkPolicy::Always,
            ..FilterSettings::default()
        });
        let late = Written {
            mine: 90,
            theirs: 90,
        };
        assert_eq!(
            always.check("spam.example", late, sender(1), ChatId(1), now),
            Verdict::Withhold(FilterRule::Link)
        );
        assert_eq!("until:5".parse(), Ok(LinkPolicy::UntilBothWrote(5)));
        assert!("sometimes".parse::<LinkPolicy>().is_err());
    }

    #[test]
    fn the_same_line_into_many_chats_is_a_blast_from_the_client_or_its_address() {
        let f = filter(FilterSettings::default());
        let start = Instant::now();
        let line = "Hot singles in your area want to meet you";
        for chat in 1..5 {
            assert_eq!(
                f.check(line, TALKED, sender(1), ChatId(chat), start),
                Verdict::Pass
            );
            // Again into the same chat: not another chat.
            assert_eq!(
                f.check(line, TALKED, sender(1), ChatId(chat), start),
                Verdict::Pass
            );
        }
        // Near-identical: case, spaces, punctuation and digits do not matter.
        let variant = "hot SINGLES in your area... want to meet you!!! 2";
        assert_eq!(
            f.check(variant, TALKED, sender(1), ChatId(5), start),
            Verdict::Blast { strike: true }
        );
        // Once a strike per line and window.
        assert_eq!(
            f.check(line, TALKED, sender(1), ChatId(6), start),
            Verdict::Blast { strike: false }
        );
        // Another client from the same address is caught by the address, without a strike:
        // it sent the line once.
        assert_eq!(
            f.check(line, TALKED, sender(2), ChatId(7), start),
            Verdict::Blast { strike: false }
        );
        // Elsewhere, someone else: free to say it.
        let elsewhere = Sender {
            client: 3,
            ip: Some("198.51.100.1".parse().unwrap()),
        };
        assert_eq!(
            f.check(line, TALKED, elsewhere, ChatId(7), start),
            Verdict::Pass
        );
        // Short greetings go into every chat.
        for chat in 10..30 {
            assert_eq!(
                f.check("hi, asl?", TALKED, sender(1), ChatId(chat), start),
                Verdict::Pass
            );
        }
        // Once the window has passed, the count starts over.
        let later = start + Duration::from_secs(601);
        assert_eq!(
            f.check(line, TALKED, sender(1), ChatId(40), later),
            Verdict::Pass
        );
    }

    #[test]
    fn the_blast_memory_is_bounded() {
        let f = filter(FilterSettings::default());
        let now = Instant::now();
        for n in 0..(MAX_BLAST_ENTRIES as u64 + 10) {
            let line = format!("a distinct line number {n} abcdefghijkl");
            let line = line.replace(char::is_numeric, "");
            let unique: String = n
                .to_string()
                .chars()
                .map(|d| (b'a' + d.to_digit(10).unwrap() as u8) as char)
                .collect();
            let who = Sender {
                client: n,
                ip: None,
            };
            f.check(&format!("{line} {unique}"), TALKED, who, ChatId(1), now);
        }
        assert!(f.remembered() <= MAX_BLAST_ENTRIES, "{}", f.remembered());
    }

    #[test]
    fn operator_phrases_match_as_words_in_any_case_and_reload_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phrases.txt");
        std::fs::write(
            &path,
            "# scams\nfree bitcoin\nre:verify\\s+your\\s+acc(ou)?nt\n",
        )
        .unwrap();
        let f = filter(FilterSettings {
            phrases: Some(path.clone()),
            ..FilterSettings::default()
        });
        let now = Instant::now();
        let check = |line: &str| f.check(line, TALKED, sender(1), ChatId(1), now);
        assert_eq!(
            check("get FREE   Bitcoin now"),
            Verdict::Withhold(FilterRule::Phrase)
        );
        assert_eq!(
            check("please verify your accnt"),
            Verdict::Withhold(FilterRule::Phrase)
        );
        assert_eq!(
            check("freebitcoins are a myth"),
            Verdict::Pass,
            "whole words"
        );
        assert!(!f.reload().unwrap(), "unchanged");
        // A broken file leaves the list as it was.
        std::fs::write(&path, "re:(unclosed\n").unwrap();
        assert!(f.reload().is_err());
        assert_eq!(check("free bitcoin"), Verdict::Withhold(FilterRule::Phrase));
        std::fs::write(&path, "gift card\n").unwrap();
        assert!(f.reload().unwrap());
        assert_eq!(check("free bitcoin"), Verdict::Pass);
        assert_eq!(check("a Gift Card!"), Verdict::Withhold(FilterRule::Phrase));
        let mut out = String::new();
        f.stats.render(&mut out, "n");
        assert!(out.contains("tandem_filter_phrases{node=\"n\"} 1"), "{out}");
        assert!(
            out.contains("tandem_filtered_total{node=\"n\",rule=\"phrase\"} 4"),
            "{out}"
        );
    }

    #[test]
    fn profanity_is_left_alone_by_default_masked_or_blocked_when_asked() {
        let now = Instant::now();
        let line = "you are a fucking idiot";
        let off = filter(FilterSettings::default());
        assert_eq!(
            off.check(line, TALKED, sender(1), ChatId(1), now),
            Verdict::Pass
        );
        let mask = filter(FilterSettings {
            profanity: Profanity::Mask,
            ..FilterSettings::default()
        });
        match mask.check(line, TALKED, sender(1), ChatId(1), now) {
            Verdict::Masked(masked) => {
                assert!(
                    !masked.contains("fucking") && masked.contains('*'),
                    "{masked}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            mask.check("have a nice day", TALKED, sender(1), ChatId(1), now),
            Verdict::Pass
        );
        let block = filter(FilterSettings {
            profanity: Profanity::Block,
            ..FilterSettings::default()
        });
        assert_eq!(
            block.check(line, TALKED, sender(1), ChatId(1), now),
            Verdict::Withhold(FilterRule::Profanity)
        );
    }
}
