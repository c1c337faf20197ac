//! Video snapshot moderation: during a video chat the page sends a small still of its own
//! camera every `--snapshot-interval`; the node hands each to the operator's classifier
//! (`--moderation-webhook`), and acts on the answer.
//!
//! - A still the classifier clears is dropped at once: nothing of it is stored or logged.
//! - A flagged still (a class the operator names scoring at least `--snapshot-flag-score`)
//!   ends its sender's chat, is filed as the classifier's report against the sender (which
//!   the automatic rule counts), and is kept for review **encrypted**: each still under a
//!   fresh AES-256-GCM key of its own, that key wrapped (AES-256-GCM again) under the
//!   operator's `--snapshot-key`, which never reaches the store. A moderator sees it
//!   decrypted in the review queue; the store and its files hold only ciphertext. It is
//!   purged after `--snapshot-retention`.
//! - At `--snapshot-ban-score`, the sender is also banned at once (client and address), as
//!   the automatic rule's first ban, waiting in the review queue for a moderator.
//! - A classifier that fails or does not answer within `--snapshot-timeout` is counted; the
//!   operator chooses what that means (`--snapshot-failure open`: nothing happens, the
//!   default; `closed`: the chat ends, nothing is stored).
//!
//! The classifier's request and answer (docs/moderation.md) follow the shape of hosted
//! services such as Hive: the image in base64 with its type, answered with classes and
//! scores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use tandem_engine::session::Identity;
use tandem_ids::ChatId;

use crate::moderation::records::{new_id, unix_now, EvidenceLine, Issuer, Reason, UnixSecs};
use crate::moderation::reports::{Filing, ReportError};
use crate::moderation::store::{Bucket, StoreError};
use crate::moderation::Moderation;

/// What the operator set.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotSettings {
    /// Where stills are classified; `None`: no snapshots are asked.
    pub webhook: Option<String>,
    /// How often a video client sends a still.
    pub interval: Duration,
    /// How long the classifier may take.
    pub timeout: Duration,
    /// The classes that flag a still.
    pub flag_classes: Vec<String>,
    /// The score from which a flagging class flags.
    pub flag_score: f32,
    /// The score from which a flagged still also bans its sender.
    pub ban_score: f32,
    /// What a failed classification means.
    pub failure: FailurePolicy,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            webhook: None,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            flag_classes: ["nudity", "sexual", "minor", "violence", "gore"]
                .map(String::from)
                .to_vec(),
            flag_score: 0.8,
            ban_score: 0.95,
            failure: FailurePolicy::Open,
        }
    }
}

/// What a classification that failed means (`--snapshot-failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Nothing: the chat goes on.
    Open,
    /// The chat ends (nothing is stored: there is nothing to review).
    Closed,
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(format!("expected open or closed, not `{text}`")),
        }
    }
}

/// An image a snapshot may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Jpeg,
    Webp,
}

impl ImageKind {
    /// Its media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }
}

/// Why a still was refused before any classifier saw it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("a snapshot is a JPEG or WebP image")]
    NotAnImage,
    #[error("a snapshot is at most {max} bytes")]
    TooLarge { max: usize },
    #[error("a snapshot is at most {max} pixels wide, not {width}")]
    TooWide { width: u32, max: u32 },
}

/// Checks a still: JPEG or WebP, within the size and width bounds; its kind and width.
pub fn check_image(bytes: &[u8]) -> Result<(ImageKind, u32), ImageError> {
    if bytes.len() > tandem_proto::MAX_SNAPSHOT_BYTES {
        return Err(ImageError::TooLarge {
            max: tandem_proto::MAX_SNAPSHOT_BYTES,
        });
    }
    let (kind, width) = if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        (ImageKind::Jpeg, jpeg_width(bytes))
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        (ImageKind::Webp, webp_width(bytes))
    } else {
        return Err(ImageError::NotAnImage);
    };
    let width = width.ok_or(ImageError::NotAnImage)?;
    let max = tandem_proto::MAX_SNAPSHOT_WIDTH;
    if width == 0 || width > max {
        return Err(ImageError::TooWide { width, max });
    }
    Ok((kind, width))
}

