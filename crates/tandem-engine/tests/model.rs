//! Property tests of the session state machine and the pool together, without actors or
//! sockets: random users join, skip, leave, chat and disconnect while the messages between
//! them (to the shard, to partners) are delivered in random interleavings, each mailbox in
//! FIFO order as actix delivers. After every run the invariants of docs/architecture.md
//! ("Invariants") must hold.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tandem_engine::session::Preferences;
use tandem_engine::session::{
    ChatInput, Effect, Identity, Line, Peer, Phase, SessionCore, SessionEvent, SessionLink,
};
use tandem_engine::shard::{Matchmaker, Ticket};
use tandem_ids::{ChatId, ClientId, SessionId};
use tandem_match::{
    Country, CountryFilter, Gender, GenderFilter, Interests, Lang, Mode, TicketInfo,
};
use tandem_proto::{EndReason, ServerMsg};

/// Mailboxes of every user, by index.
type Mailboxes = Arc<Mutex<Vec<VecDeque<SessionEvent>>>>;

struct Link {
    user: usize,
    mailboxes: Mailboxes,
}

impl SessionLink for Link {
    fn deliver(&self, event: SessionEvent) {
        self.mailboxes.lock().unwrap()[self.user].push_back(event);
    }
}

enum ShardOp {
    Place(Box<Ticket>),
    Withdraw(tandem_ids::TicketId),
}

#[derive(Clone, Debug)]
enum Op {
    Join {
        user: usize,
        video: bool,
        reroll: bool,
        /// Bit i: interest tag i of three.
        interests: u8,
        interests_only: bool,
        /// Accept partners from this country only.
        filter: Option<usize>,
        /// Declared gender (index into m, f, x) and the genders accepted (bits).
        gender: Option<usize>,
        want_gender: u8,
        /// College mode at one of two colleges, and whether only the same one.
        college: Option<usize>,
        same_college: bool,
    },
    /// Let time pass (interest waits run out) and let the shard tick.
    Advance(u64),
    Next(usize),
    Leave(usize),
    Disconnect(usize),
    Say(usize),
    /// Report the partner of the chat the client last saw matched.
    Report(usize),
    /// Save the chat the client last saw matched.
    SaveLog(usize),
    /// Deliver one pending item: to the shard (`None`) or to a user's mailbox.
    Deliver(Option<usize>),
}

const USERS: usize = 6;
const TAGS: [&str; 3] = ["art", "chess", "music"];
const COUNTRIES: [&str; 3] = ["DE", "FR", "US"];
/// Every user's interest wait in this model.
const INTEREST_WAIT: Duration = Duration::from_millis(1000);

