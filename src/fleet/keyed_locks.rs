//! One at a time per key. Adopting a client at a provider that accepts duplicates is a lookup
//! then a create: two requests doing it at once for the same client would both find nothing and
//! both create it. Within a replica, they take turns.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Locks by name; a name is kept only while someone holds or waits for its lock.
#[derive(Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl std::fmt::Debug for KeyedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedLocks")
    }
}

impl KeyedLocks {
    /// Waits for the lock of `key`; it is released when the guard drops.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock();
            // Names nobody holds any more are forgotten: the map holds only the names in use.
            locks.retain(|_, held| held.strong_count() > 0);
            match locks.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Names currently held or waited for.
    pub fn len(&self) -> usize {
        let locks = self.locks.lock();
        locks
            .values()
            .filter(|held| held.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_no_name_kept_after_use() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("a").await;
        let other = locks.lock("b").await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock("a").await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second holder of `a` waits");
        drop(first);
        waiter.await.unwrap();
        drop(other);
        assert!(locks.is_empty());
        let _again = locks.lock("c").await;
        assert_eq!(locks.locks.lock().len(), 1, "forgotten names are gone");
    }
}
