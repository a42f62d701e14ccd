//! Messages: the listings read a page at a time (first pages memoized,
//! see the table in [`super`]), the image page, listing sizes, and the
//! writes that are not posts (deleting, `board demo`'s bulk insert) with
//! the forgets they cause. Posting, with its budgets, is in `posting`.

use std::sync::Arc;

use memocache::outbox::Intent;
use serde::{Deserialize, Serialize};

use crate::listing::{MessageView, set_images_url};
use crate::media::MediaName;
use crate::store::{Bound, Listing, Message, Position, StoreError};

use super::{Data, DataError, intent};

/// One page of a listing, newest first, with the tokens of its neighbours.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeedPage {
    /// The messages shown.
    pub messages: Vec<MessageView>,
    /// Token of the next older page, if there are older messages.
    pub older: Option<String>,
    /// Token of the next newer page; `None` on the first page.
    pub newer: Option<String>,
    /// Whether this is the newest page.
    pub first: bool,
}

impl FeedPage {
    /// True for the newest page.
    pub fn is_first(&self) -> bool {
        self.first
    }
}

impl Data {
    /// The bound a page token names; `None` for the first page.
    ///
    /// # Errors
    /// [`DataError::BadCursor`] for a token this board did not make.
    pub fn bound(&self, token: Option<&str>) -> Result<Bound, DataError> {
        match token {
            None | Some("") => Ok(Bound::Newest),
            Some(token) => Ok(self.cursors.open(token)?),
        }
    }

    /// One page of the home listing: the first from `all_messages()`,
    /// deeper ones read as they are asked for (see the module docs).
    ///
    /// # Errors
    /// [`DataError::NotFound`] for a page past the oldest message; when the
    /// database fails.
    pub async fn feed_page(&self, bound: &Bound) -> Result<Arc<FeedPage>, DataError> {
        let page = match bound {
            Bound::Newest => {
                self.memos
                    .all_messages
                    .get_or_try_load(&(), || self.load_page(Listing::All, Bound::Newest))
                    .await?
            }
            deeper => Arc::new(self.load_page(Listing::All, deeper.clone()).await?),
        };
        found(page)
    }

    /// One page of `user_id`'s messages (`/my`): the first from
    /// `user_messages(user_id)`, deeper ones read as they are asked for.
    ///
    /// # Errors
    /// As [`Data::feed_page`].
    pub async fn user_page(
        &self,
        user_id: &str,
        bound: &Bound,
    ) -> Result<Arc<FeedPage>, DataError> {
        let listing = Listing::User(user_id.to_owned());
        let page = match bound {
            Bound::Newest => {
                self.memos
                    .user_messages
                    .get_or_try_load(user_id, || self.load_page(listing, Bound::Newest))
                    .await?
            }
            deeper => Arc::new(self.load_page(listing, deeper.clone()).await?),
        };
        found(page)
    }

