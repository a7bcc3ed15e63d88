//! The memory budget's arithmetic, pure: from the limit and what the configuration fixes (the
//! in-process store's cap, the caches, the outbound connection pools) to the room left for
//! requests in flight, the inbound connection cap, and how many five-target requests fit.

/// What things cost, in bytes: the release binary's working set in a memory cgroup, 1,000 of
/// each held in flight (`python3 bench/overload.py calibrate`, docs/benchmarks/overload.md), rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// An open inbound connection (the HTTP/1 server's read and write buffers, its state; and,
    /// as [`Costs::with_read_ahead`] makes them, what it may read ahead of its handler).
    pub connection: u64,
    /// A request being handled, beyond its connection: its head, the handler, the parsed body,
    /// the fan-out's bookkeeping and the 207.
    pub request: u64,
    /// Per byte of request body: the bytes and what they are parsed into.
    pub body_factor: u64,
    /// A provider call in flight over HTTP/2 (its stream, the client's futures).
    pub call_h2: u64,
    /// A provider call in flight over HTTP/1.1, its own connection (TLS state, buffers)
    /// included.
    pub call_h1: u64,
    /// A key held by the in-process idempotency store (a five-target record).
    pub store_key: u64,
}

/// The measured costs.
pub const MEASURED: Costs = Costs {
    connection: 20 * 1024,
    request: 17 * 1024,
    body_factor: 4,
    call_h2: 15 * 1024,
    call_h1: 50 * 1024,
    store_key: 2_100,
};

/// The most the HTTP server reads of a connection ahead of its handler: its read buffer
/// (128 KiB) and a request's unread body (32 KiB), actix-http's bounds.
pub const READ_AHEAD_CAP: u64 = 160 * 1024;

impl Costs {
    /// These costs for a server whose request heads and bodies are bounded as given: an open
    /// connection is charged what it may hold before its request is admitted or refused — a
    /// peer sends its body with its head, and the server reads it whatever the answer — so
    /// that the connection cap keeps a burst of bodies within the budget.
    pub fn with_read_ahead(self, header_limit: u64, body_limit: u64) -> Self {
        let read_ahead = header_limit.saturating_add(body_limit).min(READ_AHEAD_CAP);
        Self {
            connection: self.connection.saturating_add(read_ahead),
            ..self
        }
    }
}

/// The share of the limit that requests may fill by the model; what is above it is left for
/// what the model does not see (allocator slack, a burst of connections being refused).
pub const ADMIT_SHARE: f64 = 0.80;
/// The working set at which no new request is admitted, whatever the model says.
pub const SHED_SHARE: f64 = 0.85;
/// The share at which keep-alive is no longer offered (by the model or the working set).
pub const CLOSE_SHARE: f64 = 0.75;
/// The inbound connections may take at most this share of the room for requests.
pub const CONNECTIONS_SHARE: f64 = 0.5;

/// What is fixed at start, in bytes. (A provider's idle connections are not: each call in
/// flight counts its own, and an idle one is closed after `idle_timeout_ms`.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fixed {
    /// The process at rest (measured at start).
    pub baseline: u64,
    /// The in-process store at its cap (`idempotency.max_keys`; 0 with Redis).
    pub store: u64,
    /// Caches: verified tokens, the JWKS, provider tokens.
    pub caches: u64,
}

impl Fixed {
    pub fn total(&self) -> u64 {
        self.baseline
            .saturating_add(self.store)
            .saturating_add(self.caches)
    }
}

/// The budget of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The limit (the container's, or `server.memory_budget_mb`).
    pub limit: u64,
    /// What the model may hold at most: fixed, connections and requests.
    pub admit_until: u64,
    /// A working set at or above this sheds every new request.
    pub shed_at: u64,
    /// Above this (model or working set) answers close their connection.
    pub close_at: u64,
    pub fixed: Fixed,
    pub costs: Costs,
}

impl Budget {
    /// The budget for `limit` with `fixed` set aside; an error when nothing is left for
    /// requests.
    pub fn new(limit: u64, fixed: Fixed, costs: Costs) -> Result<Self, String> {
        let share = |s: f64| (limit as f64 * s) as u64;
        let budget = Budget {
            limit,
            admit_until: share(ADMIT_SHARE),
            shed_at: share(SHED_SHARE),
            close_at: share(CLOSE_SHARE),
            fixed,
            costs,
        };
        let one = costs.connection + budget.request_cost(4096, &[costs.call_h1; 5]);
        if budget.room() < one.saturating_mul(16) {
            return Err(format!(
                "a memory limit of {} MiB leaves no room for requests: {} MiB are set aside \
                 (the process at rest {} MiB, the in-process idempotency store {} MiB, caches {} \
                 MiB) and {:.0} % of the limit may be used; raise the limit \
                 (server.memory_budget_mb, or the container's) or lower idempotency.max_keys",
                mib(limit),
                mib(fixed.total()),
                mib(fixed.baseline),
                mib(fixed.store),
                mib(fixed.caches),
                ADMIT_SHARE * 100.0,
            ));
        }
        Ok(budget)
    }

