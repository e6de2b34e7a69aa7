//! [R1] Replay protection that does not grow with history: a transaction is
//! valid only until its `valid_until`, at most the genesis
//! `tx_validity_window_ms` after the block that takes it, so its id need be
//! kept in state only until then.

use super::*;

/// Most ids a block deletes from state; the oldest blocks' ids go first and
/// whole blocks at a time, so a block may pass this by one block's ids
/// (after a long halt, the next blocks catch up).
const EXPIRED_IDS_PER_BLOCK: usize = 2 * crate::constants::BLOCK_TRANSACTIONS_MAX;

/// The window in force (genesis).
pub(super) fn validity_window(st: &Overlay<'_>) -> Result<u64, StateError> {
    Ok(st
        .get::<LedgerParameters>(&StateKey::Parameters)?
        .unwrap_or_default()
        .tx_validity_window_ms)
}

/// Why a block at `time` may not take `tx` whatever the state says, if so
/// [R1]: it is past its `valid_until`, or valid for longer than `window_ms`
/// after the block. (A node asks the same of a submission at its clock.)
pub fn outside_window(tx: &Transaction, time: Timestamp, window_ms: u64) -> Option<Rejection> {
    let valid_until = tx.valid_until;
    let latest = Timestamp(time.0.saturating_add(window_ms));
    if valid_until < time {
        Some(Rejection::Expired {
            valid_until,
            block_time: time,
        })
    } else if valid_until > latest {
        Some(Rejection::ValidTooLong {
            valid_until,
            latest,
        })
    } else {
        None
    }
}

/// Deletes the ids of the oldest blocks whose transactions are all past
/// their `valid_until` at this block's time: none of them can be taken by
/// this block or a later one (block times never go back), so their markers
/// are no longer needed.
pub(super) fn forget_expired_ids(
    block: &mut Overlay<'_>,
    ctx: &BlockContext,
) -> Result<(), StateError> {
    let Some(mut queue) = block.get::<ExpiryQueue>(&StateKey::ExpiryQueue)? else {
        return Ok(());
    };
    let start = queue.head;
    let mut deleted = 0;
    while queue.head < queue.tail && deleted < EXPIRED_IDS_PER_BLOCK {
        let place = StateKey::ExpiringIds(queue.head);
        let Some(expiring) = block.get::<ExpiringIds>(&place)? else {
            queue.head += 1;
            continue;
        };
        if expiring.expires_after >= ctx.time {
            break;
        }
        for id in &expiring.ids {
            block.delete(&StateKey::CommittedTransaction(*id));
        }
        deleted += expiring.ids.len();
        block.delete(&place);
        queue.head += 1;
    }
    if queue.head != start {
        block.put(&StateKey::ExpiryQueue, &queue);
    }
    Ok(())
}

/// Queues the ids this block committed for deletion once every one of them
/// is past its `valid_until` (the latest of them is `expires_after`).
pub(super) fn queue_committed_ids(
    block: &mut Overlay<'_>,
    ids: Vec<TxHash>,
    expires_after: Timestamp,
) -> Result<(), StateError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut queue: ExpiryQueue = block.get(&StateKey::ExpiryQueue)?.unwrap_or_default();
    block.put(
        &StateKey::ExpiringIds(queue.tail),
        &ExpiringIds { expires_after, ids },
    );
    queue.tail += 1;
    block.put(&StateKey::ExpiryQueue, &queue);
    Ok(())
}
