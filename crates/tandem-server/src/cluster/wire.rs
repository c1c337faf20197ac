//! The inter-node envelope on NATS: one version byte, then the bincode (standard config) of a
//! [`Wire`] value, and nothing after it. A node refuses (counts and drops) a payload whose
//! version it does not know, or that has bytes left over after the value: a layout that
//! changes bumps [`VERSION`], and a rolling upgrade keeps decoding the previous version
//! until every node runs the new code (docs/cluster.md).
//!
//! This is the third vocabulary, kept apart from the client protocol and from actor messages:
//! times are relative (microseconds waited, microseconds until the interest fallback), so
//! nodes need no synchronised clocks; ids are plain integers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bincode::{Decode, Encode};
use tandem_engine::session::{ChatInput, Identity, SessionEvent};
use tandem_engine::shard::RemoteTicket;
use tandem_ids::{ChatId, ClientId, DeviceId, NodeId, SessionId, TicketId};
use tandem_match::{
    Blocked, BucketKey, Country, CountryFilter, Gender, GenderFilter, Interests, Lang, Mode,
    RecentSet, Tag, TicketInfo,
};
use tandem_proto::{EndReason, PartnerInfo, SignalData};

use crate::bus::{Address, Envelope, NodeStatus, Proposal};

/// The layout version this node writes and reads.
pub const VERSION: u8 = 2;

/// The largest envelope accepted (a ticket with 20 interests of 40 characters and 50
/// countries is under 2 KiB; a signal is under the client's 64 KiB frame limit).
const MAX_ENVELOPE: usize = 128 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENVELOPE>()
}

/// Why a payload from NATS was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("empty payload")]
    Empty,
    #[error("unknown envelope version {0} (this node speaks {VERSION})")]
    Version(u8),
    #[error("undecodable envelope: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("bad field: {0}")]
    Field(&'static str),
    #[error("{0} bytes after the envelope")]
    Trailing(usize),
}

impl WireError {
    /// A label for the `tandem_cluster_refused_total{reason}` counter.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty | Self::Decode(_) | Self::Field(_) | Self::Trailing(_) => "malformed",
            Self::Version(_) => "version",
        }
    }
}

/// Wall-clock microseconds since the Unix epoch, for transit times between nodes.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, micros)
}

/// Encodes an envelope sent at `now` (and at wall-clock `sent_at_us`); `None` for what
/// never leaves a node (local-only session events).
pub fn encode(envelope: &Envelope, now: Instant, sent_at_us: u64) -> Option<Vec<u8>> {
    let wire = Wire::from_envelope(envelope, now)?;
    let mut out = vec![VERSION];
    bincode::encode_into_std_write((sent_at_us, &wire), &mut out, config()).ok()?;
    Some(out)
}

/// A payload from NATS, decoded.
#[derive(Debug)]
pub struct Received {
    pub envelope: Envelope,
    /// The sender's wall clock when it published, in Unix microseconds.
    pub sent_at_us: u64,
}

