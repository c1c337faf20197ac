//! The ICE servers a client is told in `welcome.ice_servers`: STUN servers as configured,
//! and TURN servers with time-limited credentials.
//!
//! TURN credentials use the "TURN REST API" form that coturn checks with `use-auth-secret`
//! (`static-auth-secret=<secret>`): the username is `"<expiry unix seconds>:<client id>"` and
//! the credential is `base64(HMAC-SHA1(secret, username))`. The TURN server recomputes the
//! HMAC and refuses expired usernames, so the secret never leaves the node and a credential
//! copied out of a page stops working after `--turn-ttl`. This module owns that computation
//! and nothing else: it never talks to a TURN server.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use tandem_ids::ClientId;
use tandem_proto::IceServer;

/// Why the ICE flags cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IceConfigError {
    /// A `--stun` URL that is not `stun:` or `stuns:`; browsers throw on it, which would
    /// break every video chat.
    #[error("--stun {0:?} must start with stun: or stuns: (e.g. stun:stun.example.org:3478)")]
    BadStunUrl(String),
    /// A `--turn` URL that is not `turn:` or `turns:`.
    #[error("--turn {0:?} must start with turn: or turns: (e.g. turn:turn.example.org:3478?transport=udp)")]
    BadTurnUrl(String),
    /// `--turn` without `--turn-secret`: the TURN server would refuse every client.
    #[error("--turn needs --turn-secret (the static-auth-secret of the TURN server)")]
    TurnWithoutSecret,
    /// An empty `--turn-secret` (an unset variable in a deployment template).
    #[error("--turn-secret must not be empty")]
    EmptySecret,
    /// A zero `--turn-ttl` would hand out credentials that are already expired.
    #[error("--turn-ttl must be at least one second")]
    ZeroTtl,
}

/// STUN and TURN servers, ready to hand to each client.
#[derive(Clone, Default)]
pub struct IceConfig {
    /// `--stun` URLs, given to every client as one entry without credentials.
    stun: Vec<String>,
    /// `--turn` URLs and how to sign for them; `None` without `--turn`.
    turn: Option<Turn>,
}

/// TURN servers sharing one `static-auth-secret`.
#[derive(Clone)]
struct Turn {
    urls: Vec<String>,
    /// The HMAC keyed with the secret, cloned per credential so the key schedule runs once.
    mac: Hmac<Sha1>,
    /// How long a credential stays valid.
    ttl: Duration,
}

impl std::fmt::Debug for IceConfig {
    // Hand-written so the secret (inside the keyed HMAC) can never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun", &self.stun)
            .field("turn", &self.turn.as_ref().map(|t| (&t.urls, t.ttl)))
            .finish()
    }
}

impl IceConfig {
    /// Checks the flags: URLs with the right scheme, a secret whenever there is a TURN URL.
    pub fn new(
        stun: Vec<String>,
        turn: Vec<String>,
        turn_secret: Option<&str>,
        turn_ttl: Duration,
    ) -> Result<Self, IceConfigError> {
        if let Some(bad) = stun.iter().find(|u| !has_scheme(u, &["stun:", "stuns:"])) {
            return Err(IceConfigError::BadStunUrl(bad.clone()));
        }
        if let Some(bad) = turn.iter().find(|u| !has_scheme(u, &["turn:", "turns:"])) {
            return Err(IceConfigError::BadTurnUrl(bad.clone()));
        }
        let turn = if turn.is_empty() {
            None
        } else {
            let secret = turn_secret.ok_or(IceConfigError::TurnWithoutSecret)?;
            if secret.is_empty() {
                return Err(IceConfigError::EmptySecret);
            }
            if turn_ttl.as_secs() == 0 {
                return Err(IceConfigError::ZeroTtl);
            }
            Some(Turn {
                urls: turn,
                mac: Hmac::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes keys of any length"),
                ttl: turn_ttl,
            })
        };
        Ok(Self { stun, turn })
    }

