//! Child processes a test owns: a `surge serve` on a port of its own, and any
//! other server, each killed (SIGKILL) and reaped when dropped, so that a test
//! that fails leaves nothing running.

use super::http::{self, Api};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a freshly started process may take to answer `/ready` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process killed and reaped on drop.
pub struct KillOnDrop(Child);

impl KillOnDrop {
    /// Takes charge of a child already spawned (whose pipes the test took first).
    pub fn adopt(child: Child) -> Self {
        Self(child)
    }

    /// Spawns `command`; panics with `what` if it cannot start.
    pub fn spawn(command: &mut Command, what: &str) -> Self {
        Self(command.spawn().expect(what))
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed on the way out. Waits
    /// until the process is gone.
    pub fn kill(&mut self) {
        self.0.kill().expect("the process is killed");
        self.0.wait().expect("the killed process is reaped");
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("the process can be waited for")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start `surge serve`: the built binary, on a free port (or `port`),
/// with the test's JWT secret, logging warnings to the test's stderr, on a fresh
/// SQLite journal of its own unless given `storage`.
pub struct Serve {
    command: Command,
    port: u16,
    storage: Option<String>,
}

impl Serve {
    pub fn new(secret: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_surge"));
        command
            .arg("serve")
            .env("SURGE__AUTH__JWT_SECRET", secret)
            .env("SURGE__LOG__LEVEL", "warn")
            // Shedding (tests/overload.rs) is off: on the shared two-core machines
            // that run the suite, a stall that is not overload must not refuse a
            // request.
            .env("SURGE__ENGINE__QUEUE_DEADLINE_MS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Self {
            command,
            port: super::free_port(),
            storage: None,
        }
    }

    /// The journal's storage URL (it outlives the process: restarts share it).
    pub fn storage(mut self, url: &str) -> Self {
        self.storage = Some(url.to_owned());
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Any other setting, as the environment variable that sets it.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Nothing on the test's stderr either.
    pub fn quiet(mut self) -> Self {
        self.command.stderr(Stdio::null());
        self
    }

    pub fn spawn(mut self) -> SurgeProcess {
        let (data, storage) = match self.storage {
            Some(url) => (None, url),
            None => {
                let (dir, url) = super::temp_sqlite();
                (Some(dir), url)
            }
        };
        self.command
            .env("SURGE__HTTP__ADDR", format!("127.0.0.1:{}", self.port))
            .env("SURGE__STORAGE__URL", storage);
        SurgeProcess {
            process: KillOnDrop::spawn(&mut self.command, "surge binary starts"),
            port: self.port,
            base: format!("http://127.0.0.1:{}", self.port),
            _data: data,
        }
    }

    /// Spawns the process and waits until it is ready.
    pub async fn start(self) -> SurgeProcess {
        let process = self.spawn();
        process.wait_ready().await;
        process
    }
}

/// A running `surge serve`, killed on drop.
pub struct SurgeProcess {
    process: KillOnDrop,
    pub port: u16,
    /// `http://127.0.0.1:{port}`
    pub base: String,
    _data: Option<tempfile::TempDir>,
}

impl SurgeProcess {
    /// Waits for `/ready` to answer 200; panics after `READY_TIMEOUT`.
    pub async fn wait_ready(&self) {
        http::wait_ready(&reqwest::Client::new(), &self.base, READY_TIMEOUT).await;
    }

    /// A client of this process sending `token`.
    pub fn api(&self, token: &str) -> Api {
        Api::new(&self.base, token)
    }

    /// Kills the process with SIGKILL and waits until it is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.process.try_wait()
    }
}
