//! Where images live, behind [`MediaStore`], and the names they live under.
//!
//! One implementation, [`ObjectMedia`], covers every backend through the
//! `object_store` crate: a local directory (`file://DIR`, the default) and,
//! with the `aws` feature, S3 or an S3-compatible server (`s3://BUCKET/PREFIX`)
//! for fleets of boards that share their images.

use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

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

/// Images in an [`ObjectStore`]: under `prefix`, each object named by its
/// [`MediaName`].
#[derive(Debug)]
pub struct ObjectMedia {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Whether the backend keeps `Content-Type` and `Cache-Control`.
    attributes: bool,
    /// Whether `list` yields locations in order, so a page can stop early.
    sorted_listing: bool,
    /// A local directory, whose interrupted writes leave staging files
    /// (`NAME#N`) that `list` hides.
    staging_dir: Option<PathBuf>,
    /// For error messages: which store this is.
    describe: String,
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

#[cfg(feature = "aws")]
mod s3 {
    //! `s3://BUCKET/PREFIX?endpoint=…&region=…`.

    use std::sync::Arc;
    use std::time::Duration;

    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path as ObjectPath;
    use object_store::{BackoffConfig, ClientOptions, RetryConfig};

    use super::{MediaStore, ObjectMedia};

    /// Credentials for a local S3-compatible server when the environment
    /// names none (s3rver's defaults; MinIO and others accept any pair
    /// they were started with).
    const DUMMY_KEY: &str = "S3RVER";

    pub(super) fn open(raw: &str) -> Result<Arc<dyn MediaStore>, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("media URL `{raw}`: {e}"))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("media URL `{raw}` names no bucket (s3://BUCKET/PREFIX)"))?
            .to_owned();
        if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
            return Err(format!(
                "media URL `{raw}`: put the server in `?endpoint=`, and credentials in \
                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            ));
        }
        let prefix = url.path().trim_matches('/');
        let prefix = ObjectPath::parse(prefix)
            .map_err(|e| format!("media URL `{raw}`: bad prefix `{prefix}`: {e}"))?;
        let (mut endpoint, mut region) = (None, None);
        for (key, value) in url.query_pairs() {
            match &*key {
                "endpoint" => endpoint = Some(value.into_owned()),
                "region" => region = Some(value.into_owned()),
                other => {
                    return Err(format!(
                        "media URL `{raw}`: unknown parameter `{other}` (known: endpoint, region)"
                    ));
                }
            }
        }

        let builder = match &endpoint {
            Some(endpoint) => {
                let allow_http = if endpoint.starts_with("http://") {
                    true
                } else if endpoint.starts_with("https://") {
                    false
                } else {
                    return Err(format!(
                        "media URL `{raw}`: endpoint `{endpoint}` is not an http:// or https:// URL"
                    ));
                };
                let (key, secret) = credentials()?;
                // Static credentials always, so the instance-metadata
                // service is never asked; nothing else from the `AWS_*`
                // environment either.
                AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false)
                    .with_access_key_id(key)
                    .with_secret_access_key(secret)
                    .with_client_options(client_options().with_allow_http(allow_http))
            }
            None => AmazonS3Builder::from_env().with_client_options(client_options()),
        };
        let mut builder = builder.with_bucket_name(&bucket).with_retry(retry_config());
        if let Some(region) = region {
            builder = builder.with_region(region);
        } else if endpoint.is_some() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder
            .build()
            .map_err(|e| format!("media URL `{raw}`: {e}"))?;
        let describe = match &endpoint {
            Some(endpoint) => format!("S3 bucket {bucket} at {endpoint}"),
            None => format!("S3 bucket {bucket}"),
        };
        Ok(Arc::new(ObjectMedia {
            store: Arc::new(store),
            prefix,
            attributes: true,
            // `ListObjectsV2` returns keys in UTF-8 binary order.
            sorted_listing: true,
            staging_dir: None,
            describe,
        }))
    }

    /// The key pair for an `endpoint=` server.
    fn credentials() -> Result<(String, String), String> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => Ok((key, secret)),
            (None, None) => Ok((DUMMY_KEY.into(), DUMMY_KEY.into())),
            _ => Err("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither".into()),
        }
    }

    /// Timeouts that make a dead endpoint an error within seconds: a
    /// connect gives up after 2 s, a connection that goes silent (a hung
    /// server) after 5 s without a byte, and a whole request (images up to
    /// the upload limit) after 30 s.
    fn client_options() -> ClientOptions {
        ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_read_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30))
    }

    /// A few quick retries for transient errors (connection resets, 5xx,
    /// SlowDown), none started more than 4 s after the first attempt, so a
    /// request on a dead or hung endpoint fails within about 6 s.
    fn retry_config() -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(4),
        }
    }
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
