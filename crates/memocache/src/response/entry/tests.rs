use super::*;

#[test]
fn the_client_gets_the_coding_it_weighs_highest() {
    let both = Codings {
        gzip: true,
        br: true,
    };
    let with = |value: &'static str, offered: Codings| {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        preferred(&headers, offered)
    };
    assert_eq!(with("gzip", both), Some(Coding::Gzip));
    assert_eq!(with("gzip, deflate, br, zstd", both), Some(Coding::Br));
    assert_eq!(with("br;q=0.5, gzip;q=0.8", both), Some(Coding::Gzip));
    assert_eq!(with("*", both), Some(Coding::Br));
    assert_eq!(with("*;q=0.5, br;q=0", both), Some(Coding::Gzip));
    assert_eq!(with("br", both), Some(Coding::Br));
    assert_eq!(with("deflate", both), None);
    assert_eq!(with("gzip;q=0", both), None);
    let gzip_only = Codings {
        gzip: true,
        br: false,
    };
    assert_eq!(with("br, gzip", gzip_only), Some(Coding::Gzip));
    assert_eq!(with("br", gzip_only), None);
    assert_eq!(preferred(&HeaderMap::new(), both), None);
    assert_eq!(with("gzip, br", Codings::NONE), None);
}

#[test]
fn each_coding_is_made_once_and_only_when_asked_for() {
    let mut response = Response::new(());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let (response, ()) = response.into_parts();
    let body = Bytes::from("<p>hello</p>".repeat(100));
    let entry = Entry::build(Parts {
        response: &response,
        request: &HeaderMap::new(),
        body: body.clone(),
        deps: Deps::default(),
        fresh_until: u64::MAX,
        codings: Codings {
            gzip: true,
            br: true,
        },
    });
    let identity = entry.respond(&HeaderMap::new(), None);
    assert!(identity.headers().get(header::CONTENT_ENCODING).is_none());
    assert_eq!(identity.headers()[header::VARY], "Accept-Encoding");
    assert!(
        entry.gzip.get().is_none() && entry.br.get().is_none(),
        "nobody asked yet"
    );
    let asking = |value: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        headers
    };
    let gzipped = entry.respond(&asking("gzip"), None);
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(
        entry.br.get().is_none(),
        "brotli not made for a gzip client"
    );
    let made = entry
        .gzip
        .get()
        .and_then(Option::as_ref)
        .map(|v| v.body.as_ptr());
    let again = entry.respond(&asking("gzip"), None);
    assert_eq!(
        again.headers()[header::ETAG],
        gzipped.headers()[header::ETAG]
    );
    let kept = entry
        .gzip
        .get()
        .and_then(Option::as_ref)
        .map(|v| v.body.as_ptr());
    assert_eq!(made, kept, "compressed once, served from then on");
    let br = entry.respond(&asking("gzip, br"), None);
    assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
    assert_ne!(br.headers()[header::ETAG], gzipped.headers()[header::ETAG]);
    let stored = entry
        .br
        .get()
        .and_then(Option::as_ref)
        .map(|v| v.body.clone());
    let stored = stored.unwrap_or_default();
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &stored[..], &mut plain).unwrap();
    assert_eq!(plain, body, "the brotli body decodes to the plain one");
    assert!(stored.len() < body.len());
}

#[test]
fn vary_is_one_line_and_a_304_repeats_only_what_it_must() {
    let mut response = Response::new(());
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html"),
        (header::VARY, "Cookie"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    let (response, ()) = response.into_parts();
    let entry = Entry::build(Parts {
        response: &response,
        request: &HeaderMap::new(),
        body: Bytes::from("<p>hello</p>".repeat(100)),
        deps: Deps::default(),
        fresh_until: u64::MAX,
        codings: Codings {
            gzip: true,
            br: false,
        },
    });
    let full = entry.respond(&HeaderMap::new(), None);
    let vary: Vec<_> = full.headers().get_all(header::VARY).iter().collect();
    assert_eq!(vary, ["Cookie, Accept-Encoding"]);
    assert!(full.headers().contains_key(header::LAST_MODIFIED));
    let mut revalidating = HeaderMap::new();
    revalidating.insert(header::IF_NONE_MATCH, full.headers()[header::ETAG].clone());
    let not_modified = entry.respond(&revalidating, None);
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
    let mut names: Vec<_> = not_modified
        .headers()
        .keys()
        .map(HeaderName::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["cache-control", "etag", "vary"]);
    assert_eq!(
        not_modified.headers()[header::VARY],
        "Cookie, Accept-Encoding"
    );
}

#[test]
fn private_cookies_and_encoded_bodies_are_not_storable() {
    let parts = |name: HeaderName, value: &'static str| {
        let mut response = Response::new(());
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
        response.into_parts().0
    };
    assert!(!storable(&parts(header::SET_COOKIE, "a=b")));
    assert!(!storable(&parts(
        header::CACHE_CONTROL,
        "private, max-age=5"
    )));
    assert!(!storable(&parts(header::CACHE_CONTROL, "no-store")));
    assert!(!storable(&parts(header::CONTENT_ENCODING, "br")));
    assert!(!storable(&parts(header::VARY, "*")));
    assert!(storable(&parts(header::CACHE_CONTROL, "no-cache")));
}
