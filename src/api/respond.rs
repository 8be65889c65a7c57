//! Turns engine replies into HTTP responses with the statuses of docs/API.md.

use super::dto::{
    AccountJson, BalanceChangeJson, ItemJson, OrderJson, PaymentJson, ReservationJson,
};
use super::problem::Problem;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use surge_actors::model::PaymentStatus;
use surge_actors::{EngineError, Reply};

/// Whether the request created something (201 on success) or acted on it (200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Act,
}

fn json<T: Serialize>(status: StatusCode, body: &T, replayed: bool) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    if replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    builder.json(body)
}

fn status(verb: Verb) -> StatusCode {
    match verb {
        Verb::Create => StatusCode::CREATED,
        Verb::Act => StatusCode::OK,
    }
}

/// The response for an engine result.
pub fn respond(result: Result<Reply, EngineError>, verb: Verb) -> HttpResponse {
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => return Problem::from(error).response(),
    };
    match reply {
        Reply::Account { account, created } => {
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json(code, &AccountJson::from(&account), !created)
        }
        Reply::BalanceChange { change, replayed } => {
            json(status(verb), &BalanceChangeJson::from(&change), replayed)
        }
        Reply::Payment { payment, replayed } => {
            // A refused payment is recorded (GET shows it as rejected), but the
            // request that made it is answered with the refusal.
            if verb == Verb::Create && payment.status == PaymentStatus::Rejected {
                if let Some(code) = payment.code {
                    let mut problem =
                        Problem::rejection(code, format!("payment {} was rejected", payment.id));
                    // docs/API.md: a payment naming an unknown account is a 422, not a
                    // 404: the payment itself exists (as rejected).
                    if code == surge_actors::Rejection::AccountNotFound {
                        problem.status = 422;
                    }
                    return problem.replayed(replayed).response();
                }
            }
            json(status(verb), &PaymentJson::from(&payment), replayed)
        }
        Reply::Item {
            item,
            created,
            replayed,
        } => {
            let code = match verb {
                Verb::Create if created => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            json(code, &ItemJson::from(&item), replayed)
        }
        Reply::Reservation {
            reservation,
            replayed,
        } => json(status(verb), &ReservationJson::from(&reservation), replayed),
        Reply::Order { order, replayed } => {
            // A new order is 201 once final (a rejected order included) and 202 while
            // its saga still runs.
            let code = match verb {
                Verb::Create if order.is_final() => StatusCode::CREATED,
                Verb::Create => StatusCode::ACCEPTED,
                Verb::Act => StatusCode::OK,
            };
            json(code, &OrderJson::from(&order), replayed)
        }
        Reply::Rejected {
            rejection,
            replayed,
        } => Problem::rejection(rejection, rejection.title())
            .replayed(replayed)
            .response(),
    }
}