    /// How many messages `listing` holds (`message_count(listing)`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn message_count(&self, listing: &Listing) -> Result<u64, DataError> {
        let store = &self.stores.messages;
        Ok(*self
            .memos
            .message_count
            .get_or_try_load(listing, || store.count(listing))
            .await?)
    }

    /// The message whose full image is `image` (`image_message(image)`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn image_message(&self, image: &MediaName) -> Result<Option<MessageView>, DataError> {
        let store = &self.stores.messages;
        let base = &self.settings.media_base;
        let name = image.as_str();
        let found = self
            .memos
            .image_message
            .get_or_try_load(name, || async move {
                Ok::<_, StoreError>(store.by_image(name).await?.map(|m| set_images_url(m, base)))
            })
            .await?;
        Ok(Option::clone(&found))
    }

    /// Reads one page: `page_size + 1` rows of one index range, the extra
    /// row only telling whether the page has a neighbour that way.
    async fn load_page(&self, listing: Listing, bound: Bound) -> Result<FeedPage, StoreError> {
        let size = self.settings.page_size.max(1) as usize;
        let limit = self.settings.page_size.max(1).saturating_add(1);
        let mut rows = self.stores.messages.page(&listing, &bound, limit).await?;
        let (older_exists, newer_exists) = match &bound {
            Bound::Newest => {
                let more = rows.len() > size;
                rows.truncate(size);
                (more, false)
            }
            Bound::Older(_) => {
                let more = rows.len() > size;
                rows.truncate(size);
                (more, true)
            }
            Bound::Newer(_) => {
                if rows.len() <= size {
                    // Nothing newer than these: this is the first page,
                    // shown whole (as page one, not a short page).
                    return Box::pin(self.load_page(listing, Bound::Newest)).await;
                }
                // Newest first, so the extra row is the first one.
                rows.remove(0);
                (true, true)
            }
        };
        let older = older_exists
            .then(|| rows.last())
            .flatten()
            .and_then(|m| self.cursors.seal(&Bound::Older(Position::of(m))));
        let newer = newer_exists
            .then(|| rows.first())
            .flatten()
            .and_then(|m| self.cursors.seal(&Bound::Newer(Position::of(m))));
        let base = &self.settings.media_base;
        Ok(FeedPage {
            messages: rows.into_iter().map(|m| set_images_url(m, base)).collect(),
            older,
            newer,
            first: bound == Bound::Newest,
        })
    }

    /// Deletes message `id` if `user_id` owns it (checked against the
    /// stored owner, never the request), forgets what it changes, then
    /// removes its files.
    ///
    /// # Errors
    /// [`DataError::NotFound`], [`DataError::NotOwner`], or a database
    /// failure (nothing deleted).
    pub async fn delete_message(&self, id: &str, user_id: &str) -> Result<Message, DataError> {
        let message = self
            .stores
            .messages
            .get(id)
            .await?
            .ok_or(DataError::NotFound)?;
        if message.user_id != user_id {
            return Err(DataError::NotOwner);
        }
        let messages = &self.stores.messages;
        self.durably(self.message_intents(&message)?, async {
            Ok(messages.delete(&message.id).await?)
        })
        .await?;
        // Demo messages share pictures: keep files another message shows.
        // The message is gone either way; if the check fails the files
        // stay (an orphan the media sweep removes later), never an error.
        match self.stores.messages.by_image(&message.image).await {
            Ok(None) => {}
            Ok(Some(_)) => return Ok(message),
            Err(error) => {
                tracing::warn!(%error, id = %message.id, "images kept: cannot tell if another message shows them");
                return Ok(message);
            }
        }
        let names: Vec<MediaName> = [&message.image, &message.thumbnail]
            .into_iter()
            .filter_map(|n| MediaName::parse(n))
            .collect();
        self.remove_files(&names.iter().collect::<Vec<_>>()).await;
        Ok(message)
    }

    /// Adds many messages at once (`board demo`), then forgets as a post
    /// would, once.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn insert_many(&self, messages: &[Message]) -> Result<(), DataError> {
        let mut users: Vec<&str> = messages.iter().map(|m| m.user_id.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let mut intents = vec![
            self.memos.all_messages.intent_all(),
            self.memos.message_count.intent_all(),
        ];
        for user in users {
            intents.push(intent(&self.memos.user_messages, user)?);
        }
        let store = &self.stores.messages;
        self.durably(
            intents,
            async move { Ok(store.insert_many(messages).await?) },
        )
        .await
    }

    /// `delete_memoized(...)` of everything `message`'s arrival or
    /// departure changes, as intents recorded with the write. With a
    /// tiered cache every process has dropped the old values when the
    /// write returns, or the outbox keeps them for the relays.
    pub(super) fn message_intents(&self, message: &Message) -> Result<Vec<Intent>, DataError> {
        let memos = &self.memos;
        let mine = Listing::User(message.user_id.clone());
        Ok(vec![
            memos.all_messages.intent_all(),
            intent(&memos.user_messages, &message.user_id)?,
            intent(&memos.message_count, &Listing::All)?,
            intent(&memos.message_count, &mine)?,
            intent(&memos.image_message, &message.image)?,
        ])
    }
}

/// A loaded page, or `NotFound` when a token led past the oldest message.
fn found(page: Arc<FeedPage>) -> Result<Arc<FeedPage>, DataError> {
    if page.messages.is_empty() && !page.is_first() {
        return Err(DataError::NotFound);
    }
    Ok(page)
}
