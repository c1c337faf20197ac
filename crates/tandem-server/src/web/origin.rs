//! Which web pages may open a WebSocket to this node: the `Origin` check at the handshake.
//!
//! Browsers send `Origin` on every WebSocket handshake and let any page open one to any
//! host, with the user's cookies; without this check, any site a user visits could chat in
//! their name (cross-site WebSocket hijacking). Clients that are not browsers (the load
//! generator, native apps, tests) send no `Origin` and are let through: they cannot be made
//! to act for someone else. This module decides; it never touches the connection.

use std::fmt;

/// Why an `--allowed-origin` value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--allowed-origin {0:?} must be * or scheme://host[:port] (e.g. https://chat.example.org), without a path")]
pub struct BadOrigin(pub String);

/// The origins allowed to open `/ws`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// `--allowed-origin '*'`: any page may connect.
    any: bool,
    /// Allowed origins besides the node's own, lower-cased `scheme://host[:port]`.
    allowed: Vec<String>,
}

/// A handshake refused because of its `Origin`.
#[derive(Debug, PartialEq, Eq)]
pub struct ForeignOrigin(pub String);

impl fmt::Display for ForeignOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "origin {:?} may not open a WebSocket here: this node accepts its own pages and the \
             origins its operator allows (--allowed-origin)",
            self.0
        )
    }
}

impl OriginPolicy {
    /// Same origin, plus the `--allowed-origin` values (`*` allows any).
    pub fn new(allowed: &[String]) -> Result<Self, BadOrigin> {
        let mut policy = Self::default();
        for origin in allowed {
            let origin = origin.trim();
            if origin == "*" {
                policy.any = true;
                continue;
            }
            let normal = normalize(origin).ok_or_else(|| BadOrigin(origin.to_owned()))?;
            policy.allowed.push(normal);
        }
        Ok(policy)
    }

    /// Whether a handshake with this `Origin` and `Host` header may proceed. No `Origin` (not
    /// a browser) is allowed; so is an `Origin` whose `host[:port]` is the `Host` the request
    /// was sent to (the node's own page), and any listed one.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), ForeignOrigin> {
        let Some(origin) = origin else {
            return Ok(());
        };
        let normal = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let same_origin = match (authority(&normal), host) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.trim()),
            _ => false,
        };
        if self.any || same_origin || self.allowed.contains(&normal) {
            Ok(())
        } else {
            Err(ForeignOrigin(origin.to_owned()))
        }
    }
}

/// `scheme://host[:port]` lower-cased, if `origin` is one (http or https, no path).
fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let authority = authority(&origin)?;
    let valid = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    valid.then_some(origin)
}

/// The `host[:port]` of an `http://` or `https://` origin.
fn authority(origin: &str) -> Option<&str> {
    origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn clients_without_an_origin_are_allowed() {
        assert!(policy(&[]).check(None, Some("chat.example.org")).is_ok());
        assert!(policy(&[]).check(None, None).is_ok());
    }

    #[test]
    fn the_nodes_own_pages_are_allowed_by_default() {
        let p = policy(&[]);
        assert!(p
            .check(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080"))
            .is_ok());
        assert!(p
            .check(Some("https://Chat.Example.org"), Some("chat.example.org"))
            .is_ok());
    }

    #[test]
    fn other_pages_are_refused_by_default() {
        let p = policy(&[]);
        let refused = p
            .check(Some("https://evil.example"), Some("chat.example.org"))
            .unwrap_err();
        assert_eq!(refused, ForeignOrigin("https://evil.example".into()));
        // Same host on another port is another origin.
        assert!(p
            .check(Some("http://127.0.0.1:9999"), Some("127.0.0.1:8080"))
            .is_err());
        // Sandboxed frames and files send "null".
        assert!(p.check(Some("null"), Some("127.0.0.1:8080")).is_err());
        // Without a Host header nothing is "same".
        assert!(p.check(Some("http://127.0.0.1:8080"), None).is_err());
    }

    #[test]
    fn listed_origins_are_allowed_besides_the_own() {
        let p = policy(&["https://chat.example.org/", "http://localhost:3000"]);
        assert!(p
            .check(Some("https://chat.example.org"), Some("10.0.0.5:8080"))
            .is_ok());
        assert!(p
            .check(Some("http://localhost:3000"), Some("10.0.0.5:8080"))
            .is_ok());
        assert!(p
            .check(Some("http://10.0.0.5:8080"), Some("10.0.0.5:8080"))
            .is_ok());
        assert!(p
            .check(Some("https://chat.example.org.evil.example"), Some("x"))
            .is_err());
        assert!(p.check(Some("http://chat.example.org"), Some("x")).is_err());
    }

    #[test]
    fn a_star_allows_any_origin() {
        assert!(policy(&["*"])
            .check(Some("https://anywhere.example"), Some("x"))
            .is_ok());
    }

    #[test]
    fn malformed_allowed_origins_are_refused_at_start() {
        let bad = |s: &str| OriginPolicy::new(&[s.to_owned()]).unwrap_err();
        assert_eq!(
            bad("chat.example.org"),
            BadOrigin("chat.example.org".into())
        );
        assert_eq!(
            bad("https://chat.example.org/app"),
            BadOrigin("https://chat.example.org/app".into())
        );
        assert_eq!(bad("ftp://x"), BadOrigin("ftp://x".into()));
    }
}
