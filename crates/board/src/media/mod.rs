//! Where images live, behind [`MediaStore`], and the names they live under.
//!
//! One implementation, [`ObjectMedia`], covers every backend through the
//! `object_store` crate: a local directory (`file://DIR`, the default) and,
//! with the `aws` feature, S3 or an S3-compatible server (`s3://BUCKET/PREFIX`)
//! for fleets of boards that share their images.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

mod object;
#[cfg(feature = "aws")]
mod s3;

pub use object::ObjectMedia;

/// Kinds of image the board accepts, recognised by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// GIF.
    Gif,
    /// BMP.
    Bmp,
    /// WebP.
    WebP,
}

impl ImageKind {
    /// File extension used in stored names.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
            Self::WebP => "webp",
        }
    }

    /// `Content-Type` to serve it with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Bmp => "image/bmp",
            Self::WebP => "image/webp",
        }
    }

    /// Every kind, in the order the sweep looks them up.
    pub const ALL: [Self; 5] = [Self::Jpeg, Self::Png, Self::WebP, Self::Gif, Self::Bmp];

    fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            "jpg" => Self::Jpeg,
            "png" => Self::Png,
            "gif" => Self::Gif,
            "bmp" => Self::Bmp,
            "webp" => Self::WebP,
            _ => return None,
        })
    }
}

/// A server-generated media name: 32 lowercase hex digits, optionally
/// `_thumb`, a dot and a known extension. Nothing else (no slashes, dots
/// or user text) ever reaches a store as a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaName {
    name: String,
    kind: ImageKind,
}

impl MediaName {
    /// A fresh random name for a full image and its thumbnail.
    pub fn fresh_pair(kind: ImageKind, thumb_kind: ImageKind) -> (Self, Self) {
        let id = crate::auth::random_hex(16);
        (
            Self {
                name: format!("{id}.{}", kind.extension()),
                kind,
            },
            Self {
                name: format!("{id}_thumb.{}", thumb_kind.extension()),
                kind: thumb_kind,
            },
        )
    }

