//! Where images live, behind [`MediaStore`] (a local directory by default;
//! object stores for fleets slot in by URL), and the names they live under.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

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
}

/// A store of image files.
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Stores `bytes` under `name`.
    async fn put(&self, name: &MediaName, bytes: Bytes) -> std::io::Result<()>;
    /// The bytes under `name`, if any.
    async fn get(&self, name: &MediaName) -> std::io::Result<Option<Bytes>>;
    /// Removes `name` (no error if it is already gone).
    async fn delete(&self, name: &MediaName) -> std::io::Result<()>;
}

/// Opens the media store named by `url`: `file://DIR` or a plain path.
///
/// # Errors
/// A message for unknown schemes or a directory that cannot be created.
pub fn open(url: &str) -> Result<Arc<dyn MediaStore>, String> {
    let path = if let Some(path) = url.strip_prefix("file://") {
        path
    } else if url.contains("://") {
        return Err(format!(
            "unsupported media URL `{url}` (this build knows file://DIR)"
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
    Ok(Arc::new(LocalDir { dir }))
}

/// Images as files in one directory.
#[derive(Debug)]
pub struct LocalDir {
    dir: PathBuf,
}

#[async_trait]
impl MediaStore for LocalDir {
    async fn put(&self, name: &MediaName, bytes: Bytes) -> std::io::Result<()> {
        // Write then rename, so a reader never sees half a file.
        let final_path = self.dir.join(name.as_str());
        let temp = self.dir.join(format!(".{}.partial", name.as_str()));
        tokio::fs::write(&temp, &bytes).await?;
        tokio::fs::rename(&temp, &final_path).await
    }

    async fn get(&self, name: &MediaName) -> std::io::Result<Option<Bytes>> {
        match tokio::fs::read(self.dir.join(name.as_str())).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, name: &MediaName) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.dir.join(name.as_str())).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
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
}
