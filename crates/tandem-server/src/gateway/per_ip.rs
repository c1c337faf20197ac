//! Per-address admission at the WebSocket handshake: at most so many connections open from
//! one address at once, and at most so many handshakes a second (a token bucket), so that one
//! machine cannot take the node's descriptors or its handshake budget from everyone else.
//!
//! The address is the client's as moderation defines it (the socket's peer, or the trusted
//! proxy's header); an IPv6 address counts by its /64, which one host holds whole. Loopback
//! addresses are exempt unless the operator includes them (`--limit-loopback`): a developer's
//! load test and a proxy on the same machine would otherwise hit the cap at once (behind a
//! proxy, name its header with `--client-ip-header`, or every user shares the proxy's
//! address).
//!
//! Memory stays bounded: an address is remembered while it has connections open, and for a
//! few seconds after (its bucket refills); idle ones are swept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What an address is counted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(u128);

impl AddressKey {
    /// An IPv4 address by itself, an IPv6 address by its /64.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Self((u128::from(v6) >> 64) << 64 | 1 << 32),
        }
    }
}

/// The limits, from the operator's flags; 0 turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerIpLimits {
    /// Connections open at once from one address.
    pub max_conns: u32,
    /// Handshakes a second from one address, on average.
    pub handshakes_per_sec: f64,
    /// Handshakes one address may make at once before the rate applies.
    pub burst: f64,
    /// Whether loopback addresses count too.
    pub limit_loopback: bool,
}

impl Default for PerIpLimits {
    fn default() -> Self {
        Self {
            max_conns: 32,
            handshakes_per_sec: 10.0,
            burst: 30.0,
            limit_loopback: false,
        }
    }
}

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    #[error("too many connections from your address")]
    Connections,
    #[error("too many connections opened from your address just now; slow down")]
    Rate,
}

struct Entry {
    conns: u32,
    tokens: f64,
    refilled: Instant,
}

/// Addresses remembered before idle ones are swept.
const SWEEP_ABOVE: usize = 4096;

/// The per-address counts of a node.
pub struct PerIp {
    limits: PerIpLimits,
    entries: Mutex<HashMap<AddressKey, Entry>>,
}

/// A connection counted against its address; the count goes down when it is dropped.
pub struct Slot {
    per_ip: Arc<PerIp>,
    key: AddressKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut entries = self.per_ip.entries.lock();
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.conns = entry.conns.saturating_sub(1);
        }
    }
}

impl Slot {
    /// How hard the address pushes now: the connections it holds, or the handshakes it made
    /// lately (its bucket's tokens spent), whichever is more. The challenge grows with it.
    pub fn pressure(&self) -> u32 {
        self.pressure_at(Instant::now())
    }

    /// [`Slot::pressure`] at `now` (the bucket refilled up to then).
    pub fn pressure_at(&self, now: Instant) -> u32 {
        let entries = self.per_ip.entries.lock();
        let Some(entry) = entries.get(&self.key) else {
            return 0;
        };
        let limits = &self.per_ip.limits;
        let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
        let tokens = (entry.tokens + elapsed * limits.handshakes_per_sec).min(limits.burst);
        let spent = (limits.burst - tokens).max(0.0);
        entry.conns.max(spent as u32)
    }
}

