//! The processes under test: the switchboard server and nats-server, started
//! as children on free loopback ports, optionally pinned with `taskset`;
//! their CPU time and resident memory read from procfs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// CPU time (user + system) of a process, in microseconds.
pub fn cpu_micros(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // Fields after the parenthesized command name: state is field 3; utime
    // and stime are fields 14 and 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0) + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    ticks * 1_000_000 / clock_ticks()
}

fn clock_ticks() -> u64 {
    // USER_HZ is 100 on every Linux this runs on; `getconf CLK_TCK` confirms.
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Fields of `/proc/<pid>/status` in KiB, read from one snapshot of the
/// file (0 for a field that is absent or a process that is gone).
fn status_kib<const N: usize>(pid: u32, names: [&str; N]) -> [u64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    names.map(|name| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// Resident memory of a process in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let [rss] = status_kib(pid, ["VmRSS:"]);
    rss
}

/// Anonymous and file-backed resident memory of a process in KiB
/// (`RssAnon`, `RssFile` of /proc/<pid>/status): the heap, and mapped files
/// such as a database the kernel can drop.
pub fn rss_split_kib(pid: u32) -> (u64, u64) {
    let [anon, file] = status_kib(pid, ["RssAnon:", "RssFile:"]);
    (anon, file)
}

/// Resident memory and its anonymous part in KiB (`VmRSS`, `RssAnon`), from
/// one read: a sampler that wants both reads the file once.
pub fn rss_and_anon_kib(pid: u32) -> (u64, u64) {
    let [rss, anon] = status_kib(pid, ["VmRSS:", "RssAnon:"]);
    (rss, anon)
}

/// A free loopback port (bound and released; good enough for a child that
/// binds it right away).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where a child runs: `taskset -c <cpus>` or anywhere.
#[derive(Clone, Debug, Default)]
pub struct Pin {
    /// CPU list for the servers (`None`: not pinned).
    pub cpus: Option<String>,
    /// Worker threads for the servers' runtimes.
    pub workers: Option<usize>,
}

impl Pin {
    fn command(&self, program: &Path) -> Command {
        let mut c = match &self.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(program);
                c
            }
            None => Command::new(program),
        };
        if let Some(n) = self.workers {
            c.env("TOKIO_WORKER_THREADS", n.to_string()).env("GOMAXPROCS", n.to_string());
        }
        c
    }

    /// Human description for reports.
    pub fn describe(&self) -> String {
        match (&self.cpus, self.workers) {
            (Some(c), Some(w)) => format!("server pinned to cpu {c} with {w} worker(s)"),
            (Some(c), None) => format!("server pinned to cpu {c}"),
            (None, Some(w)) => format!("server unpinned with {w} worker(s)"),
            (None, None) => "unpinned".into(),
        }
    }
}

/// A running switchboard server.
pub struct Server {
    child: Child,
    /// gRPC address.
    pub grpc: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
    _log: std::thread::JoinHandle<()>,
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// The `switchboard` binary.
    pub bin: PathBuf,
    /// `memory` or `sqlite`.
    pub store: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Extra flags.
    pub args: Vec<String>,
    /// Pinning.
    pub pin: Pin,
}

impl Server {
    /// Starts the server and waits for its "serving" log line.
    pub fn start(spec: &ServerSpec) -> anyhow::Result<Server> {
        let mut cmd = spec.pin.command(&spec.bin);
        cmd.args(["serve", "--store", &spec.store, "--data-dir"])
            .arg(&spec.data_dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--enable-bench-service",
            ])
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("cannot start {}", spec.bin.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log = std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("\"grpc\":") {
                    let _ = tx.send(line);
                    sent = true;
                } else if line.contains("\"ERROR\"") || line.contains("panicked") || line.starts_with("error") {
                    eprintln!("server: {line}");
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                bail!(
                    "the server exited before serving ({status:?}); its errors are above (a server built without \
                     the `bench` cargo feature rejects --enable-bench-service: cargo build --release --workspace \
                     --features bench)"
                );
            }
            Err(_) => {
                let _ = child.kill();
                bail!("the server did not report its address within 30 s");
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line).context("server log line is not JSON")?;
        let grpc: SocketAddr = v["grpc"].as_str().context("no grpc address")?.parse()?;
        let metrics_raw = v["metrics"].as_str().unwrap_or_default();
        let metrics: SocketAddr = metrics_raw
            .trim_start_matches("Some(")
            .trim_end_matches(')')
            .parse()
            .with_context(|| format!("metrics address {metrics_raw:?}"))?;
        Ok(Server { child, grpc, metrics, _log: log })
    }

    /// The server's process id (taskset execs the server, so it is the
    /// child's own pid).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One sample of a Prometheus metric (sum of all label sets), or 0.
    pub fn metric(&self, name: &str) -> f64 {
        let [v] = self.metric_sums([name]);
        v
    }

    /// Several metrics from one scrape (0 each when the scrape fails).
    pub fn metric_sums<const N: usize>(&self, names: [&str; N]) -> [f64; N] {
        let text = scrape(self.metrics).unwrap_or_default();
        names.map(|name| metric_sum(&text, name))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `GET /metrics` over plain HTTP/1.0.
pub fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Sum of every sample of `name` (all label sets).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ') || r.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A running nats-server (core pub/sub only).
pub struct Nats {
    child: Child,
    /// Client URL.
    pub url: String,
}

impl Nats {
    /// Starts `bin` on a free loopback port (core pub/sub only).
    pub fn start(bin: &Path, pin: &Pin) -> anyhow::Result<Nats> {
        Nats::start_with(bin, pin, None)
    }

    /// Starts `bin` with JetStream storing under `dir`.
    pub fn start_jetstream(bin: &Path, pin: &Pin, dir: &Path) -> anyhow::Result<Nats> {
        Nats::start_with(bin, pin, Some(dir))
    }

    fn start_with(bin: &Path, pin: &Pin, jetstream: Option<&Path>) -> anyhow::Result<Nats> {
        let port = free_port()?;
        let mut cmd = pin.command(bin);
        if let Some(dir) = jetstream {
            cmd.arg("-js").arg("-sd").arg(dir);
        }
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nats { child, url: format!("nats://127.0.0.1:{port}") })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}
