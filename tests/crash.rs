//! Durability of revocations under `kill -9`: clients stream revocations at a real daemon, the daemon is
//! killed without warning at a random moment, restarted on the same state directory, and every revocation
//! that had been acknowledged must still be in force. Repeated over many iterations.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::daemon::{Daemon, start_in, stream_revocations, temp_dir};

/// The daemon on `dir/jwtd.sock` with its state in `dir/state`.
fn start(dir: PathBuf) -> Daemon {
    let state = dir.join("state").to_string_lossy().into_owned();
    start_in(dir, &["--state-dir", &state, "--log-level", "warn"])
}

#[test]
fn every_acknowledged_revocation_survives_kill_9() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut total = 0;
    for iteration in 0..12 {
        let daemon = start(temp_dir(&format!("crash-{iteration}")));
        let socket = daemon.socket.clone();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (socket, acked) = (socket.clone(), acked.clone());
                std::thread::spawn(move || {
                    stream_revocations(&socket, &format!("c{c}"), 32, &acked)
                })
            })
            .collect();
        // A pseudo-random moment in the stream.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(30 + seed % 200));
        let dir = daemon.kill_9();
        for c in clients {
            c.join().unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(
            !acked.is_empty(),
            "iteration {iteration}: nothing was acknowledged"
        );
        total += acked.len();
        // Restart on the same state: each acknowledged jti must be found (UNREVOKE says whether it was).
        let daemon = start(dir);
        let mut s = UnixStream::connect(&daemon.socket).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        for chunk in acked.chunks(256) {
            let lines: String = chunk
                .iter()
                .map(|j| format!("UNREVOKE JTI {j}\n"))
                .collect();
            s.write_all(lines.as_bytes()).unwrap();
            for jti in chunk {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert_eq!(
                    line.trim_end(),
                    r#"OK {"found":true,"unrevoked":"jti"}"#,
                    "iteration {iteration}: acknowledged revocation of {jti} was lost"
                );
            }
        }
        // Dropping the daemon kills it and removes its directory.
        drop(daemon);
    }
    eprintln!("{total} acknowledged revocations checked across 12 kill -9 restarts");
}
