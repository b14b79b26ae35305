//! SIGTERM and SIGINT, handled on a thread of their own (never on a reactor): the first asks
//! every shard to stop gracefully, the second exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

/// Blocks SIGTERM and SIGINT in the calling thread, so threads spawned after it (the shards)
/// inherit the mask and only the signal thread receives them. Call first in `main`.
pub fn block_stop_signals() -> Result<SigSet, nix::Error> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()?;
    Ok(set)
}

/// Starts the signal thread; `stop` is set by the first signal.
pub fn spawn_signal_thread(set: SigSet, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("odradek-signals".into())
        .spawn(move || loop {
            let Ok(signal) = set.wait() else { continue };
            if stop.swap(true, Ordering::SeqCst) {
                tracing::warn!(%signal, "second stop signal: exiting now");
                std::process::exit(130);
            }
            tracing::info!(
                %signal,
                "stopping: finishing in-flight requests (send again to exit at once)"
            );
        })?;
    Ok(())
}
