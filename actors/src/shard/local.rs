//! The same-shard fast paths: a new payment or order whose whole saga would run
//! on this shard becomes one event, and a payment's step on this very shard is
//! applied and completed in one event.

use super::{ShardCore, StepRequest};
use crate::decide;
use crate::domain::PaymentId;
use crate::event::Event;
use crate::model::{SagaId, StepEffect, StepOutcome};

impl ShardCore {
    /// A new order whose items are all on this shard and would all refuse their
    /// line ends at once, as one event (`Event::OrderRefusedLocally`), instead of a
    /// creation, a step record per line and a step answer per line. In a flash
    /// sale most orders are such refusals once the hot item has sold out. One
    /// whose items are all here, some of which would be reserved and others
    /// refused, is rejected at once too (`Event::OrderRejectedLocally`), instead
    /// of a creation, a step record and a step answer per line, and per reserved
    /// line its release with its own record and answer: in a flash sale, the
    /// orders that pair the sold-out item with another. A new
    /// order whose items, payer and merchant are all here, and whose every step
    /// would succeed, is confirmed at once (`Event::OrderRunLocally`) instead of
    /// six events per line and nine more, and two step records per line and four
    /// more.
    ///
    /// A new one-phase payment whose payer and payee are both on this shard runs to
    /// its end at once, as one event: one journal entry and no step messages, where
    /// the saga would take a creation and a step event per debit and credit. A run
    /// whose credit would be refused goes the saga's way instead (debit, credit,
    /// refund as separate events): the payer's balance changes twice, and its feed
    /// must see both versions, while `PaymentRunLocally`'s notices are read from the
    /// state after it.
    #[expect(
        clippy::too_many_lines,
        reason = "chooses among the four fast paths (payment run, order refusal, rejection and run) in one place"
    )]
    pub(super) fn run_locally_if_possible(&self, event: Event) -> Event {
        match event {
            Event::PaymentCreated {
                id,
                terms,
                rejected: None,
                at,
            } if terms.capture
                && self.router.shard_for(terms.from.as_str()) == self.id
                && self.router.shard_for(terms.to.as_str()) == self.id =>
            {
                let saga = SagaId::Payment(id.clone());
                match decide::local_run_outcomes(&self.state, &saga, &terms) {
                    Some(outcomes) => Event::PaymentRunLocally {
                        id,
                        terms,
                        outcomes,
                        at,
                    },
                    None => Event::PaymentCreated {
                        id,
                        terms,
                        rejected: None,
                        at,
                    },
                }
            }
            Event::OrderCreated {
                id,
                terms,
                deadline,
                at,
            } if terms
                .lines
                .iter()
                .all(|line| self.router.shard_for(line.sku.as_str()) == self.id) =>
            {
                let accounts_here = [&terms.account, &terms.merchant]
                    .iter()
                    .all(|account| self.router.shard_for(account.as_str()) == self.id);
                if let Some(refusals) = decide::local_refusals(&self.state, &terms) {
                    Event::OrderRefusedLocally {
                        id,
                        terms,
                        deadline,
                        refusals,
                        at,
                    }
                } else if let Some(answers) = decide::local_rejection(&self.state, &terms) {
                    Event::OrderRejectedLocally {
                        id,
                        terms,
                        deadline,
                        answers,
                        at,
                    }
                } else if let Some(run) =
                    decide::local_run(&self.state, &terms).filter(|_| accounts_here)
                {
                    Event::OrderRunLocally {
                        id,
                        terms,
                        deadline,
                        unit_prices: run.unit_prices,
                        currency: run.currency,
                        at,
                    }
                } else {
                    Event::OrderCreated {
                        id,
                        terms,
                        deadline,
                        at,
                    }
                }
            }
            event => event,
        }
    }

    /// A payment's debit, credit or refund on this very shard: applied and
    /// completed in one event (see `Event::PaymentStepAppliedLocally`). Holds and
    /// their captures and releases keep their step records, which remember what is
    /// held.
    pub(super) fn apply_local_payment_step(&mut self, id: PaymentId, request: StepRequest) {
        let Some(payment) = self.state.payments.get(&id) else {
            return;
        };
        // A step that is not the outstanding one was applied already (a resend
        // queued before its twin was handled); the payment has moved on.
        let tag = request.kind.tag();
        if payment.outstanding_step().map(|(_, kind)| kind.tag()) != Some(tag) {
            return;
        }
        let result = decide::step_effect(
            &self.state,
            &request.saga,
            &request.account,
            request.currency,
            request.kind,
        );
        let (outcome, effect) = match result {
            Ok(effect) => (StepOutcome::Done, effect),
            Err(rejection) => (StepOutcome::Rejected(rejection), StepEffect::NONE),
        };
        self.emit(Event::PaymentStepAppliedLocally {
            id,
            tag,
            account: request.account,
            outcome,
            effect,
            at: self.now,
        });
    }
}
