//! Writes the seed corpus of every fuzz target: real messages, envelopes and frames, a few
//! of each kind, so that a run starts from inputs that decode rather than from nothing.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds [DIR]   (default: fuzz/corpus)
//!
//! Seeds are replaced, not merged: run it again after a format changes. Sealed envelopes
//! differ on every run (each seal draws a salt); everything else is the same bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_engine::session::{ChatInput, Identity, SessionEvent};
use tandem_engine::shard::RemoteTicket;
use tandem_fuzz::FramesInput;
use tandem_ids::{ChatId, ClientId, DeviceId, NodeId, SessionId, TicketId};
use tandem_match::{
    BucketKey, Country, CountryFilter, Gender, GenderFilter, Interests, Lang, Mode, RecentSet, Tag,
    TicketInfo,
};
use tandem_proto::{ClientMsg, Codec, EndReason, Frame, Join, PartnerInfo, SignalData};
use tandem_server::bus::{Address, Envelope, NodeStatus, Proposal};
use tandem_server::cluster::wire;
use tandem_server::entitlement::{Claims, EntitlementKey, Feature};
use tandem_server::gateway::frames::client_frame_header as header;

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    write(&root.join("client_msg"), client_msgs())?;
    write(&root.join("envelope"), envelopes())?;
    write(&root.join("frames"), frames())?;
    Ok(())
}

/// Replaces the seeds in `dir` with `seeds`.
fn write(dir: &Path, seeds: Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let mut bytes = 0;
    for (name, seed) in &seeds {
        std::fs::write(dir.join(name), seed)?;
        bytes += seed.len();
    }
    println!("{}: {} seeds, {bytes} bytes", dir.display(), seeds.len());
    Ok(())
}

/// Every client message kind, as a JSON text frame and as a bincode binary frame.
fn client_msgs() -> Vec<(String, Vec<u8>)> {
    let chat = ChatId(0x2a);
    let premium = EntitlementKey::new(tandem_fuzz::ENTITLEMENT_SECRET).sign(&Claims {
        // 2100-01-01: the seed stays valid.
        exp: 4_102_444_800,
        features: vec![Feature::GenderFilter, Feature::College],
        college: Some("uni.example".into()),
    });
    let adult = Join {
        adult: true,
        ..Join::default()
    };
    let messages = [
        ("join", ClientMsg::Join(adult.clone())),
        (
            "join-filters",
            ClientMsg::Join(Join {
                mode: Some("video".into()),
                interests: vec!["music".into(), "Chess".into()],
                lang: Some("de".into()),
                countries: vec!["DE".into(), "at".into()],
                gender: Some("f".into()),
                auto_reroll: true,
                interests_only: true,
                interest_wait_ms: Some(2_000),
                ..adult.clone()
            }),
        ),
        (
            "join-premium",
            ClientMsg::Join(Join {
                want_gender: vec!["m".into(), "x".into()],
                entitlement: Some(premium),
                college: true,
                same_college: true,
                ..adult.clone()
            }),
        ),
        (
            "join-spy",
            ClientMsg::Join(Join {
                spy: true,
                question: Some("Cats or dogs?".into()),
                ..adult
            }),
        ),
        ("next", ClientMsg::Next),
        ("leave", ClientMsg::Leave),
        (
            "msg",
            ClientMsg::Msg {
                chat,
                text: "hi there ünïcode".into(),
            },
        ),
        ("typing", ClientMsg::Typing { chat, on: true }),
        (
            "signal-offer",
            ClientMsg::Signal {
                chat,
                data: signal(serde_json::json!({
                    "type": "offer",
                    "sdp": "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
                })),
            },
        ),
        (
            "signal-candidate",
            ClientMsg::Signal {
                chat,
                data: signal(serde_json::json!({
                    "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                    "weight": 0.25,
                    "list": [null, true, -1, 1e-7],
                })),
            },
        ),
        (
            "report",
            ClientMsg::Report {
                chat,
                reason: "spam".into(),
                note: Some("sent links".into()),
            },
        ),
        ("save_log", ClientMsg::SaveLog { chat }),
        ("ping", ClientMsg::Ping),
    ];
    let mut seeds = Vec::new();
    for (name, msg) in messages {
        for codec in [Codec::Json, Codec::Bincode] {
            let (kind, bytes) = match codec.encode(&msg) {
                Frame::Text(text) => ("json", text.into_bytes()),
                Frame::Binary(bytes) => ("bincode", bytes),
            };
            seeds.push((format!("{kind}-{name}"), bytes));
        }
    }
    // Signals as clients may write them: the data kept as written, a key spelled with an
    // escape (which the full decoder reads), and data nested deeper than allowed.
    let raw = [
        (
            "json-signal-spaced",
            r#"{ "type" : "signal", "chat":"2a", "data" : { "sdp" : "v=0\r\n", "n": [1, 2.5e-3, {"a": null}, "\u00e9\ud83d"] } }"#.to_owned(),
        ),
        (
            "json-signal-escaped-key",
            r#"{"type":"signal","c\u0068at":"000000000000002a","data":{"n":84481891198857450e44}}"#.to_owned(),
        ),
        (
            "json-signal-deep",
            format!(
                r#"{{"type":"signal","chat":"2a","data":{}{}}}"#,
                "[".repeat(33),
                "]".repeat(33)
            ),
        ),
    ];
    seeds.extend(raw.map(|(name, text)| (name.to_owned(), text.into_bytes())));
    seeds
}

