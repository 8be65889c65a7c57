//! A lean HTTP/1.1 client for the measured requests: keep-alive connections in a
//! small pool, requests built from prepared parts.
//!
//! The load generator shares the machine with the system under test, so what it
//! spends per request is taken from what it measures. reqwest's layers (URL
//! handling, its pool, redirect and timeout wrappers) were about a third of the
//! generator's CPU in a flash sale; this client keeps only hyper's HTTP/1.1
//! connection. It serves plain `http://host:port` targets (every in-process run);
//! anything else goes through reqwest.

use actix_web::web::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept for reuse; a closed loop of N clients needs N.
const IDLE_CONNECTIONS_MAX: usize = 4_096;

/// Why a request got no HTTP answer, as the report labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Transport,
}

impl Failure {
    pub fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Transport => "transport",
        }
    }
}

pub struct Http1 {
    /// `host:port` to connect to.
    authority: String,
    host: HeaderValue,
    timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Http1 {
    /// A client for `base` if it is a plain `http://host:port` URL.
    pub fn for_base(base: &str, timeout: Duration) -> Option<Self> {
        let authority = base.strip_prefix("http://")?.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return None;
        }
        Some(Self {
            authority: authority.to_owned(),
            host: HeaderValue::from_str(authority).ok()?,
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// `POST path` with `body`; the answer's status and body.
    pub async fn post(
        &self,
        path: &'static str,
        authorization: &HeaderValue,
        content_type: &'static str,
        accept: &'static str,
        body: Bytes,
    ) -> Result<(u16, Bytes), Failure> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(Uri::from_static(path))
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .header(ACCEPT, HeaderValue::from_static(accept))
            .body(Full::new(body))
            .map_err(|_| Failure::Transport)?;
        let exchange = async {
            let mut sender = self.checkout().await?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| Failure::Transport)?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Transport)?
                .to_bytes();
            self.checkin(sender);
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::Timeout)?
    }

    /// An idle connection ready for a request, or a new one.
    async fn checkout(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        loop {
            // The lock is held for a pop, never across an await.
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            match idle {
                Some(mut sender) => {
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                    // Closed by the server (or broken): try the next one.
                }
                None => return self.connect().await,
            }
        }
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_CONNECTIONS_MAX {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|_| Failure::Connect)?;
        stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Failure::Connect)?;
        // Drives the connection until either side closes it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
