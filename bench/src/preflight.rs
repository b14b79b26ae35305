//! Checks before any executor starts: glommio needs io_uring and some locked memory, and where
//! either is missing it exits the process itself with a message that does not say what to do.

use crate::error::BenchError;

/// glommio's minimum for its rings.
const MEMLOCK_BYTES_MIN: u64 = 512 << 10;

pub fn check() -> Result<(), BenchError> {
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if text.trim() != "0" {
            return Err(BenchError::Executor(
                "io_uring is disabled: set kernel.io_uring_disabled=0".into(),
            ));
        }
    }
    if let Some(limit) = memlock_soft_limit() {
        if limit < MEMLOCK_BYTES_MIN {
            return Err(BenchError::Executor(format!(
                "the locked-memory limit is {limit} bytes, below {MEMLOCK_BYTES_MIN}"
            )));
        }
    }
    Ok(())
}

/// The soft RLIMIT_MEMLOCK from /proc/self/limits; `None` when unknown or unlimited.
fn memlock_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    line["Max locked memory".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine_passes() {
        // The tests run glommio themselves, so this machine must pass.
        super::check().expect("io_uring and memlock available");
    }
}