/// The width in a JPEG's frame header (SOFn), walking its segments.
fn jpeg_width(bytes: &[u8]) -> Option<u32> {
    let mut at = 2;
    loop {
        // Fill bytes before a marker.
        while *bytes.get(at)? == 0xff && *bytes.get(at + 1)? == 0xff {
            at += 1;
        }
        if *bytes.get(at)? != 0xff {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        match marker {
            // Markers without a segment.
            0x01 | 0xd0..=0xd7 => continue,
            // The image data or its end before any frame header.
            0xd9 | 0xda => return None,
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        if length < 2 {
            return None;
        }
        let frame = matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc);
        if frame {
            // Length, precision, height, width.
            let width = u16::from_be_bytes([*bytes.get(at + 5)?, *bytes.get(at + 6)?]);
            return Some(u32::from(width));
        }
        at += length;
    }
}

/// The width in a WebP's first chunk (lossy `VP8 `, lossless `VP8L`, extended `VP8X`).
fn webp_width(bytes: &[u8]) -> Option<u32> {
    let chunk = bytes.get(12..16)?;
    let data = bytes.get(20..)?;
    match chunk {
        b"VP8 " => {
            // A 3-byte frame tag, the start code 9d 01 2a, then 14 bits of width.
            if data.get(3..6)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            Some(u32::from(
                u16::from_le_bytes([*data.get(6)?, *data.get(7)?]) & 0x3fff,
            ))
        }
        b"VP8L" => {
            if *data.first()? != 0x2f {
                return None;
            }
            let bits = u32::from_le_bytes([*data.get(1)?, *data.get(2)?, *data.get(3)?, 0]);
            Some((bits & 0x3fff) + 1)
        }
        b"VP8X" => {
            let width = u32::from_le_bytes([*data.get(4)?, *data.get(5)?, *data.get(6)?, 0]);
            Some(width + 1)
        }
        _ => None,
    }
}

/// The classifier's answer: classes and their scores (0 to 1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub classes: Vec<Class>,
}

/// One class of an answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Class {
    pub class: String,
    pub score: f32,
}

/// What the node does with a classified still.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing; the still is dropped.
    Cleared,
    /// End the chat, keep the still for review; `ban`: ban the sender too. `top` is the
    /// flagging class that scored highest.
    Flagged { top: Class, ban: bool },
}

impl SnapshotSettings {
    /// What `classification` means under these settings.
    pub fn decide(&self, classification: &Classification) -> Decision {
        let top = (classification.classes.iter())
            .filter(|c| {
                self.flag_classes
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&c.class))
            })
            .filter(|c| c.score.is_finite())
            .max_by(|a, b| a.score.total_cmp(&b.score));
        match top {
            Some(top) if top.score >= self.flag_score => Decision::Flagged {
                top: top.clone(),
                ban: top.score >= self.ban_score,
            },
            _ => Decision::Cleared,
        }
    }
}

/// Why a classification failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("the classifier did not answer in time")]
    Timeout,
    #[error("{MAX_IN_FLIGHT} stills are with the classifier already")]
    Busy,
    #[error("the classifier failed: {0}")]
    Failed(String),
}

/// Stills a node has with the classifier at once, at most; past it, a still is not sent
/// (a failure, as the operator's `--snapshot-failure` says), so that a slow classifier
/// cannot pile up work and memory on the node.
pub const MAX_IN_FLIGHT: usize = 64;

