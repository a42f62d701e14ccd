//! Shedding at the connection cap: a new connection is admitted by closing
//! the oldest idle one.
//!
//! A cap on open connections alone turns a distributed slowloris into a
//! denial of service: 1,100 idle sockets from 300 addresses (3 or 4 each,
//! under any per-address cap) fill an 800-connection board, and from then
//! on every new connection is refused for as long as the sockets are held;
//! a header timeout does not help, the attacker reopens. nginx's answer is
//! ours: at the cap, close an idle ("reusable") connection to make room.
//! An idle connection is the cheapest thing to drop: it has no request in
//! flight (a keep-alive connection between requests, or one whose first
//! request head is not complete), so closing it loses nothing a client
//! has been promised; an HTTP client retries a request on a kept-alive
//! connection that closes, as it must after any idle timeout.
//!
//! The rule: the accept loop, finding no free slot, marks the first idle
//! connection in accept order (the oldest) as *asked to go* and wakes its
//! task; the new connection waits (at most [`SHED_WAIT`]) for the slot
//! that frees, handed to it by the victim's task once the socket is
//! closed (directly, not through the pool, where the accept loop could
//! take it for a later connection that would then shed nobody). The
//! victim's task closes the connection only if it is still idle when it
//! runs, under the same lock a request takes to begin, so a request that
//! started in between is served and the connection stays (the newcomer
//! is then refused, as it would have been without shedding). So a
//! connection serving a request is never closed; a connection from an
//! attacker's sockets lasts until as many newer connections arrive as are
//! older than it, and a new client always gets in.
//!
//! Cost: a registry entry per connection (a `BTreeMap` insert and remove,
//! under a lock taken at accept and close only), and at the cap a walk
//! from the oldest connection to the first idle one, which skips only
//! connections busy with a request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::Activity;

/// How long a connection admitted by shedding waits for the slot the
/// shed one gives back (its task closes it at once; this only bounds the
/// rare case where a request began on it and it stays).
pub(super) const SHED_WAIT: Duration = Duration::from_secs(1);

/// Every open connection's activity, oldest first.
#[derive(Default)]
pub(super) struct Registry {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    by_age: BTreeMap<u64, Arc<Activity>>,
}

impl Registry {
    /// Enters a new connection; it leaves when the returned guard drops.
    pub(super) fn enter(this: &Arc<Self>, activity: Arc<Activity>) -> Entry {
        let mut open = this.open.lock();
        let id = open.next;
        open.next += 1;
        open.by_age.insert(id, activity);
        Entry {
            registry: Arc::clone(this),
            id,
        }
    }

    /// Asks the oldest idle connection to go; the slot it frees arrives
    /// on the receiver. `None` when every open connection is busy with a
    /// request (or already asked).
    pub(super) fn shed_oldest_idle(&self) -> Option<oneshot::Receiver<OwnedSemaphorePermit>> {
        let (mut handoff, slot) = oneshot::channel();
        let open = self.open.lock();
        for activity in open.by_age.values() {
            match activity.ask_to_go(handoff) {
                Ok(()) => return Some(slot),
                Err(back) => handoff = back,
            }
        }
        None
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.lock().by_age.len()
    }
}

/// A connection's place in the [`Registry`].
pub(super) struct Entry {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.open.lock().by_age.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Busy;
    use super::*;

    #[test]
    fn the_oldest_idle_connection_is_asked_to_go_never_a_busy_one() {
        let registry = Arc::new(Registry::default());
        let activities: Vec<Arc<Activity>> = (0..3).map(|_| Arc::new(Activity::new())).collect();
        let entries: Vec<Entry> = activities
            .iter()
            .map(|a| Registry::enter(&registry, Arc::clone(a)))
            .collect();
        // The oldest is serving a request: the second goes.
        let busy = Busy::begin(&activities[0]);
        assert!(registry.shed_oldest_idle().is_some());
        assert!(!activities[0].asked_to_go());
        assert!(activities[1].asked_to_go());
        // Asked once only: the next shed takes the third.
        assert!(registry.shed_oldest_idle().is_some());
        assert!(activities[2].asked_to_go());
        assert!(
            registry.shed_oldest_idle().is_none(),
            "only a busy one left"
        );
        drop(busy);
        assert!(registry.shed_oldest_idle().is_some(), "idle again");
        drop(entries);
        assert_eq!(registry.len(), 0);
    }

    #[tokio::test]
    async fn a_connection_whose_request_began_after_the_ask_stays() {
        let activity = Arc::new(Activity::new());
        let (handoff, slot) = oneshot::channel();
        activity.ask_to_go(handoff).expect("idle");
        // Its request head completed before its task saw the ask.
        let busy = Busy::begin(&activity);
        assert!(activity.go_if_idle().is_none(), "serving a request: stays");
        assert!(!activity.asked_to_go(), "the ask is withdrawn");
        assert!(slot.await.is_err(), "the newcomer gets no slot");
        drop(busy);
        let (handoff, slot) = oneshot::channel();
        activity.ask_to_go(handoff).expect("idle again");
        let pool = Arc::new(tokio::sync::Semaphore::new(1));
        let permit = Arc::clone(&pool).try_acquire_owned().expect("permit");
        activity
            .go_if_idle()
            .expect("goes")
            .send(permit)
            .expect("sent");
        let (late, _) = oneshot::channel();
        assert!(
            activity.ask_to_go(late).is_err(),
            "going: never asked again"
        );
        let received = slot.await.expect("the newcomer has the slot");
        assert_eq!(pool.available_permits(), 0, "handed over, not freed");
        drop(received);
        assert_eq!(pool.available_permits(), 1);
    }
}
