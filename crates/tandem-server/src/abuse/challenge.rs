//! The proof-of-work challenge in front of `join`: ALTCHA v2 (PBKDF2/SHA-256, deterministic
//! mode), self-hosted, so that ALTCHA's widgets and solvers work with it.
//!
//! Each connection's `welcome` carries a fresh challenge: a random nonce and salt, a cost
//! (PBKDF2 iterations per try) and the prefix of the key a secret counter derives. The
//! client tries counters from 0 until it derives a key with that prefix, so the work is the
//! counter, drawn at random around the difficulty; the parameters are signed, so the client
//! cannot ask for less. The server signs the expected key too, which lets it check a
//! solution with two HMACs instead of deriving the key again: issuing a challenge costs one
//! key derivation, checking one costs next to nothing.
//!
//! A solution is accepted once: its challenge's nonce is written to the store's `spent`
//! bucket with create-if-absent before the join goes on, so a replay fails, on this node or
//! any other of the cluster, until the challenge expires (then it fails as expired).
//!
//! The difficulty rises for an address that holds or opens many connections (the pressure
//! the gateway's per-address count reports): doubled for every [`PRESSURE_STEP`]
//! connections beyond the first [`PRESSURE_FREE`], at most [`MAX_FACTOR`] times.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use altcha::{CreateChallengeOptions, Payload, VerifySolutionOptions};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tandem_proto::{Challenge, ChallengeParameters};

use crate::moderation::records::{Spent, UnixSecs};
use crate::moderation::store::{Bucket, StoreError};
use crate::moderation::StoreSlot;

/// The key derivation every challenge uses.
pub const ALGORITHM: &str = "PBKDF2/SHA-256";

/// The longest a challenge may live (`--challenge-lifetime` is at most this).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// The highest `--challenge-difficulty` taken (raised 256 times, still a `u32`).
pub const MAX_DIFFICULTY: u32 = 1_000_000;

/// The highest `--challenge-cost` taken: the node derives a key at that cost per challenge.
pub const MAX_COST: u32 = 100_000;

/// How long a spent challenge is kept past its challenge's expiry, at most (and at most a
/// lifetime): a node whose clock runs behind would otherwise take a purged solution as fresh.
pub const SPENT_GRACE: Duration = Duration::from_secs(300);

/// The longest `join.proof` taken, in bytes (a real one is about 700).
pub const MAX_PROOF_BYTES: usize = 4096;

/// Connections of one address asked only the base difficulty.
pub const PRESSURE_FREE: u32 = 4;

/// Connections beyond [`PRESSURE_FREE`] that double the difficulty.
pub const PRESSURE_STEP: u32 = 4;

/// The most the difficulty is raised, as a factor.
pub const MAX_FACTOR: u32 = 256;

/// The operator's settings (`--challenge`, `--challenge-difficulty`, `--challenge-cost`,
/// `--challenge-lifetime`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeSettings {
    /// Whether challenges are asked at all.
    pub on: bool,
    /// The number of keys a client derives on average at the base difficulty.
    pub difficulty: u32,
    /// PBKDF2 iterations per key.
    pub cost: u32,
    /// How long a challenge may be solved and presented.
    pub lifetime: Duration,
}

impl Default for ChallengeSettings {
    fn default() -> Self {
        Self {
            on: true,
            difficulty: 400,
            cost: 1000,
            lifetime: Duration::from_secs(600),
        }
    }
}

/// Why a proof was not accepted; each maps to one client error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the proof is not base64 of ALTCHA's JSON payload")]
    Malformed,
    #[error("the challenge was not issued by this service")]
    Forged,
    #[error("the solution is wrong")]
    Wrong,
    #[error("the challenge has expired")]
    Expired,
    #[error("the challenge was already solved once")]
    Spent,
    #[error("the challenge was issued to another address")]
    Elsewhere,
    #[error("{0}")]
    Store(StoreError),
}

impl ChallengeError {
    /// Its label in `/metrics`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Forged => "forged",
            Self::Wrong => "wrong",
            Self::Expired => "expired",
            Self::Spent => "spent",
            Self::Elsewhere => "elsewhere",
            Self::Store(_) => "store",
        }
    }

    const ALL: [&'static str; 7] = [
        "malformed",
        "forged",
        "wrong",
        "expired",
        "spent",
        "elsewhere",
        "store",
    ];
}