    /// Checks a name from a URL; `None` for anything the board would not
    /// have generated.
    pub fn parse(input: &str) -> Option<Self> {
        let (stem, ext) = input.split_once('.')?;
        let kind = ImageKind::from_extension(ext)?;
        let id = stem.strip_suffix("_thumb").unwrap_or(stem);
        let hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        hex.then(|| Self {
            name: input.to_owned(),
            kind,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// What kind of image it holds.
    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    /// The 32 hex digits a full image and its thumbnail share.
    pub fn id(&self) -> &str {
        let stem = self
            .name
            .split_once('.')
            .map_or(&*self.name, |(stem, _)| stem);
        stem.strip_suffix("_thumb").unwrap_or(stem)
    }

    /// Whether this names a thumbnail (`<id>_thumb.<ext>`).
    pub fn is_thumbnail(&self) -> bool {
        self.name.len() > self.id().len() && self.name[self.id().len()..].starts_with("_thumb.")
    }

    /// The full image `<id>.<ext>` of `kind` that shares this name's id.
    pub fn full_image(&self, kind: ImageKind) -> Self {
        Self {
            name: format!("{}.{}", self.id(), kind.extension()),
            kind,
        }
    }
}

/// One page of [`MediaStore::list_older_than`].
#[derive(Debug, Default)]
pub struct MediaPage {
    /// The stored media names of the page last modified before the cutoff,
    /// in name order. Objects that are not media names (anything the board
    /// would not have generated) are never listed.
    pub names: Vec<MediaName>,
    /// Objects the page looked at: old or fresh, media names or not.
    pub scanned: usize,
    /// Where the next page starts (opaque); `None` when this page reached
    /// the end of the store.
    pub next: Option<String>,
}

/// A store of image files.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Stores `bytes` under `name`, replacing what was there; readers see
    /// either the old or the new image, never part of one.
    async fn put(&self, name: &MediaName, bytes: Bytes) -> std::io::Result<()>;
    /// The bytes under `name`, if any.
    async fn get(&self, name: &MediaName) -> std::io::Result<Option<Bytes>>;
    /// Removes `name` (no error if it is already gone).
    async fn delete(&self, name: &MediaName) -> std::io::Result<()>;
    /// Whether `name` is stored, without reading it.
    async fn exists(&self, name: &MediaName) -> std::io::Result<bool> {
        Ok(self.get(name).await?.is_some())
    }
    /// One page of the store in name order: the first `limit` objects
    /// after `after` (a [`MediaPage::next`], or `None` to start at the
    /// beginning), and of those the media names last modified before
    /// `cutoff`. For the orphan sweep (`Data::sweep_media`), which bounds
    /// its work per run with `limit` and continues from `next`.
    async fn list_older_than(
        &self,
        cutoff: SystemTime,
        after: Option<&str>,
        limit: usize,
    ) -> std::io::Result<MediaPage>;
    /// Removes what interrupted writes left behind that listing does not
    /// show (a local directory's staging files) if older than `cutoff`;
    /// returns how many. Nothing for stores without such leftovers.
    async fn remove_stale_uploads(&self, _cutoff: SystemTime) -> std::io::Result<usize> {
        Ok(0)
    }
}

/// `Cache-Control` stored with every image where the backend keeps headers
/// (S3), so a CDN or browser reading the bucket directly caches it for good:
/// names are random and never reused, so an image never changes. The board's
/// own `/media/NAME` route answers with the same value.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Opens the media store named by `url`:
///
/// - `file://DIR` or a plain path: files in `DIR` (created if missing; a
///   relative path is relative to the working directory);
/// - `s3://BUCKET/PREFIX?endpoint=URL&region=REGION` (with the `aws`
///   feature): objects `PREFIX/NAME` in `BUCKET`. With `endpoint=` (an
///   S3-compatible server such as MinIO or s3rver) requests are path-style,
///   plain HTTP is allowed only for an `http://` endpoint, and the
///   credentials are `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from the
///   environment, or `S3RVER`/`S3RVER` when neither is set; never the
///   instance-metadata service. Without `endpoint=`, AWS itself, configured
///   from the `AWS_*` environment as `object_store`'s
///   `AmazonS3Builder::from_env` reads it (including its credential chain).
///   `region` defaults to `us-east-1`.
///
/// # Errors
/// A message for unknown schemes, malformed S3 URLs, S3 URLs in a build
/// without the `aws` feature, or a directory that cannot be created.
pub fn open(url: &str) -> Result<Arc<dyn MediaStore>, String> {
    if url.starts_with("s3://") {
        return open_s3(url);
    }
    let path = if let Some(path) = url.strip_prefix("file://") {
        path
    } else if url.contains("://") {
        return Err(format!(
            "unsupported media URL `{url}` (this build knows file://DIR{})",
            if cfg!(feature = "aws") {
                " and s3://BUCKET/PREFIX"
            } else {
                ""
            }
        ));
    } else {
        url
    };
    if path.is_empty() {
        return Err(format!("media URL `{url}` names no directory"));
    }
    let dir = PathBuf::from(path);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create media directory {}: {e}", dir.display()))?;
    // `LocalFileSystem` writes to a staging file beside the target and
    // renames it into place, so readers never see half an image.
    let local = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|e| format!("cannot use media directory {}: {e}", dir.display()))?;
    Ok(Arc::new(ObjectMedia {
        store: Arc::new(local),
        prefix: ObjectPath::default(),
        // `LocalFileSystem::put_opts` refuses attributes (NotImplemented);
        // the board's `/media/` route supplies the headers instead.
        attributes: false,
        // Its listing walks the directory in no particular order.
        sorted_listing: false,
        staging_dir: Some(dir.clone()),
        describe: format!("media directory {}", dir.display()),
    }))
}

#[cfg(not(feature = "aws"))]
fn open_s3(_url: &str) -> Result<Arc<dyn MediaStore>, String> {
    Err("this build has no S3 support; rebuild with `--features aws`".into())
}

#[cfg(feature = "aws")]
fn open_s3(url: &str) -> Result<Arc<dyn MediaStore>, String> {
    s3::open(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_generated_names_parse() {
        let good = "0123456789abcdef0123456789abcdef";
        assert!(MediaName::parse(&format!("{good}.jpg")).is_some());
        assert!(MediaName::parse(&format!("{good}_thumb.png")).is_some());
        for bad in [
            "../etc/passwd",
            "..%2f..%2fetc%2fpasswd",
            &format!("{good}.exe"),
            &format!("{good}.jpg.png"),
            &format!("../{good}.jpg"),
            &format!("{}.jpg", good.to_uppercase()),
            "short.jpg",
            "",
        ] {
            assert!(MediaName::parse(bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn fresh_names_parse_back() {
        let (full, thumb) = MediaName::fresh_pair(ImageKind::WebP, ImageKind::Png);
        assert_eq!(MediaName::parse(full.as_str()), Some(full.clone()));
        assert_eq!(MediaName::parse(thumb.as_str()), Some(thumb.clone()));
        assert!(thumb.as_str().ends_with("_thumb.png"));
    }

    #[test]
    fn a_thumbnail_knows_the_names_of_its_full_image() {
        let (full, thumb) = MediaName::fresh_pair(ImageKind::Jpeg, ImageKind::Png);
        assert_eq!(full.id(), thumb.id());
        assert_eq!(full.id().len(), 32);
        assert!(thumb.is_thumbnail());
        assert!(!full.is_thumbnail());
        assert_eq!(thumb.full_image(ImageKind::Jpeg), full);
        assert_eq!(
            full.full_image(ImageKind::Gif).as_str(),
            format!("{}.gif", full.id())
        );
    }
}
