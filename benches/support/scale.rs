//! The ledger-size run of `ocsp_load` (`CUSTOS_LOAD_ONLY=scale`): for each
//! size in `CUSTOS_SCALE_SIZES` (default `10000,10000000`), in the same run,
//! a fresh ledger is filled with that many certificates (one in ten
//! revoked, all in one CRL shard, so ten million holds a million-entry
//! CRL), every certificate's responses are presigned, and then the real
//! `custos` binary is timed on it: `ocsp refresh`, `crl generate`, and
//! `serve` under GET load at `CUSTOS_LOAD_CONNS` connections over working
//! sets spread evenly across the ledger, with its RSS against
//! `ocsp.cache_mb`. Disk bytes per certificate are the data dir's size
//! after the fill and presign, over the count.
//!
//! The certificates' DER is 700 bytes of which 250 are random (a P-256
//! device certificate's key, serial and signature), so LZ4 compresses it
//! about as much as a real one. `CUSTOS_SCALE_DIR` picks where the ledgers
//! live (default: the system temp dir); each is deleted after its size.
//! Each ledger is fully compacted after the bulk load (timed) before the
//! server is measured. `CUSTOS_SCALE_REFRESH_MAX` skips the `ocsp refresh`
//! timing above that many certificates (the presign runs the same code).

use super::*;
use custos::ledger::Revocation;
use std::process::Command;