/// A checked solution, to be spent before it counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Solved {
    /// The challenge's nonce: the key of its `spent` record.
    nonce: String,
    /// When the challenge expires.
    expires: UnixSecs,
    /// How long the client says it took, in milliseconds.
    pub took_ms: Option<f64>,
}

/// What the challenge counts for `/metrics`.
#[derive(Debug, Default)]
pub struct ChallengeStats {
    issued: AtomicU64,
    /// Issued above the base difficulty.
    raised: AtomicU64,
    required: AtomicU64,
    passed: AtomicU64,
    failed: [AtomicU64; ChallengeError::ALL.len()],
}

impl ChallengeStats {
    /// Counts a `join` without a proof.
    pub fn required(&self) {
        self.required.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, err: &ChallengeError) {
        let at = (ChallengeError::ALL.iter())
            .position(|c| *c == err.as_str())
            .unwrap_or(0);
        self.failed[at].fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        use std::fmt::Write;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tandem_challenges_issued_total Proof-of-work challenges issued; raised: above the base difficulty.\n# TYPE tandem_challenges_issued_total counter\ntandem_challenges_issued_total{{node=\"{node}\",difficulty=\"base\"}} {}\ntandem_challenges_issued_total{{node=\"{node}\",difficulty=\"raised\"}} {}",
            load(&self.issued) - load(&self.raised).min(load(&self.issued)),
            load(&self.raised)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_challenges_passed_total Proofs accepted (once per connection).\n# TYPE tandem_challenges_passed_total counter\ntandem_challenges_passed_total{{node=\"{node}\"}} {}",
            load(&self.passed)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_challenges_required_total Joins refused for want of a proof.\n# TYPE tandem_challenges_required_total counter\ntandem_challenges_required_total{{node=\"{node}\"}} {}",
            load(&self.required)
        );
        let _ = writeln!(
            out,
            "# HELP tandem_challenges_failed_total Proofs refused, by cause.\n# TYPE tandem_challenges_failed_total counter"
        );
        for (cause, count) in ChallengeError::ALL.iter().zip(&self.failed) {
            let _ = writeln!(
                out,
                "tandem_challenges_failed_total{{node=\"{node}\",cause=\"{cause}\"}} {}",
                load(count)
            );
        }
    }
}

/// A node's challenges.
pub struct Challenges {
    settings: ChallengeSettings,
    /// Signs the parameters (hex, as ALTCHA keys its HMACs with the secret's text).
    signature_secret: String,
    /// Signs the expected key.
    key_secret: String,
    /// Keys the hash of the address a challenge is bound to.
    binding_secret: Vec<u8>,
    store: StoreSlot,
    pub stats: ChallengeStats,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Challenges {
    /// Challenges under `settings`, signed with keys derived from `secret` (the id secret,
    /// shared by the nodes of a cluster, so that any node checks any node's challenge),
    /// spent in `store`.
    pub fn new(settings: ChallengeSettings, secret: &[u8], store: StoreSlot) -> Self {
        let derive = |label: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
            mac.update(label.as_bytes());
            hex(&mac.finalize().into_bytes())
        };
        Self {
            settings,
            signature_secret: derive("tandem challenge signature v1"),
            key_secret: derive("tandem challenge key v1"),
            binding_secret: derive("tandem challenge address v1").into_bytes(),
            store,
            stats: ChallengeStats::default(),
        }
    }

    /// Whether challenges are asked.
    pub fn on(&self) -> bool {
        self.settings.on
    }

    /// The difficulty for an address with `pressure` connections open or opened lately.
    pub fn difficulty(&self, pressure: u32) -> u32 {
        self.settings
            .difficulty
            .saturating_mul(factor(pressure))
            .max(1)
    }

