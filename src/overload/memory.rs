//! How much memory the process may use, and how much it uses now — as the kernel counts them.
//!
//! The limit is the container's: cgroup v2 `memory.max` (the smallest along the process's cgroup
//! and its ancestors), else cgroup v1 `memory.limit_in_bytes` (its `hierarchical_memory_limit`
//! when the kernel gives it), found through `/proc/self/cgroup` and `/proc/self/mountinfo`.
//! `max`, or no file, is no limit; a file that says anything else is an error. What the cgroup
//! holds is its working set (usage less the inactive file cache, as the kubelet counts it): what
//! the OOM killer compares with the limit, socket buffers and thread stacks included.

use std::path::{Path, PathBuf};

/// A v1 "limit" at or above this is the kernel's way of saying none (it prints 2^63 rounded
/// down to a page).
const V1_UNLIMITED: u64 = 1 << 62;

/// The cgroup the process is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// cgroup v2: its directory, and the mount's root (the ancestors up to it are read too).
    V2 { dir: PathBuf, mount: PathBuf },
    /// cgroup v1: the directory of its memory controller.
    V1 { dir: PathBuf },
}

impl Cgroup {
    /// The process's memory cgroup, read under `root` (`/` in production; a fixture directory in
    /// tests): the v2 one when it has the memory controller, else the v1 memory controller's.
    pub fn find(root: &Path) -> Option<Cgroup> {
        let membership = read_small(&root.join("proc/self/cgroup"))?;
        let mounts = read_small(&root.join("proc/self/mountinfo"))?;
        let v2 = membership
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .and_then(|path| {
                let (mount_root, mount_point) = cgroup_mount(&mounts, |fs, _| fs == "cgroup2")?;
                let mount = root.join(mount_point.trim_start_matches('/'));
                let dir = mount.join(relative(path, &mount_root));
                dir.join("memory.max")
                    .exists()
                    .then_some(Cgroup::V2 { dir, mount })
            });
        v2.or_else(|| {
            let path = membership.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers
                    .split(',')
                    .any(|c| c == "memory")
                    .then_some(path)
            })?;
            let (mount_root, mount_point) = cgroup_mount(&mounts, |fs, options| {
                fs == "cgroup" && options.split(',').any(|o| o == "memory")
            })?;
            let mount = root.join(mount_point.trim_start_matches('/'));
            let dir = mount.join(relative(path, &mount_root));
            // Without a cgroup namespace the path names the host's hierarchy, which the
            // container sees mounted at its own cgroup: the mount itself is the cgroup.
            let dir = if dir.join("memory.limit_in_bytes").exists() {
                dir
            } else {
                mount
            };
            Some(Cgroup::V1 { dir })
        })
    }

    /// The limit in bytes; `None`: no limit.
    pub fn limit(&self) -> Result<Option<u64>, String> {
        match self {
            Cgroup::V2 { dir, mount } => {
                let mut limit: Option<u64> = None;
                let mut at = dir.as_path();
                loop {
                    let file = at.join("memory.max");
                    if let Some(text) = read_small(&file) {
                        if let Some(bytes) = parse_v2(&text).map_err(|e| bad(&file, &e))? {
                            limit = Some(limit.map_or(bytes, |l| l.min(bytes)));
                        }
                    }
                    if at == mount.as_path() {
                        break;
                    }
                    match at.parent() {
                        Some(parent) if parent.starts_with(mount) => at = parent,
                        _ => break,
                    }
                }
                Ok(limit)
            }
            Cgroup::V1 { dir } => {
                let stat = dir.join("memory.stat");
                if let Some(text) = read_small(&stat) {
                    if let Some(value) = stat_field(&text, "hierarchical_memory_limit") {
                        return parse_v1(value).map_err(|e| bad(&stat, &e));
                    }
                }
                let file = dir.join("memory.limit_in_bytes");
                match read_small(&file) {
                    Some(text) => parse_v1(text.trim()).map_err(|e| bad(&file, &e)),
                    None => Ok(None),
                }
            }
        }
    }

    /// The cgroup's working set: usage less inactive file pages (`None` if unreadable).
    pub fn working_set(&self) -> Option<u64> {
        let (usage, stat, inactive) = match self {
            Cgroup::V2 { dir, .. } => (
                dir.join("memory.current"),
                dir.join("memory.stat"),
                "inactive_file",
            ),
            Cgroup::V1 { dir } => (
                dir.join("memory.usage_in_bytes"),
                dir.join("memory.stat"),
                "total_inactive_file",
            ),
        };
        let usage: u64 = read_small(&usage)?.trim().parse().ok()?;
        let inactive = read_small(&stat)
            .and_then(|s| stat_field(&s, inactive).and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    }

    /// Where the limit is read, for the start's log line.
    pub fn describe(&self) -> String {
        match self {
            Cgroup::V2 { dir, .. } => format!("cgroup v2 {}", dir.join("memory.max").display()),
            Cgroup::V1 { dir } => {
                format!("cgroup v1 {}", dir.join("memory.limit_in_bytes").display())
            }
        }
    }
}

