//! The in-process store: right for one replica (records die with the process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::{self, BoxFuture};
use tokio::time::Instant;

use super::{Claim, Lease, Record, Store, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    claims_since_sweep: u32,
}

struct Entry {
    fingerprint: String,
    /// The holder of the running claim, until when, and since when (unix ms).
    running: Option<(String, Instant, u64)>,
    record: Option<Record>,
    expires: Instant,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
        let mut entries = self.entries.lock().expect("store lock");
        entries.claims_since_sweep += 1;
        if entries.claims_since_sweep >= 1024 {
            entries.map.retain(|_, e| e.expires > now);
            entries.claims_since_sweep = 0;
        }
        let running = Some((holder.owner.clone(), now + lease, unix_ms()));
        let entry = match entries.map.get_mut(key) {
            Some(e) if e.expires > now => e,
            _ => {
                entries.map.insert(
                    key.to_owned(),
                    Entry {
                        fingerprint: fingerprint.to_owned(),
                        running,
                        record: None,
                        expires: now + ttl,
                    },
                );
                return Claim::New;
            }
        };
        if entry.fingerprint != fingerprint {
            return Claim::Mismatch;
        }
        let abandoned = match &entry.running {
            Some((_, until, _)) if *until > now => return Claim::InFlight,
            Some((_, _, since)) => Some(*since),
            None => None,
        };
        entry.running = running;
        entry.expires = now + ttl;
        let record = entry.record.clone();
        match (abandoned, record) {
            (None, Some(record)) => Claim::Finished(record),
            (since, record) => Claim::Abandoned(record, since),
        }
    }

    fn finish_now(&self, key: &str, holder: &Lease, record: &Record, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("store lock");
        match entries.map.get_mut(key) {
            Some(e) if matches!(&e.running, Some((owner, _, _)) if *owner == holder.owner) => {
                e.running = None;
                e.record = Some(record.clone());
                e.expires = now + ttl;
                true
            }
            _ => false,
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

    #[tokio::test(start_paused = true)]
    async fn claim_states() {
        let store = MemoryStore::new();
        let (a, b) = (Lease::new(), Lease::new());
        let (lease, ttl) = (Duration::from_secs(10), Duration::from_secs(100));
        assert!(matches!(
            store.claim_now("k", "f", &a, lease, ttl),
            Claim::New
        ));
        assert!(matches!(
            store.claim_now("k", "f", &b, lease, ttl),
            Claim::InFlight
        ));
        assert!(matches!(
            store.claim_now("k", "g", &b, lease, ttl),
            Claim::Mismatch
        ));
        assert!(
            !store.finish_now("k", &b, &record(), ttl),
            "b holds no claim"
        );
        assert!(store.finish_now("k", &a, &record(), ttl));
        assert!(matches!(
            store.claim_now("k", "f", &b, lease, ttl),
            Claim::Finished(_)
        ));

        // b's claim runs out without finishing: the next claim finds it abandoned.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(
            store.claim_now("k", "f", &a, lease, ttl),
            Claim::Abandoned(Some(_), Some(_))
        ));
        assert!(
            !store.finish_now("k", &b, &record(), ttl),
            "b lost its claim"
        );

        tokio::time::advance(Duration::from_secs(101)).await;
        assert!(
            matches!(store.claim_now("k", "g", &a, lease, ttl), Claim::New),
            "expired"
        );
    }
}