impl PerIp {
    /// Counts under `limits`.
    pub fn new(limits: PerIpLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a handshake from `ip` at `now`: a slot to hold while the connection lives
    /// (`None` when the address is not counted), or why not.
    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<Option<Slot>, Limited> {
        let Some(ip) = ip else {
            return Ok(None);
        };
        let limits = &self.limits;
        if ip.to_canonical().is_loopback() && !limits.limit_loopback {
            return Ok(None);
        }
        if limits.max_conns == 0 && limits.handshakes_per_sec <= 0.0 {
            return Ok(None);
        }
        let key = AddressKey::of(ip);
        let mut entries = self.entries.lock();
        if entries.len() > SWEEP_ABOVE {
            self.sweep(&mut entries, now);
        }
        let entry = entries.entry(key).or_insert(Entry {
            conns: 0,
            tokens: limits.burst,
            refilled: now,
        });
        if limits.handshakes_per_sec > 0.0 {
            let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * limits.handshakes_per_sec).min(limits.burst);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                return Err(Limited::Rate);
            }
        }
        if limits.max_conns > 0 && entry.conns >= limits.max_conns {
            return Err(Limited::Connections);
        }
        if limits.handshakes_per_sec > 0.0 {
            entry.tokens -= 1.0;
        }
        entry.conns += 1;
        Ok(Some(Slot {
            per_ip: Arc::clone(self),
            key,
        }))
    }

    /// Forgets the addresses with nothing open whose bucket has refilled.
    fn sweep(&self, entries: &mut HashMap<AddressKey, Entry>, now: Instant) {
        let limits = &self.limits;
        let refill = if limits.handshakes_per_sec > 0.0 {
            Duration::from_secs_f64(limits.burst / limits.handshakes_per_sec)
        } else {
            Duration::ZERO
        };
        entries.retain(|_, entry| {
            entry.conns > 0 || now.saturating_duration_since(entry.refilled) < refill
        });
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_pressure_of_an_address_is_its_connections_or_its_recent_handshakes() {
        let per_ip = PerIp::new(PerIpLimits {
            max_conns: 100,
            handshakes_per_sec: 1.0,
            burst: 50.0,
            limit_loopback: false,
        });
        let now = Instant::now();
        let held: Vec<Slot> = (0..3)
            .map(|_| per_ip.admit(ip("192.0.2.1"), now).unwrap().unwrap())
            .collect();
        assert_eq!(held[0].pressure_at(now), 3);
        drop(held);
        // Closed again, but opened just now: they still count until the bucket refills.
        let again = per_ip.admit(ip("192.0.2.1"), now).unwrap().unwrap();
        assert_eq!(again.pressure_at(now), 4);
        let later = now + Duration::from_secs(60);
        let calm = per_ip.admit(ip("192.0.2.1"), later).unwrap().unwrap();
        assert_eq!(
            calm.pressure_at(later),
            2,
            "two held, and one handshake of the bucket spent"
        );
        // Read much later, the bucket has refilled meanwhile: only what is held counts.
        let much_later = later + Duration::from_secs(3600);
        assert_eq!(calm.pressure_at(much_later), 2);
        drop(again);
        assert_eq!(calm.pressure_at(much_later), 1);
        let other = per_ip.admit(ip("192.0.2.9"), now).unwrap().unwrap();
        assert_eq!(other.pressure_at(now), 1);
    }

    #[test]
    fn an_address_holds_at_most_its_connections_and_gets_them_back_when_they_close() {
        let per_ip = PerIp::new(PerIpLimits {
            max_conns: 2,
            handshakes_per_sec: 0.0,
            ..PerIpLimits::default()
        });
        let now = Instant::now();
        let first = per_ip.admit(ip("192.0.2.1"), now).unwrap();
        let _second = per_ip.admit(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            per_ip.admit(ip("192.0.2.1"), now).err(),
            Some(Limited::Connections)
        );
        assert!(
            per_ip.admit(ip("192.0.2.2"), now).is_ok(),
            "another address"
        );
        drop(first);
        assert!(per_ip.admit(ip("192.0.2.1"), now).is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_slash_64_and_loopback_is_exempt_unless_asked() {
        let per_ip = PerIp::new(PerIpLimits {
            max_conns: 1,
            handshakes_per_sec: 0.0,
            ..PerIpLimits::default()
        });
        let now = Instant::now();
        let _one = per_ip.admit(ip("2001:db8:1:2::1"), now).unwrap();
        assert_eq!(
            per_ip.admit(ip("2001:db8:1:2::ffff"), now).err(),
            Some(Limited::Connections),
            "the same /64"
        );
        assert!(per_ip.admit(ip("2001:db8:1:3::1"), now).is_ok());
        for _ in 0..10 {
            assert!(per_ip.admit(ip("127.0.0.1"), now).unwrap().is_none());
        }
        let strict = PerIp::new(PerIpLimits {
            max_conns: 1,
            limit_loopback: true,
            ..PerIpLimits::default()
        });
        let _one = strict.admit(ip("127.0.0.1"), now).unwrap();
        assert_eq!(
            strict.admit(ip("::ffff:127.0.0.1"), now).err(),
            Some(Limited::Connections)
        );
    }

    #[test]
    fn handshakes_beyond_the_burst_wait_for_the_rate() {
        let per_ip = PerIp::new(PerIpLimits {
            max_conns: 0,
            handshakes_per_sec: 10.0,
            burst: 3.0,
            limit_loopback: false,
        });
        let now = Instant::now();
        for _ in 0..3 {
            drop(per_ip.admit(ip("192.0.2.1"), now).unwrap());
        }
        assert_eq!(
            per_ip.admit(ip("192.0.2.1"), now).err(),
            Some(Limited::Rate)
        );
        let later = now + Duration::from_millis(100);
        assert!(
            per_ip.admit(ip("192.0.2.1"), later).is_ok(),
            "one token a tenth of a second"
        );
        assert_eq!(
            per_ip.admit(ip("192.0.2.1"), later).err(),
            Some(Limited::Rate)
        );
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let per_ip = PerIp::new(PerIpLimits::default());
        let now = Instant::now();
        for n in 0..(SWEEP_ABOVE as u32 + 10) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            drop(per_ip.admit(Some(addr), now).unwrap());
        }
        let later = now + Duration::from_secs(10);
        drop(per_ip.admit(ip("192.0.2.1"), later).unwrap());
        drop(per_ip.admit(ip("192.0.2.2"), later).unwrap());
        assert!(per_ip.tracked() <= 3, "{} remembered", per_ip.tracked());
    }
}
