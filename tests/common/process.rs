//! The `mos-gateway` binary as a test process: started on free loopback ports with a fresh
//! configuration file, killed when dropped.
#![allow(dead_code)] // each test crate uses its own part

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `mos-gateway run`; killed when dropped (a failing test leaves nothing behind).
pub struct Process {
    pub child: Child,
    /// Its upper port.
    pub upper: SocketAddr,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text` `times` times; panics with the log after 20 s.
    pub fn wait_log(&self, text: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log_text().matches(text).count() < times {
            assert!(
                Instant::now() < deadline,
                "the log does not say {text:?} ({times}×) within 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits at most `limit` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} {pid} failed");
    }
}

/// A configuration for the test binary: these lower, upper and query ports, data in
/// `data_dir`, one NCS (`ENPS.NCS`, not listening: ports 1 and 2, no heartbeats); `extra` is
/// appended (more tables).
pub fn config_text(data_dir: &Path, [lower, upper, query]: [u16; 3], extra: &str) -> String {
    format!(
        r#"[mos]
id = "nmos.gateway.mos"
listen = "127.0.0.1"
lower_port = {lower}
upper_port = {upper}
query_port = {query}
data_dir = "{}"

[log]
level = "info"

[[ncs]]
id = "ENPS.NCS"
host = "127.0.0.1"
lower_port = 1
upper_port = 2
heartbeat_interval_s = 0
{extra}"#,
        data_dir.display()
    )
}

/// Three distinct free loopback ports (released before the gateway binds them).
pub fn free_ports() -> [u16; 3] {
    let ls: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    [0, 1, 2].map(|i| ls[i].local_addr().unwrap().port())
}

/// Starts `mos-gateway run --config FILE ARGS...` in `dir`, FILE holding `config(ports)` for
/// free lower, upper and query ports; returns once its log says it listens and its upper port
/// accepts. Another process may take a port between the probe and the gateway's bind: it is
/// then started again on new ports.
pub fn start_gateway(dir: &Path, args: &[&str], config: impl Fn([u16; 3]) -> String) -> Process {
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    for _attempt in 0..5 {
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let ports = free_ports();
        let config_file = dir.join(format!("gateway-{n}.toml"));
        std::fs::write(&config_file, config(ports)).unwrap();
        let log = dir.join(format!("gateway-{n}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mos-gateway"))
            .arg("run")
            .arg("--config")
            .arg(&config_file)
            .args(args)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning mos-gateway");
        let mut p = Process {
            child,
            upper: SocketAddr::from(([127, 0, 0, 1], ports[1])),
            log,
            config: config_file,
        };
        let listening = format!("listening on 127.0.0.1:{} (upper port)", ports[1]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                let text = p.log_text();
                if text.contains("cannot listen") {
                    break; // a port was taken meanwhile: try other ports
                }
                panic!("the gateway exited at start ({status}):\n{text}");
            }
            if p.log_text().contains(&listening)
                && TcpStream::connect_timeout(&p.upper, Duration::from_millis(200)).is_ok()
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not listen within 30 s:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("could not start the gateway on free ports");
}