/// Signal data as a client builds it.
fn signal(value: serde_json::Value) -> SignalData {
    SignalData::from_value(&value).expect("a small JSON value")
}

fn who() -> Arc<Identity> {
    Arc::new(Identity {
        client: ClientId::parse("0123456789abcdef0123456789abcdef.c2lnbmF0dXJl")
            .expect("a client id"),
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
            lang: Lang::parse("de").expect("a language"),
        },
        now - Duration::from_millis(250),
    );
    info.interests = Interests::parse(&["music".into(), "ünïcode".into()]).expect("two tags");
    info.random_from = Some(now + Duration::from_secs(4));
    info.country = Country::parse("AT").expect("a country");
    info.countries = CountryFilter::new(
        ["DE", "AT"]
            .into_iter()
            .map(|c| Country::parse(c).expect("a country"))
            .collect(),
    );
    info.gender = Some(Gender::F);
    info.want_gender = GenderFilter::of([Gender::M, Gender::X]);
    info.college = Some(Tag::from("uni.example"));
    info.same_college = true;
    info.recent = RecentSet::from_ids([SessionId(1), SessionId(2)]);
    RemoteTicket {
        home: NodeId("node-a".into()),
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

fn proposal() -> Proposal {
    Proposal {
        chat: ChatId(3),
        ticket: TicketId(4),
        partner: Address {
            node: NodeId("node-b".into()),
            session: SessionId(5),
        },
        partner_instance: 8,
        partner_ticket: TicketId(6),
        partner_public: PartnerInfo {
            country: "ZZ".into(),
            college: None,
        },
        initiator: true,
        common_interests: vec!["music".into()],
        owner: NodeId("node-c".into()),
        partner_who: who(),
    }
}

/// Every envelope kind on the wire, unsealed; and a few sealed with the target's key.
fn envelopes() -> Vec<(String, Vec<u8>)> {
    let now = Instant::now();
    let to_session = |event| Envelope::ToSession {
        session: SessionId(5),
        event,
    };
    let relay = |item| {
        to_session(SessionEvent::Relay {
            chat: ChatId(9),
            item,
        })
    };
    let mut status = NodeStatus::new(NodeId("node-a".into()), 2, 0x5eed);
    status.online = 120;
    status.waiting = 7;
    status.http = "10.0.0.1:8080".into();
    let envelopes = [
        ("msg", relay(ChatInput::Msg("a chat line".into()))),
        ("typing", relay(ChatInput::Typing(true))),
        (
            "signal",
            relay(ChatInput::Signal(signal(
                serde_json::json!({"type": "answer", "sdp": "v=0"}),
            ))),
        ),
        (
            "ended",
            to_session(SessionEvent::PartnerEnded {
                chat: ChatId(9),
                reason: EndReason::PartnerSkipped,
            }),
        ),
        ("spill", Envelope::Spill(ticket(now))),
        (
            "withdraw",
            Envelope::Withdraw {
                ticket: TicketId(4),
                bucket: BucketKey {
                    mode: Mode::Text,
                    lang: Lang::EN,
                },
            },
        ),
        ("reserve", Envelope::Reserve(proposal())),
        ("commit", Envelope::Commit(proposal())),
        (
            "committed",
            Envelope::Committed {
                chat: ChatId(3),
                committer: Address {
                    node: NodeId("node-b".into()),
                    session: SessionId(5),
                },
            },
        ),
        ("refused", Envelope::Refused { chat: ChatId(3) }),
        (
            "requeue",
            Envelope::Requeue {
                ticket: TicketId(4),
            },
        ),
        ("heartbeat", Envelope::Heartbeat(status)),
        ("drain", Envelope::Drain),
        (
            "probe",
            Envelope::Probe {
                sent_at_us: 1_700_000_000_000_000,
            },
        ),
    ];
    let seal = tandem_fuzz::seal();
    let mut seeds = Vec::new();
    for (name, envelope) in envelopes {
        let bytes = wire::encode(&envelope, now, 1_700_000_000_000_000).expect("goes on the wire");
        if matches!(name, "msg" | "spill" | "heartbeat" | "drain") {
            let sealed = seal.seal(tandem_fuzz::SUBJECT, &bytes);
            seeds.push((format!("sealed-{name}"), sealed));
        }
        seeds.push((name.to_owned(), bytes));
    }
    seeds
}

/// A client frame with `payload` (its mask key is zero: the payload goes as it is).
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Streams of frames a browser sends, and a few that the guard refuses.
fn frames() -> Vec<(String, Vec<u8>)> {
    let join = br#"{"type":"join","adult":true}"#;
    let mut fragmented = frame(false, 0x1, b"{\"type\":");
    fragmented.extend(frame(false, 0x0, b"\"msg\",\"chat\":\"2a\","));
    fragmented.extend(frame(true, 0x9, b"ping"));
    fragmented.extend(frame(true, 0x0, b"\"text\":\"hi\"}"));
    let mut session = frame(true, 0x1, join);
    let Frame::Binary(line) = Codec::Bincode.encode(&ClientMsg::Msg {
        chat: ChatId(0x2a),
        text: "hi".into(),
    }) else {
        unreachable!("bincode frames are binary")
    };
    session.extend(frame(true, 0x2, &line));
    session.extend(frame(true, 0xa, b"7"));
    session.extend(frame(true, 0x8, &[0x03, 0xe8]));
    let mut medium = header(true, 0x2, 300);
    medium.resize(medium.len() + 300, 0x55);
    let streams: [(&str, u16, Vec<u8>); 7] = [
        ("text", 1, frame(true, 0x1, join)),
        ("session", 0x1234, session),
        ("fragmented", 7, fragmented),
        ("medium", 0xbeef, medium),
        ("lying-length", 3, header(true, 0x1, 1 << 40)),
        ("long-ping", 5, frame(true, 0x9, &[0; 126])),
        ("unmasked", 9, vec![0x81, 0x02, b'h', b'i']),
    ];
    streams
        .into_iter()
        .map(|(name, cuts, stream)| (name.to_owned(), FramesInput::encode(cuts, &stream)))
        .collect()
}
