//! Entitlements: operator-signed tokens that unlock premium matching (gender filters, college
//! mode). The operator's own systems (payments, college e-mail verification) issue them with
//! the shared secret; tandem only verifies, and never stores them.
//!
//! A token is `v1.<claims>.<signature>`: the claims are base64url JSON
//! `{"exp": <unix seconds>, "features": ["gender_filter", "college"], "college": "mit.edu"}`,
//! the signature is base64url HMAC-SHA256 over `v1.<claims>` under `--entitlement-secret`.
//! `tandem entitlement issue` mints one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token may grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Filter partners by gender (`want_gender`).
    GenderFilter,
    /// College mode; the token names the verified college domain.
    College,
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, in seconds since the UNIX epoch.
    pub exp: u64,
    /// The features granted.
    pub features: Vec<Feature>,
    /// The verified college domain, with `college`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub college: Option<String>,
}

impl Claims {
    /// Whether the token grants `feature`.
    pub fn grants(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntitlementError {
    #[error("the entitlement is not a token this server issued")]
    Malformed,
    #[error("the entitlement's signature does not match")]
    BadSignature,
    #[error("the entitlement has expired")]
    Expired,
    #[error("this server has no entitlement secret, so it grants no premium feature")]
    NotConfigured,
}

/// The operator's secret, for signing and verifying.
#[derive(Clone)]
pub struct EntitlementKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for EntitlementKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntitlementKey(..)")
    }
}

const VERSION: &str = "v1";

impl EntitlementKey {
    /// A key from the operator's secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secret: secret.as_ref().to_vec(),
        }
    }

    fn mac(&self, signed: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(signed.as_bytes());
        mac
    }

    /// Mints a token.
    pub fn sign(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signed = format!("{VERSION}.{body}");
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// Checks a token's signature (in constant time) and expiry at `now` (UNIX seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, EntitlementError> {
        let mut parts = token.split('.');
        let (Some(VERSION), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EntitlementError::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| EntitlementError::Malformed)?;
        self.mac(&format!("{VERSION}.{body}"))
            .verify_slice(&signature)
            .map_err(|_| EntitlementError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(EntitlementError::Malformed)?;
        if claims.exp <= now {
            return Err(EntitlementError::Expired);
        }
        Ok(claims)
    }
}

/// Seconds since the UNIX epoch, for expiries.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            exp,
            features: vec![Feature::GenderFilter],
            college: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = EntitlementKey::new("s3cret");
        let token = key.sign(&claims(1_000));
        assert_eq!(key.verify(&token, 999), Ok(claims(1_000)));
        assert_eq!(key.verify(&token, 1_000), Err(EntitlementError::Expired));
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let key = EntitlementKey::new("s3cret");
        let token = key.sign(&claims(1_000));
        let other = EntitlementKey::new("guess").sign(&claims(1_000));
        assert_eq!(key.verify(&other, 0), Err(EntitlementError::BadSignature));
        // Change the claims but keep the signature: a longer expiry is a forgery.
        let (head, signature) = token.rsplit_once('.').unwrap();
        let _ = head;
        let forged_body = URL_SAFE_NO_PAD
            .encode(br#"{"exp":99999999999,"features":["gender_filter","college"]}"#);
        let forged = format!("v1.{forged_body}.{signature}");
        assert_eq!(key.verify(&forged, 0), Err(EntitlementError::BadSignature));
        for junk in ["", "v1", "v1.a", "v2.a.b", "v1.a.b.c", "v1.!!.??"] {
            assert_eq!(
                key.verify(junk, 0),
                Err(EntitlementError::Malformed),
                "{junk}"
            );
        }
    }
}
