//! CRL generation at 10k, 100k and 1M revoked entries: custos against
//! `openssl ca -gencrl` over an `index.txt` holding the same revoked serials,
//! signed by the same P-384 issuing CA, in the same run.
//!
//! One command: `cargo bench --bench crl`. `CUSTOS_CRL_SIZES` (default
//! `10000,100000,1000000`) picks the sizes. Each generation runs in its own
//! child process so that its peak RSS (from `wait4`) is its own: custos opens
//! the ledger and publishes shard 0 (build, sign, store); openssl reads
//! index.txt and writes the CRL. Prints time, peak RSS, CRL size and the
//! ratios.

use custos::app::{open_ledger, App};
use custos::config::{Config, Overrides};
use custos::ledger::{CertRecord, DeviceIds, Revocation};
use custos::revocation::Reason;
use custos::serial::Serial;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const CHILD: &str = "CUSTOS_CRL_BENCH_CHILD";

fn config(dir: &Path) -> Config {
    Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn record(serial: Serial, i: u64) -> CertRecord {
    CertRecord {
        serial,
        issuer_id: "bench".into(),
        subject: "CN=bench".into(),
        not_before: 0,
        not_after: 4_000_000_000,
        issued_at: 0,
        dns_names: vec![],
        ip_addresses: vec![],
        device: DeviceIds::default(),
        acme_account: None,
        profile: "default".into(),
        crl_shard: 0,
        revocation: Some(Revocation {
            time: 1_760_000_000 + i,
            reason: Reason::KeyCompromise,
            seq: i,
        }),
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Child: publish shard 0 of the ledger in `dir`; print seconds, entries,
/// bytes and this process's peak RSS.
fn child(dir: &Path) {
    let config = config(dir);
    let ledger = open_ledger(&config).unwrap();
    let app = App::build(config, ledger, None, false).unwrap();
    // Reset the peak to the current RSS, so the growth is generation's own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_mb();
    let t = Instant::now();
    let crl = app
        .crl
        .generate(0, custos::model::time::unix_now())
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss_mb();
    println!(
        "{secs} {} {} {peak} {}",
        crl.entries,
        crl.der.len(),
        peak - before
    );
}

/// Spawner: run the command in the arguments and print its peak RSS. A
/// fresh small process forks it, so the figure is not inflated by the
/// bench's own memory (which a fork from the bench would carry over).
fn spawner() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (_, peak, _) = measure(Command::new(&args[0]).args(&args[1..]));
    println!("{peak}");
}

/// Runs a command, returning its wall time (s), peak RSS (MB) and stdout.
// The child is reaped by wait4 (which also gives its rusage), not Child::wait.
#[allow(clippy::zombie_processes, unsafe_code)]
fn measure(cmd: &mut Command) -> (f64, f64, String) {
    let t = Instant::now();
    let out_path = std::env::temp_dir().join(format!("custos-crl-bench-{}", std::process::id()));
    let out = std::fs::File::create(&out_path).unwrap();
    let child = cmd.stdout(out).spawn().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    let secs = t.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    (secs, usage.ru_maxrss as f64 / 1024.0, stdout)
}

fn asn1_time(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("spawn") => return spawner(),
        Ok(dir) => return child(Path::new(dir)),
        Err(_) => {}
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("CUSTOS_CRL_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "machine: {} cores; openssl: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        String::from_utf8_lossy(
            &Command::new("openssl")
                .arg("version")
                .output()
                .unwrap()
                .stdout
        )
        .trim()
    );
    println!(
        "\n{:>9}  {:>10} {:>10} {:>9}   {:>10} {:>10} {:>9}   {:>8} {:>12}",
        "entries",
        "custos s",
        "peak MB",
        "CRL MB",
        "openssl s",
        "peak MB",
        "CRL MB",
        "speedup",
        "custos growth/CRL"
    );
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Fill: records revoked in shard 0, written in bulk.
        {
            let config = config(&data);
            let ledger = open_ledger(&config).unwrap();
            let app = App::build(config, ledger, None, true).unwrap();
            let mut chunk = Vec::with_capacity(10_000);
            let mut index = String::with_capacity(n * 80);
            for i in 0..n {
                let s = Serial::random();
                index.push_str(&format!(
                    "R\t{}\t{},keyCompromise\t{}\tunknown\t/CN=bench\n",
                    asn1_time(2_000_000_000),
                    asn1_time(1_760_000_000 + i as u64),
                    s.to_hex().to_ascii_uppercase()
                ));
                chunk.push((record(s, i as u64), vec![0x30u8; 16]));
                if chunk.len() == 10_000 {
                    app.ledger.insert_batch(&chunk).unwrap();
                    chunk.clear();
                }
            }
            if !chunk.is_empty() {
                app.ledger.insert_batch(&chunk).unwrap();
            }
            app.ledger.flush().unwrap();
            std::fs::write(dir.path().join("index.txt"), index).unwrap();
        }
        std::fs::write(dir.path().join("crlnumber"), "01\n").unwrap();
        let ca = data.join("ca");
        std::fs::write(
            dir.path().join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {}\ncrlnumber = {}\ncertificate = {}\nprivate_key = {}\ndefault_md = sha384\ndefault_crl_days = 1\n",
                dir.path().join("index.txt").display(),
                dir.path().join("crlnumber").display(),
                ca.join("intermediate.pem").display(),
                ca.join("intermediate.key").display(),
            ),
        )
        .unwrap();

        let exe = std::env::current_exe().unwrap();
        let (_, _, line) = measure(Command::new(&exe).env(CHILD, &data));
        let mut parts = line.split_whitespace();
        let ours_secs: f64 = parts.next().unwrap().parse().unwrap();
        let entries: usize = parts.next().unwrap().parse().unwrap();
        let ours_bytes: f64 = parts.next().unwrap().parse().unwrap();
        let ours_peak: f64 = parts.next().unwrap().parse().unwrap();
        let ours_growth: f64 = parts.next().unwrap().parse().unwrap();
        assert_eq!(entries, n);

        let crl_out = dir.path().join("openssl.crl");
        let (theirs_secs, _, peak) = measure(Command::new(&exe).env(CHILD, "spawn").args([
            "openssl",
            "ca",
            "-gencrl",
            "-batch",
            "-config",
            dir.path().join("ca.cnf").to_str().unwrap(),
            "-out",
            crl_out.to_str().unwrap(),
        ]));
        let theirs_peak: f64 = peak.trim().parse().unwrap();
        // openssl writes PEM; its DER size is what compares.
        let der = Command::new("openssl")
            .args(["crl", "-in", crl_out.to_str().unwrap(), "-outform", "DER"])
            .output()
            .unwrap()
            .stdout;
        let mb = |b: f64| b / (1024.0 * 1024.0);
        println!(
            "{:>9}  {:>10.3} {:>10.0} {:>9.1}   {:>10.3} {:>10.0} {:>9.1}   {:>7.1}x {:>11.2}x",
            n,
            ours_secs,
            ours_peak,
            mb(ours_bytes),
            theirs_secs,
            theirs_peak,
            mb(der.len() as f64),
            theirs_secs / ours_secs,
            ours_growth / mb(ours_bytes),
        );
    }
    println!("\ncustos s: build + sign + synced store of the shard, inside the child; openssl s: the whole `openssl ca -gencrl` run.");
    println!("custos growth/CRL: how far generation raised custos's peak RSS above its RSS before (ledger open), over the CRL's DER size.");
    println!("peak MB: the generating process's own peak RSS (custos: VmHWM, including opening the ledger; openssl: wait4 from a small spawner).");
}
