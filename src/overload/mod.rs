//! Overload: the process knows its memory budget and admits work from it, so that load never
//! kills it.
//!
//! [`memory`] reads the limit (the container's cgroup, or `server.memory_budget_mb`) and what
//! the process holds; [`budget`] turns the limit into room for requests. [`Admission`] keeps the
//! account: every open inbound connection and every request in flight (its body and one call per
//! provider it may reach) reserve their measured cost; a new `POST /clients` that would not fit
//! is shed — `503` with `Retry-After`, decided from its headers — and so is every new request once
//! the working set reaches [`budget::SHED_SHARE`] of the limit, whatever the model says. Above
//! [`budget::CLOSE_SHARE`], answers close their connection (no keep-alive offered), so that idle
//! callers give their connection's memory back.

pub mod budget;
pub mod memory;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use budget::{Budget, Costs, Fixed, MEASURED};
use memory::Cgroup;

/// Why a request was shed (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The requests and connections in flight fill the budget.
    Budget,
    /// The working set is at [`budget::SHED_SHARE`] of the limit.
    Memory,
}

impl Shed {
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::Budget => "budget",
            Shed::Memory => "memory",
        }
    }
}

/// Where the limit comes from, for the start's log line.
#[derive(Debug, Clone)]
pub enum LimitSource {
    /// `server.memory_budget_mb`.
    Configured,
    /// `server.memory_budget_mb` (this many MiB) is above the container's (or machine's)
    /// memory, which is the limit then (read as said).
    ConfiguredAbove { configured_mb: u64, actual: String },
    /// The container's cgroup (how it was read).
    Cgroup(String),
    /// No limit found: the machine's memory.
    Machine,
}

impl std::fmt::Display for LimitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitSource::Configured => f.write_str("server.memory_budget_mb"),
            LimitSource::ConfiguredAbove {
                configured_mb,
                actual,
            } => write!(
                f,
                "server.memory_budget_mb = {configured_mb} is above the memory there is, so the limit is that: {actual}"
            ),
            LimitSource::Cgroup(how) => f.write_str(how),
            LimitSource::Machine => {
                f.write_str("no container limit found: the machine's memory (/proc/meminfo)")
            }
        }
    }
}

/// The memory limit of this process, where it comes from, and the cgroup whose working set is
/// watched (when the limit is the cgroup's).
#[derive(Debug)]
pub struct Limit {
    pub bytes: u64,
    pub source: LimitSource,
    pub cgroup: Option<Cgroup>,
}

/// The limit this process has: configured, else its container's, else the machine's. A
/// configured budget is never above the container's limit (nor the machine's memory): the
/// process would be killed before it knew it was short. The container's working set is watched
/// whatever the limit's source.
pub fn find_limit(configured_mb: Option<u64>) -> Result<Limit, String> {
    let root = std::path::Path::new("/");
    let (actual, source, cgroup) = match container_limit(root) {
        Some((bytes, cgroup)) => (
            Some(bytes),
            LimitSource::Cgroup(cgroup.describe()),
            Some(cgroup),
        ),
        None => (memory::machine_total(root), LimitSource::Machine, None),
    };
    match (configured_mb, actual) {
        (Some(mb), Some(actual)) if mb.saturating_mul(1 << 20) > actual => Ok(Limit {
            bytes: actual,
            source: LimitSource::ConfiguredAbove {
                configured_mb: mb,
                actual: source.to_string(),
            },
            cgroup,
        }),
        (Some(mb), _) => Ok(Limit {
            bytes: mb << 20,
            source: LimitSource::Configured,
            cgroup,
        }),
        (None, Some(bytes)) => Ok(Limit {
            bytes,
            source,
            cgroup,
        }),
        (None, None) => Err(
            "no memory limit found: neither a cgroup limit nor /proc/meminfo; set server.memory_budget_mb"
                .into(),
        ),
    }
}