/// The operator's classifier, over HTTP.
pub struct Webhook {
    url: String,
    agent: ureq::Agent,
    timeout: Duration,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Webhook {
    /// The classifier at `url`, given `timeout` per still.
    pub fn new(url: String, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Self {
            url,
            agent: config.into(),
            timeout,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Classifies a still (on a blocking thread: the call waits on the network).
    pub async fn classify(
        self: &Arc<Self>,
        kind: ImageKind,
        image: Arc<[u8]>,
    ) -> Result<Classification, ClassifyError> {
        // Held until the blocking call itself returns, timed out or not.
        let permit =
            (Arc::clone(&self.in_flight).try_acquire_owned()).map_err(|_| ClassifyError::Busy)?;
        let webhook = Arc::clone(self);
        let call = tokio::task::spawn_blocking(move || {
            let answer = webhook.call(kind, &image);
            drop(permit);
            answer
        });
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), call).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(ClassifyError::Failed(join.to_string())),
            Err(_) => Err(ClassifyError::Timeout),
        }
    }

    fn call(&self, kind: ImageKind, image: &[u8]) -> Result<Classification, ClassifyError> {
        let request = serde_json::json!({
            "media": {
                "type": kind.media_type(),
                "data": base64::engine::general_purpose::STANDARD.encode(image),
            },
        });
        let response = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .send(request.to_string());
        let mut response = match response {
            Ok(response) => response,
            Err(ureq::Error::Timeout(_)) => return Err(ClassifyError::Timeout),
            Err(err) => return Err(ClassifyError::Failed(err.to_string())),
        };
        let status = response.status();
        if !status.is_success() {
            return Err(ClassifyError::Failed(format!("status {status}")));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|err| match err {
                ureq::Error::Timeout(_) => ClassifyError::Timeout,
                other => ClassifyError::Failed(other.to_string()),
            })?;
        serde_json::from_str(&body).map_err(|err| ClassifyError::Failed(err.to_string()))
    }
}

/// The operator's key (`--snapshot-key`: 32 bytes, base64), which wraps each still's key.
pub struct Vault {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

/// Why `--snapshot-key` was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--snapshot-key must be 32 bytes in base64 (openssl rand -base64 32)")]
pub struct BadKey;

/// A still as the store keeps it: nothing of it readable without the operator's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The still's own key, sealed under the operator's key: nonce then ciphertext, base64.
    pub wrapped_key: String,
    /// The still, sealed under its own key: nonce then ciphertext, base64.
    pub data: String,
}

/// Why a sealed still could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the snapshot cannot be decrypted with this key")]
pub struct Unreadable;

impl Vault {
    /// The vault of a base64 key of 32 bytes.
    pub fn new(key: &str) -> Result<Self, BadKey> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| BadKey)?;
        if bytes.len() != 32 {
            return Err(BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }

    /// Seals `image` under a fresh key of its own, and that key under the operator's.
    pub fn seal(&self, image: &[u8]) -> Sealed {
        let mut own = [0u8; 32];
        self.random
            .fill(&mut own)
            .expect("the system's random source");
        let own_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &own).expect("32 bytes"));
        let data = self.seal_with(&own_key, image);
        let wrapped_key = self.seal_with(&self.key, &own);
        own.fill(0);
        Sealed { wrapped_key, data }
    }

    /// Opens a sealed still.
    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, Unreadable> {
        let mut own = open_with(&self.key, &sealed.wrapped_key)?;
        let own_key = UnboundKey::new(&AES_256_GCM, &own).map_err(|_| Unreadable)?;
        own.fill(0);
        open_with(&LessSafeKey::new(own_key), &sealed.data)
    }

    fn seal_with(&self, key: &LessSafeKey, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut out = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut out)
            .expect("AES-GCM seals any length we keep");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }
}

fn open_with(key: &LessSafeKey, sealed: &str) -> Result<Vec<u8>, Unreadable> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|_| Unreadable)?;
    if bytes.len() < NONCE_LEN {
        return Err(Unreadable);
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unreadable)?;
    let mut rest = rest.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::empty(), &mut rest)
        .map_err(|_| Unreadable)?;
    Ok(plain.to_vec())
}

