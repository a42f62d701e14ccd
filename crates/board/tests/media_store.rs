//! The board's media stores against real backends: a local directory, and
//! (with the `aws` feature) a real S3-compatible server, s3rver, on loopback.
//!
//! Every backend passes the same behaviour checks; S3 also has its stored
//! headers, its prefix and its failure on a dead endpoint checked.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use board::media::{self, ImageKind, MediaName, MediaStore};
use bytes::Bytes;

/// The behaviour every store must have.
async fn behaves_like_a_media_store(store: &Arc<dyn MediaStore>) {
    let (full, thumb) = MediaName::fresh_pair(ImageKind::Jpeg, ImageKind::Png);

    // A name never stored is simply absent.
    assert_eq!(store.get(&full).await.unwrap(), None);

    // Round trip, and the thumbnail is a separate object.
    store
        .put(&full, Bytes::from_static(b"full image"))
        .await
        .unwrap();
    store
        .put(&thumb, Bytes::from_static(b"thumb"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&full).await.unwrap().as_deref(),
        Some(&b"full image"[..])
    );
    assert_eq!(
        store.get(&thumb).await.unwrap().as_deref(),
        Some(&b"thumb"[..])
    );

    // Overwrite replaces the whole object (shorter than before, too).
    store.put(&full, Bytes::from_static(b"new")).await.unwrap();
    assert_eq!(
        store.get(&full).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );

    // Delete, then it is gone; deleting again is fine.
    store.delete(&full).await.unwrap();
    assert_eq!(store.get(&full).await.unwrap(), None);
    store.delete(&full).await.unwrap();
    assert_eq!(
        store.get(&thumb).await.unwrap().as_deref(),
        Some(&b"thumb"[..]),
        "deleting the image left its thumbnail alone"
    );

    // Deleting a name that never existed is fine.
    let (never, _) = MediaName::fresh_pair(ImageKind::Gif, ImageKind::Gif);
    store.delete(&never).await.unwrap();

    // Empty and larger (multi-megabyte) images survive intact.
    store.put(&full, Bytes::new()).await.unwrap();
    assert_eq!(store.get(&full).await.unwrap().as_deref(), Some(&b""[..]));
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    store.put(&full, Bytes::from(big.clone())).await.unwrap();
    assert_eq!(store.get(&full).await.unwrap().as_deref(), Some(&big[..]));

    store.delete(&full).await.unwrap();
    store.delete(&thumb).await.unwrap();

    lists_like_a_media_store(store).await;
}

/// All of `store`'s listing from the start, `limit` objects a page.
async fn listed(store: &Arc<dyn MediaStore>, cutoff: SystemTime, limit: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        let page = store
            .list_older_than(cutoff, after.as_deref(), limit)
            .await
            .unwrap();
        assert!(page.scanned <= limit, "{page:?}");
        assert!(page.names.len() <= page.scanned, "{page:?}");
        names.extend(page.names.iter().map(|n| n.as_str().to_owned()));
        match page.next {
            Some(next) => after = Some(next),
            None => return names,
        }
    }
    panic!("the listing never ended");
}

