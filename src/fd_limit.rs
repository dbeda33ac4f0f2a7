//! The process's open-file limit (RLIMIT_NOFILE) and the client connection limit derived
//! from it.
//!
//! Every TCP client connection holds a file descriptor. Without a limit below the fd
//! table's size, clients can fill it; `accept` then fails with EMFILE for everyone, and
//! `/health` and the API stop answering together with the clients. So the default
//! `client.connection_limit` is the soft limit minus a reserve for everything that is not
//! a client connection: listeners, the UDP sockets, API and health requests, backend
//! proxy connections, log files, the runtime's epoll and eventfd.
//!
//! The limit is read from `/proc/self/limits` (Linux), which needs neither `unsafe`
//! (forbidden in this crate; `getrlimit` through `libc` would need it) nor a new
//! dependency. Where it cannot be read, the default stays 0 (unlimited), as before, and
//! the start-up log says so.

use std::sync::OnceLock;

/// Descriptors kept out of the client limit, as a fraction of the soft limit (1/20 = 5 %).
const RESERVE_DIVISOR: u64 = 20;

/// Fewest descriptors kept out of the client limit: room for the listeners and a few
/// dozen concurrent API and health requests even under a small limit such as 1,024.
const MIN_RESERVE: u64 = 64;

/// Most descriptors kept out of the client limit: 1,024 API, health and backend
/// connections at once is plenty; past that, the rest of a large limit goes to clients.
const MAX_RESERVE: u64 = 1024;

/// An open-file limit: soft (what applies) and hard (how far the soft one may be raised);
/// `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The limit that applies.
    pub soft: Option<u64>,
    /// The ceiling of `soft`.
    pub hard: Option<u64>,
}

/// Parses the `Max open files` line of `/proc/<pid>/limits`.
pub fn parse_proc_limits(text: &str) -> Option<FdLimit> {
    let rest = text.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    let mut fields = rest.split_whitespace();
    let value = |f: Option<&str>| -> Option<Option<u64>> {
        match f? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    let soft = value(fields.next())?;
    let hard = value(fields.next())?;
    Some(FdLimit { soft, hard })
}

/// This process's open-file limit, when the platform tells.
pub fn current() -> Option<FdLimit> {
    std::fs::read_to_string("/proc/self/limits").ok().as_deref().and_then(parse_proc_limits)
}

/// The client connection limit for a soft fd limit of `soft`: `soft` minus a reserve of
/// 5 % (at least [`MIN_RESERVE`], at most [`MAX_RESERVE`]), and at least 1.
pub fn connection_limit_for(soft: u64) -> usize {
    let reserve = (soft / RESERVE_DIVISOR).clamp(MIN_RESERVE, MAX_RESERVE);
    usize::try_from(soft.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
}

/// The default `client.connection_limit`: derived from this process's soft fd limit, read
/// once; 0 (unlimited) when the limit is unknown or unlimited.
pub fn default_connection_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| current().and_then(|l| l.soft).map_or(0, connection_limit_for))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            20000                524288               files     \n\
Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn parses_the_open_files_line() {
        assert_eq!(parse_proc_limits(SAMPLE), Some(FdLimit { soft: Some(20_000), hard: Some(524_288) }));
        let unlimited = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_proc_limits(unlimited), Some(FdLimit { soft: None, hard: None }));
        assert_eq!(parse_proc_limits("Max cpu time unlimited unlimited seconds\n"), None);
        assert_eq!(parse_proc_limits("Max open files  lots  1024 files\n"), None);
    }

    #[test]
    fn the_derived_limit_leaves_a_reserve_at_every_size() {
        assert_eq!(connection_limit_for(1024), 960);
        assert_eq!(connection_limit_for(20_000), 19_000);
        assert_eq!(connection_limit_for(1_048_576), 1_047_552);
        assert_eq!(connection_limit_for(10), 1, "a tiny limit still admits one client");
        for soft in [100, 1024, 4096, 20_000, 65_536, 1 << 20] {
            let limit = connection_limit_for(soft) as u64;
            assert!(limit + MIN_RESERVE <= soft, "{limit} leaves no reserve under {soft}");
        }
    }

    /// The default is below the limit the kernel enforces on this very process, as the
    /// shell reports it (an independent reading: `ulimit -n` calls getrlimit).
    #[test]
    fn the_default_is_below_this_process_rlimit_nofile() {
        let out = std::process::Command::new("sh").args(["-c", "ulimit -n"]).output().expect("run sh");
        let text = String::from_utf8_lossy(&out.stdout);
        let soft: u64 = match text.trim() {
            "unlimited" => return assert_eq!(default_connection_limit(), 0),
            n => n.parse().expect("ulimit -n prints a number"),
        };
        let limit = default_connection_limit() as u64;
        assert!(limit > 0, "a finite fd limit ({soft}) gives a finite connection limit");
        assert!(limit + MIN_RESERVE <= soft, "default {limit} is not safely below RLIMIT_NOFILE {soft}");
        assert_eq!(current().and_then(|l| l.soft), Some(soft), "/proc/self/limits agrees with getrlimit");
    }
}