    /// A fresh challenge for a connection from `ip`, an address with `pressure`
    /// connections (`None` when challenges are off), expiring a lifetime after `now`. It is
    /// bound to the address (its /64 for IPv6): solved elsewhere, it does not count.
    pub fn issue(&self, pressure: u32, ip: Option<IpAddr>, now: UnixSecs) -> Option<Challenge> {
        if !self.settings.on {
            return None;
        }
        let mean = self.difficulty(pressure);
        // Uniform around the mean, from half of it to one and a half times it.
        let low = mean / 2;
        let counter = low.saturating_add(rand::random::<u32>() % mean.max(1));
        let data = ip.map(|ip| {
            let bound = serde_json::Value::String(self.binding(ip));
            std::collections::BTreeMap::from([("a".to_owned(), bound)])
        });
        let expires = now + self.settings.lifetime.as_secs();
        let challenge = altcha::create_challenge(CreateChallengeOptions {
            algorithm: ALGORITHM.into(),
            cost: self.settings.cost,
            counter: Some(counter),
            data,
            expires_at: Some(i64::try_from(expires).unwrap_or(i64::MAX)),
            hmac_signature_secret: Some(self.signature_secret.clone()),
            hmac_key_signature_secret: Some(self.key_secret.clone()),
            ..CreateChallengeOptions::default()
        })
        .expect("PBKDF2 with a hex prefix always makes a challenge");
        self.stats.issued.fetch_add(1, Ordering::Relaxed);
        if factor(pressure) > 1 {
            self.stats.raised.fetch_add(1, Ordering::Relaxed);
        }
        Some(to_wire(challenge))
    }

    /// The keyed hash a challenge issued to `ip` carries.
    fn binding(&self, ip: IpAddr) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.binding_secret).expect("any key");
        match ip.to_canonical() {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()[..8]),
        }
        hex(&mac.finalize().into_bytes()[..8])
    }

    /// Checks `proof`, presented from `ip` at `now`: signature, expiry, address and
    /// solution (not yet whether it was spent: [`Challenges::spend`]).
    pub fn check(
        &self,
        proof: &str,
        ip: Option<IpAddr>,
        now: UnixSecs,
    ) -> Result<Solved, ChallengeError> {
        let checked = self.verify(proof, ip, now);
        if let Err(err) = &checked {
            self.stats.failed(err);
        }
        checked
    }

    fn verify(
        &self,
        proof: &str,
        ip: Option<IpAddr>,
        now: UnixSecs,
    ) -> Result<Solved, ChallengeError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(ChallengeError::Malformed);
        }
        let engine = &base64::engine::general_purpose::STANDARD;
        let bytes = (engine.decode(proof.trim()))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(proof.trim()))
            .map_err(|_| ChallengeError::Malformed)?;
        let payload: Payload =
            serde_json::from_slice(&bytes).map_err(|_| ChallengeError::Malformed)?;
        let parameters = &payload.challenge.parameters;
        // Only what this service issues is looked at: a foreign algorithm or a challenge
        // without the key signature would make the check derive a key at the client's cost.
        if parameters.algorithm != ALGORITHM || parameters.key_signature.is_none() {
            return Err(ChallengeError::Forged);
        }
        let expires = parameters
            .expires_at
            .and_then(|e| u64::try_from(e).ok())
            .ok_or(ChallengeError::Forged)?;
        let mut options = VerifySolutionOptions::new(
            &payload.challenge,
            &payload.solution,
            self.signature_secret.clone(),
        );
        options.hmac_key_signature_secret = Some(self.key_secret.clone());
        let result = altcha::verify_solution(options).map_err(|_| ChallengeError::Malformed)?;
        if result.invalid_signature == Some(true) {
            return Err(ChallengeError::Forged);
        }
        if result.expired || expires < now {
            return Err(ChallengeError::Expired);
        }
        let bound = (parameters.data.as_ref())
            .and_then(|d| d.get("a"))
            .and_then(|a| a.as_str());
        if bound != ip.map(|ip| self.binding(ip)).as_deref() {
            return Err(ChallengeError::Elsewhere);
        }
        if !result.verified {
            return Err(ChallengeError::Wrong);
        }
        Ok(Solved {
            nonce: parameters.nonce.clone(),
            expires,
            took_ms: payload.solution.time,
        })
    }

    /// Spends a checked solution: from now on it is refused as spent, on every node.
    pub async fn spend(&self, solved: &Solved) -> Result<(), ChallengeError> {
        let spent = async {
            let store = self.store.get().await?;
            let grace = self.settings.lifetime.min(SPENT_GRACE).as_secs();
            let record = Spent {
                expires: solved.expires + grace,
            };
            store.create(Bucket::Spent, &solved.nonce, &record).await
        };
        let result = match spent.await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => Err(ChallengeError::Spent),
            Err(err) => Err(ChallengeError::Store(err)),
        };
        match &result {
            Ok(()) => {
                self.stats.passed.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => self.stats.failed(err),
        }
        result
    }
}