/// The container's memory limit and its cgroup, if it has one.
fn container_limit(root: &std::path::Path) -> Option<(u64, Cgroup)> {
    let cgroup = Cgroup::find(root)?;
    match cgroup.limit() {
        Ok(Some(bytes)) => Some((bytes, cgroup)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "the container's memory limit cannot be read");
            None
        }
    }
}

/// The account of what is in flight against the [`Budget`].
#[derive(Debug)]
pub struct Admission {
    budget: Budget,
    /// Bytes reserved by the requests in flight.
    reserved: AtomicU64,
    /// Open inbound connections.
    connections: AtomicU64,
    /// Requests admitted and not answered yet.
    in_flight: AtomicU64,
    /// The working set (or the resident set) at the last sample.
    in_use: AtomicU64,
    /// How long admitted requests take (moving average, milliseconds): the `Retry-After`.
    took_ms: AtomicU64,
    /// The cost of a request to every available provider, as last computed.
    typical: AtomicU64,
}

/// How often the working set is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

impl Admission {
    pub fn new(budget: Budget) -> Arc<Self> {
        Arc::new(Self {
            budget,
            reserved: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            in_use: AtomicU64::new(budget.fixed.baseline),
            took_ms: AtomicU64::new(1_000),
            typical: AtomicU64::new(0),
        })
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// What the model holds now: the fixed part, the connections and the requests.
    pub fn held(&self) -> u64 {
        let connections = self.connections.load(Ordering::Relaxed) * self.budget.costs.connection;
        self.budget
            .fixed
            .total()
            .saturating_add(connections)
            .saturating_add(self.reserved.load(Ordering::Relaxed))
    }

    /// Admits a request that may hold `cost` bytes, or says why not.
    pub fn admit(self: &Arc<Self>, cost: u64) -> Result<Ticket, Shed> {
        self.typical.store(cost, Ordering::Relaxed);
        if self.in_use.load(Ordering::Relaxed) >= self.budget.shed_at {
            return Err(self.shed(Shed::Memory));
        }
        let before = self.reserved.fetch_add(cost, Ordering::AcqRel);
        let connections = self.connections.load(Ordering::Relaxed) * self.budget.costs.connection;
        let held = self.budget.fixed.total() + connections + before + cost;
        if held > self.budget.admit_until {
            self.reserved.fetch_sub(cost, Ordering::AcqRel);
            return Err(self.shed(Shed::Budget));
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            admission: self.clone(),
            held: Cell::new(cost),
            admitted: Instant::now(),
        })
    }

    fn shed(&self, why: Shed) -> Shed {
        crate::metrics::shed(why.as_str());
        why
    }

    /// Whether answers should close their connection (the model or the working set above
    /// [`budget::CLOSE_SHARE`]).
    pub fn pressed(&self) -> bool {
        self.held() >= self.budget.close_at
            || self.in_use.load(Ordering::Relaxed) >= self.budget.close_at
    }

    /// When a shed caller should come back, in seconds: about how long a request takes now
    /// (1 to 30 s).
    pub fn retry_after_s(&self) -> u64 {
        self.took_ms
            .load(Ordering::Relaxed)
            .div_ceil(1000)
            .clamp(1, 30)
    }

    /// Counts an open inbound connection until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// Reads the working set (of `cgroup`, else the process's resident set) every
    /// [`SAMPLE_EVERY`], and exports the account as metrics, on a thread of its own.
    pub fn watch(self: &Arc<Self>, cgroup: Option<Cgroup>) -> std::io::Result<()> {
        let admission = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("memory-watch".into())
            .spawn(move || {
                while let Some(admission) = admission.upgrade() {
                    let in_use = cgroup
                        .as_ref()
                        .and_then(Cgroup::working_set)
                        .or_else(memory::resident);
                    if let Some(bytes) = in_use {
                        admission.in_use.store(bytes, Ordering::Relaxed);
                    }
                    admission.export();
                    drop(admission);
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })?;
        Ok(())
    }

    fn export(&self) {
        let typical = self.typical.load(Ordering::Relaxed);
        crate::metrics::admission(crate::metrics::AdmissionFigures {
            allocated: memory::allocated(),
            limit: self.budget.limit,
            budget: self.budget.admit_until,
            in_use: self.in_use.load(Ordering::Relaxed),
            held: self.held(),
            requests: self.in_flight.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            capacity: (typical > 0).then(|| self.budget.capacity(typical)),
        });
    }
}

/// An admitted request's reservation, given back when it is dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    held: Cell<u64>,
    admitted: Instant,
}

