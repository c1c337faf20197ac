//! The node's own TLS: `--tls-cert` and `--tls-key` make the `--listen` listener speak https
//! and wss. This module reads the PEM files and builds the rustls server configuration; it
//! never touches a connection (actix-tls accepts them).
//!
//! The configuration runs on rustls's `ring` provider, the one crypto library of the whole
//! tree (the cluster's seal, the NATS client and `tandem moderation` use it too), so the
//! binary carries no second one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the node cannot serve TLS with the files it was given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// One of the pair was given without the other.
    #[error("--tls-cert and --tls-key go together: {given} was given without {missing}")]
    HalfConfigured {
        given: &'static str,
        missing: &'static str,
    },
    /// A file could not be read (missing, or not readable by the node's user).
    #[error("cannot read {flag} {path}: {source}")]
    Unreadable {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a malformed one.
    #[error(
        "--tls-cert {path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`): {reason}"
    )]
    BadCertificate { path: PathBuf, reason: String },
    /// The key file holds no PEM private key, or a malformed one.
    #[error(
        "--tls-key {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted): {reason}"
    )]
    BadKey { path: PathBuf, reason: String },
    /// rustls refused the pair (the key does not match the certificate, or is of a kind it
    /// cannot sign with).
    #[error("--tls-cert {cert} and --tls-key {key} cannot be used together: {source}")]
    Refused {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

impl TlsError {
    /// What went wrong, for callers that decide by it rather than by the text.
    pub fn kind(&self) -> TlsErrorKind {
        match self {
            Self::HalfConfigured { .. } => TlsErrorKind::HalfConfigured,
            Self::Unreadable { .. } => TlsErrorKind::Unreadable,
            Self::BadCertificate { .. } => TlsErrorKind::BadCertificate,
            Self::BadKey { .. } => TlsErrorKind::BadKey,
            Self::Refused { .. } => TlsErrorKind::Refused,
        }
    }
}

/// The kinds of [`TlsError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsErrorKind {
    HalfConfigured,
    Unreadable,
    BadCertificate,
    BadKey,
    Refused,
}

/// The certificate chain and key the node serves https with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates, the node's own first, then its chain (certbot's `fullchain.pem`).
    pub cert: PathBuf,
    /// Its PEM private key (certbot's `privkey.pem`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The pair from `--tls-cert` and `--tls-key`: both, neither (`None`), or an error.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::HalfConfigured {
                given: "--tls-cert",
                missing: "--tls-key",
            }),
            (None, Some(_)) => Err(TlsError::HalfConfigured {
                given: "--tls-key",
                missing: "--tls-cert",
            }),
        }
    }

    /// Reads both files and builds the server configuration: TLS 1.2 and 1.3 on the ring
    /// provider, no client certificates. actix adds the `http/1.1` ALPN protocol.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let cert_pem = read(&self.cert, "--tls-cert")?;
        let key_pem = read(&self.key, "--tls-key")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| TlsError::BadCertificate {
                path: self.cert.clone(),
                reason: err.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::BadCertificate {
                path: self.cert.clone(),
                reason: "no certificate in it".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::BadKey {
            path: self.key.clone(),
            reason: err.to_string(),
        })?;
        let refused = |source| TlsError::Refused {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source,
        };
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(refused)
    }
}

fn read(path: &Path, flag: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    #[test]
    fn both_files_or_neither() {
        let path = Path::new("x.pem");
        assert_eq!(TlsFiles::from_flags(None, None).unwrap(), None);
        assert!(TlsFiles::from_flags(Some(path), Some(path))
            .unwrap()
            .is_some());
        let half = TlsFiles::from_flags(Some(path), None).unwrap_err();
        assert_eq!(half.kind(), TlsErrorKind::HalfConfigured);
        assert!(half.to_string().contains("--tls-key"), "{half}");
        let half = TlsFiles::from_flags(None, Some(path)).unwrap_err();
        assert_eq!(half.kind(), TlsErrorKind::HalfConfigured);
    }

    #[test]
    fn missing_and_malformed_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsFiles {
            cert: dir.path().join("none.pem"),
            key: dir.path().join("none.pem"),
        };
        let err = missing.server_config().unwrap_err();
        assert_eq!(err.kind(), TlsErrorKind::Unreadable);
        assert!(err.to_string().contains("none.pem"), "{err}");

        let not_pem = files(dir.path(), "hello\n", "hello\n");
        assert_eq!(
            not_pem.server_config().unwrap_err().kind(),
            TlsErrorKind::BadCertificate
        );

        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            files(dir.path(), broken, "x")
                .server_config()
                .unwrap_err()
                .kind(),
            TlsErrorKind::BadCertificate
        );

        // A well-formed certificate with no key beside it.
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            files(dir.path(), cert, "no key here\n")
                .server_config()
                .unwrap_err()
                .kind(),
            TlsErrorKind::BadKey
        );
    }
}
