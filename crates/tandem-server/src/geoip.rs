//! The client's country from a MaxMind GeoIP2 / GeoLite2 database (`--geoip FILE`), looked up
//! by the TCP peer's address. Behind a proxy the peer is the proxy: use `--country-header`
//! there instead.

use std::net::IpAddr;
use std::path::Path;

use tandem_match::Country;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("opening GeoIP database {path}: {source}")]
pub struct GeoIpError {
    path: String,
    source: maxminddb::MaxMindDbError,
}

/// An opened database, read into memory once at start.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoIp({})", self.reader.metadata().database_type)
    }
}

impl GeoIp {
    /// Opens a GeoIP2/GeoLite2 Country or City database.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        maxminddb::Reader::open_readfile(path)
            .map(|reader| Self { reader })
            .map_err(|source| GeoIpError {
                path: path.display().to_string(),
                source,
            })
    }

    /// The country of `ip`, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let record: maxminddb::geoip2::Country = match self.reader.lookup(ip) {
            Ok(result) => result.decode().ok().flatten()?,
            Err(error) => {
                tracing::debug!(%error, "geoip lookup failed");
                return None;
            }
        };
        record.country.iso_code.and_then(Country::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_database_maps_loopback_addresses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/geoip-test.mmdb");
        let geoip = GeoIp::open(&path).unwrap();
        let at = |ip: &str| geoip.country(ip.parse().unwrap()).map(|c| c.to_string());
        assert_eq!(at("127.0.0.1").as_deref(), Some("DE"));
        assert_eq!(at("127.0.0.2").as_deref(), Some("FR"));
        assert_eq!(at("127.0.0.3"), None);
        assert!(GeoIp::open(Path::new("/nonexistent.mmdb")).is_err());
    }
}
