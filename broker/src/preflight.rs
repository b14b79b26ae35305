//! Checks before any executor starts: the memlock limit and io_uring availability. glommio itself
//! would exit the process with little explanation; these say what the operator should do.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// glommio's minimum locked-memory limit.
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "the locked-memory limit is {soft_bytes} bytes and could not be raised to \
         {MEMLOCK_BYTES_MIN} (hard limit {hard_bytes}); glommio needs at least 512 KiB: run \
         `ulimit -l 512` or more before starting odradek, set LimitMEMLOCK=infinity in a systemd \
         unit, or `--ulimit memlock=-1` in docker"
    )]
    Memlock { soft_bytes: u64, hard_bytes: u64 },
    #[error("cannot read the memlock limit: {0}")]
    Rlimit(nix::Error),
    #[error("kernel {0} is too old: glommio needs io_uring from Linux 5.8 or newer")]
    KernelTooOld(String),
    #[error(
        "io_uring is disabled on this host (kernel.io_uring_disabled={0}): run \
         `sysctl -w kernel.io_uring_disabled=0` as root"
    )]
    IoUringDisabled(String),
}

/// Runs every check; logs what it changed.
pub fn check() -> Result<(), PreflightError> {
    raise_memlock()?;
    raise_open_files();
    warn_on_strict_overcommit();
    check_io_uring()
}

/// Under strict overcommit the guard allocator's reservations count against the commit limit, so
/// a hostile length prefix can abort the process again (see `odradek_net::guard_alloc`).
fn warn_on_strict_overcommit() {
    // Read once at start, before any executor runs.
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap_or_default();
    if mode.trim() == "2" {
        tracing::warn!(
            "vm.overcommit_memory=2 (strict): a malformed request declaring a huge array can \
             exhaust the commit limit and stop the broker; set vm.overcommit_memory=0 or 1"
        );
    }
}

fn raise_memlock() -> Result<(), PreflightError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_MEMLOCK).map_err(PreflightError::Rlimit)?;
    if soft >= MEMLOCK_BYTES_MIN {
        return Ok(());
    }
    // Raising the soft limit up to the hard one needs no privilege; past it needs CAP_SYS_RESOURCE.
    let target = if hard >= MEMLOCK_BYTES_MIN {
        hard
    } else {
        MEMLOCK_BYTES_MIN
    };
    match setrlimit(Resource::RLIMIT_MEMLOCK, target, hard.max(target)) {
        Ok(()) => {
            tracing::info!(
                from_bytes = soft,
                to_bytes = target,
                "raised the memlock limit"
            );
            Ok(())
        }
        Err(_) => Err(PreflightError::Memlock {
            soft_bytes: soft,
            hard_bytes: hard,
        }),
    }
}

/// `major.minor` of a kernel release string such as `6.8.0-45-generic`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Connections and segment files need descriptors; the usual soft limit (1024) is low.
fn raise_open_files() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // An unlimited hard limit is refused above the kernel's nr_open (1 Mi by default).
    let target = hard.min(1 << 20);
    if soft >= target {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => tracing::info!(from = soft, to = target, "raised the open-files limit"),
        Err(error) => tracing::warn!(soft, hard, %error, "cannot raise the open-files limit"),
    }
}

fn check_io_uring() -> Result<(), PreflightError> {
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        if kernel_version(&release).is_some_and(|v| v < (5, 8)) {
            return Err(PreflightError::KernelTooOld(release.trim().to_string()));
        }
    }
    // Absent on kernels before 6.6: io_uring is then enabled unless a seccomp profile blocks it.
    let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") else {
        return Ok(());
    };
    match text.trim() {
        "0" => Ok(()),
        "1" => {
            tracing::warn!(
                "kernel.io_uring_disabled=1: only members of kernel.io_uring_group may use \
                 io_uring"
            );
            Ok(())
        }
        other => Err(PreflightError::IoUringDisabled(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.8.0-45-generic\n"), Some((6, 8)));
        assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(kernel_version("garbage"), None);
    }
}