fn country_of(user: usize) -> Country {
    Country::parse(COUNTRIES[user % COUNTRIES.len()]).unwrap()
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    prop_oneof![
        3 => (
            user.clone(),
            any::<bool>(),
            any::<bool>(),
            0u8..8,
            proptest::bool::weighted(0.2),
            proptest::option::weighted(0.3, 0..COUNTRIES.len()),
            (
                proptest::option::weighted(0.7, 0..3usize),
                prop_oneof![3 => Just(0u8), 1 => 1u8..8],
                proptest::option::weighted(0.2, 0..2usize),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(user, video, reroll, interests, interests_only, filter, extra)| {
                    let (gender, want_gender, college, same_college) = extra;
                    Op::Join {
                        user,
                        video,
                        reroll,
                        interests,
                        interests_only,
                        filter,
                        gender,
                        want_gender,
                        college,
                        same_college,
                    }
                },
            ),
        1 => (0u64..3000).prop_map(Op::Advance),
        2 => user.clone().prop_map(Op::Next),
        1 => user.clone().prop_map(Op::Leave),
        1 => user.clone().prop_map(Op::Disconnect),
        2 => user.clone().prop_map(Op::Say),
        1 => user.clone().prop_map(Op::Report),
        1 => user.clone().prop_map(Op::SaveLog),
        6 => proptest::option::of(user).prop_map(Op::Deliver),
    ]
}

struct World {
    users: Vec<SessionCore>,
    closed: Vec<bool>,
    /// What each client was sent, in order.
    logs: Vec<Vec<ServerMsg>>,
    mailboxes: Mailboxes,
    shard: VecDeque<ShardOp>,
    matchmaker: Matchmaker,
    now: Instant,
    said: u64,
    /// Each user's last placed ticket: the one any `matched` it gets was made from.
    last_ticket: Vec<Option<TicketInfo>>,
    /// For each chat as each side saw it: (user, its ticket, common interests told).
    sightings: HashMap<ChatId, Vec<(usize, TicketInfo, Vec<String>)>>,
    /// Reports filed.
    reports: Vec<Filed>,
    /// Logs saved: (saver, chat, common interests, lines).
    saved: Vec<(usize, ChatId, Vec<String>, Vec<Line>)>,
}

/// A report as the model saw it filed.
struct Filed {
    reporter: usize,
    chat: ChatId,
    /// The client reported.
    reported: String,
    evidence: Vec<Line>,
    /// How long the reporter's log was then: it must meet the reported in nothing after.
    from: usize,
}

impl World {
    /// The chat `user`'s client last saw matched (it may be over already).
    fn last_matched(&self, user: usize) -> Option<ChatId> {
        self.logs[user].iter().rev().find_map(|m| match m {
            ServerMsg::Matched(m) => Some(m.chat),
            _ => None,
        })
    }
}

/// The client id of `user`.
fn client_of(user: usize) -> String {
    format!("client-{user}")
}

impl World {
    fn new() -> Self {
        let mailboxes: Mailboxes = Arc::new(Mutex::new(vec![VecDeque::new(); USERS]));
        let users = (0..USERS)
            .map(|user| {
                let link = Link {
                    user,
                    mailboxes: Arc::clone(&mailboxes),
                };
                let client = ClientId::parse(&client_of(user)).expect("well formed");
                let peer = Peer {
                    session: SessionId(user as u64 + 1),
                    link: Arc::new(link),
                    who: Arc::new(Identity::of(client)),
                };
                SessionCore::new(peer, country_of(user))
            })
            .collect();
        Self {
            users,
            closed: vec![false; USERS],
            logs: vec![Vec::new(); USERS],
            mailboxes,
            shard: VecDeque::new(),
            matchmaker: Matchmaker::new(),
            now: Instant::now(),
            said: 0,
            last_ticket: vec![None; USERS],
            sightings: HashMap::new(),
            reports: Vec::new(),
            saved: Vec::new(),
        }
    }

    fn apply(&mut self, user: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(msg) => {
                    if let ServerMsg::Matched(m) = &msg {
                        let ticket = self.last_ticket[user].clone().expect("placed before");
                        let sides = self.sightings.entry(m.chat).or_default();
                        sides.push((user, ticket, m.common_interests.clone()));
                    }
                    self.logs[user].push(msg)
                }
                Effect::Place(ticket) => {
                    self.last_ticket[user] = Some(ticket.info.clone());
                    self.shard.push_back(ShardOp::Place(Box::new(ticket)))
                }
                Effect::Withdraw { ticket, .. } => self.shard.push_back(ShardOp::Withdraw(ticket)),
                Effect::Notify { to, event } => to.send(event),
                Effect::Report {
                    chat,
                    reported,
                    evidence,
                    ..
                } => self.reports.push(Filed {
                    reporter: user,
                    chat,
                    reported: reported.client.as_str().to_owned(),
                    evidence,
                    from: self.logs[user].len(),
                }),
                Effect::SaveLog {
                    chat,
                    common_interests,
                    lines,
                    ..
                } => self.saved.push((user, chat, common_interests, lines)),
                Effect::Matched { .. } | Effect::Ended { .. } | Effect::DroppedStale => {}
            }
        }
    }

    fn step(&mut self, op: Op) {
        self.now += Duration::from_millis(10);
        let now = self.now;
        let mut out = Vec::new();
        match op {
            Op::Join {
                user,
                video,
                reroll,
                interests,
                interests_only,
                filter,
                gender,
                want_gender,
                college,
                same_college,
            } if !self.closed[user] => {
                let mode = if video { Mode::Video } else { Mode::Text };
                let mut prefs = Preferences::random(mode, Lang::EN, reroll);
                let tags: Vec<String> = (0..TAGS.len())
                    .filter(|i| interests & (1 << i) != 0)
                    .map(|i| TAGS[i].to_string())
                    .collect();
                prefs.interests = Interests::parse(&tags).unwrap();
                prefs.interests_only = interests_only;
                prefs.interest_wait = INTEREST_WAIT;
                prefs.countries = CountryFilter::new(filter.map(country_of).into_iter().collect());
                const GENDERS: [Gender; 3] = [Gender::M, Gender::F, Gender::X];
                prefs.gender = gender.map(|g| GENDERS[g]);
                prefs.want_gender = GenderFilter::of(
                    (0..3)
                        .filter(|i| want_gender & (1 << i) != 0)
                        .map(|i| GENDERS[i]),
                );
                prefs.college = college.map(|c| ["mit.edu", "ox.ac.uk"][c].into());
                prefs.same_college = college.is_some() && same_college;
                self.users[user].join(prefs, now, &mut out);
                self.apply(user, out);
            }
            Op::Next(user) if !self.closed[user] => {
                self.users[user].next(now, &mut out);
                self.apply(user, out);
            }
            Op::Leave(user) if !self.closed[user] => {
                self.users[user].leave(now, &mut out);
                self.apply(user, out);
            }
            Op::Disconnect(user) if !self.closed[user] => {
                self.users[user].disconnect(now, &mut out);
                self.closed[user] = true;
                self.apply(user, out);
            }
            Op::Say(user) if !self.closed[user] => {
                // Write for the chat the client last saw matched (it may be over already).
                let chat = self.last_matched(user);
                if let Some(chat) = chat {
                    self.said += 1;
                    let text = format!("{user}/{chat}/{}", self.said);
                    self.users[user].input(chat, ChatInput::Msg(text), now, &mut out);
                    self.apply(user, out);
                }
            }
            Op::Report(user) if !self.closed[user] => {
                let chat = self.last_matched(user);
                if let Some(chat) = chat {
                    self.users[user].report(chat, "spam".into(), None, now, &mut out);
                    self.apply(user, out);
                }
            }
            Op::SaveLog(user) if !self.closed[user] => {
                let chat = self.last_matched(user);
                if let Some(chat) = chat {
                    self.users[user].save_log(chat, now, &mut out);
                    self.apply(user, out);
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                self.matchmaker.tick(self.now);
            }
            Op::Deliver(None) => match self.shard.pop_front() {
                Some(ShardOp::Place(ticket)) => {
                    self.matchmaker.place(*ticket, now);
                }
                Some(ShardOp::Withdraw(ticket)) => {
                    self.matchmaker.withdraw(ticket);
                }
                None => {}
            },
            Op::Deliver(Some(user)) => {
                let event = self.mailboxes.lock().unwrap()[user].pop_front();
                if let (Some(event), false) = (event, self.closed[user]) {
                    self.users[user].event(event, now, &mut out);
                    self.apply(user, out);
                }
            }
            _ => {}
        }
    }

    /// Delivers everything in flight, in some fair order, until nothing moves; then lets
    /// every interest wait run out (the shard ticks) and settles again.
    fn settle(&mut self) {
        self.settle_now();
        self.step(Op::Advance(INTEREST_WAIT.as_millis() as u64 + 1));
        self.settle_now();
    }

    fn settle_now(&mut self) {
        for _ in 0..10_000 {
            let idle = self.shard.is_empty()
                && self
                    .mailboxes
                    .lock()
                    .unwrap()
                    .iter()
                    .all(VecDeque::is_empty);
            if idle {
                return;
            }
            self.step(Op::Deliver(None));
            for user in 0..USERS {
                self.step(Op::Deliver(Some(user)));
            }
        }
        panic!("the system never settled");
    }

    fn check(&self) -> Result<(), TestCaseError> {
        // Who is in which chat, from the clients' point of view.
        let mut members: HashMap<ChatId, Vec<usize>> = HashMap::new();
        for (user, log) in self.logs.iter().enumerate() {
            let mut current: Option<ChatId> = None;
            for msg in log {
                match msg {
                    ServerMsg::Matched(m) => {
                        prop_assert!(current.is_none(), "user {user} matched while in a chat");
                        current = Some(m.chat);
                        members.entry(m.chat).or_default().push(user);
                    }
                    ServerMsg::Ended { chat, .. } => {
                        prop_assert_eq!(
                            current,
                            Some(*chat),
                            "user {} ended a chat it was not in",
                            user
                        );
                        current = None;
                    }
                    _ => {}
                }
            }
        }
        let mut initiators: HashMap<ChatId, usize> = HashMap::new();
        for log in &self.logs {
            for msg in log {
                if let ServerMsg::Matched(m) = msg {
                    *initiators.entry(m.chat).or_default() += m.initiator as usize;
                }
            }
        }
        for (chat, users) in &members {
            prop_assert_eq!(users.len(), 2, "chat {} has members {:?}", chat, users);
            prop_assert_ne!(users[0], users[1], "a user met themselves");
            prop_assert_eq!(initiators[chat], 1, "chat {} must have one initiator", chat);
        }
        // A report names the other member of the reporter's chat, never anyone else; its
        // evidence is lines of that chat only, each from the side it says; and the two are
        // never paired again.
        for report in &self.reports {
            let users = &members[&report.chat];
            prop_assert!(
                users.contains(&report.reporter),
                "a report from outside its chat"
            );
            let partner = *users
                .iter()
                .find(|u| **u != report.reporter)
                .expect("two members");
            prop_assert_eq!(&report.reported, &client_of(partner));
            for line in &report.evidence {
                let parts: Vec<&str> = line.text.split('/').collect();
                let sender: usize = parts[0].parse().unwrap();
                prop_assert_eq!(parts[1], report.chat.to_string(), "a line of another chat");
                let expected = if line.mine { report.reporter } else { partner };
                prop_assert_eq!(sender, expected, "a line on the wrong side");
            }
            for msg in &self.logs[report.reporter][report.from..] {
                if let ServerMsg::Matched(m) = msg {
                    prop_assert!(
                        !members[&m.chat].contains(&partner),
                        "user {} met user {} again after reporting them",
                        report.reporter,
                        partner
                    );
                }
            }
        }
        // A saved log holds lines of that chat only, each on the side it says, and the common
        // interests its saver was told.
        for (saver, chat, common, lines) in &self.saved {
            let users = &members[chat];
            prop_assert!(users.contains(saver), "a log saved from outside its chat");
            let partner = *users.iter().find(|u| *u != saver).expect("two members");
            let told = self.logs[*saver].iter().find_map(|m| match m {
                ServerMsg::Matched(m) if m.chat == *chat => Some(&m.common_interests),
                _ => None,
            });
            prop_assert_eq!(Some(common), told, "the interests the saver was told");
            for line in lines {
                let parts: Vec<&str> = line.text.split('/').collect();
                let sender: usize = parts[0].parse().unwrap();
                prop_assert_eq!(parts[1], chat.to_string(), "a saved line of another chat");
                let expected = if line.mine { *saver } else { partner };
                prop_assert_eq!(sender, expected, "a saved line on the wrong side");
            }
        }
        // Every line reached only the other member of the chat it was written for, in order,
        // and only while the receiver's client was in that chat.
        for (user, log) in self.logs.iter().enumerate() {
            let mut current: Option<ChatId> = None;
            let mut last_seq: HashMap<usize, u64> = HashMap::new();
            for msg in log {
                match msg {
                    ServerMsg::Matched(m) => current = Some(m.chat),
                    ServerMsg::Ended { .. } => current = None,
                    ServerMsg::Msg { chat, text } => {
                        let parts: Vec<&str> = text.split('/').collect();
                        let sender: usize = parts[0].parse().unwrap();
                        let seq: u64 = parts[2].parse().unwrap();
                        prop_assert_eq!(current, Some(*chat), "line outside its chat");
                        prop_assert_eq!(parts[1], chat.to_string());
                        prop_assert!(members[chat].contains(&sender) && sender != user);
                        let last = last_seq.insert(sender, seq).unwrap_or(0);
                        prop_assert!(seq > last, "lines out of order");
                    }
                    _ => {}
                }
            }
        }
        // Pairs are symmetric in the state machines.
        for (user, core) in self.users.iter().enumerate() {
            if self.closed[user] {
                continue;
            }
            if let Phase::Chatting { chat, partner } = core.phase() {
                let other = (partner.session.0 - 1) as usize;
                prop_assert!(
                    !self.closed[other],
                    "user {} chats with a closed user",
                    user
                );
                match self.users[other].phase() {
                    Phase::Chatting {
                        chat: c,
                        partner: p,
                    } => {
                        prop_assert_eq!(c, chat);
                        prop_assert_eq!(p.session, core.id());
                    }
                    other_phase => {
                        return Err(TestCaseError::fail(format!(
                            "user {user} chats with {other} who is {other_phase:?}"
                        )))
                    }
                }
            }
        }
        // Nobody waits while a compatible user waits too (after a round: everything
        // delivered and the interest waits run out), and the pool holds exactly the waiting
        // users.
        let waiting = self
            .users
            .iter()
            .enumerate()
            .filter(|(u, core)| !self.closed[*u] && matches!(core.phase(), Phase::Waiting { .. }))
            .count();
        prop_assert_eq!(self.matchmaker.waiting(), waiting);
        let tickets: Vec<&TicketInfo> = self.matchmaker.tickets().collect();
        for (i, a) in tickets.iter().enumerate() {
            for b in &tickets[i + 1..] {
                prop_assert!(
                    !tandem_match::compatible(a, b, self.now),
                    "{:?} and {:?} both wait though compatible",
                    a.session,
                    b.session
                );
            }
        }
        // Every chat honoured both sides' filters and told both the exact overlap.
        for (chat, sides) in &self.sightings {
            prop_assert_eq!(
                sides.len(),
                2,
                "chat {} seen by {} sides",
                chat,
                sides.len()
            );
            let (a, b) = (&sides[0].1, &sides[1].1);
            prop_assert_eq!(a.bucket, b.bucket, "mode and language are hard partitions");
            prop_assert!(a.filters_accept(b), "filters must be mutual");
            let overlap = a.interests.overlap(&b.interests);
            prop_assert_eq!(&sides[0].2, &overlap, "common_interests is the overlap");
            prop_assert_eq!(&sides[1].2, &overlap, "both sides see the same overlap");
            if overlap.is_empty() {
                prop_assert!(
                    a.random_from.is_some() && b.random_from.is_some(),
                    "an interests_only user met someone without a shared interest"
                );
            }
        }
        // Every ended chat was told to both sides with reasons that agree.
        for (chat, users) in &members {
            let ends: Vec<Option<EndReason>> = users
                .iter()
                .map(|&u| {
                    self.logs[u].iter().find_map(|m| match m {
                        ServerMsg::Ended { chat: c, reason } if c == chat => Some(*reason),
                        _ => None,
                    })
                })
                .collect();
            let open = |u: usize| matches!(self.users[u].phase(), Phase::Chatting { chat: c, .. } if c == chat);
            for (i, &u) in users.iter().enumerate() {
                if self.closed[u] || open(u) {
                    continue;
                }
                prop_assert!(
                    ends[i].is_some(),
                    "user {} left chat {} without being told",
                    u,
                    chat
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_any_interleaving(ops in proptest::collection::vec(op(), 1..200)) {
        let mut world = World::new();
        for op in ops {
            world.step(op);
        }
        world.settle();
        world.check()?;
    }
}
