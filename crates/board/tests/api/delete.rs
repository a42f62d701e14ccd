//! Deleting: only your own, the owner taken from the stored message.

use board::media::MediaName;
use reqwest::StatusCode;

use crate::helpers::{location, media_links, message_ids, spawn_app};

#[tokio::test]
async fn owners_delete_their_message_and_its_images() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("short-lived").await;
    let (_, mine) = app.get_text("/my").await;
    let id = message_ids(&mine).remove(0);
    let thumb = media_links(&mine).remove(0);
    assert_eq!(
        app.get(&format!("/media/{thumb}")).await.status(),
        StatusCode::OK
    );

    let response = app.post("/delete", &[("id", &id)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/my");
    let (_, mine) = app.get_text("/my").await;
    assert!(mine.contains("The message is deleted."));
    assert!(!app.get_text("/").await.1.contains("short-lived"));
    assert_eq!(
        app.get(&format!("/media/{thumb}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let full = thumb.replace("_thumb", "");
    assert_eq!(
        app.get(&format!("/image/{full}")).await.status(),
        StatusCode::NOT_FOUND
    );
    // Gone from the media store itself (a directory, or S3), not only
    // hidden by the app: the delete happens in the request, after the row.
    for name in [&thumb, &full] {
        let name = MediaName::parse(name).expect("a stored name");
        let stored = app
            .state
            .data
            .media()
            .get(&name)
            .await
            .expect("media store");
        assert!(stored.is_none(), "{} is still stored", name.as_str());
    }
}

#[tokio::test]
async fn another_users_message_is_forbidden_and_stays() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("ada's").await;
    let id = message_ids(&app.get_text("/my").await.1).remove(0);
    let ada_id = app.stored_messages().await[0].user_id.clone();

    let mallory = app.another_browser();
    mallory.signed_up("mallory").await;
    // Claiming to be the owner in the form changes nothing.
    let response = mallory
        .post(
            "/delete",
            &[("id", &id), ("user_id", &ada_id), ("owner", &ada_id)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("only delete your own")
    );
    assert_eq!(app.stored_messages().await.len(), 1);
    assert!(app.get_text("/").await.1.contains("ada&#"));
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_not_found() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    for id in [
        "0123456789abcdef0123456789abcdef",
        "1 OR 1=1",
        "",
        "../x",
        &"f".repeat(33),
    ] {
        let response = app.post("/delete", &[("id", id)]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn deleting_needs_the_csrf_token() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    app.posted("keep me").await;
    let id = message_ids(&app.get_text("/my").await.1).remove(0);
    let forged = app
        .post_form("/delete", &[("id", id.as_str()), ("csrf", "forged")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let missing = app.post_form("/delete", &[("id", id.as_str())]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.stored_messages().await.len(), 1);
}
