//! The retention timer of one shard: every `log.retention.check.interval.ms`, one retention pass
//! over each partition the shard owns, which also forgets idempotent producers idle for
//! `producer.id.expiration.ms`.

use std::rc::Rc;
use std::time::Duration;

use futures::future::{select, Either};
use odradek_net::Shutdown;
use odradek_storage::now_ms;

use crate::shard::ShardCtx;

/// Runs until `shutdown`.
pub async fn run(ctx: Rc<ShardCtx>, shutdown: Shutdown) {
    let interval = Duration::from_millis(ctx.config.log_retention_check_interval_ms);
    loop {
        let tick = std::pin::pin!(glommio::timer::sleep(interval));
        let stop = std::pin::pin!(shutdown.wait());
        if let Either::Right(_) = select(tick, stop).await {
            return;
        }
        pass(&ctx).await;
    }
}

async fn pass(ctx: &ShardCtx) {
    let logs: Vec<_> = ctx
        .partitions
        .borrow()
        .iter()
        .map(|(tp, log)| (tp.clone(), Rc::clone(log)))
        .collect();
    let expiration_ms = i64::try_from(ctx.config.producer_id_expiration_ms).unwrap_or(i64::MAX);
    for (tp, log) in logs {
        let expired = log.expire_producers(now_ms().saturating_sub(expiration_ms));
        if expired > 0 {
            tracing::debug!(partition = %tp, producers = expired, "idle producers expired");
        }
        match log.enforce_retention(now_ms()).await {
            Ok(outcome) if outcome.segments_deleted > 0 => tracing::info!(
                partition = %tp,
                segments = outcome.segments_deleted,
                bytes = outcome.bytes_deleted,
                log_start_offset = %outcome.log_start_offset,
                "retention deleted segments"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(partition = %tp, %error, "retention pass failed"),
        }
    }
}
