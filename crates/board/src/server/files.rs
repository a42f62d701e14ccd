//! The open-files limit (`RLIMIT_NOFILE`) and the connection cap sized
//! from it.
//!
//! Every connection is a file descriptor, and so are the database, the
//! cache's sockets, media files and logs. A soft limit of 1,024 (the
//! default of most shells and of systemd services) caps a board at about
//! 800 connections whatever `--max-connections` says; the hard limit is
//! usually far higher (524,288 under systemd). So at start the board
//! raises its soft limit to the hard one, as nginx
//! (`worker_rlimit_nofile`) and most servers do, and sizes the cap from
//! the result: `--max-connections`, never over 80% of the limit, the rest
//! left for everything else. Both limits and the cap are logged.

/// Share of the process's open-files limit that connections may use; the
/// rest is for the database, the cache, media files and logs.
const FD_SHARE_PERCENT: u64 = 80;

/// The open-files limit before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with (`None`: unlimited, or not
    /// a Unix).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
    /// The hard limit, which the soft one may be raised to.
    pub hard: Option<u64>,
}

/// Raises the soft open-files limit to the hard one (no privilege needed)
/// and returns both. A failure (a platform that refuses) leaves the limit
/// as it was and is logged.
pub fn raise_open_files_limit() -> OpenFiles {
    imp::raise()
}

#[cfg(unix)]
mod imp {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    use super::OpenFiles;

    pub(super) fn raise() -> OpenFiles {
        let limit = getrlimit(Resource::Nofile);
        let mut files = OpenFiles {
            before: limit.current,
            now: limit.current,
            hard: limit.maximum,
        };
        // An unlimited hard limit cannot be the soft one on Linux (it is
        // bounded by `fs.nr_open`); leave such a limit alone.
        if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
            if soft < hard {
                let raised = Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                };
                match setrlimit(Resource::Nofile, raised) {
                    Ok(()) => files.now = getrlimit(Resource::Nofile).current,
                    Err(error) => {
                        tracing::warn!(%error, soft, hard, "open-files limit not raised");
                    }
                }
            }
        }
        files
    }

    #[cfg(test)]
    pub(super) fn current() -> Option<u64> {
        getrlimit(Resource::Nofile).current
    }
}

#[cfg(not(unix))]
mod imp {
    use super::OpenFiles;

    pub(super) fn raise() -> OpenFiles {
        OpenFiles {
            before: None,
            now: None,
            hard: None,
        }
    }

    #[cfg(test)]
    pub(super) fn current() -> Option<u64> {
        None
    }
}

/// The soft open-files limit now.
#[cfg(test)]
fn open_files_limit() -> Option<u64> {
    imp::current()
}

/// `wanted`, lowered to 80% of the open-files limit `open_files` (the
/// soft limit; `None` for none).
///
/// ```
/// use board::server::connection_cap;
/// assert_eq!(connection_cap(2048, Some(1024)), 819);
/// assert_eq!(connection_cap(2048, Some(1 << 20)), 2048);
/// assert_eq!(connection_cap(2048, None), 2048);
/// ```
pub fn connection_cap(wanted: u32, open_files: Option<u64>) -> usize {
    let wanted = wanted as usize;
    match open_files {
        Some(limit) => {
            let cap = usize::try_from(limit.saturating_mul(FD_SHARE_PERCENT) / 100)
                .unwrap_or(usize::MAX)
                .max(1);
            wanted.min(cap)
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_never_exceeds_the_open_files_limit() {
        let limit = open_files_limit();
        let cap = connection_cap(u32::MAX, limit);
        if let Some(limit) = limit {
            assert!(cap as u64 <= limit * FD_SHARE_PERCENT / 100 || cap == 1);
        }
        assert_eq!(connection_cap(1, limit), 1);
        assert_eq!(connection_cap(5000, Some(1)), 1, "never 0");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let files = raise_open_files_limit();
        if cfg!(unix) {
            assert!(files.now >= files.before);
            if files.hard.is_some() {
                assert_eq!(files.now, files.hard);
            }
            assert_eq!(open_files_limit(), files.now);
        }
    }
}
