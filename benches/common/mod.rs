//! What the end-to-end benchmarks share: the exporter's binary started as a process, and what
//! /proc says of a process.
#![allow(dead_code)] // each benchmark uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

#[path = "../../tests/it/common/procfs.rs"]
mod procfs;
pub use procfs::status_mb;

const BIN: &str = env!("CARGO_BIN_EXE_clouddevice_exporter");

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary, signed in with a token anything takes, and returns it with the address
/// from its "listening" log line.
pub fn start(args: &[&str]) -> (Proc, String) {
    start_with(args, &[("CLOUDDEVICE_AUTH_TOKEN", "bench")])
}

/// `simulate` of `instances` phones with these further flags: the process and its endpoint.
pub fn simulator(instances: usize, flags: &[&str]) -> (Proc, String) {
    let size = instances.to_string();
    let base = [
        "simulate",
        "--listen-address",
        "127.0.0.1:0",
        "--instances",
        &size,
    ];
    let (process, address) = start_with(&[&base[..], flags].concat(), &[]);
    (process, format!("http://{address}"))
}

/// Starts the binary with these environment variables (and no CLOUDDEVICE_* of the caller's).
pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CLOUDDEVICE") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("a listening line").expect("utf-8 log");
        if let Some(rest) = line.split(" address=").nth(1) {
            if line.contains("listening") {
                break rest.split(' ').next().unwrap_or_default().to_string();
            }
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), address)
}

pub fn clock_ticks() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/pid/stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields[11].parse().unwrap_or(0.0);
    let stime: f64 = fields[12].parse().unwrap_or(0.0);
    (utime + stime) / ticks
}

/// Writes, in `dir`, an accounts file of the simulator's first `accounts` accounts
/// (`simulate --accounts`), each with its token in a file, and returns its path.
pub fn accounts_file(dir: &std::path::Path, endpoint: &str, accounts: usize) -> std::path::PathBuf {
    let mut file = String::from("accounts:\n");
    for k in 1..=accounts {
        let (name, token) = clouddevice_exporter::simulate::sim_account(k as u32);
        let path = dir.join(format!("{name}.token"));
        std::fs::write(&path, token.expose()).expect("a token file");
        file.push_str(&format!(
            "  {name}:\n    endpoint: {endpoint}\n    token_file: {}\n",
            path.display()
        ));
    }
    let config = dir.join("accounts.yml");
    std::fs::write(&config, file).expect("the accounts file");
    config
}