/// Decodes a payload received at `now`.
pub fn decode(payload: &[u8], now: Instant) -> Result<Received, WireError> {
    let (&version, body) = payload.split_first().ok_or(WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let ((sent_at_us, wire), read): ((u64, Wire), usize) =
        bincode::decode_from_slice(body, config())?;
    if read != body.len() {
        return Err(WireError::Trailing(body.len() - read));
    }
    let envelope = wire.into_envelope(now)?;
    Ok(Received {
        envelope,
        sent_at_us,
    })
}

#[derive(Encode, Decode, Debug)]
enum Wire {
    ToSession {
        session: u64,
        event: WireEvent,
    },
    Spill(WireTicket),
    Withdraw {
        ticket: u64,
        bucket: WireBucket,
    },
    Reserve(WireProposal),
    Commit(WireProposal),
    Committed {
        chat: u64,
        node: String,
        session: u64,
    },
    Refused {
        chat: u64,
    },
    Requeue {
        ticket: u64,
    },
    Heartbeat {
        node: String,
        shards: u16,
        online: u64,
        waiting: u64,
        matches: u64,
        skips: u64,
        draining: bool,
        http: String,
        instance: u64,
        epoch: u32,
    },
    Drain,
    Probe {
        sent_at_us: u64,
    },
}

#[derive(Encode, Decode, Debug)]
enum WireEvent {
    PartnerEnded { chat: u64, reason: EndReason },
    Msg { chat: u64, text: String },
    Typing { chat: u64, on: bool },
    Signal { chat: u64, data: SignalData },
}

#[derive(Encode, Decode, Debug, Clone, Copy)]
struct WireBucket {
    /// 0 text, 1 video.
    mode: u8,
    lang: [u8; 8],
}

#[derive(Encode, Decode, Debug)]
struct WireTicket {
    home: String,
    instance: u64,
    epoch: u32,
    ticket: u64,
    session: u64,
    bucket: WireBucket,
    recent: Vec<u64>,
    /// How long the user has waited, so the owner keeps longest-waiting-first across nodes.
    waited_us: u64,
    interests: Vec<String>,
    /// Microseconds from now until a random partner is acceptable (negative: already);
    /// `None`: never (`interests_only`).
    random_in_us: Option<i64>,
    country: [u8; 2],
    countries: Vec<[u8; 2]>,
    /// `m`, `f` or `x`.
    gender: Option<u8>,
    want_gender: u8,
    college: Option<String>,
    same_college: bool,
    public: PartnerInfo,
    /// The user's client key, and the clients it blocks.
    client: u64,
    blocked: Vec<u64>,
    who: WireIdentity,
}

/// Who a user is, as its home node decided.
#[derive(Encode, Decode, Debug)]
struct WireIdentity {
    client: String,
    ip: Option<String>,
    device: Option<String>,
}

impl WireIdentity {
    fn of(who: &Identity) -> Self {
        Self {
            client: who.client.as_str().to_owned(),
            ip: who.ip.map(|ip| ip.to_string()),
            device: who.device.as_ref().map(|d| d.as_str().to_owned()),
        }
    }

    fn into_identity(self) -> Result<Arc<Identity>, WireError> {
        let field = || WireError::Field("who");
        Ok(Arc::new(Identity {
            client: ClientId::parse(&self.client).ok_or_else(field)?,
            ip: match self.ip {
                Some(ip) => Some(ip.parse().map_err(|_| field())?),
                None => None,
            },
            device: match self.device {
                Some(device) => Some(DeviceId::parse(&device).ok_or_else(field)?),
                None => None,
            },
        }))
    }
}

#[derive(Encode, Decode, Debug)]
struct WireProposal {
    chat: u64,
    ticket: u64,
    partner_node: String,
    partner_session: u64,
    partner_instance: u64,
    partner_ticket: u64,
    partner_public: PartnerInfo,
    initiator: bool,
    common_interests: Vec<String>,
    owner: String,
    partner_who: WireIdentity,
}

impl WireBucket {
    fn of(bucket: &BucketKey) -> Self {
        let mut lang = [0u8; 8];
        for (slot, b) in lang.iter_mut().zip(bucket.lang.as_str().bytes()) {
            *slot = b;
        }
        Self {
            mode: match bucket.mode {
                Mode::Text => 0,
                Mode::Video => 1,
            },
            lang,
        }
    }

    fn into_bucket(self) -> Result<BucketKey, WireError> {
        let mode = match self.mode {
            0 => Mode::Text,
            1 => Mode::Video,
            _ => return Err(WireError::Field("mode")),
        };
        let len = self.lang.iter().position(|&b| b == 0).unwrap_or(8);
        let lang = std::str::from_utf8(&self.lang[..len])
            .ok()
            .and_then(Lang::parse)
            .ok_or(WireError::Field("lang"))?;
        Ok(BucketKey { mode, lang })
    }
}

fn country_bytes(country: Country) -> [u8; 2] {
    let b = country.as_str().as_bytes();
    [b[0], b[1]]
}

fn country_of(bytes: [u8; 2]) -> Result<Country, WireError> {
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(Country::parse)
        .ok_or(WireError::Field("country"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl WireTicket {
    fn of(ticket: &RemoteTicket, now: Instant) -> Self {
        let info = &ticket.info;
        Self {
            home: ticket.home.0.clone(),
            instance: ticket.instance,
            epoch: ticket.epoch,
            ticket: info.id.0,
            session: info.session.0,
            bucket: WireBucket::of(&info.bucket),
            recent: info.recent.ids().iter().map(|s| s.0).collect(),
            waited_us: micros(now.saturating_duration_since(info.since)),
            interests: info.interests.tags().map(|t| t.to_string()).collect(),
            random_in_us: info.random_from.map(|at| {
                if at >= now {
                    micros(at - now).min(i64::MAX as u64) as i64
                } else {
                    -(micros(now - at).min(i64::MAX as u64) as i64)
                }
            }),
            country: country_bytes(info.country),
            countries: info
                .countries
                .codes()
                .iter()
                .copied()
                .map(country_bytes)
                .collect(),
            gender: info.gender.map(|g| g.as_str().as_bytes()[0]),
            want_gender: info.want_gender.bits(),
            college: info.college.as_deref().map(str::to_owned),
            same_college: info.same_college,
            public: ticket.public.clone(),
            client: info.client,
            blocked: info.blocked.keys().to_vec(),
            who: WireIdentity::of(&ticket.who),
        }
    }

    fn into_ticket(self, now: Instant) -> Result<RemoteTicket, WireError> {
        let since = now
            .checked_sub(Duration::from_micros(self.waited_us.min(MAX_WAIT_US)))
            .unwrap_or(now);
        let random_from = self.random_in_us.map(|delta| {
            let magnitude = Duration::from_micros(delta.unsigned_abs().min(MAX_WAIT_US));
            if delta >= 0 {
                now + magnitude
            } else {
                now.checked_sub(magnitude).unwrap_or(now)
            }
        });
        // The home node normalised and bounded these already; parse keeps the receiver
        // safe from a buggy or hostile peer all the same.
        let interests = Interests::parse(&self.interests).map_err(|_| WireError::Field("tags"))?;
        let countries = self
            .countries
            .into_iter()
            .take(CountryFilter::MAX)
            .map(country_of)
            .collect::<Result<Vec<_>, _>>()?;
        let gender = match self.gender {
            None => None,
            Some(b) => Some(
                Gender::parse(std::str::from_utf8(&[b]).unwrap_or(""))
                    .ok_or(WireError::Field("gender"))?,
            ),
        };
        let college = match self.college {
            Some(c) if c.chars().count() > MAX_TEXT => return Err(WireError::Field("college")),
            c => c,
        };
        check_public(&self.public)?;
        Ok(RemoteTicket {
            home: node_id(self.home)?,
            instance: self.instance,
            epoch: self.epoch,
            info: TicketInfo {
                id: TicketId(self.ticket),
                session: SessionId(self.session),
                bucket: self.bucket.into_bucket()?,
                recent: RecentSet::from_ids(self.recent.into_iter().map(SessionId)),
                since,
                interests,
                random_from,
                country: country_of(self.country)?,
                countries: CountryFilter::new(countries),
                gender,
                want_gender: GenderFilter::from_bits(self.want_gender),
                college: college.map(Tag::from),
                same_college: self.same_college,
                // Spy-mode tickets are paired on their own node and never spilled.
                spy: tandem_match::SpyMode::Off,
                client: self.client,
                blocked: Blocked::new(self.blocked.into_iter().take(Blocked::MAX)),
            },
            public: self.public,
            who: self.who.into_identity()?,
        })
    }
}

impl WireProposal {
    fn of(p: &Proposal) -> Self {
        Self {
            chat: p.chat.0,
            ticket: p.ticket.0,
            partner_node: p.partner.node.0.clone(),
            partner_session: p.partner.session.0,
            partner_instance: p.partner_instance,
            partner_ticket: p.partner_ticket.0,
            partner_public: p.partner_public.clone(),
            initiator: p.initiator,
            common_interests: p.common_interests.clone(),
            owner: p.owner.0.clone(),
            partner_who: WireIdentity::of(&p.partner_who),
        }
    }

    fn into_proposal(self) -> Result<Proposal, WireError> {
        check_public(&self.partner_public)?;
        if self.common_interests.len() > Interests::MAX_TAGS
            || self
                .common_interests
                .iter()
                .any(|t| t.chars().count() > Interests::MAX_CHARS)
        {
            return Err(WireError::Field("common_interests"));
        }
        Ok(Proposal {
            chat: ChatId(self.chat),
            ticket: TicketId(self.ticket),
            partner: Address {
                node: node_id(self.partner_node)?,
                session: SessionId(self.partner_session),
            },
            partner_instance: self.partner_instance,
            partner_ticket: TicketId(self.partner_ticket),
            partner_public: self.partner_public,
            initiator: self.initiator,
            common_interests: self.common_interests,
            owner: node_id(self.owner)?,
            partner_who: self.partner_who.into_identity()?,
        })
    }
}

/// Whether a node id or cluster name can be one subject token.
pub fn valid_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The longest wait or fallback delay a ticket may carry (an hour): a peer cannot plant
/// entries that never come due.
const MAX_WAIT_US: u64 = 3_600_000_000;
/// The longest college domain accepted from a peer.
const MAX_TEXT: usize = 255;

/// A node id from a peer: it names NATS subjects, so only subject-safe ids are accepted.
fn node_id(text: String) -> Result<NodeId, WireError> {
    if valid_token(&text) {
        Ok(NodeId(text))
    } else {
        Err(WireError::Field("node"))
    }
}

/// What a user is told of a partner from another node is bounded like client input.
fn check_public(public: &PartnerInfo) -> Result<(), WireError> {
    let college_ok = public
        .college
        .as_ref()
        .is_none_or(|c| c.chars().count() <= MAX_TEXT);
    if public.country.len() == 2 && college_ok {
        Ok(())
    } else {
        Err(WireError::Field("partner"))
    }
}

impl Wire {
    fn from_envelope(envelope: &Envelope, now: Instant) -> Option<Self> {
        Some(match envelope {
            Envelope::ToSession { session, event } => Self::ToSession {
                session: session.0,
                event: match event {
                    SessionEvent::PartnerEnded { chat, reason } => WireEvent::PartnerEnded {
                        chat: chat.0,
                        reason: *reason,
                    },
                    SessionEvent::Relay { chat, item } => match item {
                        ChatInput::Msg(text) => WireEvent::Msg {
                            chat: chat.0,
                            text: text.clone(),
                        },
                        ChatInput::Typing(on) => WireEvent::Typing {
                            chat: chat.0,
                            on: *on,
                        },
                        ChatInput::Signal(data) => WireEvent::Signal {
                            chat: chat.0,
                            data: data.clone(),
                        },
                    },
                    // Local to a node: seats, shutdowns and node losses are not sent.
                    SessionEvent::SeatChanged
                    | SessionEvent::Shutdown
                    | SessionEvent::Banned { .. }
                    | SessionEvent::NodeLost(_)
                    | SessionEvent::Watched { .. } => return None,
                },
            },
            Envelope::Spill(ticket) => Self::Spill(WireTicket::of(ticket, now)),
            Envelope::Withdraw { ticket, bucket } => Self::Withdraw {
                ticket: ticket.0,
                bucket: WireBucket::of(bucket),
            },
            Envelope::Reserve(p) => Self::Reserve(WireProposal::of(p)),
            Envelope::Commit(p) => Self::Commit(WireProposal::of(p)),
            Envelope::Committed { chat, committer } => Self::Committed {
                chat: chat.0,
                node: committer.node.0.clone(),
                session: committer.session.0,
            },
            Envelope::Refused { chat } => Self::Refused { chat: chat.0 },
            Envelope::Requeue { ticket } => Self::Requeue { ticket: ticket.0 },
            Envelope::Heartbeat(status) => Self::Heartbeat {
                node: status.node.0.clone(),
                shards: status.shards,
                online: status.online,
                waiting: status.waiting,
                matches: status.matches,
                skips: status.skips,
                draining: status.draining,
                http: status.http.clone(),
                instance: status.instance,
                epoch: status.epoch,
            },
            Envelope::Drain => Self::Drain,
            Envelope::Probe { sent_at_us } => Self::Probe {
                sent_at_us: *sent_at_us,
            },
        })
    }

    fn into_envelope(self, now: Instant) -> Result<Envelope, WireError> {
        Ok(match self {
            Self::ToSession { session, event } => Envelope::ToSession {
                session: SessionId(session),
                event: match event {
                    WireEvent::PartnerEnded { chat, reason } => SessionEvent::PartnerEnded {
                        chat: ChatId(chat),
                        reason,
                    },
                    WireEvent::Msg { chat, text } => SessionEvent::Relay {
                        chat: ChatId(chat),
                        item: ChatInput::Msg(text),
                    },
                    WireEvent::Typing { chat, on } => SessionEvent::Relay {
                        chat: ChatId(chat),
                        item: ChatInput::Typing(on),
                    },
                    WireEvent::Signal { chat, data } => SessionEvent::Relay {
                        chat: ChatId(chat),
                        item: ChatInput::Signal(data),
                    },
                },
            },
            Self::Spill(ticket) => Envelope::Spill(ticket.into_ticket(now)?),
            Self::Withdraw { ticket, bucket } => Envelope::Withdraw {
                ticket: TicketId(ticket),
                bucket: bucket.into_bucket()?,
            },
            Self::Reserve(p) => Envelope::Reserve(p.into_proposal()?),
            Self::Commit(p) => Envelope::Commit(p.into_proposal()?),
            Self::Committed {
                chat,
                node,
                session,
            } => Envelope::Committed {
                chat: ChatId(chat),
                committer: Address {
                    node: node_id(node)?,
                    session: SessionId(session),
                },
            },
            Self::Refused { chat } => Envelope::Refused { chat: ChatId(chat) },
            Self::Requeue { ticket } => Envelope::Requeue {
                ticket: TicketId(ticket),
            },
            Self::Heartbeat {
                node,
                shards,
                online,
                waiting,
                matches,
                skips,
                draining,
                http,
                instance,
                epoch,
            } => Envelope::Heartbeat(NodeStatus {
                node: node_id(node)?,
                shards,
                online,
                waiting,
                matches,
                skips,
                draining,
                http,
                instance,
                epoch,
            }),
            Self::Drain => Envelope::Drain,
            Self::Probe { sent_at_us } => Envelope::Probe { sent_at_us },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Arc<Identity> {
        Arc::new(Identity {
            client: ClientId::parse("0123456789abcdef0123456789abcdef.c2lnbmF0dXJl").unwrap(),
            ip: "2001:db8::7".parse().ok(),
            device: DeviceId::parse("device-0123456789"),
        })
    }

    fn ticket(now: Instant) -> RemoteTicket {
        let mut info = TicketInfo::plain(
            TicketId(u64::MAX - 3),
            SessionId(77),
            BucketKey {
                mode: Mode::Video,
                lang: Lang::parse("de").unwrap(),
            },
            now - Duration::from_millis(250),
        );
        info.interests = Interests::parse(&["music".into(), "ünïcode".into()]).unwrap();
        info.random_from = Some(now + Duration::from_secs(4));
        info.country = Country::parse("AT").unwrap();
        info.countries = CountryFilter::new(vec![
            Country::parse("DE").unwrap(),
            Country::parse("AT").unwrap(),
        ]);
        info.gender = Some(Gender::F);
        info.want_gender = GenderFilter::of([Gender::M, Gender::X]);
        info.college = Some(Tag::from("uni.example"));
        info.same_college = true;
        info.recent = RecentSet::from_ids([SessionId(1), SessionId(2)]);
        RemoteTicket {
            home: NodeId("a".into()),
            instance: 9,
            epoch: 3,
            info,
            public: PartnerInfo {
                country: "AT".into(),
                college: Some("uni.example".into()),
            },
            who: who(),
        }
    }

    #[test]
    fn a_ticket_survives_the_trip_with_its_times_relative() {
        let now = Instant::now();
        let sent = ticket(now);
        let bytes = encode(&Envelope::Spill(sent.clone()), now, 1).unwrap();
        assert_eq!(bytes[0], VERSION);
        // Received 10 ms later: the waits moved by exactly that much.
        let later = now + Duration::from_millis(10);
        let Envelope::Spill(got) = decode(&bytes, later).unwrap().envelope else {
            panic!("spill expected")
        };
        let mut expected = sent.info.clone();
        expected.since += Duration::from_millis(10);
        expected.random_from = expected.random_from.map(|t| t + Duration::from_millis(10));
        assert_eq!(got.info, expected);
        assert_eq!((got.home, got.public), (sent.home, sent.public));
        assert_eq!(got.who, sent.who, "who the user is travels with the ticket");
    }

    #[test]
    fn relays_keep_their_content_and_local_events_stay_home() {
        let now = Instant::now();
        let relay = Envelope::ToSession {
            session: SessionId(5),
            event: SessionEvent::Relay {
                chat: ChatId(9),
                item: ChatInput::Signal(
                    SignalData::from_value(&serde_json::json!({"sdp": "v=0"})).unwrap(),
                ),
            },
        };
        let bytes = encode(&relay, now, 1).unwrap();
        let Envelope::ToSession { session, event } = decode(&bytes, now).unwrap().envelope else {
            panic!("to_session expected")
        };
        assert_eq!(session, SessionId(5));
        assert!(
            matches!(event, SessionEvent::Relay { chat: ChatId(9), item: ChatInput::Signal(d) } if d.to_value()["sdp"] == "v=0")
        );
        let local = Envelope::ToSession {
            session: SessionId(5),
            event: SessionEvent::SeatChanged,
        };
        assert!(encode(&local, now, 1).is_none());
    }

    /// The fields a proposal round trip must keep, as one comparable value.
    fn fields(
        p: &Proposal,
    ) -> (
        ChatId,
        TicketId,
        Address,
        u64,
        TicketId,
        Vec<String>,
        NodeId,
        Identity,
    ) {
        (
            p.chat,
            p.ticket,
            p.partner.clone(),
            p.partner_instance,
            p.partner_ticket,
            p.common_interests.clone(),
            p.owner.clone(),
            (*p.partner_who).clone(),
        )
    }

    fn proposal() -> Proposal {
        Proposal {
            chat: ChatId(3),
            ticket: TicketId(4),
            partner: Address {
                node: NodeId("b".into()),
                session: SessionId(5),
            },
            partner_instance: 8,
            partner_ticket: TicketId(6),
            partner_public: PartnerInfo {
                country: "AT".into(),
                college: None,
            },
            initiator: true,
            common_interests: vec!["music".into()],
            owner: NodeId("c".into()),
            partner_who: who(),
        }
    }

    #[test]
    fn proposals_keep_the_partners_instance_and_their_owner() {
        let now = Instant::now();
        let sent = proposal();
        for envelope in [
            Envelope::Reserve(sent.clone()),
            Envelope::Commit(sent.clone()),
        ] {
            let bytes = encode(&envelope, now, 1).unwrap();
            let (Envelope::Reserve(got) | Envelope::Commit(got)) =
                decode(&bytes, now).unwrap().envelope
            else {
                panic!("a proposal expected")
            };
            assert_eq!(fields(&got), fields(&sent));
        }
        let hostile = Proposal {
            owner: NodeId("a.b".into()),
            ..sent
        };
        let bytes = encode(&Envelope::Reserve(hostile), now, 1).unwrap();
        assert_eq!(decode(&bytes, now).unwrap_err().kind(), "malformed");
    }

    #[test]
    fn bytes_after_the_envelope_are_refused() {
        let now = Instant::now();
        for envelope in [Envelope::Drain, Envelope::Commit(proposal())] {
            let mut bytes = encode(&envelope, now, 1).unwrap();
            assert!(decode(&bytes, now).is_ok());
            bytes.push(0);
            let err = decode(&bytes, now).unwrap_err();
            assert!(matches!(err, WireError::Trailing(1)), "{err}");
            assert_eq!(err.kind(), "malformed");
        }
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused_with_a_kind() {
        let now = Instant::now();
        let mut bytes = encode(&Envelope::Drain, now, 1).unwrap();
        bytes[0] = VERSION + 1;
        assert_eq!(decode(&bytes, now).unwrap_err().kind(), "version");
        assert_eq!(decode(&[], now).unwrap_err().kind(), "malformed");
        assert_eq!(
            decode(&[VERSION, 200, 1], now).unwrap_err().kind(),
            "malformed"
        );
    }

    #[test]
    fn node_ids_that_could_not_name_a_subject_are_refused() {
        let now = Instant::now();
        let mut status = NodeStatus::new(NodeId("ok-node_1".into()), 2, 1);
        let bytes = encode(&Envelope::Heartbeat(status.clone()), now, 1).unwrap();
        assert!(decode(&bytes, now).is_ok());
        for bad in ["a b", "x\r\nPUB evil 1", "a.b", "*", ">", ""] {
            status.node = NodeId(bad.into());
            let bytes = encode(&Envelope::Heartbeat(status.clone()), now, 1).unwrap();
            assert_eq!(
                decode(&bytes, now).unwrap_err().kind(),
                "malformed",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_peer_cannot_plant_a_ticket_that_never_comes_due() {
        let now = Instant::now();
        let mut sent = ticket(now);
        sent.info.random_from = Some(now + Duration::from_secs(10 * 365 * 86_400));
        let bytes = encode(&Envelope::Spill(sent), now, 1).unwrap();
        let Envelope::Spill(got) = decode(&bytes, now).unwrap().envelope else {
            panic!("spill expected")
        };
        assert!(got.info.random_from.unwrap() <= now + Duration::from_secs(3600));
    }
}
