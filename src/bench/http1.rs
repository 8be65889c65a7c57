//! A lean HTTP/1.1 client for the measured requests: keep-alive connections in a
//! small pool, each request written with one system call and its answer parsed
//! with `httparse` in the task that sent it.
//!
//! The load generator shares the machine with the system under test, so what it
//! spends per request is taken from what it measures. reqwest's layers (URL
//! handling, its pool, redirect and timeout wrappers) were about a third of the
//! generator's CPU in a flash sale; hyper's client connection, which replaced it,
//! still put a channel and a second task between the caller and the socket and
//! kept the generator at ~16% of the machine in user space at 40k requests/s
//! (wrk, a C client, drove the same server 10% faster). This client keeps only
//! what a keep-alive request needs. It serves plain `http://host:port` targets
//! (every in-process run); anything else goes through reqwest.

use actix_web::web::{Bytes, BytesMut};
use reqwest::header::HeaderValue;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle connections kept for reuse; a closed loop of N clients needs N.
const IDLE_CONNECTIONS_MAX: usize = 4_096;

/// Most headers an answer may have.
const RESPONSE_HEADERS_MAX: usize = 32;

/// Largest answer head (status line and headers) accepted, in bytes.
const RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;

/// Largest answer body accepted, in bytes (a batch of 8,190 results is ~1 MiB).
const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What a connection's read buffer starts with.
const READ_BUFFER_BYTES: usize = 8 * 1024;

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

/// One keep-alive connection and the bytes read from it but not yet consumed.
struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
}

pub struct Http1 {
    /// `host:port` to connect to.
    authority: String,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl Http1 {
    /// A client for `base` if it is a plain `http://host:port` URL.
    pub fn for_base(base: &str, timeout: Duration) -> Option<Self> {
        let authority = base.strip_prefix("http://")?.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return None;
        }
        // The authority goes into the Host header as is.
        HeaderValue::from_str(authority).ok()?;
        Some(Self {
            authority: authority.to_owned(),
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// `POST path` with `body` (and an `Idempotency-Key`, when given); the
    /// answer's status and body.
    pub async fn post(
        &self,
        path: &str,
        authorization: &HeaderValue,
        (content_type, accept): (&'static str, &'static str),
        idempotency_key: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, Bytes), Failure> {
        let request = self.request(
            path,
            authorization,
            (content_type, accept),
            idempotency_key,
            &body,
        );
        let exchange = async {
            let mut connection = self.checkout().await?;
            connection
                .stream
                .write_all(&request)
                .await
                .map_err(|_| Failure::Transport)?;
            let answer = read_response(&mut connection.stream, &mut connection.buffer).await?;
            if answer.keep_alive {
                self.checkin(connection);
            }
            Ok((answer.status, answer.body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::Timeout)?
    }

    /// The request's bytes: head and body in one buffer, for one write.
    fn request(
        &self,
        path: &str,
        authorization: &HeaderValue,
        (content_type, accept): (&str, &str),
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Vec<u8> {
        let mut request = Vec::with_capacity(256 + authorization.len() + body.len());
        let key = idempotency_key.unwrap_or_default();
        let key_header: &[u8] = if key.is_empty() {
            b""
        } else {
            b"\r\nidempotency-key: "
        };
        for part in [
            b"POST ".as_slice(),
            path.as_bytes(),
            b" HTTP/1.1\r\nhost: ",
            self.authority.as_bytes(),
            b"\r\nauthorization: ",
            authorization.as_bytes(),
            b"\r\ncontent-type: ",
            content_type.as_bytes(),
            b"\r\naccept: ",
            accept.as_bytes(),
            key_header,
            key.as_bytes(),
            b"\r\ncontent-length: ",
            body.len().to_string().as_bytes(),
            b"\r\n\r\n",
            body,
        ] {
            request.extend_from_slice(part);
        }
        request
    }

    /// An idle connection the server has not closed, or a new one.
    async fn checkout(&self) -> Result<Connection, Failure> {
        loop {
            // The lock is held for a pop, never across an await.
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            match idle {
                Some(connection) if still_open(&connection) => return Ok(connection),
                // Closed by the server (idle timeout) or out of step: the next one.
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    fn checkin(&self, connection: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < IDLE_CONNECTIONS_MAX {
            idle.push(connection);
        }
    }

    async fn connect(&self) -> Result<Connection, Failure> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|_| Failure::Connect)?;
        stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_BUFFER_BYTES),
        })
    }
}

/// Whether an idle connection can carry a request: nothing unread is left over,
/// and the server has neither closed it nor sent anything unasked.
fn still_open(connection: &Connection) -> bool {
    if !connection.buffer.is_empty() {
        return false;
    }
    let mut probe = [0u8; 1];
    matches!(
        connection.stream.try_read(&mut probe),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
    )
}

/// One parsed answer.
#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    body: Bytes,
    /// Whether the connection may carry another request.
    keep_alive: bool,
}

/// How the answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    /// No length: the body runs until the server closes the connection.
    UntilClose,
}

/// Reads one answer from `reader`; bytes read past its end stay in `buffer`.
async fn read_response<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
) -> Result<Response, Failure> {
    loop {
        let (head_bytes, status, framing, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(buffer).map_err(|_| Failure::Transport)? {
                httparse::Status::Complete(head_bytes) => {
                    let status = response.code.ok_or(Failure::Transport)?;
                    let (framing, close) = framing(&response)?;
                    break (head_bytes, status, framing, close);
                }
                httparse::Status::Partial => {
                    if buffer.len() > RESPONSE_HEAD_BYTES_MAX {
                        return Err(Failure::Transport);
                    }
                    fill(reader, buffer).await?;
                }
            }
        };
        let _ = buffer.split_to(head_bytes);
        if (100..200).contains(&status) {
            // An interim answer (100 Continue): the real one follows.
            continue;
        }
        // These never have a body, whatever their headers say (RFC 9112, 6.3).
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            framing
        };
        let (body, keep_alive) = match framing {
            Framing::Length(length) => {
                if length > RESPONSE_BODY_BYTES_MAX {
                    return Err(Failure::Transport);
                }
                while buffer.len() < length {
                    fill(reader, buffer).await?;
                }
                (buffer.split_to(length).freeze(), !close)
            }
            Framing::Chunked => (read_chunked(reader, buffer).await?, !close),
            Framing::UntilClose => {
                while reader
                    .read_buf(buffer)
                    .await
                    .map_err(|_| Failure::Transport)?
                    > 0
                {
                    if buffer.len() > RESPONSE_BODY_BYTES_MAX {
                        return Err(Failure::Transport);
                    }
                }
                (buffer.split().freeze(), false)
            }
        };
        return Ok(Response {
            status,
            body,
            keep_alive,
        });
    }
}

