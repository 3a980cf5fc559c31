//! The real `gatehouse` binary as a server process, with its log captured:
//! for tests of what only a process shows (its log, its exit, several
//! instances on one database); and run once, as an operator runs a command.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TEST_SECRET;

pub struct RunningBinary {
    child: Child,
    log: Arc<Mutex<String>>,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl RunningBinary {
    /// Starts `gatehouse` on a free port with `vars` over the defaults (a
    /// SQLite file of its own, the test secret, bcrypt cost 4), in a temporary
    /// directory (so no developer's `.env` is read), and waits until it listens.
    pub fn start(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .env_clear()
            .env("PORT", "0")
            .env("DATABASE_URL", dir.path().join("binary.db"))
            .env("JWT_SECRET", TEST_SECRET)
            .env("BCRYPT_COST", "4")
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let started = Instant::now();
        let address = loop {
            let text = log.lock().unwrap().clone();
            if let Some(line) = text.lines().find(|l| l.contains("listening")) {
                let bound = line.split("address=").nth(1).unwrap();
                let bound = bound.split_whitespace().next().unwrap().to_owned();
                break format!("http://{bound}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no start-up line: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            log,
            address,
            _dir: dir,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Stops the process as an operator would (SIGTERM, so it writes the log
    /// lines still queued) and returns its whole log.
    pub fn stop(mut self) -> String {
        let status = self.terminate();
        assert!(status.success(), "stopped with {status}: {}", self.log());
        // The reader threads may still be copying the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gatehouse ARGS` to its end with only `vars` in its environment and
/// `stdin` as its input, in a temporary directory (so no developer's `.env`
/// is read).
pub fn run_gatehouse(vars: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .envs(vars.iter().copied())
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
