//! What an acks=all answer waits for on the leader: `min.insync.replicas` in the ISR before
//! the append, then the high watermark past the records (every in-sync replica holds them),
//! while this broker leads at the epoch of the append.

use futures::future::select;
use kafka_protocol::error::ResponseError;
use odradek_storage::Offset;

use crate::data_path::Owner;
use crate::partition_ops::ProduceResult;

/// Whether the ISR holds `min.insync.replicas` members; `error` when not.
pub fn enough_replicas(on: &Owner<'_>, error: ResponseError) -> Result<(), ProduceResult> {
    let (isr, min) = on.isr_and_min();
    if isr >= min {
        return Ok(());
    }
    let why = format!(
        "{} has {isr} in-sync replicas, min.insync.replicas is {min}",
        on.tp
    );
    Err(ProduceResult::failed(error, why))
}

/// Waits until the high watermark passes `last_offset` (every in-sync replica holds it), while
/// this broker leads at the epoch the append was made under, until `deadline`.
pub async fn replicated(
    on: &Owner<'_>,
    last_offset: Offset,
    deadline: std::time::Instant,
) -> Result<(), ProduceResult> {
    loop {
        if !on.still_leads() {
            let why = format!(
                "{} changed leader before the records were replicated",
                on.tp
            );
            return Err(ProduceResult::failed(
                ResponseError::NotLeaderOrFollower,
                why,
            ));
        }
        let hw = on.high_watermark();
        if hw > last_offset {
            return enough_replicas(on, ResponseError::NotEnoughReplicasAfterAppend);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            let why = format!("{} was not replicated to the ISR in time", on.tp);
            return Err(ProduceResult::failed(ResponseError::RequestTimedOut, why));
        }
        let moved = std::pin::pin!(on.replica.high_watermark_moved(on.log, hw));
        let timer = std::pin::pin!(glommio::timer::sleep(left));
        select(moved, timer).await;
    }
}
