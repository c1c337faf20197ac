//! Bans: issued, lifted, listed, and enforced.
//!
//! The store holds the bans; every node keeps the ones that may be in force in a
//! [`BanList`] for its handshakes, loaded at start and kept in step by watching the store's
//! bans bucket, which sees every node's writes. A ban that arrives while its subject is
//! connected closes those sessions at once (`error banned`, close 1008), on whichever node
//! they are. Lifting a ban takes effect at the subject's next connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::RwLock;
use tandem_engine::session::{Identity, SessionEvent};
use tokio::sync::watch;

use super::banlist::BanList;
use super::banlist::IpRange;
use super::records::{new_id, unix_now, Ban, Issuer, Lifted, Subject, UnixSecs};
use super::retention::Retention;
use super::stats::ModerationStats;
use super::store::{Bucket, Change, ModerationStore, StoreError};
use crate::registry::Registry;

/// How long after a node starts its handshakes wait for the ban list to be loaded, before
/// they let users in regardless (the store is unreachable); also how long a store operation
/// waits for the store to be opened.
pub const LOAD_WAIT: Duration = Duration::from_secs(5);

/// The store, once it is open (a cluster's opens over NATS, after the node started).
#[derive(Clone)]
pub struct StoreSlot(watch::Receiver<Option<ModerationStore>>);

impl StoreSlot {
    /// A slot and the sender that fills it.
    pub fn new() -> (watch::Sender<Option<ModerationStore>>, Self) {
        let (tx, rx) = watch::channel(None);
        (tx, Self(rx))
    }

    /// The store, if it is open now.
    pub fn current(&self) -> Option<ModerationStore> {
        self.0.borrow().clone()
    }

    /// The store, waiting up to [`LOAD_WAIT`] for it to open.
    pub async fn get(&self) -> Result<ModerationStore, StoreError> {
        let mut rx = self.0.clone();
        let ready = tokio::time::timeout(LOAD_WAIT, rx.wait_for(Option::is_some)).await;
        match ready {
            Ok(Ok(store)) => Ok(store.clone().expect("waited for it")),
            _ => Err(StoreError::Unavailable("the store is not open".into())),
        }
    }
}

/// A node's bans.
pub struct Bans {
    list: RwLock<BanList>,
    /// Whether the list was loaded from the store.
    loaded: watch::Sender<bool>,
    /// When the node started: handshakes wait for the list only in its first [`LOAD_WAIT`].
    started: tokio::time::Instant,
    store: StoreSlot,
    registry: Arc<Registry>,
    retention: Retention,
    stats: Arc<ModerationStats>,
}

impl Bans {
    /// Bans kept in `store` for `retention`, enforced on the sessions of `registry`.
    pub fn new(
        store: StoreSlot,
        registry: Arc<Registry>,
        retention: Retention,
        stats: Arc<ModerationStats>,
    ) -> Self {
        Self {
            list: RwLock::new(BanList::default()),
            loaded: watch::channel(false).0,
            started: tokio::time::Instant::now(),
            store,
            registry,
            retention,
            stats,
        }
    }

    /// A ban in force of the user `who`, as this node knows the bans.
    pub fn check(&self, who: &Identity) -> Option<Ban> {
        self.list.read().find(who, unix_now()).cloned()
    }

