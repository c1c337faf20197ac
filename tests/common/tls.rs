//! TLS for the tests: a certificate authority made with `openssl` for one test, and clients
//! that trust it alone (rustls on ring): a TLS connection, an https GET, a wss [`Client`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::MaybeTlsStream;

use super::{Client, STEP};

/// A certificate authority made for one test (with `openssl`), and a server certificate it
/// signed for 127.0.0.1, all in a directory removed on drop.
pub struct TestCa {
    pub dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("openssl on PATH (scripts/test installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(&[
            &["req", "-x509", "-nodes"][..],
            &ec[..],
            &[
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tandem test CA",
            ],
        ]
        .concat());
        run(&[
            &["req", "-nodes"][..],
            &ec[..],
            &[
                "-keyout",
                "server-key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(
            dir.path().join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        Self { dir }
    }

    /// The CA's certificate, which clients trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server's certificate (for 127.0.0.1 and localhost), signed by the CA.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's private key (PKCS#8 PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    /// A rustls client configuration (ring) that trusts this CA and nothing else.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.ca()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        Arc::new(config)
    }
}

/// A TLS connection to `addr` (from `source` when given, as a user elsewhere would be) that
/// trusts only `ca`, for the name `127.0.0.1`; the TLS error when the handshake fails.
pub async fn tls_connect(
    addr: SocketAddr,
    ca: &TestCa,
    source: Option<IpAddr>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let tcp = tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .expect("connect timed out")?;
    let name = ServerName::IpAddress(addr.ip().into());
    let connector = tokio_rustls::TlsConnector::from(ca.client_config());
    tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
}

/// An https GET over a connection that trusts only `ca`: (status, head lower-cased, body).
pub async fn https_get(addr: SocketAddr, ca: &TestCa, path: &str) -> (u16, String, String) {
    let mut stream = tls_connect(addr, ca, None).await.expect("TLS handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A server may end TLS without close_notify once the response is complete.
    let _ = tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .expect("the response within the step timeout");
    super::parse_response(&response)
}

/// Opens `wss://addr/ws` over a connection that trusts only `ca` (from `source` when given)
/// with these request headers, and reads `welcome`; or the refusal's HTTP status and body.
pub async fn wss_connect(
    addr: SocketAddr,
    ca: &TestCa,
    source: Option<IpAddr>,
    headers: &[(&str, &str)],
) -> Result<Client, (u16, String)> {
    let tls = tls_connect(addr, ca, source).await.expect("TLS handshake");
    let request = super::ws_request(&format!("wss://{addr}/ws"), headers);
    let outcome = tokio::time::timeout(
        STEP,
        tokio_tungstenite::client_async(request, MaybeTlsStream::Rustls(tls)),
    )
    .await
    .expect("WebSocket handshake timed out");
    match outcome {
        Ok((ws, _)) => Ok(Client::welcomed(ws).await),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("WebSocket handshake failed: {other}"),
    }
}