/// The body's framing and whether the server will close the connection after it.
fn framing(response: &httparse::Response<'_, '_>) -> Result<(Framing, bool), Failure> {
    let mut length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| Failure::Transport)?;
        if header.name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse().map_err(|_| Failure::Transport)?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= value.to_ascii_lowercase().contains("chunked");
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    // Chunked wins over any length (RFC 9112, 6.3).
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::UntilClose,
    };
    Ok((framing, close))
}

/// Reads a chunked body (chunk extensions and trailers are skipped).
async fn read_chunked<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
) -> Result<Bytes, Failure> {
    let mut body = BytesMut::new();
    loop {
        let (size_bytes, size) = loop {
            match httparse::parse_chunk_size(buffer).map_err(|_| Failure::Transport)? {
                httparse::Status::Complete((size_bytes, size)) => break (size_bytes, size),
                httparse::Status::Partial => fill(reader, buffer).await?,
            }
        };
        let _ = buffer.split_to(size_bytes);
        let size = usize::try_from(size).map_err(|_| Failure::Transport)?;
        if body.len().saturating_add(size) > RESPONSE_BODY_BYTES_MAX {
            return Err(Failure::Transport);
        }
        if size == 0 {
            // Trailer lines, up to the empty line that ends the answer.
            loop {
                match buffer.iter().position(|&byte| byte == b'\n') {
                    Some(end) => {
                        let line = buffer.split_to(end + 1);
                        if line.as_ref() == b"\r\n" || line.as_ref() == b"\n" {
                            return Ok(body.freeze());
                        }
                    }
                    None => fill(reader, buffer).await?,
                }
            }
        }
        // The chunk's data and the line break after it.
        while buffer.len() < size + 2 {
            fill(reader, buffer).await?;
        }
        body.extend_from_slice(&buffer[..size]);
        if &buffer[size..size + 2] != b"\r\n" {
            return Err(Failure::Transport);
        }
        let _ = buffer.split_to(size + 2);
    }
}

