//! Reading a user's day token budget through the store's own admission rule (no adapter's
//! internals): a turn reserving nothing is admitted under a budget of `b` exactly when the day's
//! budget item holds less than `b`, so a binary search over such probes finds what it holds.

use shared::domain::{ConversationId, IdGenerator, MessageId, UserId};
use shared::error::StoreError;
use shared::store::{Store, TurnLimits, TurnStart, TurnWrite};

/// Whether a turn of `owner`'s `conversation` reserving nothing is admitted under a day budget
/// of `budget`. An admitted probe writes nothing but the conversation's live-turn marker (it
/// becomes the conversation's newest turn: probe a conversation whose running turn no test
/// still follows).
pub async fn under_day_budget(store: &dyn Store, owner: &UserId, conversation: &ConversationId, budget: u64) -> bool {
    let start = TurnStart {
        payer: owner.clone(),
        owner: owner.clone(),
        conversation_id: conversation.clone(),
        write: TurnWrite::Check,
        limits: TurnLimits {
            tokens_per_day: budget,
            ..TurnLimits::none()
        },
        turn_id: crate::unique("probe"),
        now: shared::domain::now(),
        reservation: 0,
        reservation_nano_usd: 0,
        reply_id: IdGenerator::new().message_id(),
        reply_parent: MessageId::root(),
    };
    match store.begin_turn(&start).await {
        Ok(_) => true,
        Err(StoreError::BudgetExceeded { .. }) => false,
        Err(e) => panic!("budget probe: {e:?}"),
    }
}

/// What `owner`'s day budget item holds, found by probing `conversation` (binary search).
pub async fn spent_today(store: &dyn Store, owner: &UserId, conversation: &ConversationId) -> u64 {
    let (mut low, mut high) = (0u64, 1u64 << 32);
    // Invariant: tokens >= low and tokens < high.
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if under_day_budget(store, owner, conversation, mid).await {
            high = mid;
        } else {
            low = mid;
        }
    }
    low
}