/// How much harder a challenge is for an address with `pressure` connections.
pub fn factor(pressure: u32) -> u32 {
    let over = pressure.saturating_sub(PRESSURE_FREE);
    let doublings = over.div_ceil(PRESSURE_STEP);
    1u32.checked_shl(doublings)
        .unwrap_or(MAX_FACTOR)
        .min(MAX_FACTOR)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// ALTCHA's challenge as the protocol carries it, field for field.
fn to_wire(challenge: altcha::Challenge) -> Challenge {
    let p = challenge.parameters;
    Challenge {
        parameters: ChallengeParameters {
            algorithm: p.algorithm,
            cost: p.cost,
            expires_at: p.expires_at,
            key_length: u32::try_from(p.key_length).unwrap_or(u32::MAX),
            key_prefix: p.key_prefix,
            key_signature: p.key_signature,
            nonce: p.nonce,
            salt: p.salt,
            data: p.data.map(|data| {
                (data.into_iter())
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                    .collect()
            }),
        },
        signature: challenge.signature,
    }
}

/// Solves `challenge` as a client does (tests and tools; the load generator has its own).
#[cfg(any(test, feature = "test-support"))]
pub fn solve(challenge: &Challenge) -> String {
    let wire = serde_json::to_value(challenge).expect("plain data");
    let challenge: altcha::Challenge = serde_json::from_value(wire).expect("the same shape");
    let solution = altcha::solve_challenge(altcha::SolveChallengeOptions::new(&challenge))
        .expect("a well-formed challenge")
        .expect("solved in time");
    let payload = serde_json::json!({ "challenge": challenge, "solution": solution });
    base64::engine::general_purpose::STANDARD.encode(payload.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges(settings: ChallengeSettings) -> Challenges {
        let (tx, slot) = StoreSlot::new();
        std::mem::forget(tx);
        Challenges::new(settings, b"a node secret of some length", slot)
    }

    fn easy() -> ChallengeSettings {
        ChallengeSettings {
            difficulty: 4,
            cost: 10,
            ..ChallengeSettings::default()
        }
    }

    const NOW: UnixSecs = 1_900_000_000;
    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));

    #[test]
    fn a_challenge_counts_only_from_the_address_it_was_issued_to() {
        let c = challenges(easy());
        let proof = solve(&c.issue(0, IP, NOW).unwrap());
        let elsewhere = Some("198.51.100.1".parse().unwrap());
        assert_eq!(
            c.check(&proof, elsewhere, NOW).unwrap_err(),
            ChallengeError::Elsewhere
        );
        assert_eq!(
            c.check(&proof, None, NOW).unwrap_err(),
            ChallengeError::Elsewhere
        );
        assert!(c.check(&proof, IP, NOW).is_ok());
        // IPv6: the same /64 is the same address.
        let v6 = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        let proof = solve(&c.issue(0, v6("2001:db8:1:2::1"), NOW).unwrap());
        assert!(c.check(&proof, v6("2001:db8:1:2::ffff"), NOW).is_ok());
        assert_eq!(
            c.check(&proof, v6("2001:db8:1:3::1"), NOW).unwrap_err(),
            ChallengeError::Elsewhere
        );
        let unbound = solve(&c.issue(0, None, NOW).unwrap());
        assert!(c.check(&unbound, None, NOW).is_ok());
    }

    #[test]
    fn a_solved_challenge_checks_and_its_wire_form_is_altchas() {
        let c = challenges(easy());
        let challenge = c.issue(0, IP, NOW).unwrap();
        let json = serde_json::to_value(&challenge).unwrap();
        for key in [
            "algorithm",
            "cost",
            "expiresAt",
            "keyLength",
            "keyPrefix",
            "keySignature",
        ] {
            assert!(json["parameters"].get(key).is_some(), "{key}: {json}");
        }
        assert_eq!(json["parameters"]["algorithm"], ALGORITHM);
        let proof = solve(&challenge);
        let solved = c.check(&proof, IP, NOW).unwrap();
        assert_eq!(solved.nonce, challenge.parameters.nonce);
        assert_eq!(solved.expires, NOW + 600);
    }

    #[test]
    fn wrong_forged_expired_and_malformed_proofs_are_told_apart() {
        let c = challenges(easy());
        let challenge = c.issue(0, IP, NOW).unwrap();
        let proof = solve(&challenge);
        assert_eq!(
            c.check(&proof, IP, NOW + 601).unwrap_err(),
            ChallengeError::Expired
        );
        assert_eq!(
            c.check("not base64!", IP, NOW).unwrap_err(),
            ChallengeError::Malformed
        );
        let engine = &base64::engine::general_purpose::STANDARD;
        let payload = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut json: serde_json::Value =
                serde_json::from_slice(&engine.decode(&proof).unwrap()).unwrap();
            f(&mut json);
            engine.encode(json.to_string())
        };
        // Less work asked: the signature no longer holds.
        let cheaper = payload(&|j| j["challenge"]["parameters"]["cost"] = 1.into());
        assert_eq!(
            c.check(&cheaper, IP, NOW).unwrap_err(),
            ChallengeError::Forged
        );
        let wrong = payload(&|j| {
            j["solution"]["derivedKey"] = "00".repeat(32).into();
        });
        assert_eq!(c.check(&wrong, IP, NOW).unwrap_err(), ChallengeError::Wrong);
        // Issued under another secret.
        let other = Challenges::new(easy(), b"another node's secret", c.store.clone());
        let foreign = solve(&other.issue(0, IP, NOW).unwrap());
        assert_eq!(
            c.check(&foreign, IP, NOW).unwrap_err(),
            ChallengeError::Forged
        );
        let mut out = String::new();
        c.stats.render(&mut out, "n");
        assert!(
            out.contains("tandem_challenges_failed_total{node=\"n\",cause=\"forged\"} 2"),
            "{out}"
        );
    }

    #[test]
    fn the_difficulty_doubles_with_the_pressure_of_an_address_up_to_a_bound() {
        let c = challenges(ChallengeSettings::default());
        let base = ChallengeSettings::default().difficulty;
        assert_eq!(c.difficulty(0), base);
        assert_eq!(c.difficulty(PRESSURE_FREE), base);
        assert_eq!(c.difficulty(PRESSURE_FREE + 1), 2 * base);
        assert_eq!(c.difficulty(PRESSURE_FREE + PRESSURE_STEP), 2 * base);
        assert_eq!(c.difficulty(PRESSURE_FREE + PRESSURE_STEP + 1), 4 * base);
        assert_eq!(c.difficulty(10_000), MAX_FACTOR * base);
        // The secret counter lies within half the mean either side.
        let easy = challenges(easy());
        for _ in 0..20 {
            let challenge = easy.issue(0, IP, NOW).unwrap();
            let proof = solve(&challenge);
            let json: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(&proof)
                    .unwrap(),
            )
            .unwrap();
            let counter = json["solution"]["counter"].as_u64().unwrap();
            assert!((2..6).contains(&counter), "{counter}");
        }
    }

    #[test]
    fn the_store_keeps_a_spent_challenge_longer_than_any_challenge_lives() {
        let kept = Bucket::Spent.max_age().unwrap();
        assert!(MAX_LIFETIME + SPENT_GRACE < kept);
    }

    #[test]
    fn no_challenge_is_issued_when_they_are_off() {
        let c = challenges(ChallengeSettings {
            on: false,
            ..ChallengeSettings::default()
        });
        assert_eq!(c.issue(100, IP, NOW), None);
    }
}
