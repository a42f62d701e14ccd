//! [`Intent`]: one invalidation as a value, recorded with a write and
//! delivered by any process (see [`crate::outbox`]). Below both the cache,
//! which delivers intents, and the outbox, which keeps them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// One invalidation, as it is recorded and delivered: what
/// [`Memo::forget`](crate::Memo::forget) (`Key`),
/// [`Memo::forget_all`](crate::Memo::forget_all) (`All`) or
/// [`Cache::invalidate_tag`](crate::Cache::invalidate_tag) (`Tag`) does, by name, so any process can
/// deliver it. Made by [`Memo::intent`](crate::Memo::intent),
/// [`Memo::intent_all`](crate::Memo::intent_all) and
/// [`Memo::intent_group`](crate::Memo::intent_group).
///
/// ```
/// use memocache::outbox::Intent;
/// let intents = vec![Intent::All { memo: "feed".into() }, Intent::Tag { tag: "prices".into() }];
/// let bytes = Intent::encode(&intents);
/// assert_eq!(Intent::decode(&bytes)?, intents);
/// # Ok::<(), memocache::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Intent {
    /// Forget one key of a memo.
    Key {
        /// The memo's name (on a [grouped](crate::MemoBuilder::grouped)
        /// memo, its group's name, which carries the key's group).
        memo: String,
        /// The stable hash of the key arguments.
        hash: u128,
    },
    /// Forget every value of a memo, or of one of its groups.
    All {
        /// The memo's name, or a group's name (made by
        /// [`Memo::intent_group`](crate::Memo::intent_group)).
        memo: String,
    },
    /// Remove the responses and fragments tagged `tag`.
    Tag {
        /// The tag.
        tag: String,
    },
}

/// The first byte of an encoded batch: the format's version.
const FORMAT: u8 = 1;

impl Intent {
    /// Encodes a batch of intents for an outbox row: a version byte, then
    /// postcard.
    ///
    /// ```
    /// use memocache::outbox::Intent;
    /// assert_eq!(Intent::encode(&[]), vec![1, 0]);
    /// ```
    pub fn encode(intents: &[Intent]) -> Vec<u8> {
        let mut bytes = vec![FORMAT];
        match postcard::to_allocvec(intents) {
            Ok(body) => bytes.extend_from_slice(&body),
            Err(error) => unreachable!("intents always serialize: {error}"),
        }
        bytes
    }

    /// Decodes a batch made by [`Intent::encode`].
    ///
    /// ```
    /// use memocache::outbox::Intent;
    /// assert!(Intent::decode(b"not an outbox row").is_err());
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Codec`] for bytes that are not such a batch.
    pub fn decode(bytes: &[u8]) -> Result<Vec<Intent>> {
        match bytes.split_first() {
            Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|error| {
                Error::new(ErrorKind::Codec, "outbox entry: undecodable intents").with_source(error)
            }),
            _ => Err(Error::new(
                ErrorKind::Codec,
                "outbox entry: unknown format (written by a newer version?)",
            )),
        }
    }
}
