//! The orphan-media sweep (issue 12): images and thumbnails that no
//! message shows, left by a crash between writing the files and the row
//! of a post, or by a delete whose file removal failed. Until swept they
//! stay servable by name under `/media/`.
//!
//! # The rule
//!
//! A full image `<id>.<ext>` and its thumbnail `<id>_thumb.<ext>` share
//! their 32 hex digits (the thumbnail's extension may differ). A stored
//! file is an orphan when it was last modified longer than the grace
//! period ago and no message's image is `<id>.<ext>` for any extension
//! (one indexed `by_image` lookup per kind, stopping at the first hit).
//! Demo messages share pictures: any one message showing the picture keeps
//! both files.
//!
//! # Fleet safety
//!
//! A post writes its files, then its row, within a request; a file older
//! than the grace period (default an hour) with no row will never get one.
//! Boards sweeping the same store at once only both try to delete the same
//! files, and deleting a missing file is not an error.
//!
//! # Bounded work
//!
//! One run lists at most [`SWEEP_BATCH`] objects in name order and
//! remembers where it stopped; the next run continues there, and after the
//! end of the store starts again at the beginning.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{Data, DataError};
use crate::media::{ImageKind, MediaName};

/// Most objects one sweep run looks at.
pub const SWEEP_BATCH: usize = 10_000;

/// What one sweep run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects listed (old or fresh).
    pub scanned: usize,
    /// Media names older than the grace period among them.
    pub old: usize,
    /// Orphans removed.
    pub removed: usize,
    /// Orphans whose removal failed (logged; tried again next cycle).
    pub failed: usize,
    /// Staging files of interrupted writes removed (local directories).
    pub stale_uploads: usize,
    /// Whether this run reached the end of the store (the next starts
    /// again at the beginning).
    pub complete: bool,
}

impl Data {
    /// One run of the orphan sweep: removes the files among the next
    /// [`SWEEP_BATCH`] stored objects that are older than `grace` (as of
    /// `now`) and shown by no message. Logs one line.
    ///
    /// # Errors
    /// When the media store cannot be listed or the database fails (nothing
    /// more is removed; the next run tries the same objects again).
    pub async fn sweep_media(
        &self,
        grace: Duration,
        now: SystemTime,
    ) -> Result<SweepReport, DataError> {
        self.sweep_media_batch(grace, now, SWEEP_BATCH).await
    }

    /// [`Data::sweep_media`] looking at `batch` objects at most.
    pub(crate) async fn sweep_media_batch(
        &self,
        grace: Duration,
        now: SystemTime,
        batch: usize,
    ) -> Result<SweepReport, DataError> {
        let media_error = |e: std::io::Error| DataError::Media(e.to_string());
        let mut report = SweepReport::default();
        // Nothing can be older than a cutoff before the epoch.
        let Some(cutoff) = now.checked_sub(grace) else {
            report.complete = true;
            return Ok(report);
        };
        let after = self.sweep_cursor.lock().clone();
        let page = self
            .media
            .list_older_than(cutoff, after.as_deref(), batch)
            .await
            .map_err(media_error)?;
        report.scanned = page.scanned;
        report.old = page.names.len();

        let mut by_id: BTreeMap<String, Vec<MediaName>> = BTreeMap::new();
        for name in page.names {
            by_id.entry(name.id().to_owned()).or_default().push(name);
        }
        for names in by_id.values() {
            if self.shown(names).await? {
                continue;
            }
            for name in names {
                match self.media.delete(name).await {
                    Ok(()) => report.removed += 1,
                    Err(error) => {
                        report.failed += 1;
                        tracing::warn!(%error, name = name.as_str(), "orphan image not removed");
                    }
                }
            }
        }

        match self.media.remove_stale_uploads(cutoff).await {
            Ok(n) => report.stale_uploads = n,
            Err(error) => tracing::warn!(%error, "staging files not removed"),
        }
        report.complete = page.next.is_none();
        *self.sweep_cursor.lock() = page.next;
        tracing::info!(
            scanned = report.scanned,
            old = report.old,
            removed = report.removed,
            failed = report.failed,
            stale_uploads = report.stale_uploads,
            complete = report.complete,
            grace_s = grace.as_secs(),
            "media sweep"
        );
        Ok(report)
    }

    /// Whether a message shows the picture of `names` (all of one id):
    /// the full images among them first, then every other extension.
    async fn shown(&self, names: &[MediaName]) -> Result<bool, DataError> {
        let Some(any) = names.first() else {
            return Ok(false);
        };
        let listed = names
            .iter()
            .filter(|n| !n.is_thumbnail())
            .map(MediaName::kind);
        let mut kinds: Vec<ImageKind> = listed.collect();
        let rest: Vec<ImageKind> = ImageKind::ALL
            .into_iter()
            .filter(|k| !kinds.contains(k))
            .collect();
        kinds.extend(rest);
        for kind in kinds {
            let full = any.full_image(kind);
            if self
                .stores
                .messages
                .by_image(full.as_str())
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
