//! A throwaway PostgreSQL server for the migration tests (`athena-migrate --from postgres://`):
//! Debian's server binaries (`postgresql` package, installed by `scripts/tools.sh`), a cluster in
//! a temporary directory on a free loopback port, trust authentication for user `athena`, fsync
//! off. Started on first use, once per test process, and stopped (its directory removed) by a
//! shell watchdog when the process ends, like moto's server. As root (CI, this machine), initdb
//! and postgres run as the `postgres` user (`runuser`), since both refuse root.
//!
//! No PostgreSQL is a failure, not a skip: [`postgres_url`] panics with what it tried.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{free_port, serve_until_exit, unique};

/// The server binaries: `ATHENA_PG_BIN`, else the newest `/usr/lib/postgresql/<n>/bin` with an
/// `initdb`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("ATHENA_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (run scripts/tools.sh, or set ATHENA_PG_BIN)"
        )
    })
}

/// `postgres://athena@127.0.0.1:PORT`: this test process's server (no database part).
pub fn postgres_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        let bin = pg_bin();
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("athena-pg"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let run = if root {
            let chown = Command::new("chown").arg("postgres").arg(&dir).status();
            assert!(
                matches!(chown, Ok(s) if s.success()),
                "chown postgres {}: {chown:?} (the postgresql package creates the user)",
                dir.display()
            );
            "runuser -u postgres --"
        } else {
            ""
        };
        let (d, b) = (dir.display(), bin.display());
        let init = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{run} '{b}/initdb' -D '{d}/data' -A trust -U athena -E UTF8 --no-sync >'{d}/initdb.log' 2>&1"
            ))
            .status();
        let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            matches!(init, Ok(s) if s.success()),
            "initdb failed ({init:?}): {}",
            log("initdb.log")
        );
        let server = format!(
            "{run} '{b}/postgres' -D '{d}/data' -p {port} -k '{d}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off >'{d}/server.log' 2>&1"
        );
        let stop = format!("{run} '{b}/pg_ctl' -D '{d}/data' stop -m immediate >/dev/null 2>&1; rm -rf '{d}'");
        serve_until_exit(&server, &stop, port, || {
            format!("PostgreSQL ({b}): {}", log("server.log"))
        });
        format!("postgres://athena@127.0.0.1:{port}")
    })
}

/// A new, empty database on the test server; returns its URL.
pub async fn postgres_database() -> String {
    let server = postgres_server();
    let name = unique("t").replace('-', "_");
    let deadline = Instant::now() + Duration::from_secs(30);
    // The server listens a moment before it accepts logins: retry until it does.
    let client = loop {
        match tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                break client;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "connecting to {server}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    format!("{server}/{name}")
}