    /// What requests and connections may hold together.
    pub fn room(&self) -> u64 {
        self.admit_until.saturating_sub(self.fixed.total())
    }

    /// The inbound connection cap that keeps connections within their share of the room.
    pub fn max_connections(&self) -> usize {
        let n = (self.room() as f64 * CONNECTIONS_SHARE) as u64 / self.costs.connection.max(1);
        usize::try_from(n).unwrap_or(usize::MAX).clamp(16, 100_000)
    }

    /// What one request reserves: its own cost, its body, and one call per provider it may
    /// call (`calls`: the cost of each).
    pub fn request_cost(&self, body: u64, calls: &[u64]) -> u64 {
        let calls: u64 = calls.iter().sum();
        self.costs
            .request
            .saturating_add(body.saturating_mul(self.costs.body_factor))
            .saturating_add(calls)
    }

    /// Requests of that cost that fit, each on its own connection.
    pub fn capacity(&self, request: u64) -> u64 {
        self.room() / (request + self.costs.connection).max(1)
    }
}

pub fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn costs() -> Costs {
        Costs {
            connection: 20_000,
            request: 10_000,
            body_factor: 4,
            call_h2: 10_000,
            call_h1: 20_000,
            store_key: 2_000,
        }
    }

    #[test]
    fn shares_of_the_limit() {
        let b = Budget::new(1000 * MIB, Fixed::default(), costs()).unwrap();
        assert_eq!(b.admit_until, 800 * MIB);
        assert_eq!(b.shed_at, 850 * MIB);
        assert_eq!(b.close_at, 750 * MIB);
        assert!(b.close_at < b.admit_until && b.admit_until < b.shed_at && b.shed_at < b.limit);
    }

    #[test]
    fn the_room_is_what_the_fixed_part_leaves() {
        let fixed = Fixed {
            baseline: 14 * MIB,
            store: 20_000 * 2_000,
            caches: 5 * MIB,
        };
        let b = Budget::new(256 * MIB, fixed, costs()).unwrap();
        assert_eq!(fixed.total(), 14 * MIB + 40_000_000 + 5 * MIB);
        assert_eq!(b.room(), (256.0 * MIB as f64 * 0.80) as u64 - fixed.total());
    }

    #[test]
    fn a_request_reserves_its_calls_and_its_body() {
        let b = Budget::new(256 * MIB, Fixed::default(), costs()).unwrap();
        assert_eq!(b.request_cost(0, &[]), 10_000);
        assert_eq!(b.request_cost(1_000, &[10_000; 5]), 10_000 + 4_000 + 50_000);
        assert_eq!(
            b.request_cost(u64::MAX, &[10_000]),
            u64::MAX,
            "saturates, never wraps"
        );
    }

    #[test]
    fn capacity_counts_a_connection_per_request() {
        let b = Budget::new(100 * MIB, Fixed::default(), costs()).unwrap();
        let five_h2 = b.request_cost(1_000, &[10_000; 5]);
        assert_eq!(b.capacity(five_h2), (80 * MIB) / (64_000 + 20_000));
        let five_h1 = b.request_cost(1_000, &[20_000; 5]);
        assert!(b.capacity(five_h1) < b.capacity(five_h2));
    }

    #[test]
    fn connections_get_half_the_room_within_bounds() {
        let b = Budget::new(256 * MIB, Fixed::default(), costs()).unwrap();
        assert_eq!(
            b.max_connections() as u64,
            (256.0 * MIB as f64 * 0.80 * 0.5) as u64 / 20_000
        );
        let huge = Budget::new(1 << 50, Fixed::default(), costs()).unwrap();
        assert_eq!(huge.max_connections(), 100_000, "bounded above");
    }

    #[test]
    fn a_limit_the_fixed_part_fills_is_refused_with_the_figures() {
        let fixed = Fixed {
            baseline: 14 * MIB,
            store: 40 * MIB,
            ..Fixed::default()
        };
        let e = Budget::new(64 * MIB, fixed, costs()).unwrap_err();
        assert!(e.contains("64 MiB") && e.contains("store 40 MiB"), "{e}");
        assert!(Budget::new(256 * MIB, fixed, costs()).is_ok());
    }
}