/// A flagged still kept for review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: String,
    /// The report it was filed under.
    pub report: String,
    /// The client that sent it.
    pub client: String,
    pub chat: String,
    pub kind: ImageKind,
    /// What the classifier said.
    pub classes: Vec<Class>,
    /// When it was flagged.
    pub at: UnixSecs,
    pub sealed: Sealed,
}

/// What snapshot moderation counts.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    pub cleared: AtomicU64,
    pub flagged: AtomicU64,
    pub bans: AtomicU64,
    pub timeouts: AtomicU64,
    pub failures: AtomicU64,
    /// Refused before classification (not an image, too large or wide, too often).
    pub refused: AtomicU64,
}

impl SnapshotStats {
    /// Appends the Prometheus text exposition.
    pub fn render(&self, out: &mut String, node: &str) {
        use std::fmt::Write;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tandem_snapshots_total Video snapshots, by outcome.\n# TYPE tandem_snapshots_total counter"
        );
        for (outcome, count) in [
            ("cleared", &self.cleared),
            ("flagged", &self.flagged),
            ("timeout", &self.timeouts),
            ("failed", &self.failures),
            ("refused", &self.refused),
        ] {
            let _ = writeln!(
                out,
                "tandem_snapshots_total{{node=\"{node}\",outcome=\"{outcome}\"}} {}",
                load(count)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tandem_snapshot_bans_total Bans issued on a flagged snapshot's score.\n# TYPE tandem_snapshot_bans_total counter\ntandem_snapshot_bans_total{{node=\"{node}\"}} {}",
            load(&self.bans)
        );
    }
}

/// A node's snapshot moderation: the classifier, the vault, and what they count.
pub struct Snapshots {
    pub settings: SnapshotSettings,
    pub webhook: Arc<Webhook>,
    pub vault: Vault,
    pub stats: SnapshotStats,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What became of a still.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Cleared, or the classifier failed and failure is open: the chat goes on.
    Goes,
    /// Flagged (kept for review; `banned` when its score banned the sender), or the
    /// classifier failed and failure is closed: the chat ends.
    Ends { flagged: bool, banned: bool },
}

/// The report reason a flagging class is filed under.
fn reason_of(class: &str) -> Reason {
    match class.to_ascii_lowercase().as_str() {
        "minor" => Reason::Minor,
        "nudity" | "sexual" | "sexual_activity" | "sexual_display" | "erotica" => Reason::Nudity,
        _ => Reason::Other,
    }
}

/// Who the classifier's reports are filed by.
fn classifier_identity() -> tandem_ids::ClientId {
    tandem_ids::ClientId::parse("classifier.snapshot").expect("a valid id")
}

impl Snapshots {
    /// Snapshot moderation under `settings` (which name a webhook), sealing with `key`.
    pub fn new(settings: SnapshotSettings, key: &str) -> Result<Option<Self>, BadKey> {
        let Some(url) = settings.webhook.clone() else {
            return Ok(None);
        };
        Ok(Some(Self {
            webhook: Arc::new(Webhook::new(url, settings.timeout)),
            vault: Vault::new(key)?,
            settings,
            stats: SnapshotStats::default(),
        }))
    }

    /// Classifies a still `sender` sent in `chat`, and acts on the answer: a flagged still
    /// is filed as a report, sealed and stored (and its sender banned at the ban score).
    pub async fn moderate(
        &self,
        moderation: &Moderation,
        sender: Arc<Identity>,
        country: String,
        chat: ChatId,
        kind: ImageKind,
        image: Arc<[u8]>,
    ) -> Outcome {
        let classification = match self.webhook.classify(kind, Arc::clone(&image)).await {
            Ok(classification) => classification,
            Err(err) => {
                let counter = match err {
                    ClassifyError::Timeout => &self.stats.timeouts,
                    ClassifyError::Busy | ClassifyError::Failed(_) => &self.stats.failures,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, "a snapshot could not be classified");
                return match self.settings.failure {
                    FailurePolicy::Open => Outcome::Goes,
                    FailurePolicy::Closed => Outcome::Ends {
                        flagged: false,
                        banned: false,
                    },
                };
            }
        };
        let (top, ban) = match self.settings.decide(&classification) {
            Decision::Cleared => {
                self.stats.cleared.fetch_add(1, Ordering::Relaxed);
                return Outcome::Goes;
            }
            Decision::Flagged { top, ban } => (top, ban),
        };
        self.stats.flagged.fetch_add(1, Ordering::Relaxed);
        let banned = match self
            .keep(
                moderation,
                &sender,
                country,
                chat,
                kind,
                &image,
                &classification,
                &top,
                ban,
            )
            .await
        {
            Ok(banned) => banned,
            Err(err) => {
                tracing::warn!(error = %err, "a flagged snapshot could not be kept");
                false
            }
        };
        Outcome::Ends {
            flagged: true,
            banned,
        }
    }

