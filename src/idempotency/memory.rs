//! The in-process store: right for one replica (records die with the process). Bounded: at most
//! `max_keys` keys. To make room for a new key it forgets the least recently used record, but
//! never one used (claimed or finished) within `retain` — its request may still be running or
//! about to be retried; when every record is that recent, the new key is refused (the caller
//! gets 503 and nothing is sent).

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::future::{self, BoxFuture};
use tokio::time::Instant;

use super::{Claim, Lease, Record, Store, StoreError};

pub struct MemoryStore {
    entries: Mutex<Entries>,
    max_keys: usize,
    retain: Duration,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Keys by last use, oldest first. An item whose time is not its entry's `used` any more is
    /// stale (the key was used again since) and skipped.
    order: VecDeque<(String, Instant)>,
}

struct Entry {
    fingerprint: Box<str>,
    /// The holder of the running claim, until when, and since when (unix ms).
    running: Option<(Box<str>, Instant, u64)>,
    /// The record, serialized (a few hundred bytes; read back only on a replay).
    record: Option<Box<[u8]>>,
    expires: Instant,
    used: Instant,
}

fn stored(record: &Record) -> Box<[u8]> {
    serde_json::to_vec(record)
        .expect("a record serializes")
        .into_boxed_slice()
}

fn decode_record(bytes: &[u8]) -> Option<Record> {
    serde_json::from_slice(bytes).ok()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Entries {
    fn touch(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.map.get_mut(key) {
            e.used = now;
            self.order.push_back((key.to_owned(), now));
        }
        // Stale items are dropped from the front as they come; rebuild when they pile up
        // behind a recent one.
        if self.order.len() > 2 * self.map.len() + 64 {
            let mut live: Vec<(String, Instant)> =
                self.map.iter().map(|(k, e)| (k.clone(), e.used)).collect();
            live.sort_by_key(|(_, used)| *used);
            self.order = live.into();
        }
    }

    /// Forgets what can be forgotten until there is room for one more key: expired records,
    /// then the least recently used ones not used within `retain`. Whether there is room.
    fn make_room(&mut self, max_keys: usize, retain: Duration, now: Instant) -> bool {
        while self.map.len() >= max_keys {
            let Some((key, used)) = self.order.front().cloned() else {
                break;
            };
            let forget = match self.map.get(&key) {
                None => {
                    self.order.pop_front();
                    continue;
                }
                Some(e) if e.used != used => {
                    self.order.pop_front();
                    continue;
                }
                Some(e) => e.expires <= now || now.saturating_duration_since(used) >= retain,
            };
            if !forget {
                // The least recently used record is recent: so are all the others.
                break;
            }
            self.order.pop_front();
            self.map.remove(&key);
        }
        self.map.len() < max_keys
    }
}

impl MemoryStore {
    pub fn new(max_keys: usize, retain: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            max_keys,
            retain,
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim_now(
        &self,
        key: &str,
        fingerprint: &str,
        holder: &Lease,
        lease: Duration,
        ttl: Duration,
    ) -> Claim {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let running = Some((holder.owner.as_str().into(), now + lease, unix_ms()));
        let live = entries.map.get(key).is_some_and(|e| e.expires > now);
        if !live {
            entries.map.remove(key);
            if !entries.make_room(self.max_keys, self.retain, now) {
                return Claim::Full;
            }
            entries.map.insert(
                key.to_owned(),
                Entry {
                    fingerprint: fingerprint.into(),
                    running,
                    record: None,
                    expires: now + ttl,
                    used: now,
                },
            );
            entries.touch(key, now);
            crate::metrics::idempotency_keys(entries.map.len());
            return Claim::New;
        }
        let entry = entries.map.get_mut(key).expect("checked live");
        if &*entry.fingerprint != fingerprint {
            return Claim::Mismatch;
        }
        let abandoned = match &entry.running {
            Some((_, until, _)) if *until > now => return Claim::InFlight,
            Some((_, _, since)) => Some(*since),
            None => None,
        };
        entry.running = running;
        entry.expires = now + ttl;
        let record = entry.record.as_deref().and_then(decode_record);
        entries.touch(key, now);
        match (abandoned, record) {
            (None, Some(record)) => Claim::Finished(record),
            (since, record) => Claim::Abandoned(record, since),
        }
    }

    fn finish_now(&self, key: &str, holder: &Lease, record: &Record, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        match entries.map.get_mut(key) {
            Some(e) if matches!(&e.running, Some((owner, _, _)) if **owner == *holder.owner) => {
                e.running = None;
                e.record = Some(stored(record));
                e.expires = now + ttl;
                entries.touch(key, now);
                true
            }
            _ => false,
        }
    }

    fn release_now(&self, key: &str, holder: &Lease) {
        let mut entries = self.entries.lock();
        let Some(e) = entries.map.get_mut(key) else {
            return;
        };
        if !matches!(&e.running, Some((owner, _, _)) if **owner == *holder.owner) {
            return;
        }
        if e.record.is_some() {
            e.running = None;
        } else {
            entries.map.remove(key);
            crate::metrics::idempotency_keys(entries.map.len());
        }
    }
}

impl Store for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        holder: &'a Lease,
        lease: Duration,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(future::ready(Ok(self.claim_now(
            key,
            fingerprint,
            holder,
            lease,
            ttl,
        ))))
    }

    fn finish<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(future::ready(Ok(self.finish_now(key, holder, record, ttl))))
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.release_now(key, holder);
        Box::pin(future::ready(Ok(())))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record() -> Record {
        Record {
            operation_id: uuid::Uuid::nil(),
            results: BTreeMap::new(),
            sent_ms: BTreeMap::new(),
        }
    }

    const LEASE: Duration = Duration::from_secs(10);
    const TTL: Duration = Duration::from_secs(100);

    fn store() -> MemoryStore {
        MemoryStore::new(1000, Duration::from_secs(50))
    }

    #[tokio::test(start_paused = true)]
    async fn claim_states() {
        let store = store();
        let (a, b) = (Lease::new(), Lease::new());
        assert!(matches!(
            store.claim_now("k", "f", &a, LEASE, TTL),
            Claim::New
        ));
        assert!(matches!(
            store.claim_now("k", "f", &b, LEASE, TTL),
            Claim::InFlight
        ));
        assert!(matches!(
            store.claim_now("k", "g", &b, LEASE, TTL),
            Claim::Mismatch
        ));
        assert!(
            !store.finish_now("k", &b, &record(), TTL),
            "b holds no claim"
        );
        assert!(store.finish_now("k", &a, &record(), TTL));
        assert!(matches!(
            store.claim_now("k", "f", &b, LEASE, TTL),
            Claim::Finished(_)
        ));

        // b's claim runs out without finishing: the next claim finds it abandoned.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(
            store.claim_now("k", "f", &a, LEASE, TTL),
            Claim::Abandoned(Some(_), Some(_))
        ));
        assert!(
            !store.finish_now("k", &b, &record(), TTL),
            "b lost its claim"
        );

        tokio::time::advance(Duration::from_secs(101)).await;
        assert!(
            matches!(store.claim_now("k", "g", &a, LEASE, TTL), Claim::New),
            "expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_of_recent_keys_it_refuses_a_new_one_and_forgets_only_old_ones() {
        let store = MemoryStore::new(3, Duration::from_secs(50));
        let holder = Lease::new();
        for key in ["a", "b", "c"] {
            assert!(matches!(
                store.claim_now(key, "f", &holder, LEASE, TTL),
                Claim::New
            ));
            assert!(store.finish_now(key, &holder, &record(), TTL));
        }
        assert!(matches!(
            store.claim_now("d", "f", &holder, LEASE, TTL),
            Claim::Full
        ));
        assert_eq!(store.len(), 3, "nothing recent forgotten");

        tokio::time::advance(Duration::from_secs(30)).await;
        // `a` is used again: it is now the most recent.
        assert!(matches!(
            store.claim_now("a", "f", &holder, LEASE, TTL),
            Claim::Finished(_)
        ));
        assert!(store.finish_now("a", &holder, &record(), TTL));
        tokio::time::advance(Duration::from_secs(25)).await;
        // `b` and `c` are 55 s old, `a` 25 s: `b` goes first, then `c`.
        assert!(matches!(
            store.claim_now("d", "f", &holder, LEASE, TTL),
            Claim::New
        ));
        assert!(matches!(
            store.claim_now("e", "f", &holder, LEASE, TTL),
            Claim::New
        ));
        assert_eq!(store.len(), 3);
        assert!(
            matches!(
                store.claim_now("a", "f", &holder, LEASE, TTL),
                Claim::Finished(_)
            ),
            "the recently used key is kept"
        );
        assert!(
            matches!(store.claim_now("f", "f", &holder, LEASE, TTL), Claim::Full),
            "d, e (running) and a are recent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_claim_can_be_claimed_again_at_once() {
        let store = store();
        let (a, b) = (Lease::new(), Lease::new());
        assert!(matches!(
            store.claim_now("k", "f", &a, LEASE, TTL),
            Claim::New
        ));
        store.release_now("k", &b);
        assert!(
            matches!(store.claim_now("k", "f", &b, LEASE, TTL), Claim::InFlight),
            "only its holder releases it"
        );
        store.release_now("k", &a);
        assert!(matches!(
            store.claim_now("k", "f", &b, LEASE, TTL),
            Claim::New
        ));
    }
}