/// Certificate DER stand-in: a fixed 450-byte body and 250 random bytes.
fn der_like(rng: &mut u64) -> Vec<u8> {
    let mut der = vec![0x30u8; 700];
    for chunk in der[450..].chunks_mut(8) {
        // xorshift64: cheap, and random enough to defeat compression.
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let bytes = rng.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    der
}

/// Bytes of every file under `dir`.
fn du(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += du(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// Runs `custos --data-dir DIR ARGS` under `/usr/bin/time`: seconds, peak
/// RSS (MB) and what it printed.
fn timed(dir: &std::path::Path, args: &[&str]) -> (f64, f64, String) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "TIMED %e %M", env!("CARGO_BIN_EXE_custos")])
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("/usr/bin/time (Debian: time)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "custos {args:?} failed: {err}");
    let line = err.lines().rev().find(|l| l.starts_with("TIMED ")).unwrap();
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    (
        f[0],
        f[1] / 1024.0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Fills `dir`'s ledger with `count` certificates (every tenth revoked) and
/// presigns their responses; returns the serials and the two times.
fn fill(dir: &std::path::Path, count: usize) -> (Vec<Serial>, IssuerHashes, String, f64, f64) {
    let config = Config::load(
        None,
        &Overrides {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    let ledger = open_ledger(&config).unwrap();
    let app = Arc::new(App::build(config, ledger, None, true).unwrap());
    let hashes = IssuerHashes::new(app.ca.issuer_cert()).unwrap();
    let issuer = app.ca.issuer_id().to_string();
    let now = custos::model::time::unix_now();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let t = Instant::now();
    let mut serials = Vec::with_capacity(count);
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..count {
        let mut rec = record(Serial::random());
        if i % 10 == 9 {
            rec.revocation = Some(Revocation {
                time: now - 60,
                reason: Reason::KeyCompromise,
                seq: 0,
            });
        }
        serials.push(rec.serial.clone());
        chunk.push((rec, der_like(&mut rng)));
        if chunk.len() == 10_000 || i + 1 == count {
            app.ledger.insert_batch(&chunk).unwrap();
            chunk.clear();
        }
    }
    let filled = t.elapsed().as_secs_f64();
    // Presigned with the bulk path `custos ocsp refresh` uses (pages signed
    // on every core, stored one write per page).
    let t = Instant::now();
    app.responder.refresh_all(now, |_| {}).unwrap();
    let presigned = t.elapsed().as_secs_f64();
    // A bulk load leaves RocksDB a compaction backlog that would run inside
    // the server measured next; a deployment in its steady state has none.
    let t = Instant::now();
    app.ledger.compact().unwrap();
    println!(
        "  full compaction after the bulk load: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(app);
    (serials, hashes, issuer, filled, presigned)
}

/// One `custos serve` on `dir`: start time, time until its start-up CRL
/// is out (the shard is held until then), then GET load over each working
/// set; RSS and peak RSS after the last.
fn serve(dir: &std::path::Path, issuer: &str, sets: &[(String, Vec<String>)], conns: usize) {
    let t = Instant::now();
    let (mut child, addr) = spawn_serve(dir);
    println!(
        "  serve: listening {:.2} s after start",
        t.elapsed().as_secs_f64()
    );
    // The CRL of a ledger filled offline was never signed: the server signs
    // it while serving. Measured apart, so that the load below sees the
    // server in its steady state.
    let crl = format!("/crl/{issuer}/0.crl");
    while http_get_bytes(&addr.to_string(), &crl).first() != Some(&0x30) {
        assert!(t.elapsed() < Duration::from_secs(600), "no CRL after 600 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "  serve: start-up CRL out {:.2} s after start",
        t.elapsed().as_secs_f64()
    );
    for (name, gets) in sets {
        let o = run_client(addr, "get", gets, conns, false, "/ocsp");
        println!(
            "  GET {name:<34} {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  errors {}",
            o.rate(),
            o.p50_ms,
            o.p99_ms,
            o.errors
        );
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    println!(
        "  serve RSS {:.0} MB, peak {:.0} MB (ocsp.cache_mb = 64)",
        status_mb(&status, "VmRSS:"),
        status_mb(&status, "VmHWM:")
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `CUSTOS_LOAD_ONLY=scale`.
pub fn main() {
    let sizes: Vec<usize> = std::env::var("CUSTOS_SCALE_SIZES")
        .unwrap_or_else(|_| "10000,10000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("CUSTOS_SCALE_SIZES: comma list of counts")
        })
        .collect();
    let conns = env("CUSTOS_LOAD_CONNS", 64);
    let base = std::env::var_os("CUSTOS_SCALE_DIR").map(std::path::PathBuf::from);
    for count in sizes {
        let dir = match &base {
            Some(b) => tempfile::tempdir_in(b).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        println!(
            "\n== {count} certificates ({} revoked, one CRL shard) ==",
            count / 10
        );
        let (serials, hashes, issuer, filled, presigned) = fill(dir.path(), count);
        let bytes = du(dir.path());
        println!(
            "  fill {filled:.1} s ({:.0}/s), presign {presigned:.1} s ({:.0}/s); data dir {:.2} GB, {:.0} bytes per certificate",
            count as f64 / filled,
            count as f64 / presigned,
            bytes as f64 / 1e9,
            bytes as f64 / count as f64
        );
        let spread = |n: usize| -> Vec<String> {
            let step = (serials.len() / n).max(1);
            serials
                .iter()
                .step_by(step)
                .take(n)
                .map(|s| percent_path(&ocsp_request(&hashes, s, None)))
                .collect()
        };
        let mut sets = vec![(format!("{} spread", 10_000.min(count)), spread(10_000))];
        if count > 10_000 {
            sets.push((format!("{} spread", 200_000.min(count)), spread(200_000)));
        }
        drop(serials);
        serve(dir.path(), &issuer, &sets, conns);
        if count <= env("CUSTOS_SCALE_REFRESH_MAX", usize::MAX) {
            let (secs, peak, _) = timed(dir.path(), &["ocsp", "refresh"]);
            println!(
                "  custos ocsp refresh: {secs:.1} s ({:.0} certificates/s), peak RSS {peak:.0} MB",
                count as f64 / secs
            );
        } else {
            println!("  custos ocsp refresh: skipped (CUSTOS_SCALE_REFRESH_MAX); the presign above runs the same code");
        }
        let (secs, peak, out) = timed(dir.path(), &["crl", "generate"]);
        println!(
            "  custos crl generate ({} entries): {secs:.1} s, peak RSS {peak:.0} MB",
            count / 10
        );
        for line in out.lines() {
            println!("    {line}");
        }
    }
}
