//! The built `credential-webhook` binary as a child process: started on 127.0.0.1:0 ports (read
//! back from its "serving" log line), all output captured for assertions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Webhook {
    pub proc: std::process::Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
}

fn pump(r: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            let mut l = log.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
}

/// The `addr=`/`"addr":` value of the serving line, text or JSON format.
fn field(line: &str, name: &str) -> Option<SocketAddr> {
    let line = &strip_ansi(line);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return v["fields"][name].as_str()?.parse().ok();
    }
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Drops ANSI colour sequences (`ESC [ ... m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Webhook {
    /// Runs `credential-webhook <args> --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0` and waits
    /// (at most 30 s) for it to serve.
    pub fn start(args: &[&str]) -> Webhook {
        let mut proc = Command::new(env!("CARGO_BIN_EXE_credential-webhook"))
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        pump(proc.stdout.take().unwrap(), log.clone());
        pump(proc.stderr.take().unwrap(), log.clone());
        let started = Instant::now();
        loop {
            let found = log
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains("credential-webhook serving"))
                .and_then(|l| Some((field(l, "addr")?, field(l, "admin_addr")?)));
            if let Some((addr, admin)) = found {
                return Webhook { proc, addr, admin, log };
            }
            if let Ok(Some(status)) = proc.try_wait() {
                panic!("credential-webhook exited with {status}:\n{}", log.lock().unwrap());
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not serving:\n{}", log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote so far (stdout and stderr).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal through `sh -c kill` (the workspace forbids unsafe code, so no libc call).
    pub fn signal(&self, sig: &str) {
        // The shell's builtin kill: no procps needed.
        let ok = Command::new("sh").args(["-c", &format!("kill -{sig} {}", self.proc.id())]).status().unwrap();
        assert!(ok.success(), "kill -{sig}");
    }

    /// Waits for the process to exit (at most `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(s) = self.proc.try_wait().unwrap() {
                // Let the pump threads read the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            assert!(started.elapsed() < limit, "still running after {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}
