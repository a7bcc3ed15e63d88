//! UUIDs drawn from the thread's random generator (a CSPRNG seeded once per thread), not from one
//! `getrandom` system call each: ids are made several times per request.

use rand::Rng;
use uuid::Uuid;

/// This process's clock, in unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A time-ordered UUID (version 7): request and operation ids.
pub fn v7() -> Uuid {
    let ms = unix_ms();
    let random: [u8; 10] = rand::rng().random();
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}

/// A random UUID (version 4).
pub fn v4() -> Uuid {
    uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid()
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_and_uniqueness() {
        let a = super::v7();
        let b = super::v7();
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, b);
        assert!(a.get_timestamp().is_some());
        assert_eq!(super::v4().get_version_num(), 4);
        assert_ne!(super::v4(), super::v4());
    }
}