    /// Whether the bans were loaded, waiting for them until [`LOAD_WAIT`] after the node
    /// started (not after: a store down for longer must not hold every handshake up).
    pub async fn loaded(&self) -> bool {
        let mut rx = self.loaded.subscribe();
        let deadline = self.started + LOAD_WAIT;
        let waited = tokio::time::timeout_at(deadline, rx.wait_for(|loaded| *loaded)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Issues a ban: stored, then in force on every node.
    /// Bans `who`, its client and its address, from `now` for `length`, as an automatic
    /// rule does (the bans wait for a moderator's confirmation); the ids issued.
    pub async fn issue_for(
        &self,
        who: &Identity,
        reason: &str,
        issued_by: Issuer,
        now: UnixSecs,
        length: Duration,
    ) -> Result<Vec<String>, StoreError> {
        let mut subjects = vec![Subject::Client(who.client.as_str().to_owned())];
        subjects.extend((who.ip).map(|ip| Subject::Ip(IpRange::new(ip, None).to_string())));
        let mut issued = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let ban = Ban {
                id: new_id(),
                subject,
                reason: reason.to_owned(),
                issued_by: issued_by.clone(),
                at: now,
                until: Some(now + length.as_secs()),
                lifted: None,
                confirmed: false,
            };
            issued.push(self.issue(ban).await?.id);
        }
        Ok(issued)
    }

    /// Issues `ban`, and applies it at once on this node (the others learn it from the
    /// store's watch).
    pub async fn issue(&self, ban: Ban) -> Result<Ban, StoreError> {
        let store = self.store.get().await?;
        store.create(Bucket::Bans, &ban.id, &ban).await?;
        self.stats
            .ban(matches!(ban.issued_by, super::records::Issuer::Rule { .. }));
        self.apply(ban.clone());
        Ok(ban)
    }

    /// Lifts ban `id` (by compare-and-set: once): the ban, and whether this call lifted it
    /// (`false`: it was lifted before); `None` if there is no such ban.
    pub async fn lift(&self, id: &str, by: &str) -> Result<Option<(Ban, bool)>, StoreError> {
        let store = self.store.get().await?;
        let at = unix_now();
        let lifted = store
            .modify::<Ban, _>(Bucket::Bans, id, |ban| {
                let mut ban = ban?;
                if ban.lifted.is_some() {
                    return None;
                }
                ban.lifted = Some(Lifted {
                    by: by.to_owned(),
                    at,
                });
                Some(ban)
            })
            .await?;
        match lifted {
            Some(ban) => {
                self.apply(ban.clone());
                Ok(Some((ban, true)))
            }
            None => Ok(store
                .get::<Ban>(Bucket::Bans, id)
                .await?
                .map(|ban| (ban, false))),
        }
    }

    /// Marks an automatic ban as kept by a moderator.
    pub async fn confirm(&self, id: &str) -> Result<Option<Ban>, StoreError> {
        let store = self.store.get().await?;
        store
            .modify::<Ban, _>(Bucket::Bans, id, |ban| {
                let mut ban = ban?;
                if ban.confirmed {
                    return None;
                }
                ban.confirmed = true;
                Some(ban)
            })
            .await
    }

    /// Every ban in the store, the newest first.
    pub async fn all(&self) -> Result<Vec<Ban>, StoreError> {
        let store = self.store.get().await?;
        let now = unix_now();
        let mut bans: Vec<Ban> = (store.all::<Ban>(Bucket::Bans).await?)
            .into_iter()
            .map(|(_, ban)| ban)
            .filter(|ban| self.retention.keeps_ban(ban, now))
            .collect();
        bans.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
        Ok(bans)
    }

    /// Puts a ban in this node's list, and closes the sessions it names if it is in force.
    fn apply(&self, ban: Ban) {
        let now = unix_now();
        let enforce = ban.active(now).then(|| ban.clone());
        let active = {
            let mut list = self.list.write();
            list.apply(ban);
            list.active(now)
        };
        self.stats
            .active_bans
            .store(active as u64, Ordering::Relaxed);
        if let Some(ban) = enforce {
            let event = SessionEvent::Banned {
                ban: ban.id.clone(),
                until: ban.until,
                reason: ban.reason.clone(),
            };
            let closed = self
                .registry
                .send_where(|who| BanList::names(&ban, who), &event);
            if closed > 0 {
                tracing::info!(ban = %ban.id, sessions = closed, "closing banned sessions");
            }
        }
    }

    fn changed(&self, change: Change) {
        match change.value {
            Some(value) => match serde_json::from_slice::<Ban>(&value) {
                Ok(ban) => self.apply(ban),
                Err(err) => tracing::warn!(key = %change.key, error = %err, "an unreadable ban"),
            },
            None => {
                let active = {
                    let mut list = self.list.write();
                    list.remove(&change.key);
                    list.active(unix_now())
                };
                self.stats
                    .active_bans
                    .store(active as u64, Ordering::Relaxed);
            }
        }
    }

    /// Keeps this node's list in step with the store until the store's watch ends: waits
    /// for the store, watches, then loads (a ban written in between is seen twice, which is
    /// harmless), retrying while the store is unreachable.
    pub async fn follow(self: Arc<Self>) {
        loop {
            let Ok(store) = self.store.get().await else {
                continue;
            };
            let changes = store.kv().watch(Bucket::Bans).await;
            let all = store.all::<Ban>(Bucket::Bans).await;
            let (mut changes, all) = match (changes, all) {
                (Ok(changes), Ok(all)) => (changes, all),
                (Err(err), _) | (_, Err(err)) => {
                    self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, "cannot load the bans; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for (_, ban) in all {
                self.apply(ban);
            }
            self.loaded.send_replace(true);
            while let Some(change) = changes.next().await {
                self.changed(change);
            }
            tracing::warn!("the bans' watch ended; watching again");
        }
    }
}