/// The machine's memory (`MemTotal` of `/proc/meminfo` under `root`).
pub fn machine_total(root: &Path) -> Option<u64> {
    let text = read_small(&root.join("proc/meminfo"))?;
    let kib: u64 = stat_field(&text.replace(':', ""), "MemTotal")?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// The process's resident set (`/proc/self/statm`), in bytes.
pub fn resident() -> Option<u64> {
    let text = read_small(Path::new("/proc/self/statm"))?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // Linux pages are 4 KiB on the platforms this is built for.
    pages.checked_mul(4096)
}

/// The allocator's own figure: bytes allocated and not freed (jemalloc's `stats.allocated`);
/// `None` when built without jemalloc.
pub fn allocated() -> Option<u64> {
    #[cfg(feature = "jemalloc")]
    {
        tikv_jemalloc_ctl::epoch::advance().ok()?;
        tikv_jemalloc_ctl::stats::allocated::read()
            .ok()
            .map(|b| b as u64)
    }
    #[cfg(not(feature = "jemalloc"))]
    {
        None
    }
}

fn bad(file: &Path, why: &str) -> String {
    format!("cannot read the memory limit in {}: {why}", file.display())
}

/// `memory.max`: `max` or a number of bytes.
fn parse_v2(text: &str) -> Result<Option<u64>, String> {
    match text.trim() {
        "max" => Ok(None),
        value => value
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("expected a number of bytes or `max`, found {value:?}")),
    }
}

/// `memory.limit_in_bytes`: a number of bytes, near 2^63 for none.
fn parse_v1(value: &str) -> Result<Option<u64>, String> {
    let bytes = value
        .parse::<u64>()
        .map_err(|_| format!("expected a number of bytes, found {value:?}"))?;
    Ok((bytes < V1_UNLIMITED).then_some(bytes))
}

/// A `name value` line of a `memory.stat`-like file.
fn stat_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == name).then(|| parts.next()).flatten()
    })
}

/// The root within the cgroup filesystem and the mount point of the first cgroup mount that
/// `wanted(fstype, super_options)` accepts.
fn cgroup_mount(mountinfo: &str, wanted: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut fs = fs.split_whitespace();
        let (fstype, _source, options) = (fs.next()?, fs.next()?, fs.next().unwrap_or(""));
        if !wanted(fstype, options) {
            return None;
        }
        let mut fields = mount.split_whitespace();
        let root = fields.nth(3)?.to_owned();
        let point = fields.next()?.to_owned();
        Some((root, point))
    })
}

/// `path` relative to the mount's root (the whole path when it is not under it).
fn relative(path: &str, mount_root: &str) -> PathBuf {
    let path = path.trim();
    let rest = path
        .strip_prefix(mount_root)
        .filter(|_| mount_root != "/")
        .unwrap_or(path);
    PathBuf::from(rest.trim_start_matches('/'))
}

