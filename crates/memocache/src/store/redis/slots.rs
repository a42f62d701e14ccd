//! Cluster routing: which master serves a key, from the cluster's slot
//! table (`CLUSTER SLOTS`) as this store last read it, and the masters of
//! `CLUSTER NODES`. Only used to name a key's node for its breaker (see
//! [`crate::breaker`]); the cluster client routes commands itself.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use redis::Value;

/// How old a cluster's slot table may get before it is read again.
pub(super) const SLOT_REFRESH: Duration = Duration::from_secs(10);
/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16_384;

/// Which master serves each slot, as this store last read it.
#[derive(Default)]
pub(super) struct SlotTable {
    pub(super) map: parking_lot::RwLock<Option<SlotMap>>,
    pub(super) refreshing: AtomicBool,
}

pub(super) struct SlotMap {
    pub(super) read_at: Instant,
    /// `host:port` of each master.
    nodes: Vec<Arc<str>>,
    /// Index into `nodes` per slot; `u16::MAX` for a slot nobody serves.
    owner: Box<[u16]>,
}

impl SlotMap {
    /// From a `CLUSTER SLOTS` reply: `[[start, end, [host, port, ...], replicas...], ...]`.
    pub(super) fn parse(reply: &Value, asked: &str) -> Option<Self> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let mut nodes: Vec<Arc<str>> = Vec::new();
        let mut owner = vec![u16::MAX; SLOTS].into_boxed_slice();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let host = match master.first() {
                Some(Value::BulkString(host)) if !host.is_empty() => {
                    String::from_utf8_lossy(host).into_owned()
                }
                // An empty or missing host: the node we asked.
                _ => asked.to_owned(),
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            let name = format!("{host}:{port}");
            let index = match nodes.iter().position(|n| **n == *name) {
                Some(index) => index,
                None => {
                    nodes.push(Arc::from(name));
                    nodes.len() - 1
                }
            };
            let index = u16::try_from(index).ok()?;
            let start = usize::try_from(*start).ok()?;
            let end = usize::try_from(*end).ok()?;
            for slot in owner.get_mut(start..=end)? {
                *slot = index;
            }
        }
        Some(Self {
            read_at: Instant::now(),
            nodes,
            owner,
        })
    }

    pub(super) fn node_of(&self, key: &[u8]) -> Option<Arc<str>> {
        let index = *self.owner.get(usize::from(key_slot(key)))?;
        self.nodes.get(usize::from(index)).cloned()
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, if not empty), modulo
/// 16384, as Redis Cluster computes it.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16_384
}

/// Lines of `CLUSTER NODES` flagged `master` and not failed:
/// `<id> <ip:port@cport[,hostname]> <flags> ...`.
pub(super) fn parse_masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            let address = fields.next()?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.contains(&"fail") {
                return None;
            }
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}
