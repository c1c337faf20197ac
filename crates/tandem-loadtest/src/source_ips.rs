//! `--source-ips`: the local addresses users connect from, so a run is not capped by the
//! ephemeral ports of a single source address (about 28,000 per address on Linux).
//!
//! Only loopback addresses are accepted: this tool loads machines over loopback, and every
//! address in 127.0.0.0/8 works on Linux without any setup.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// The source addresses, handed out round-robin by user index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceIps(Vec<Ipv4Addr>);

impl SourceIps {
    /// The address user `index` binds to.
    pub fn for_user(&self, index: usize) -> Ipv4Addr {
        self.0[index % self.0.len()]
    }

    /// Every address, in order.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.0
    }

    /// The flag's value that parses back into these addresses (for worker processes).
    pub fn to_arg(&self) -> String {
        let addrs: Vec<String> = self.0.iter().map(Ipv4Addr::to_string).collect();
        addrs.join(",")
    }
}

/// Parses `127.0.0.1-127.0.0.8` (a range in the last octet) or `127.0.0.1,127.0.0.5`.
pub fn parse_source_ips(text: &str) -> Result<SourceIps, String> {
    let mut addrs = Vec::new();
    for part in text.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (parse_loopback(first)?, parse_loopback(last)?);
                let [a, b, c, low] = first.octets();
                let [a2, b2, c2, high] = last.octets();
                if (a, b, c) != (a2, b2, c2) || low > high {
                    return Err(format!(
                        "`{part}`: a range may only vary the last octet, upwards, \
                         e.g. 127.0.0.1-127.0.0.8"
                    ));
                }
                addrs.extend((low..=high).map(|d| Ipv4Addr::new(a, b, c, d)));
            }
            None => addrs.push(parse_loopback(part)?),
        }
    }
    Ok(SourceIps(addrs))
}

fn parse_loopback(text: &str) -> Result<Ipv4Addr, String> {
    let addr: Ipv4Addr = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address"))?;
    if !addr.is_loopback() {
        return Err(format!(
            "`{addr}` is not a loopback address: only 127.0.0.0/8 may be used as a source"
        ));
    }
    Ok(addr)
}

/// Connects to `host:port`, from `source` if given (any port of it), else as the system
/// chooses. With a source, the target must have an IPv4 address.
pub async fn connect_tcp(host: &str, port: u16, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let target = tokio::net::lookup_host((host, port))
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no IPv4 address"))?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_covers_the_last_octet_inclusively() {
        let ips = parse_source_ips("127.0.0.1-127.0.0.4").unwrap();
        let expected: Vec<Ipv4Addr> = (1..=4).map(|d| Ipv4Addr::new(127, 0, 0, d)).collect();
        assert_eq!(ips.addrs(), expected.as_slice());
        assert_eq!(ips.for_user(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(ips.for_user(5), Ipv4Addr::new(127, 0, 0, 2));
    }

    #[test]
    fn a_list_and_ranges_mix_and_round_trip() {
        let ips = parse_source_ips("127.0.0.9, 127.1.2.3-127.1.2.4").unwrap();
        assert_eq!(ips.to_arg(), "127.0.0.9,127.1.2.3,127.1.2.4");
        assert_eq!(parse_source_ips(&ips.to_arg()).unwrap(), ips);
    }

    #[tokio::test]
    async fn a_user_connects_from_its_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let source = Ipv4Addr::new(127, 0, 0, 3);
        let step = std::time::Duration::from_secs(5);
        let (connected, accepted) = tokio::time::timeout(step, async {
            tokio::join!(
                connect_tcp("127.0.0.1", port, Some(source)),
                listener.accept()
            )
        })
        .await
        .expect("connects in time");
        let local = connected.unwrap().local_addr().unwrap();
        let (_, peer) = accepted.unwrap();
        assert_eq!(local.ip(), source);
        assert_eq!(peer.ip(), source);
    }

    #[test]
    fn non_loopback_and_malformed_sources_are_refused() {
        let err = parse_source_ips("10.0.0.1").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        assert!(parse_source_ips("127.0.0.1-10.0.0.2").is_err());
        assert!(parse_source_ips("127.0.0.8-127.0.0.1").is_err());
        assert!(parse_source_ips("127.0.0.1-127.0.1.2").is_err());
        assert!(parse_source_ips("localhost").is_err());
        assert!(parse_source_ips("").is_err());
        assert!(parse_source_ips("::1").is_err());
    }
}