    /// Files the report, stores the sealed still, and bans at the ban score; whether it
    /// banned.
    #[allow(clippy::too_many_arguments)]
    async fn keep(
        &self,
        moderation: &Moderation,
        sender: &Arc<Identity>,
        country: String,
        chat: ChatId,
        kind: ImageKind,
        image: &[u8],
        classification: &Classification,
        top: &Class,
        ban: bool,
    ) -> Result<bool, ReportError> {
        let id = new_id();
        let described = format!("{} {:.2}", top.class, top.score);
        let filing = Filing {
            chat,
            reporter: Arc::new(Identity::of(classifier_identity())),
            reported: Arc::clone(sender),
            country,
            reason: reason_of(&top.class),
            note: Some(format!(
                "video snapshot flagged by the classifier: {described}"
            )),
            evidence: vec![EvidenceLine {
                at_ms: unix_now() * 1000,
                from: "reported".into(),
                text: format!("[snapshot {id}: {described}]"),
            }],
        };
        let report = moderation.reports.strike(filing).await?;
        let now = unix_now();
        let record = SnapshotRecord {
            id: id.clone(),
            report: report.clone(),
            client: sender.client.as_str().to_owned(),
            chat: chat.to_string(),
            kind,
            classes: classification.classes.clone(),
            at: now,
            sealed: self.vault.seal(image),
        };
        let store = moderation.store().get().await?;
        store.create(Bucket::Snapshots, &id, &record).await?;
        if !ban {
            return Ok(false);
        }
        let length = moderation.rule().first_ban;
        let issuer = Issuer::Rule {
            rule: "snapshot".into(),
            report: report.clone(),
        };
        let reason = format!("video flagged by automated moderation ({described})");
        let issued = (moderation.bans)
            .issue_for(sender, &reason, issuer, now, length)
            .await?;
        self.stats.bans.fetch_add(1, Ordering::Relaxed);
        moderation
            .audit
            .record(
                "rule:snapshot",
                "ban",
                &report,
                &format!("{} s: {}", length.as_secs(), issued.join(", ")),
            )
            .await?;
        Ok(true)
    }

    /// The flagged snapshots of `report`, newest last.
    pub async fn of_report(
        &self,
        moderation: &Moderation,
        report: &str,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        let store = moderation.store().get().await?;
        let retention = moderation.retention().snapshots.as_secs();
        let now = unix_now();
        let mut found: Vec<SnapshotRecord> =
            (store.all::<SnapshotRecord>(Bucket::Snapshots).await?)
                .into_iter()
                .map(|(_, record)| record)
                .filter(|r| r.report == report && r.at + retention > now)
                .collect();
        found.sort_by_key(|r| r.at);
        Ok(found)
    }