/// `list_older_than` (the orphan sweep's listing): media names last
/// modified before the cutoff, in name order, the same whole in one page
/// or walked one object a page.
async fn lists_like_a_media_store(store: &Arc<dyn MediaStore>) {
    let mut ours = Vec::new();
    for (kind, thumb_kind) in [
        (ImageKind::Jpeg, ImageKind::Png),
        (ImageKind::Gif, ImageKind::WebP),
    ] {
        let (full, thumb) = MediaName::fresh_pair(kind, thumb_kind);
        for name in [full, thumb] {
            store.put(&name, Bytes::from_static(b"img")).await.unwrap();
            ours.push(name.as_str().to_owned());
        }
    }
    ours.sort();
    let mine = |names: Vec<String>| -> Vec<String> {
        names.into_iter().filter(|n| ours.contains(n)).collect()
    };

    // Older than an hour ago: none of them.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(
        mine(listed(store, hour_ago, 100).await),
        Vec::<String>::new()
    );
    // Older than a minute ahead: all, in order, in pages of any size.
    let ahead = SystemTime::now() + Duration::from_secs(60);
    let whole = listed(store, ahead, 100).await;
    assert!(whole.is_sorted(), "{whole:?}");
    assert_eq!(mine(whole.clone()), ours);
    assert_eq!(listed(store, ahead, 1).await, whole);
    assert_eq!(listed(store, ahead, 3).await, whole);

    for name in &ours {
        store
            .delete(&MediaName::parse(name).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(mine(listed(store, ahead, 100).await), Vec::<String>::new());
}

#[tokio::test]
async fn local_directory_behaves_like_a_media_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("media").display());
    let store = media::open(&url).unwrap();
    behaves_like_a_media_store(&store).await;

    // A plain path works the same.
    let store = media::open(dir.path().join("plain").to_str().unwrap()).unwrap();
    behaves_like_a_media_store(&store).await;
}

#[tokio::test]
async fn local_directory_keeps_images_as_plain_files_and_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = media::open(dir.path().to_str().unwrap()).unwrap();
    let (full, thumb) = MediaName::fresh_pair(ImageKind::WebP, ImageKind::Png);
    store.put(&full, Bytes::from_static(b"one")).await.unwrap();
    store.put(&full, Bytes::from_static(b"two")).await.unwrap();
    store.put(&thumb, Bytes::from_static(b"t")).await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join(full.as_str())).unwrap(),
        b"two"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected = vec![full.as_str().to_owned(), thumb.as_str().to_owned()];
    expected.sort();
    assert_eq!(names, expected, "staging files left behind");
}

#[tokio::test]
async fn local_directory_readers_never_see_half_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = media::open(dir.path().to_str().unwrap()).unwrap();
    let (name, _) = MediaName::fresh_pair(ImageKind::Png, ImageKind::Png);
    let a = Bytes::from(vec![b'a'; 1024 * 1024]);
    let b = Bytes::from(vec![b'b'; 2 * 1024 * 1024]);
    store.put(&name, a.clone()).await.unwrap();

    let writer = {
        let (store, name, a, b) = (store.clone(), name.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..40 {
                let bytes = if i % 2 == 0 { b.clone() } else { a.clone() };
                store.put(&name, bytes).await.unwrap();
            }
        })
    };
    while !writer.is_finished() {
        let seen = store.get(&name).await.unwrap().expect("image vanished");
        assert!(seen == a || seen == b, "saw a partial image");
    }
    writer.await.unwrap();
}

/// Only media names directly in the directory are listed; the staging
/// file a crash mid-write leaves (`NAME#N`, which the listing hides) is
/// removed once older than the cutoff, and other files stay.
#[tokio::test]
async fn local_directory_lists_media_names_only_and_removes_stale_staging_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = media::open(dir.path().to_str().unwrap()).unwrap();
    let (full, _) = MediaName::fresh_pair(ImageKind::Png, ImageKind::Png);
    store.put(&full, Bytes::from_static(b"png")).await.unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub").join(full.as_str()), b"nested").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not media").unwrap();
    let staging = format!("{}#1", full.as_str());
    std::fs::write(dir.path().join(&staging), b"half").unwrap();

    let ahead = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(listed(&store, ahead, 100).await, [full.as_str()]);
    let page = store.list_older_than(ahead, None, 100).await.unwrap();
    assert_eq!(
        page.scanned, 3,
        "the media name, the nested copy, the notes"
    );

    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.remove_stale_uploads(hour_ago).await.unwrap(), 0);
    assert!(dir.path().join(&staging).exists());
    assert_eq!(store.remove_stale_uploads(ahead).await.unwrap(), 1);
    assert!(!dir.path().join(&staging).exists());
    assert!(dir.path().join("notes.txt").exists());
    assert!(dir.path().join(full.as_str()).exists());
}

