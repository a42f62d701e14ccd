//! [`ObjectMedia`]: the media store over an [`ObjectStore`] — a local
//! directory (`file://`, the default) or S3 (`s3://`, see `s3.rs`).

use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

use super::*;

/// Images in an [`ObjectStore`]: under `prefix`, each object named by its
/// [`MediaName`].
#[derive(Debug)]
pub struct ObjectMedia {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) prefix: ObjectPath,
    /// Whether the backend keeps `Content-Type` and `Cache-Control`.
    pub(super) attributes: bool,
    /// Whether `list` yields locations in order, so a page can stop early.
    pub(super) sorted_listing: bool,
    /// A local directory, whose interrupted writes leave staging files
    /// (`NAME#N`) that `list` hides.
    pub(super) staging_dir: Option<PathBuf>,
    /// For error messages: which store this is.
    pub(super) describe: String,
}

impl ObjectMedia {
    fn location(&self, name: &MediaName) -> ObjectPath {
        // A generated name is one safe path segment: hex, `_thumb`, a dot
        // and an extension.
        self.prefix.clone().join(name.as_str())
    }

    fn error(&self, action: &str, name: &MediaName, error: &object_store::Error) -> std::io::Error {
        let kind = match error {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => std::io::ErrorKind::PermissionDenied,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(
            kind,
            format!(
                "{}: cannot {action} {}: {error}",
                self.describe,
                name.as_str()
            ),
        )
    }

    /// The media name stored at `location`, if it is one: directly under
    /// the prefix, and a name the board generates.
    fn name_at(&self, location: &ObjectPath) -> Option<MediaName> {
        let name = MediaName::parse(location.filename()?)?;
        (self.location(&name) == *location).then_some(name)
    }
}

/// An object of a listing, ordered by location (for the page's heap).
struct Listed(object_store::ObjectMeta);

impl PartialEq for Listed {
    fn eq(&self, other: &Self) -> bool {
        self.0.location == other.0.location
    }
}

impl Eq for Listed {}

impl PartialOrd for Listed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Listed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.location.cmp(&other.0.location)
    }
}

/// Removes the staging files `<media name>#<digits>` in `dir` last modified
/// before `cutoff`: what `LocalFileSystem` leaves when the process dies
/// between creating one and renaming it into place. Other files are left.
fn remove_staging_files(dir: &std::path::Path, cutoff: SystemTime) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some((name, suffix)) = file_name.to_str().and_then(|n| n.split_once('#')) else {
            continue;
        };
        let staged = !suffix.is_empty()
            && suffix.bytes().all(|b| b.is_ascii_digit())
            && MediaName::parse(name).is_some();
        if !staged {
            continue;
        }
        let metadata = entry.metadata()?;
        if metadata.is_file() && metadata.modified()? < cutoff {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[async_trait]
impl MediaStore for ObjectMedia {
    async fn put(&self, name: &MediaName, bytes: Bytes) -> std::io::Result<()> {
        let mut options = PutOptions::default();
        if self.attributes {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, name.kind().content_type().into());
            attributes.insert(Attribute::CacheControl, CACHE_CONTROL.into());
            options.attributes = attributes;
        }
        self.store
            .put_opts(&self.location(name), PutPayload::from(bytes), options)
            .await
            .map(drop)
            .map_err(|e| self.error("store", name, &e))
    }

    async fn get(&self, name: &MediaName) -> std::io::Result<Option<Bytes>> {
        let found = match self.store.get(&self.location(name)).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("read", name, &e)),
        };
        match found.bytes().await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", name, &e)),
        }
    }

    async fn exists(&self, name: &MediaName) -> std::io::Result<bool> {
        match self.store.head(&self.location(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("look up", name, &e)),
        }
    }

    async fn delete(&self, name: &MediaName) -> std::io::Result<()> {
        match self.store.delete(&self.location(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", name, &e)),
        }
    }

    async fn list_older_than(
        &self,
        cutoff: SystemTime,
        after: Option<&str>,
        limit: usize,
    ) -> std::io::Result<MediaPage> {
        let failed = |error: object_store::Error| {
            std::io::Error::other(format!("{}: cannot list: {error}", self.describe))
        };
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let mut listing = match after {
            Some(after) => {
                let offset = ObjectPath::parse(after).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{}: bad listing position `{after}`: {e}", self.describe),
                    )
                })?;
                self.store.list_with_offset(prefix, &offset)
            }
            None => self.store.list(prefix),
        };
        // The `limit` first locations: a max-heap that drops the largest
        // past `limit`, so an unordered listing (a directory walk) pages
        // in name order too, in memory bounded by `limit`.
        let mut first: BinaryHeap<Listed> = BinaryHeap::with_capacity(limit.saturating_add(1));
        while let Some(meta) = listing.try_next().await.map_err(failed)? {
            first.push(Listed(meta));
            if first.len() > limit {
                first.pop();
                if self.sorted_listing {
                    break;
                }
            }
        }
        let page = first.into_sorted_vec();
        let next = (page.len() >= limit && limit > 0)
            .then(|| page.last().map(|l| l.0.location.to_string()))
            .flatten();
        let scanned = page.len();
        let names = page
            .into_iter()
            .filter(|l| SystemTime::from(l.0.last_modified) < cutoff)
            .filter_map(|l| self.name_at(&l.0.location))
            .collect();
        Ok(MediaPage {
            names,
            scanned,
            next,
        })
    }

    async fn remove_stale_uploads(&self, cutoff: SystemTime) -> std::io::Result<usize> {
        let Some(dir) = self.staging_dir.clone() else {
            return Ok(0);
        };
        let describe = self.describe.clone();
        tokio::task::spawn_blocking(move || remove_staging_files(&dir, cutoff))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("{describe}: cannot remove staging files: {e}"),
                )
            })
    }
}