    /// The `ice_servers` for one client at `now_unix` (seconds since the epoch): the STUN
    /// entry, then the TURN entry with a credential valid until `now_unix + ttl`.
    pub fn servers_for(&self, client: &ClientId, now_unix: u64) -> Vec<IceServer> {
        let mut servers = Vec::with_capacity(2);
        if !self.stun.is_empty() {
            servers.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if let Some(turn) = &self.turn {
            let expiry = now_unix.saturating_add(turn.ttl.as_secs());
            // The client's key, not its id: TURN servers log usernames.
            let username = format!("{expiry}:{:016x}", client.key());
            let credential = sign(turn.mac.clone(), &username);
            servers.push(IceServer {
                urls: turn.urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

/// The TURN REST credential for `username` under `secret`: base64 of HMAC-SHA1.
pub fn turn_credential(secret: &[u8], username: &str) -> String {
    sign(
        Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
        username,
    )
}

fn sign(mut mac: Hmac<Sha1>, username: &str) -> String {
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `url` starts with one of `schemes`, ignoring ASCII case as URL schemes do.
fn has_scheme(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
            && url.len() > scheme.len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str) -> ClientId {
        ClientId::parse(id).unwrap()
    }

    #[test]
    fn credentials_match_an_independent_hmac_sha1() {
        // Computed with Python: base64.b64encode(hmac.new(secret, username, hashlib.sha1).digest())
        assert_eq!(
            turn_credential(b"north-sea-turn-secret", "1700003600:3f2ac1"),
            "hdA6WrZOtyAW2v7O3lVHwfVDFgs="
        );
        assert_eq!(
            turn_credential(b"secret", "1433895918:demo"),
            "neSL8OG0trLN41QRpxzD1MQYBr4="
        );
    }

    #[test]
    fn turn_entries_carry_an_expiring_username_and_its_credential() {
        let ice = IceConfig::new(
            vec!["stun:stun.example.org:3478".into()],
            vec![
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:5349".into(),
            ],
            Some("north-sea-turn-secret"),
            Duration::from_secs(3600),
        )
        .unwrap();
        let servers = ice.servers_for(&client("3f2ac1"), 1_700_000_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["stun:stun.example.org:3478"]);
        assert_eq!(servers[0].username, None);
        let turn = &servers[1];
        assert_eq!(turn.urls.len(), 2);
        let key = client("3f2ac1").key();
        assert_eq!(
            turn.username,
            Some(format!("1700003600:{key:016x}")),
            "the key, not the id"
        );
        assert_eq!(
            turn.credential.as_deref(),
            Some("NV7Mq4r1GdrkYyFasIgkL31uZJc=")
        );
    }

    #[test]
    fn credentials_differ_per_client_and_per_expiry() {
        let ice = IceConfig::new(
            vec![],
            vec!["turn:t.example:3478".into()],
            Some("s3cret"),
            Duration::from_secs(60),
        )
        .unwrap();
        let a = &ice.servers_for(&client("alice"), 1000)[0];
        let b = &ice.servers_for(&client("bob"), 1000)[0];
        let later = &ice.servers_for(&client("alice"), 1001)[0];
        assert_eq!(
            a.username,
            Some(format!("1060:{:016x}", client("alice").key()))
        );
        assert_ne!(a.credential, b.credential);
        assert_ne!(a.credential, later.credential);
    }

    #[test]
    fn without_flags_there_are_no_servers() {
        let ice = IceConfig::default();
        assert!(ice.servers_for(&client("a"), 0).is_empty());
    }

    #[test]
    fn stun_only_gives_one_entry_without_credentials() {
        let ice = IceConfig::new(
            vec!["stun:a.example:3478".into(), "stun:b.example:3478".into()],
            vec![],
            None,
            Duration::from_secs(3600),
        )
        .unwrap();
        let servers = ice.servers_for(&client("a"), 0);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls.len(), 2);
        assert_eq!(servers[0].credential, None);
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        let ttl = Duration::from_secs(3600);
        assert_eq!(
            IceConfig::new(vec!["stun.example.org".into()], vec![], None, ttl).unwrap_err(),
            IceConfigError::BadStunUrl("stun.example.org".into())
        );
        assert_eq!(
            IceConfig::new(vec![], vec!["stun:x.example".into()], Some("s"), ttl).unwrap_err(),
            IceConfigError::BadTurnUrl("stun:x.example".into())
        );
        assert_eq!(
            IceConfig::new(vec![], vec!["turn:x.example".into()], None, ttl).unwrap_err(),
            IceConfigError::TurnWithoutSecret
        );
        assert_eq!(
            IceConfig::new(vec![], vec!["turn:x.example".into()], Some(""), ttl).unwrap_err(),
            IceConfigError::EmptySecret
        );
        assert_eq!(
            IceConfig::new(
                vec![],
                vec!["turn:x.example".into()],
                Some("s"),
                Duration::ZERO
            )
            .unwrap_err(),
            IceConfigError::ZeroTtl
        );
        // A secret alone, without TURN URLs, is harmless: nothing is signed.
        assert!(IceConfig::new(vec![], vec![], Some("s"), ttl).is_ok());
        // Schemes are case-insensitive, as in URLs.
        assert!(IceConfig::new(vec!["STUN:x.example".into()], vec![], None, ttl).is_ok());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let ice = IceConfig::new(
            vec![],
            vec!["turn:x.example".into()],
            Some("do-not-print-me"),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(!format!("{ice:?}").contains("do-not-print-me"));
    }
}
