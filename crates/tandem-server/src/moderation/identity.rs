//! Who a client is, as far as the server can tell: a client id it issued and signed, the
//! address it connects from, and the device hint the page sends.
//!
//! A client id is 128 random bits in hex, a dot, and the first 128 bits of an HMAC-SHA256 of
//! them under the id secret (base64url): `--id-secret`, shared by the nodes of a cluster, or
//! a secret generated once and kept in the data directory. An id that does not verify (made
//! up, altered, or issued under another secret) is replaced by a fresh one, silently: the
//! client learns its id from `welcome`. The secret never leaves the node; the ids are
//! opaque to clients and never shown to partners.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tandem_ids::ClientId;

/// The length of the secret generated for a node without `--id-secret`, in bytes.
const SECRET_BYTES: usize = 32;

/// The cookie that carries the client id.
pub const CLIENT_COOKIE: &str = "tandem_id";

/// The file in the data directory that keeps a generated secret.
const SECRET_FILE: &str = "id-secret";

/// Issues and verifies client ids.
#[derive(Clone)]
pub struct IdIssuer {
    /// The HMAC keyed with the secret (cloned per id so the key schedule runs once).
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for IdIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdIssuer(..)")
    }
}

impl IdIssuer {
    /// An issuer signing with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC takes a key of any length"),
        }
    }

    fn signature(&self, random: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(random.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// A fresh client id.
    pub fn issue(&self) -> ClientId {
        let random = format!("{:032x}", rand::random::<u128>());
        let id = format!("{random}.{}", self.signature(&random));
        ClientId::parse(&id).expect("an issued id is well formed")
    }

    /// The client id `text`, if a node holding this secret issued it.
    pub fn verify(&self, text: &str) -> Option<ClientId> {
        let (random, signature) = text.split_once('.')?;
        if random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let expected = self.signature(random);
        same_secret(&expected, signature)
            .then(|| ClientId::parse(text))
            .flatten()
    }
}

/// Whether two secrets (or their hashes) are equal, compared in time that does not depend
/// on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why the id secret cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("--id-secret must be at least 16 bytes (32 or more recommended)")]
    TooShort,
    #[error("the id secret in {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The id secret: `given` (`--id-secret`), or the one kept in `data_dir`, made there on the
/// first start (readable by the node's user only).
pub fn id_secret(given: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if let Some(given) = given {
        if given.len() < 16 {
            return Err(SecretError::TooShort);
        }
        return Ok(given.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    let failed = |source| SecretError::File {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 2 * SECRET_BYTES => Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => Err(failed(std::io::Error::other(
            "too short: delete it to make a new one",
        ))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(failed)?;
            let secret: String = (0..SECRET_BYTES)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(failed)?;
            file.write_all(secret.as_bytes()).map_err(failed)?;
            file.sync_all().map_err(failed)?;
            Ok(secret.into_bytes())
        }
        Err(err) => Err(failed(err)),
    }
}

/// Where a client connects from: the socket's peer, or, when the operator names a trusted
/// proxy's header (`--client-ip-header`), the address that proxy put there. In a
/// comma-separated list (`X-Forwarded-For: client, proxy1, proxy2`) the last entry is taken:
/// the address that connected to the proxy nearest to tandem, the only one that proxy
/// vouches for. A header that is absent or unreadable falls back to the peer.
pub fn client_ip(req: &HttpRequest, header: Option<&HeaderName>) -> Option<IpAddr> {
    let from_header = header
        .and_then(|name| req.headers().get_all(name).last())
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| parse_ip(last.trim()));
    from_header.or_else(|| req.peer_addr().map(|addr| addr.ip()))
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5678`, `[::1]:5678`).
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// The value of the `tandem_id` cookie, if present.
pub fn client_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CLIENT_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn an_issued_id_verifies_and_a_forged_or_altered_one_does_not() {
        let issuer = IdIssuer::new(b"the cluster's id secret");
        let id = issuer.issue();
        assert!(id.as_str().len() <= ClientId::MAX_LEN);
        assert_eq!(issuer.verify(id.as_str()), Some(id.clone()));
        let other = IdIssuer::new(b"another cluster's secret");
        assert_eq!(other.verify(id.as_str()), None, "another secret");
        let mut altered = id.as_str().to_owned();
        altered.replace_range(0..1, if altered.starts_with('0') { "1" } else { "0" });
        assert_eq!(issuer.verify(&altered), None, "a changed random part");
        for forged in ["keep-me_42", "", ".", "0123456789abcdef0123456789abcdef."] {
            assert_eq!(issuer.verify(forged), None, "{forged:?}");
        }
        assert_ne!(issuer.issue(), id, "each id is new");
    }

    #[test]
    fn a_generated_secret_is_kept_and_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = id_secret(None, dir.path()).unwrap();
        assert_eq!(first.len(), 2 * SECRET_BYTES);
        assert_eq!(
            id_secret(None, dir.path()).unwrap(),
            first,
            "the same after a restart"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap();
            assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(
            id_secret(Some("given-secret-0123"), dir.path()).unwrap(),
            b"given-secret-0123"
        );
        assert!(matches!(
            id_secret(Some("short"), dir.path()),
            Err(SecretError::TooShort)
        ));
    }

    #[test]
    fn the_client_ip_is_the_peer_or_the_last_hop_of_the_trusted_header() {
        let peer: std::net::SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let xff = HeaderName::from_static("x-forwarded-for");
        let req = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("x-forwarded-for", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(
            client_ip(&req, None),
            Some(peer.ip()),
            "untrusted: the peer"
        );
        assert_eq!(client_ip(&req, Some(&xff)), "203.0.113.7".parse().ok());
        let with_port = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("x-forwarded-for", "[2001:db8::1]:443"))
            .to_http_request();
        assert_eq!(
            client_ip(&with_port, Some(&xff)),
            "2001:db8::1".parse().ok()
        );
        let junk = TestRequest::default()
            .peer_addr(peer)
            .insert_header(("x-forwarded-for", "not an address"))
            .to_http_request();
        assert_eq!(
            client_ip(&junk, Some(&xff)),
            Some(peer.ip()),
            "unreadable: the peer"
        );
    }
}
