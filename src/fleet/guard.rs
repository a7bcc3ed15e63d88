//! The guard of a client's natural key at one tool: wherever a create could duplicate at a tool
//! that accepts duplicates (adopt's lookup then create, settling an unanswered create, the
//! recheck after a 5xx), requests take turns. In this process through a lock per key; across
//! replicas, with Redis, through a lease: `SET key owner NX PX` (expiry on Redis's clock), an
//! owner token, compare-and-delete release (as Redis's guidance for single-instance locks has
//! it), taken as a durable write (acknowledged by a replica when there is one). Redis
//! unanswered: the guard is refused and nothing is sent (it fails closed, as keyed requests do).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::{KeyedLocks, Link};
use crate::fleet::{eval, evicting, REFUSE_IF_EVICTING};

/// Deletes the lease only if this owner still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Makes the lease last ARGV[2] ms from now, only if this owner still holds it.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Takes the lease for ARGV[1] for ARGV[2] ms if nobody holds it (`SET NX PX`): `{'taken'}`
/// when this owner holds it then, `{'busy'}` otherwise. Sent again by its owner (its first
/// answer lost), it answers `{'taken'}` again.
const TAKE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'taken'}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'taken'} end
return {'busy'}
";

/// Why no turn was had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Another request (on this replica or another) held the key for the whole wait.
    Busy,
    /// The shared store did not answer: the guard fails closed.
    Unreachable(String),
}

/// One tool's guard.
pub struct Guard {
    local: KeyedLocks,
    link: Option<Arc<Link>>,
    /// The tool's scope: the provider and the base URL (its tenant), so that two tenants of one
    /// tool never wait for each other.
    scope: String,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("fleet", &self.link.is_some())
            .finish()
    }
}

/// A turn at a natural key: held until dropped (a lease in Redis is then released), or kept
/// for a while after ([`Turn::keep`]).
pub struct Turn {
    local: Option<OwnedMutexGuard<()>>,
    lease: Option<Lease>,
}

struct Lease {
    link: Arc<Link>,
    key: String,
    owner: String,
    /// Not released when dropped: left to expire, after this long from then if given.
    kept: bool,
    keep_for: Option<Duration>,
}

impl Turn {
    /// Keeps the fleet-wide lease for `keep_for` instead of releasing it: after a create whose
    /// fate is unknown, no other request should look the client up and create it again while the
    /// provider may still be acting on the first (the `settle_s` a replay waits, too).
    pub fn keep(&mut self, keep_for: Duration) {
        match self.lease.as_mut() {
            Some(lease) => {
                lease.kept = true;
                lease.keep_for = Some(keep_for);
            }
            // In process: the lock itself is held that long.
            None => {
                if let (Some(local), Ok(runtime)) =
                    (self.local.take(), tokio::runtime::Handle::try_current())
                {
                    runtime.spawn(async move {
                        tokio::time::sleep(keep_for).await;
                        drop(local);
                    });
                }
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let command = match (self.kept, self.keep_for) {
            (false, _) => {
                let mut command = eval(RELEASE, &self.key);
                command.arg(&self.owner);
                command
            }
            (true, Some(keep_for)) => {
                let mut command = eval(EXTEND, &self.key);
                command.arg(&self.owner).arg(
                    u64::try_from(keep_for.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                );
                command
            }
            (true, None) => return,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let link = self.link.clone();
        runtime.spawn(async move {
            let done: Result<i64, _> = link.query(&command).await;
            if let Err(e) = done {
                tracing::warn!(error = %e, "could not release or extend a guard lease; it expires on its own");
            }
        });
    }
}

impl Guard {
    pub fn new(provider: &str, base_url: &str, link: Option<Arc<Link>>) -> Self {
        Self {
            local: KeyedLocks::default(),
            link,
            scope: format!("{provider}\0{base_url}"),
        }
    }

    /// Waits for the turn at `key` until `wait_until`; a lease in Redis is held at most `hold`.
    pub async fn take(
        &self,
        key: &str,
        hold: Duration,
        wait_until: Instant,
    ) -> Result<Turn, Refused> {
        let local = tokio::time::timeout_at(wait_until, self.local.lock(key))
            .await
            .map_err(|_| Refused::Busy)?;
        let lease = match &self.link {
            Some(link) => Some(self.lease(link, key, hold, wait_until).await?),
            None => None,
        };
        Ok(Turn {
            local: Some(local),
            lease,
        })
    }

    /// The fleet-wide lease of `key`, polled (20 to 200 ms apart, jittered) until `wait_until`.
    async fn lease(
        &self,
        link: &Arc<Link>,
        key: &str,
        hold: Duration,
        wait_until: Instant,
    ) -> Result<Lease, Refused> {
        let mut hash = Sha256::new();
        hash.update(self.scope.as_bytes());
        hash.update([0]);
        hash.update(key.as_bytes());
        let mut lease = Lease {
            link: link.clone(),
            key: format!("clients-gateway:guard:{:x}", hash.finalize()),
            owner: crate::ids::v4().to_string(),
            // Not released until it is held.
            kept: true,
            keep_for: None,
        };
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pause = Duration::from_millis(20);
        loop {
            let mut command = eval(&format!("{REFUSE_IF_EVICTING}{TAKE}"), &lease.key);
            command.arg(&lease.owner).arg(hold_ms);
            let taken: Result<Vec<String>, _> = link.durable(&command).await;
            match taken {
                Ok(reply) if reply.first().map(String::as_str) == Some("taken") => {
                    lease.kept = false;
                    return Ok(lease);
                }
                Ok(reply) if reply.first().map(String::as_str) == Some("evicting") => {
                    let policy = reply.get(1).map_or("unknown", String::as_str);
                    return Err(Refused::Unreachable(evicting(policy).message));
                }
                Ok(_) => {}
                Err(e) => {
                    // The lease may have landed after all: given up (by its owner token) at once.
                    lease.kept = false;
                    return Err(Refused::Unreachable(e.message));
                }
            }
            let jittered = pause.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            if Instant::now() + jittered >= wait_until {
                return Err(Refused::Busy);
            }
            tokio::time::sleep(jittered).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}