/// Reads more bytes; the connection closing mid-answer is a transport failure.
async fn fill<R: AsyncRead + Unpin>(reader: &mut R, buffer: &mut BytesMut) -> Result<(), Failure> {
    if buffer.capacity() - buffer.len() < READ_BUFFER_BYTES / 2 {
        buffer.reserve(READ_BUFFER_BYTES);
    }
    match reader.read_buf(buffer).await {
        Ok(0) | Err(_) => Err(Failure::Transport),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one answer from `input` delivered in pieces of `piece` bytes.
    fn parse(input: &[u8], piece: usize) -> (Result<Response, Failure>, BytesMut) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (mut client, mut server) = tokio::io::duplex(64);
            let input = input.to_vec();
            let writer = tokio::spawn(async move {
                for chunk in input.chunks(piece) {
                    if server.write_all(chunk).await.is_err() {
                        return;
                    }
                }
                let _ = server.shutdown().await;
            });
            let mut buffer = BytesMut::new();
            let result = read_response(&mut client, &mut buffer).await;
            writer.abort();
            (result, buffer)
        })
    }

    #[test]
    fn an_answer_with_a_length_is_read_whole_and_what_follows_is_kept() {
        let input = b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1";
        for piece in [1, 3, input.len()] {
            let (result, rest) = parse(input, piece);
            assert_eq!(
                result,
                Ok(Response {
                    status: 201,
                    body: Bytes::from_static(b"hello"),
                    keep_alive: true
                })
            );
            if piece == input.len() {
                assert_eq!(rest.as_ref(), b"HTTP/1.1");
            }
        }
    }

    #[test]
    fn a_chunked_answer_is_joined_and_its_trailers_skipped() {
        let input = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
            5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for piece in [1, 7, input.len()] {
            let (result, rest) = parse(input, piece);
            let response = result.expect("an answer");
            assert_eq!(response.status, 200);
            assert_eq!(response.body.as_ref(), b"hello, world");
            assert!(response.keep_alive);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn an_interim_answer_is_skipped_and_connection_close_is_honoured() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 409 Conflict\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
        let (result, _) = parse(input, 4);
        assert_eq!(
            result,
            Ok(Response {
                status: 409,
                body: Bytes::from_static(b"{}"),
                keep_alive: false
            })
        );
    }

    #[test]
    fn an_answer_cut_short_or_malformed_is_a_transport_failure() {
        let (short, _) = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", 4);
        assert_eq!(short, Err(Failure::Transport));
        let (garbage, _) = parse(b"NOT HTTP AT ALL\r\n\r\n", 64);
        assert_eq!(garbage, Err(Failure::Transport));
        let (bad_length, _) = parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", 64);
        assert_eq!(bad_length, Err(Failure::Transport));
    }

    #[test]
    fn a_request_is_one_buffer_with_its_length() {
        let client = Http1::for_base("http://127.0.0.1:8080", Duration::from_secs(1))
            .expect("plain http target");
        let request = client.request(
            "/v1/payments",
            &HeaderValue::from_static("Bearer t"),
            ("application/json", "application/json"),
            None,
            b"{}",
        );
        assert_eq!(
            String::from_utf8(request).expect("ascii"),
            "POST /v1/payments HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nauthorization: Bearer t\r\n\
             content-type: application/json\r\naccept: application/json\r\n\
             content-length: 2\r\n\r\n{}"
        );
        let keyed = client.request(
            "/v1/payments/p1/capture",
            &HeaderValue::from_static("Bearer t"),
            ("application/json", "application/json"),
            Some("k1"),
            b"",
        );
        assert_eq!(
            String::from_utf8(keyed).expect("ascii"),
            "POST /v1/payments/p1/capture HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\
             authorization: Bearer t\r\ncontent-type: application/json\r\n\
             accept: application/json\r\nidempotency-key: k1\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(Http1::for_base("https://example.com", Duration::from_secs(1)).is_none());
    }
}
