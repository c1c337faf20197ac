//! The bans in force, indexed for the handshake: by client id, by device id, by address, and
//! by address range. Plain data; [`super::bans::Bans`] owns one behind a lock and keeps it in
//! step with the store.

use std::collections::HashMap;
use std::net::IpAddr;

use tandem_engine::session::Identity;

use super::records::{Ban, Subject, UnixSecs};

/// An address range in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRange {
    /// The first address of the range (host bits cleared).
    start: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The narrowest IPv6 range banned: one host holds a whole /64.
    pub const V6_MIN_PREFIX: u8 = 64;

    /// Reads `203.0.113.7`, `203.0.113.0/24`, `2001:db8::1` or `2001:db8::/48`. A single
    /// IPv6 address, or a range narrower than a /64, becomes its /64.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (
                addr.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u8>().ok()?),
            ),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        Some(Self::new(addr, prefix))
    }

    /// The range of `addr` with `prefix` bits (`None`: the address alone, or its /64).
    pub fn new(addr: IpAddr, prefix: Option<u8>) -> Self {
        let addr = addr.to_canonical();
        let prefix = match addr {
            IpAddr::V4(_) => prefix.unwrap_or(32).min(32),
            IpAddr::V6(_) => prefix.unwrap_or(128).min(Self::V6_MIN_PREFIX),
        };
        Self {
            start: mask(addr, prefix),
            prefix,
        }
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.start.is_ipv4() && mask(ip, self.prefix) == self.start
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.start, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// The bans that may be in force, indexed by what they name.
#[derive(Debug, Default)]
pub struct BanList {
    bans: HashMap<String, Ban>,
    clients: HashMap<String, Vec<String>>,
    devices: HashMap<String, Vec<String>>,
    ranges: Vec<(IpRange, String)>,
}

impl BanList {
    /// Adds or replaces a ban (one lifted stays out).
    pub fn apply(&mut self, ban: Ban) {
        self.remove(&ban.id);
        if ban.lifted.is_some() {
            return;
        }
        match &ban.subject {
            Subject::Client(client) => self
                .clients
                .entry(client.clone())
                .or_default()
                .push(ban.id.clone()),
            Subject::Device(device) => self
                .devices
                .entry(device.clone())
                .or_default()
                .push(ban.id.clone()),
            Subject::Ip(range) => match IpRange::parse(range) {
                Some(range) => self.ranges.push((range, ban.id.clone())),
                None => return tracing::warn!(ban = %ban.id, "a ban of an unreadable address"),
            },
        }
        self.bans.insert(ban.id.clone(), ban);
    }

    /// Drops a ban.
    pub fn remove(&mut self, id: &str) {
        let Some(ban) = self.bans.remove(id) else {
            return;
        };
        let unlink = |map: &mut HashMap<String, Vec<String>>, key: &str| {
            if let Some(ids) = map.get_mut(key) {
                ids.retain(|other| other != id);
                if ids.is_empty() {
                    map.remove(key);
                }
            }
        };
        match &ban.subject {
            Subject::Client(client) => unlink(&mut self.clients, client),
            Subject::Device(device) => unlink(&mut self.devices, device),
            Subject::Ip(_) => self.ranges.retain(|(_, other)| other != id),
        }
    }

    /// A ban in force at `now` of the user `who`, the one that lasts longest.
    pub fn find(&self, who: &Identity, now: UnixSecs) -> Option<&Ban> {
        let by_client = self.clients.get(who.client.as_str()).into_iter().flatten();
        let by_device = (who.device.as_ref())
            .and_then(|device| self.devices.get(device.as_str()))
            .into_iter()
            .flatten();
        let by_ip = (self.ranges.iter())
            .filter(|(range, _)| who.ip.is_some_and(|ip| range.contains(ip)))
            .map(|(_, id)| id);
        by_client
            .chain(by_device)
            .chain(by_ip)
            .filter_map(|id| self.bans.get(id))
            .filter(|ban| ban.active(now))
            .max_by_key(|ban| ban.until.unwrap_or(UnixSecs::MAX))
    }

    /// Whether `ban` names `who`.
    pub fn names(ban: &Ban, who: &Identity) -> bool {
        match &ban.subject {
            Subject::Client(client) => who.client.as_str() == client,
            Subject::Device(device) => who.device.as_ref().is_some_and(|d| d.as_str() == device),
            Subject::Ip(range) => (IpRange::parse(range))
                .is_some_and(|range| who.ip.is_some_and(|ip| range.contains(ip))),
        }
    }

    /// Bans in force at `now`.
    pub fn active(&self, now: UnixSecs) -> usize {
        self.bans.values().filter(|ban| ban.active(now)).count()
    }
}

#[cfg(test)]
mod tests {
    use tandem_ids::{ClientId, DeviceId};

    use super::*;
    use crate::moderation::records::Issuer;

    fn ban(id: &str, subject: Subject, until: Option<UnixSecs>) -> Ban {
        Ban {
            id: id.into(),
            subject,
            reason: "test".into(),
            issued_by: Issuer::Moderator { name: "ana".into() },
            at: 0,
            until,
            lifted: None,
            confirmed: false,
        }
    }

    fn who(client: &str, ip: Option<&str>, device: Option<&str>) -> Identity {
        Identity {
            client: ClientId::parse(client).unwrap(),
            ip: ip.map(|ip| ip.parse().unwrap()),
            device: device.map(|d| DeviceId::parse(d).unwrap()),
        }
    }

    #[test]
    fn ranges_cover_their_addresses_and_ipv6_goes_by_64() {
        let v4 = IpRange::parse("203.0.113.0/24").unwrap();
        assert!(v4.contains("203.0.113.200".parse().unwrap()));
        assert!(!v4.contains("203.0.114.1".parse().unwrap()));
        assert!(
            v4.contains("::ffff:203.0.113.9".parse().unwrap()),
            "mapped addresses"
        );
        let host = IpRange::parse("2001:db8:1:2:3:4:5:6").unwrap();
        assert_eq!(host.to_string(), "2001:db8:1:2::/64");
        assert!(host.contains("2001:db8:1:2:ffff::1".parse().unwrap()));
        assert!(!host.contains("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            IpRange::parse("2001:db8::/120").unwrap().to_string(),
            "2001:db8::/64"
        );
        assert!(IpRange::parse("not-an-ip").is_none());
    }

    #[test]
    fn a_ban_finds_its_subject_by_client_device_or_address_while_in_force() {
        let mut list = BanList::default();
        list.apply(ban("c", Subject::Client("bad-client".into()), Some(100)));
        list.apply(ban("d", Subject::Device("bad-device-1".into()), None));
        list.apply(ban("i", Subject::Ip("198.51.100.0/24".into()), Some(50)));
        let at = |list: &BanList, now| {
            let find = |w: &Identity| list.find(w, now).map(|b| b.id.clone());
            (
                find(&who("bad-client", None, None)),
                find(&who("good", Some("198.51.100.7"), None)),
                find(&who("good", Some("192.0.2.1"), Some("bad-device-1"))),
                find(&who("good", Some("192.0.2.1"), Some("good-device-1"))),
            )
        };
        assert_eq!(
            at(&list, 10),
            (Some("c".into()), Some("i".into()), Some("d".into()), None)
        );
        assert_eq!(
            at(&list, 60),
            (Some("c".into()), None, Some("d".into()), None),
            "expired"
        );
        let mut lifted = ban("d", Subject::Device("bad-device-1".into()), None);
        lifted.lifted = Some(super::super::records::Lifted {
            by: "ana".into(),
            at: 20,
        });
        list.apply(lifted);
        assert_eq!(at(&list, 30).2, None, "lifted");
        assert_eq!(list.active(30), 2);
    }
}
