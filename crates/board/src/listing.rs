//! The list of all messages as pages show it: what the `all_messages` memo
//! caches. Image URLs are added here, as the original's `set_images_url`
//! did, and times are formatted once per load rather than per view.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::store::Message;

/// One message ready for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// The stored message.
    pub message: Message,
    /// URL of the full image.
    pub image_url: String,
    /// URL of the thumbnail.
    pub thumbnail_url: String,
    /// `2026-11-25 12:46 UTC`.
    pub posted: String,
    /// RFC 3339, for `<time datetime>`.
    pub posted_iso: String,
}

/// Every message, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageList {
    /// A random number per load: pages rendered from this list are cached
    /// under it, so a new list never shows an old rendering.
    pub generation: u64,
    /// The messages, newest first.
    pub messages: Vec<MessageView>,
}

impl MessageList {
    /// Builds the list from a table scan: adds URLs, sorts newest first.
    pub fn build(mut messages: Vec<Message>, media_base: &str) -> Self {
        messages.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.id.cmp(&a.id))
        });
        Self {
            generation: rand::random(),
            messages: messages
                .into_iter()
                .map(|m| set_images_url(m, media_base))
                .collect(),
        }
    }

    /// Messages of one user, newest first.
    pub fn by_user<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = &'a MessageView> + 'a {
        self.messages
            .iter()
            .filter(move |m| m.message.user_id == user_id)
    }

    /// The message whose full image is named `image`.
    pub fn by_image(&self, image: &str) -> Option<&MessageView> {
        self.messages.iter().find(|m| m.message.image == image)
    }
}

/// Adds image URLs under `media_base` (`/media/` or a CDN's base URL).
pub fn set_images_url(message: Message, media_base: &str) -> MessageView {
    let (posted, posted_iso) = format_time(message.created_at);
    MessageView {
        image_url: format!("{media_base}{}", message.image),
        thumbnail_url: format!("{media_base}{}", message.thumbnail),
        posted,
        posted_iso,
        message,
    }
}

/// Human and machine forms of a Unix-millisecond time.
pub fn format_time(millis: i64) -> (String, String) {
    let when = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let human = when
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    let iso = when
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (human, iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, user: &str, at: i64) -> Message {
        Message {
            id: id.into(),
            user_id: user.into(),
            author: "a".into(),
            location: String::new(),
            description: "d".into(),
            image: format!("{id}.jpg"),
            thumbnail: format!("{id}_thumb.jpg"),
            created_at: at,
        }
    }

    #[test]
    fn newest_first_with_urls() {
        let list = MessageList::build(
            vec![
                message("a", "u1", 1),
                message("b", "u2", 3),
                message("c", "u1", 2),
            ],
            "https://cdn.example/m/",
        );
        let ids: Vec<_> = list
            .messages
            .iter()
            .map(|m| m.message.id.as_str())
            .collect();
        assert_eq!(ids, ["b", "c", "a"]);
        assert_eq!(list.messages[0].image_url, "https://cdn.example/m/b.jpg");
        assert_eq!(
            list.messages[0].thumbnail_url,
            "https://cdn.example/m/b_thumb.jpg"
        );
        assert_eq!(list.by_user("u1").count(), 2);
        assert_eq!(
            list.by_image("c.jpg").map(|m| m.message.id.as_str()),
            Some("c")
        );
        assert!(list.by_image("c_thumb.jpg").is_none());
    }

    #[test]
    fn times_format() {
        let (human, iso) = format_time(1_764_074_760_000);
        assert_eq!(human, "2025-11-25 12:46 UTC");
        assert_eq!(iso, "2025-11-25T12:46:00Z");
    }
}