    /// A flagged snapshot, if it is still kept.
    pub async fn get(
        &self,
        moderation: &Moderation,
        id: &str,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        let store = moderation.store().get().await?;
        let retention = moderation.retention().snapshots.as_secs();
        let found = store.get::<SnapshotRecord>(Bucket::Snapshots, id).await?;
        Ok(found.filter(|r| r.at + retention > unix_now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG's first segments, `width` wide (no image data: the node never decodes it).
    pub fn jpeg(width: u16) -> Vec<u8> {
        let mut out = vec![0xff, 0xd8];
        out.extend_from_slice(&[0xff, 0xe0, 0x00, 0x10]);
        out.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        out.extend_from_slice(&[0xff, 0xdb, 0x00, 0x04, 0x00, 0x00]);
        out.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0xf0]);
        out.extend_from_slice(&width.to_be_bytes());
        out.extend_from_slice(&[0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        out.extend_from_slice(&[0xff, 0xd9]);
        out
    }

    #[test]
    fn stills_are_jpeg_or_webp_within_the_width_and_size() {
        assert_eq!(check_image(&jpeg(320)), Ok((ImageKind::Jpeg, 320)));
        assert_eq!(
            check_image(&jpeg(640)),
            Err(ImageError::TooWide {
                width: 640,
                max: 320
            })
        );
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0".to_vec();
        vp8.extend_from_slice(&[0, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
        assert_eq!(check_image(&vp8), Ok((ImageKind::Webp, 320)));
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0".to_vec();
        vp8l.extend_from_slice(&[0x2f, 0x3f, 0x01, 0, 0]);
        assert_eq!(check_image(&vp8l), Ok((ImageKind::Webp, 320)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0, 0, 0, 0, 0x7f, 0x02, 0, 0, 0, 0]);
        assert_eq!(
            check_image(&vp8x),
            Err(ImageError::TooWide {
                width: 640,
                max: 320
            })
        );
        assert_eq!(check_image(b"GIF89a"), Err(ImageError::NotAnImage));
        assert_eq!(
            check_image(&[0xff, 0xd8, 0xff]),
            Err(ImageError::NotAnImage)
        );
        let mut big = jpeg(100);
        big.resize(tandem_proto::MAX_SNAPSHOT_BYTES + 1, 0);
        assert!(matches!(
            check_image(&big),
            Err(ImageError::TooLarge { .. })
        ));
        // Truncated anywhere: refused, never a panic.
        let whole = jpeg(200);
        for end in 0..whole.len() {
            let _ = check_image(&whole[..end]);
        }
    }

    #[test]
    fn the_operators_classes_and_scores_decide() {
        let settings = SnapshotSettings::default();
        let answer = |class: &str, score: f32| Classification {
            classes: vec![
                Class {
                    class: "safe".into(),
                    score: 0.99,
                },
                Class {
                    class: class.into(),
                    score,
                },
            ],
        };
        assert_eq!(settings.decide(&answer("nudity", 0.5)), Decision::Cleared);
        assert_eq!(settings.decide(&answer("cats", 0.99)), Decision::Cleared);
        assert!(matches!(
            settings.decide(&answer("Nudity", 0.85)),
            Decision::Flagged { ban: false, .. }
        ));
        assert!(matches!(
            settings.decide(&answer("minor", 0.97)),
            Decision::Flagged { ban: true, .. }
        ));
        assert_eq!(
            settings.decide(&answer("nudity", f32::NAN)),
            Decision::Cleared
        );
        assert_eq!(
            settings.decide(&Classification::default()),
            Decision::Cleared
        );
    }

    #[test]
    fn a_sealed_still_opens_only_with_the_operators_key_and_holds_no_plain_image() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let vault = Vault::new(&key).unwrap();
        let image = jpeg(160);
        let sealed = vault.seal(&image);
        assert_eq!(vault.open(&sealed).unwrap(), image);
        let again = vault.seal(&image);
        assert_ne!(
            sealed.data, again.data,
            "a key and nonce of its own each time"
        );
        let stored = serde_json::to_vec(&sealed).unwrap();
        assert!(
            !stored.windows(4).any(|w| w == b"JFIF"),
            "no plain image in what is stored"
        );
        let other = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        assert_eq!(Vault::new(&other).unwrap().open(&sealed), Err(Unreadable));
        assert_eq!(Vault::new("c2hvcnQ=").err(), Some(BadKey));
    }
}
