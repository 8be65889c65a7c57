//! Logs written to a file or a pipe carry no terminal colour codes: the real
//! `surge` binary runs with its output captured, and the captured log is read.

mod common;

use common::process::KillOnDrop;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the binary may take to log that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `stream` to its end on a thread, sending each chunk read.
fn forward(mut stream: impl Read + Send + 'static, chunks: mpsc::Sender<Vec<u8>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            if chunks.send(buffer[..n].to_vec()).is_err() {
                return;
            }
        }
    });
}

/// Starts `command` (a `surge serve`) with its output piped, and reads what it
/// logs until it says it listens: the process, the rest of its output to come,
/// and what it logged so far.
fn start_logged(command: &mut Command) -> (KillOnDrop, mpsc::Receiver<Vec<u8>>, Vec<u8>) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("surge binary starts");
    let (sender, chunks) = mpsc::channel();
    forward(child.stdout.take().expect("piped stdout"), sender.clone());
    forward(child.stderr.take().expect("piped stderr"), sender);
    let child = KillOnDrop::adopt(child);
    let mut log = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    while !String::from_utf8_lossy(&log).contains("surge listening") {
        let left = deadline.saturating_duration_since(Instant::now());
        match chunks.recv_timeout(left) {
            Ok(chunk) => log.extend(chunk),
            Err(_) => panic!(
                "surge did not log that it listens within {START_TIMEOUT:?}; it logged:\n{}",
                String::from_utf8_lossy(&log)
            ),
        }
    }
    (child, chunks, log)
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let (dir, storage_url) = common::temp_sqlite();
    let mut command = Command::new(env!("CARGO_BIN_EXE_surge"));
    command
        .arg("serve")
        .env("SURGE_CONFIG_DIR", dir.path())
        .env_remove("SURGE_ENVIRONMENT")
        .env_remove("APP_ENVIRONMENT")
        .env("SURGE__HTTP__ADDR", "127.0.0.1:0")
        .env("SURGE__STORAGE__URL", storage_url)
        .env("SURGE__LOG__FORMAT", "human")
        .env("SURGE__LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        // Colour must be left out because the output is no terminal, not
        // because the environment asks for it.
        .env_remove("NO_COLOR");
    let (child, chunks, mut log) = start_logged(&mut command);
    drop(child);
    // What it wrote until it was killed (the reader threads end with the pipes).
    log.extend(chunks.iter().flatten());

    let log = String::from_utf8_lossy(&log);
    assert!(
        !log.contains("\x1b["),
        "the captured log has terminal escape codes:\n{log:?}"
    );
    assert!(log.contains("INFO"), "{log}");
}

/// Runs `surge serve` at `level`, sends `requests` (method, path) once it
/// listens, and returns everything it logged.
fn log_of_requests(level: &str, requests: &[(&str, &str)]) -> String {
    let (_dir, storage_url) = common::temp_sqlite();
    let port = common::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_surge"));
    command
        .arg("serve")
        .env_remove("SURGE_ENVIRONMENT")
        .env("SURGE__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("SURGE__STORAGE__URL", storage_url)
        .env("SURGE__LOG__FORMAT", "human")
        .env("RUST_LOG", level);
    let (child, chunks, mut log) = start_logged(&mut command);
    for (method, path) in requests {
        send(port, method, path);
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(child);
    log.extend(chunks.iter().flatten());
    String::from_utf8_lossy(&log).into_owned()
}

#[test]
fn a_client_error_is_logged_at_debug_with_its_code_and_never_as_a_warning() {
    let requests = [
        ("GET", "/no/such/path"),
        ("GET", "/v1/accounts/a"),
        ("TRACE", "/v1/payments"),
    ];
    let log = log_of_requests("info,surge=debug", &requests);
    assert!(
        !log.lines().any(|line| line.contains("WARN")),
        "a 4xx must not be a warning:\n{log}"
    );
    for code in ["not_found", "unauthorized", "method_not_allowed"] {
        assert!(
            log.lines().any(|line| line.contains("DEBUG")
                && line.contains("client error")
                && line.contains(code)),
            "no debug line with {code}:\n{log}"
        );
    }
}

/// One HTTP/1.1 request on its own connection; the answer is read and dropped.
fn send(port: u16, method: &str, path: &str) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
}
