//! Accounts: creation, deposits and withdrawals, and the account owner's side of
//! a saga step (its effect on the account and the record that makes it
//! idempotent).

use super::State;
use crate::domain::{AccountId, Currency, TimestampMs};
use crate::model::{
    Account, StepEffect, StepKey, StepOrigin, StepOutcome, StepRecord, StepTag, TimerKey,
    HOLD_OPEN_DEADLINE,
};
use rust_decimal::Decimal;

impl State {
    /// `Event::AccountCreated`.
    pub(super) fn create_account(
        &mut self,
        id: &AccountId,
        currency: Currency,
        overdraft_limit: Decimal,
        at: TimestampMs,
    ) {
        self.accounts.insert(
            id.clone(),
            Account {
                id: id.clone(),
                currency,
                balance: Decimal::ZERO,
                held: Decimal::ZERO,
                overdraft_limit,
                version: 0,
                created_at: at,
            },
        );
    }

    /// `Event::BalanceChanged`: a deposit or a withdrawal.
    pub(super) fn change_balance(&mut self, account: &AccountId, delta: Decimal) {
        let account = self.account_mut(account);
        account.balance += delta;
        account.version += 1;
    }

    /// `Event::StepApplied`: a saga's step on one of this shard's accounts, and its
    /// record, kept until `expires_at` so that a resent step is answered as before.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_step(
        &mut self,
        key: &StepKey,
        account: &AccountId,
        outcome: StepOutcome,
        effect: StepEffect,
        amount: Decimal,
        expires_at: TimestampMs,
        at: TimestampMs,
        origin: Option<StepOrigin>,
    ) {
        if outcome == StepOutcome::Done && key.tag != StepTag::Validate {
            let account = self.account_mut(account);
            account.balance += effect.balance_delta;
            account.held += effect.held_delta;
            account.version += 1;
        }
        self.steps.insert(
            key.clone(),
            StepRecord {
                account: Some(account.clone()),
                outcome,
                amount,
                at,
                origin,
            },
        );
        // No timer. A stamped record goes once its sender's floor passes it (an
        // active hold's only once closed: it is what its release or capture
        // gives back); an unstamped one goes to the archive (see
        // `State::note_finished`).
        let active_hold = key.tag == StepTag::Hold && outcome == StepOutcome::Done;
        if let Some(origin) = origin.filter(|_| !active_hold) {
            self.file_step_record(origin, key.clone());
        }
        if matches!(key.tag, StepTag::Release | StepTag::Capture) {
            self.close_hold_record(key, expires_at);
            let hold = StepKey {
                saga: key.saga.clone(),
                tag: StepTag::Hold,
            };
            let stamped_hold = self.steps.get(&hold).is_some_and(|r| r.origin.is_some());
            if let (Some(origin), true) = (origin, stamped_hold) {
                self.file_step_record(origin, hold);
            }
        }
    }

    /// The hold of `closing`'s payment is gone: a record kept while the hold was
    /// active under a timer (journals and snapshots from before the archive took
    /// step records) now ages out together with the step that closed it.
    fn close_hold_record(&mut self, closing: &StepKey, expires_at: TimestampMs) {
        let hold = TimerKey::Step(StepKey {
            saga: closing.saga.clone(),
            tag: StepTag::Hold,
        });
        let open = (HOLD_OPEN_DEADLINE, hold);
        if self.timers.contains(&open) {
            self.timers.remove(&open);
            self.timers.insert((expires_at, open.1));
        }
    }
}
