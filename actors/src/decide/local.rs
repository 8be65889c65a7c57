//! The same-shard fast paths: whether a new payment or order whose parties all
//! live on its coordinator's shard can run as one event, and what each of its
//! steps would answer there.

use super::{item_price, reserve_refusal, step_effect};
use crate::domain::Currency;
use crate::model::{PaymentTerms, SagaId, StepKind, StepOutcome};
use crate::order::{OrderTerms, ReportedPrice};
use crate::rejection::Rejection;
use crate::state::State;
use rust_decimal::Decimal;

/// The outcomes of a one-phase payment run entirely on its coordinator's shard
/// (`Event::PaymentRunLocally`), in saga order: exactly what its debit and credit
/// would answer if each were handled as a local step after the one before. `None`
/// when the credit would be refused: a refund would follow, changing the payer a
/// second time, and that run goes the saga's way (one notice per change).
pub fn local_run_outcomes(
    state: &State,
    saga: &SagaId,
    terms: &PaymentTerms,
) -> Option<Vec<StepOutcome>> {
    assert!(terms.capture, "only one-phase payments run locally");
    assert!(
        terms.from != terms.to,
        "a payment to its own payer is refused at creation"
    );
    let amount = terms.amount;
    let outcome = |account, kind| match step_effect(state, saga, account, terms.currency, kind) {
        Ok(_) => StepOutcome::Done,
        Err(rejection) => StepOutcome::Rejected(rejection),
    };
    let debit = outcome(&terms.from, StepKind::Debit { amount });
    if debit != StepOutcome::Done {
        return Some(vec![debit]);
    }
    // `from` and `to` differ, so the credit finds `to` as it is after the debit.
    let credit = outcome(&terms.to, StepKind::Credit { amount });
    (credit == StepOutcome::Done).then(|| vec![debit, credit])
}

/// The refusal of every line of a new order, in line order, when the items'
/// shard (`state`) would refuse every one of them; `None` as soon as one line
/// would be reserved. Such an order ends rejected without changing any stock,
/// which is what lets its shard run it in one event
/// (`Event::OrderRefusedLocally`) when the items are its own: the saga would send
/// every reserve at once, each would find the stock as it is now, and every
/// answer would be a refusal. An order with a line that would be reserved takes
/// that line's stock and gives it back (`local_rejection`, or the saga's way).
///
/// The order must be new: a reservation for one of its lines can only come from
/// its own saga, so none exists yet.
pub fn local_refusals(
    state: &State,
    terms: &OrderTerms,
) -> Option<Vec<(Rejection, ReportedPrice)>> {
    if terms.lines.is_empty() {
        return None;
    }
    terms
        .lines
        .iter()
        .map(|line| {
            let refusal = reserve_refusal(state, &line.sku, line.quantity, 0)?;
            Some((refusal, item_price(state, &line.sku)))
        })
        .collect()
}

/// Each line's answer to its reservation, in line order, with the item's price,
/// when the items' shard (`state`) would reserve some lines of a new order and
/// refuse the others; `None` when it would refuse none (the order goes on to its
/// payment) or every one (`local_refusals`). The saga sends every reserve at once
/// and the shard handles them in line order, so each line finds the stock that
/// the lines reserved before it left. Such an order ends rejected, with its
/// first refused line's reason, once each reserved line is given back; its shard
/// can run all of it in one event (`Event::OrderRejectedLocally`) when the items
/// are its own. In a flash sale these are the orders that pair the sold-out item
/// with one still in stock.
///
/// The order must be new: a reservation for one of its lines can only come from
/// its own saga, so none exists yet.
pub fn local_rejection(
    state: &State,
    terms: &OrderTerms,
) -> Option<Vec<(StepOutcome, ReportedPrice)>> {
    let mut answers: Vec<(StepOutcome, ReportedPrice)> = Vec::with_capacity(terms.lines.len());
    for (index, line) in terms.lines.iter().enumerate() {
        // Lines are few (ORDER_LINES_MAX): a scan beats a map here.
        let taken_before: u64 = terms.lines[..index]
            .iter()
            .zip(&answers)
            .filter(|(earlier, (outcome, _))| {
                earlier.sku == line.sku && *outcome == StepOutcome::Done
            })
            .map(|(earlier, _)| u64::from(earlier.quantity.get()))
            .sum();
        let outcome = match reserve_refusal(state, &line.sku, line.quantity, taken_before) {
            Some(refusal) => StepOutcome::Rejected(refusal),
            None => StepOutcome::Done,
        };
        answers.push((outcome, item_price(state, &line.sku)));
    }
    let reserved = answers
        .iter()
        .filter(|(outcome, _)| *outcome == StepOutcome::Done)
        .count();
    (reserved > 0 && reserved < answers.len()).then_some(answers)
}

/// What a local run of a new order (`Event::OrderRunLocally`) takes.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRun {
    /// Each line's unit price, in line order.
    pub unit_prices: Vec<Decimal>,
    pub currency: Currency,
}

/// The run of a new order on the shard (`state`) that holds its items, its payer
/// and its merchant, when every step of its saga would succeed there, in the
/// saga's order: every line reserved (each line finds the stock the lines before
/// it left), the total held on the payer, the merchant checked, the lines
/// committed, the total captured and credited. `None` when any step would be
/// refused: that order goes the saga's way, which also gives back what it took.
/// An order paid to its own payer goes the saga's way too: the merchant's credit
/// is checked here against the balance before the capture, which is only right
/// when the merchant is not the payer.
///
/// The order must be new: a reservation for one of its lines can only come from
/// its own saga, so none exists yet.
pub fn local_run(state: &State, terms: &OrderTerms) -> Option<LocalRun> {
    if terms.account == terms.merchant || terms.lines.is_empty() {
        return None;
    }
    let mut unit_prices = Vec::with_capacity(terms.lines.len());
    let mut currency = None;
    let mut total = Decimal::ZERO;
    for (index, line) in terms.lines.iter().enumerate() {
        let item = state.items.get(&line.sku)?;
        // Lines are few (ORDER_LINES_MAX): a scan beats a map here.
        let taken_before: u64 = terms.lines[..index]
            .iter()
            .filter(|earlier| earlier.sku == line.sku)
            .map(|earlier| u64::from(earlier.quantity.get()))
            .sum();
        let quantity = u64::from(line.quantity.get());
        if item.available() < taken_before + quantity {
            return None;
        }
        if *currency.get_or_insert(item.currency) != item.currency {
            return None;
        }
        total = total.checked_add(item.price.checked_mul(Decimal::from(quantity))?)?;
        unit_prices.push(item.price);
    }
    let currency = currency?;
    let payer = state.accounts.get(&terms.account)?;
    let merchant = state.accounts.get(&terms.merchant)?;
    let steps_succeed = payer.currency == currency
        && payer.available() >= total
        && merchant.currency == currency
        && merchant.balance.checked_add(total).is_some();
    // The total itself is the order's to compute (`Order::on_reply`), from the
    // prices; it was needed here only to check the steps.
    steps_succeed.then_some(LocalRun {
        unit_prices,
        currency,
    })
}