#[test]
fn local_directory_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let url = format!("file://{}", file.join("media").display());
    let error = media::open(&url).err().expect("opened under a file");
    assert!(
        error.starts_with("cannot create media directory"),
        "{error}"
    );
}

#[test]
fn unknown_schemes_are_refused() {
    let error = media::open("ftp://example/media").err().unwrap();
    assert!(error.contains("unsupported media URL"), "{error}");
    assert!(media::open("file://").is_err());
}

#[cfg(not(feature = "aws"))]
#[test]
fn s3_needs_the_aws_feature() {
    let error = media::open("s3://board/media?endpoint=http://127.0.0.1:9")
        .err()
        .unwrap();
    assert_eq!(
        error,
        "this build has no S3 support; rebuild with `--features aws`"
    );
}

#[cfg(feature = "aws")]
mod s3 {
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use board::media::{self, ImageKind, MediaName, MediaStore};
    use bytes::Bytes;
    use object_store::aws::{AmazonS3, AmazonS3Builder};
    use object_store::path::Path;
    use object_store::{Attribute, GetOptions, ObjectStore, ObjectStoreExt};
    use testkit::S3Server;

    use super::behaves_like_a_media_store;

    fn url(server: &S3Server, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region=us-east-1",
            server.bucket(),
            server.endpoint()
        )
    }

    /// A client of its own, to look at what the board's store left behind.
    fn inspector(server: &S3Server) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(server.endpoint())
            .with_allow_http(true)
            .with_bucket_name(server.bucket())
            .with_region("us-east-1")
            .with_access_key_id(server.access_key_id())
            .with_secret_access_key(server.secret_access_key())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn s3_behaves_like_a_media_store() {
        let server = S3Server::start();
        let store = media::open(&url(&server, "media")).unwrap();
        behaves_like_a_media_store(&store).await;
        // With no prefix at all, too.
        let store = media::open(&url(&server, "")).unwrap();
        behaves_like_a_media_store(&store).await;
    }

    #[tokio::test]
    async fn s3_objects_carry_content_type_and_cache_control() {
        let server = S3Server::start();
        let store = media::open(&url(&server, "media")).unwrap();
        let (full, thumb) = MediaName::fresh_pair(ImageKind::WebP, ImageKind::Png);
        store.put(&full, Bytes::from_static(b"webp")).await.unwrap();
        store.put(&thumb, Bytes::from_static(b"png")).await.unwrap();

        let inspector = inspector(&server);
        for (name, content_type) in [(&full, "image/webp"), (&thumb, "image/png")] {
            let head = inspector
                .get_opts(
                    &Path::from(format!("media/{}", name.as_str())),
                    GetOptions {
                        head: true,
                        ..GetOptions::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                head.attributes
                    .get(&Attribute::ContentType)
                    .map(|v| v.as_ref()),
                Some(content_type)
            );
            assert_eq!(
                head.attributes
                    .get(&Attribute::CacheControl)
                    .map(|v| v.as_ref()),
                Some(media::CACHE_CONTROL)
            );
            assert_eq!(media::CACHE_CONTROL, "public, max-age=31536000, immutable");
        }
    }

    #[tokio::test]
    async fn s3_objects_land_under_the_prefix() {
        let server = S3Server::start();
        let store = media::open(&url(&server, "fleet/media")).unwrap();
        let other = media::open(&url(&server, "elsewhere")).unwrap();
        let (full, _) = MediaName::fresh_pair(ImageKind::Jpeg, ImageKind::Jpeg);
        store.put(&full, Bytes::from_static(b"jpeg")).await.unwrap();

        let inspector = inspector(&server);
        let key = Path::from(format!("fleet/media/{}", full.as_str()));
        let meta = inspector.head(&key).await.unwrap();
        assert_eq!(meta.size, 4);
        assert!(
            inspector
                .head(&Path::from(full.as_str()))
                .await
                .is_err_and(|e| matches!(e, object_store::Error::NotFound { .. })),
            "the object is at the bucket's root too"
        );
        // A store with another prefix does not see it.
        assert_eq!(other.get(&full).await.unwrap(), None);

        // Nor lists it; and objects below the prefix that are not media
        // names directly under it are not listed either.
        let ahead = SystemTime::now() + Duration::from_secs(60);
        let page = other.list_older_than(ahead, None, 100).await.unwrap();
        assert!(page.names.is_empty(), "{page:?}");
        for key in [
            format!("fleet/media/sub/{}", full.as_str()),
            "fleet/media/notes.txt".to_owned(),
        ] {
            inspector
                .put(&Path::from(key), Bytes::from_static(b"x").into())
                .await
                .unwrap();
        }
        let page = store.list_older_than(ahead, None, 100).await.unwrap();
        assert_eq!(page.scanned, 3, "{page:?}");
        assert_eq!(page.names, std::slice::from_ref(&full));
        assert_eq!(store.remove_stale_uploads(ahead).await.unwrap(), 0);
    }

    /// Runs `put`, `get` and `delete` against a store that cannot answer,
    /// expecting each to fail, each within `limit`, with a message naming
    /// the store.
    async fn fails_in_bounded_time(store: &Arc<dyn MediaStore>, limit: Duration) {
        let (name, _) = MediaName::fresh_pair(ImageKind::Png, ImageKind::Png);
        let started = Instant::now();
        let error = store
            .put(&name, Bytes::from_static(b"png"))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < limit, "put took {took:?}: {error}");
        let message = error.to_string();
        assert!(
            message.contains("S3 bucket board at http://127.0.0.1:")
                && message.contains(&format!("cannot store {}", name.as_str())),
            "{message}"
        );

        let started = Instant::now();
        let error = store.get(&name).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < limit, "get took {took:?}: {error}");
        assert!(error.to_string().contains("cannot read"), "{error}");

        let started = Instant::now();
        let error = store.delete(&name).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < limit, "delete took {took:?}: {error}");
        assert!(error.to_string().contains("cannot delete"), "{error}");
    }

    #[tokio::test]
    async fn s3_on_a_dead_endpoint_fails_within_seconds() {
        // Nothing listens on the port: connections are refused, retried a
        // few times, then reported.
        let mut server = S3Server::start();
        let store = media::open(&url(&server, "media")).unwrap();
        server.stop();
        fails_in_bounded_time(&store, Duration::from_secs(8)).await;
        // The same store works again once the server is back.
        server.restart();
        let (name, _) = MediaName::fresh_pair(ImageKind::Png, ImageKind::Png);
        store.put(&name, Bytes::from_static(b"back")).await.unwrap();
        assert_eq!(
            store.get(&name).await.unwrap().as_deref(),
            Some(&b"back"[..])
        );
    }

    #[tokio::test]
    async fn s3_on_a_hung_endpoint_fails_within_seconds() {
        // Something accepts connections (the kernel's backlog) but never
        // answers: the read timeout ends each request.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let store = media::open(&format!(
            "s3://board/media?endpoint={endpoint}&region=us-east-1"
        ))
        .unwrap();
        fails_in_bounded_time(&store, Duration::from_secs(12)).await;
        drop(listener);
    }

    #[test]
    fn malformed_s3_urls_are_refused_clearly() {
        for (url, expected) in [
            ("s3:///media?endpoint=http://127.0.0.1:9", "names no bucket"),
            (
                "s3://board/media?endpoint=http://127.0.0.1:9&color=blue",
                "unknown parameter `color`",
            ),
            (
                "s3://board/media?endpoint=ftp://127.0.0.1:9",
                "is not an http:// or https:// URL",
            ),
            (
                "s3://key:secret@board/media?endpoint=http://127.0.0.1:9",
                "credentials in AWS_ACCESS_KEY_ID",
            ),
            ("s3://board/a//b?endpoint=http://127.0.0.1:9", "bad prefix"),
        ] {
            let error = media::open(url)
                .err()
                .unwrap_or_else(|| panic!("{url} opened"));
            assert!(error.contains(expected), "{url}: {error}");
        }
    }
}
