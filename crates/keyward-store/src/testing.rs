//! A throw-away PostgreSQL cluster for tests and benchmarks: `initdb` and `pg_ctl` from `PATH`
//! or `/usr/lib/postgresql/*/bin`, a data directory under the system's temporary directory,
//! a free port on 127.0.0.1, and trust authentication for the `keyward` role.
//!
//! PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user
//! (through `runuser`). A watchdog process stops the cluster and removes its directory when
//! the process that started it ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running cluster.
pub struct TempPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres_user: bool,
    databases: AtomicU32,
    /// Commits reach the disk (fsync on), as in production; off for tests, which want speed.
    durable: bool,
}

/// Whether a missing program must fail the run rather than skip (`.ci/run` sets it).
pub fn require_all() -> bool {
    std::env::var("KEYWARD_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl TempPostgres {
    /// Starts a cluster. `Ok(None)` when PostgreSQL is not installed (the caller skips, unless
    /// [`require_all`]); `Err` when it is installed but would not start.
    pub fn start() -> Result<Option<Self>, String> {
        Self::start_with(false)
    }

    /// As [`Self::start`], with every commit flushed to disk (`fsync`, `synchronous_commit`
    /// and `full_page_writes` at their defaults), for benchmarks that price durability.
    pub fn start_durable() -> Result<Option<Self>, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Option<Self>, String> {
        let Some(bin) = find_bin_dir() else {
            let message = "PostgreSQL tests skipped: initdb and pg_ctl not found on PATH or in \
                           /usr/lib/postgresql/*/bin (Debian package postgresql)";
            if require_all() {
                return Err(format!("{message}, and KEYWARD_REQUIRE_ALL=1"));
            }
            eprintln!("{message}");
            return Ok(None);
        };
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let data = std::env::temp_dir().join(format!(
            "keyward-pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let cluster = Self {
            bin,
            data,
            port,
            as_postgres_user: running_as_root(),
            databases: AtomicU32::new(0),
            durable,
        };
        std::fs::create_dir_all(&cluster.data).map_err(|e| e.to_string())?;
        if cluster.as_postgres_user {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cluster.data))?;
        }
        run(cluster
            .command("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-U", "keyward", "--auth=trust", "-E", "UTF8", "--no-sync"]))?;
        cluster.spawn_watchdog()?;
        cluster.resume()?;
        Ok(Some(cluster))
    }

    /// A PostgreSQL program, run as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn spawn_watchdog(&self) -> Result<(), String> {
        let script = format!(
            "while [ -d /proc/{parent} ]; do sleep 1; done; \
             '{pg_ctl}' stop -D '{data}' -m immediate >/dev/null 2>&1; rm -rf '{data}'",
            parent = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data.display(),
        );
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", "sh", "-c", &script]);
            command
        } else {
            let mut command = Command::new("sh");
            command.args(["-c", &script]);
            command
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot start the cluster's watchdog: {e}"))
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn resume(&self) -> Result<(), String> {
        let fast = if self.durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200{fast}",
            self.port,
            self.data.display()
        );
        run(self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.data.join("server.log")))
    }

    /// Stops the server (fast shutdown: connections are cut), keeping its data.
    pub fn pause(&self) -> Result<(), String> {
        run(self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w"]))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://keyward@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn create_database(&self) -> Result<String, String> {
        use sqlx::Connection;
        let name = format!("test_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("cannot connect to the test cluster: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("cannot create a test database: {e}"))?;
        let _ = admin.close().await;
        Ok(self.url(&name))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
