//! What the replicas share through Redis, so that they behave as one gateway: the connection
//! ([`Link`]), the guard of a client's natural key ([`Guard`]), and the providers' quotas
//! ([`FleetQuota`]). Without Redis (one replica) each stays in the process.

mod guard;
mod keyed_locks;
mod link;
mod quota;

pub use guard::{Guard, Refused, Turn};
pub use keyed_locks::KeyedLocks;
pub use link::{
    eval, eval_keys, evicting, Link, LinkError, RedisSettings, ServerFacts, REFUSE_IF_EVICTING,
};
pub use quota::{Decided, FleetQuota, WINDOW_MS as QUOTA_WINDOW_MS};
