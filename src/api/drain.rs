//! Refused requests keep their connection.
//!
//! actix-web closes a keep-alive connection when a request is answered before
//! its body was read (it cannot know where the next request starts). Every
//! early answer is such a case: 401 and 403 from the token check, 429 from the
//! rate limit, 503 from load shedding, 415 from a content-type check. Closing
//! makes each of them cost a new TCP connection on both sides, so that under a
//! flood of refusals the server spends more on connections than it saves by
//! refusing (measured: a shed request cost about as much CPU as a served
//! payment). This middleware reads what the handler left of a body, up to a
//! limit, after the answer is ready, so the connection is reused. A body
//! larger than the limit (or of unknown length) is left unread, and the
//! connection closed, as before.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures::{FutureExt, Stream, StreamExt};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// How long the rest of a refused request's body may take to arrive.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The handler's view of the body: the same payload the middleware drains
/// afterwards.
struct Shared(Rc<RefCell<Payload>>);

impl Stream for Shared {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut payload = self.0.borrow_mut();
        Pin::new(&mut *payload).poll_next(cx)
    }
}

/// Middleware: after the answer, reads and drops the rest of a body of at most
/// `drain_bytes_max` bytes (by its `Content-Length`).
pub async fn keep_alive<B: MessageBody>(
    drain_bytes_max: usize,
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if !length.is_some_and(|length| length > 0 && length <= drain_bytes_max) {
        return next.call(request).await;
    }
    let shared = Rc::new(RefCell::new(request.take_payload()));
    request.set_payload(Payload::Stream {
        payload: Box::pin(Shared(shared.clone())),
    });
    let response = next.call(request).await?;
    // The handler is done with the body; what it left is ours.
    let mut rest = std::mem::replace(&mut *shared.borrow_mut(), Payload::None);
    let drain = async {
        let mut drained = 0usize;
        while let Some(Ok(chunk)) = rest.next().await {
            drained += chunk.len();
            if drained > drain_bytes_max {
                break;
            }
        }
    };
    // Usually the body is in already and no timer is needed. A client that
    // announced a body and does not send it gets its answer after the timeout
    // and loses its connection, as without this middleware.
    let mut drain = std::pin::pin!(drain);
    if (&mut drain).now_or_never().is_none() {
        let _in_time = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
    }
    Ok(response)
}