impl Ticket {
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Gives back what the request turned out not to need (targets it does not select, the
    /// body it did not send).
    pub fn keep(&self, cost: u64) {
        let held = self.held.get();
        if cost < held {
            self.admission
                .reserved
                .fetch_sub(held - cost, Ordering::AcqRel);
            self.held.set(cost);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        a.reserved.fetch_sub(self.held.get(), Ordering::AcqRel);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
        let took = u64::try_from(self.admitted.elapsed().as_millis()).unwrap_or(u64::MAX);
        let before = a.took_ms.load(Ordering::Relaxed);
        // A moving average over about the last 32 requests.
        a.took_ms
            .store(before - before / 32 + took / 32, Ordering::Relaxed);
    }
}

/// An open inbound connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Admission>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn admission(limit_mib: u64) -> Arc<Admission> {
        let costs = Costs {
            connection: 100_000,
            call_h1: 17 * 1024,
            ..MEASURED
        };
        Admission::new(Budget::new(limit_mib * MIB, Fixed::default(), costs).unwrap())
    }

    #[test]
    fn admits_until_the_budget_is_reserved_then_gives_back() {
        let a = admission(100);
        let cost = 10 * MIB;
        let tickets: Vec<_> = (0..8).map(|_| a.admit(cost).unwrap()).collect();
        assert_eq!(
            a.admit(cost).unwrap_err(),
            Shed::Budget,
            "80 % of 100 MiB may be held"
        );
        assert_eq!(a.held(), 80 * MIB);
        tickets[0].keep(MIB);
        tickets[0].keep(2 * MIB);
        assert_eq!(
            a.held(),
            71 * MIB,
            "what a request does not need is given back, and never taken again"
        );
        tickets[1].keep(0);
        let ninth = a.admit(cost).unwrap();
        assert_eq!(a.held(), 71 * MIB);
        drop(tickets);
        assert_eq!(a.held(), 10 * MIB);
        drop(ninth);
        assert_eq!(a.held(), 0);
        assert_eq!(a.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn connections_count_against_the_budget() {
        let a = admission(100);
        let _open: Vec<_> = (0..100).map(|_| a.connection()).collect();
        assert_eq!(a.held(), 10_000_000);
        let cost = 76 * MIB;
        assert_eq!(a.admit(cost).unwrap_err(), Shed::Budget);
        drop(_open);
        assert!(a.admit(cost).is_ok());
    }

    #[test]
    fn the_working_set_sheds_whatever_the_model_says() {
        let a = admission(100);
        a.in_use.store(88 * MIB, Ordering::Relaxed);
        assert_eq!(a.admit(1).unwrap_err(), Shed::Memory);
        assert!(a.pressed());
        a.in_use.store(50 * MIB, Ordering::Relaxed);
        assert!(!a.pressed());
        let t = a.admit(1).unwrap();
        drop(t);
    }

    #[test]
    fn pressure_from_the_model_closes_connections() {
        let a = admission(100);
        let t = a.admit(76 * MIB).unwrap();
        assert!(a.pressed(), "75 % of the limit held");
        drop(t);
        assert!(!a.pressed());
    }

    #[test]
    fn retry_after_follows_how_long_requests_take() {
        let a = admission(100);
        assert_eq!(a.retry_after_s(), 1);
        a.took_ms.store(4_200, Ordering::Relaxed);
        assert_eq!(a.retry_after_s(), 5);
        a.took_ms.store(10_000_000, Ordering::Relaxed);
        assert_eq!(a.retry_after_s(), 30, "bounded");
    }
}