/// A small kernel file, read whole (a bounded read: these are a few KiB).
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root: `/proc/self/{cgroup,mountinfo}` and cgroup files.
    struct Fixture(tempfile::TempDir);

    impl Fixture {
        fn new(cgroup: &str, mountinfo: &str) -> Self {
            let f = Fixture(tempfile::tempdir().unwrap());
            f.file("proc/self/cgroup", cgroup);
            f.file("proc/self/mountinfo", mountinfo);
            f
        }

        fn file(&self, path: &str, text: &str) {
            let path = self.0.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn limit(&self) -> Result<Option<u64>, String> {
            Cgroup::find(self.0.path())
                .ok_or_else(|| "no cgroup".to_owned())?
                .limit()
        }
    }

    const V2_MOUNT: &str =
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n";
    const V1_MOUNTS: &str = "\
25 23 0:22 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw,nsdelegate
26 23 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:9 - cgroup cgroup rw,memory
27 23 0:24 / /sys/fs/cgroup/cpu rw,nosuid shared:10 - cgroup cgroup rw,cpu
";

    #[test]
    fn cgroup_v2_limit_is_the_smallest_on_the_way_up() {
        let f = Fixture::new("0::/kubepods/pod1/gateway\n", V2_MOUNT);
        f.file(
            "sys/fs/cgroup/kubepods/pod1/gateway/memory.max",
            "268435456\n",
        );
        f.file("sys/fs/cgroup/kubepods/pod1/memory.max", "max\n");
        f.file("sys/fs/cgroup/kubepods/memory.max", "1073741824\n");
        assert_eq!(f.limit(), Ok(Some(256 << 20)));
        f.file("sys/fs/cgroup/kubepods/pod1/memory.max", "134217728\n");
        assert_eq!(
            f.limit(),
            Ok(Some(128 << 20)),
            "a parent's smaller limit wins"
        );
    }

    #[test]
    fn cgroup_v2_max_is_no_limit() {
        let f = Fixture::new("0::/\n", V2_MOUNT);
        f.file("sys/fs/cgroup/memory.max", "max\n");
        assert_eq!(f.limit(), Ok(None));
    }

    #[test]
    fn cgroup_v2_inside_a_namespace() {
        // With a cgroup namespace the process sees its own cgroup as `/`, mounted as the root.
        let f = Fixture::new("0::/\n", V2_MOUNT);
        f.file("sys/fs/cgroup/memory.max", "536870912");
        f.file("sys/fs/cgroup/memory.current", "104857600\n");
        f.file(
            "sys/fs/cgroup/memory.stat",
            "anon 90000000\nfile 14857600\ninactive_file 4857600\n",
        );
        assert_eq!(f.limit(), Ok(Some(512 << 20)));
        let cgroup = Cgroup::find(f.0.path()).unwrap();
        assert_eq!(cgroup.working_set(), Some(100_000_000));
    }

    #[test]
    fn cgroup_v1_limit_and_its_hierarchical_figure() {
        let f = Fixture::new(
            "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n",
            V1_MOUNTS,
        );
        f.file(
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            "268435456\n",
        );
        assert_eq!(f.limit(), Ok(Some(256 << 20)));
        f.file(
            "sys/fs/cgroup/memory/docker/abc/memory.stat",
            "cache 0\nhierarchical_memory_limit 134217728\ntotal_inactive_file 0\n",
        );
        assert_eq!(f.limit(), Ok(Some(128 << 20)), "an ancestor's limit counts");
    }

    #[test]
    fn cgroup_v1_unlimited_and_the_hosts_path_unseen() {
        // No cgroup namespace: the path is the host's, the mount is the container's own cgroup.
        let f = Fixture::new("4:memory:/docker/abc\n", V1_MOUNTS);
        f.file(
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(f.limit(), Ok(None), "2^63 rounded to a page: no limit");
        f.file("sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n");
        assert_eq!(f.limit(), Ok(Some(1 << 30)));
    }

    #[test]
    fn hybrid_hierarchy_without_the_v2_memory_controller_reads_v1() {
        let f = Fixture::new("4:memory:/job\n0::/job\n", V1_MOUNTS);
        f.file("sys/fs/cgroup/memory/job/memory.limit_in_bytes", "67108864");
        assert_eq!(f.limit(), Ok(Some(64 << 20)));
    }

    #[test]
    fn missing_files_mean_no_limit_or_no_cgroup() {
        let f = Fixture::new("0::/\n", V2_MOUNT);
        assert!(
            Cgroup::find(f.0.path()).is_none(),
            "no memory.max: no memory controller"
        );
        let f = Fixture::new("4:memory:/job\n", V1_MOUNTS);
        assert_eq!(f.limit(), Ok(None), "no limit file: no limit");
        assert!(Cgroup::find(Path::new("/nonexistent-root")).is_none());
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let f = Fixture::new("0::/\n", V2_MOUNT);
        f.file("sys/fs/cgroup/memory.max", "lots\n");
        let e = f.limit().unwrap_err();
        assert!(e.contains("memory.max") && e.contains("lots"), "{e}");
        let f = Fixture::new("4:memory:/job\n", V1_MOUNTS);
        f.file("sys/fs/cgroup/memory/job/memory.limit_in_bytes", "-1\n");
        let e = f.limit().unwrap_err();
        assert!(e.contains("memory.limit_in_bytes"), "{e}");
    }

    #[test]
    fn machine_memory_from_meminfo() {
        let f = Fixture::new("", "");
        f.file(
            "proc/meminfo",
            "MemTotal:       24576000 kB\nMemFree:        1000 kB\n",
        );
        assert_eq!(machine_total(f.0.path()), Some(24_576_000 * 1024));
    }
}
