//! A PostgreSQL server for the tests, and one fresh database per test.
//!
//! `PIPELINE_TEST_POSTGRES_URL` names a server to use (its user needs
//! CREATEDB; each test's database is dropped afterwards). Otherwise a
//! private, throwaway cluster is made from the installed server binaries
//! (`initdb` on `PATH`, else the newest `/usr/lib/postgresql/*/bin`): once
//! per test binary, in a temporary folder, listening only on a Unix socket
//! there. PostgreSQL refuses to run as root, so when the tests do, the
//! cluster runs as the `postgres` user (else `nobody`), which owns the
//! folder. Only when no server binaries exist at all is each test skipped,
//! with a visible `SKIPPED on PostgreSQL` line.
//!
//! Cleaning up without a destructor (statics are never dropped): the server
//! is started from a thread that lives as long as the test binary, with a
//! parent-death signal, so it stops if the binary dies, even by SIGKILL;
//! and an `atexit` handler stops it cleanly and removes the folder when the
//! binary ends normally. A folder left by a killed run is removed by the
//! next run (its name holds the process id, checked for life).
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pipeline_service::repository::postgres::{PostgresSettings, PostgresValues};

const URL_VARIABLE: &str = "PIPELINE_TEST_POSTGRES_URL";
const FOLDER_PREFIX: &str = "pipeline-pg-";

/// Where the tests' databases live.
pub struct Server {
    /// Connects as a user that may create databases, to `postgres`.
    pub admin: PostgresSettings,
    /// The same connection as text, as a service is given it.
    admin_url: String,
    /// The private cluster, when this binary started one.
    pub cluster: Option<Cluster>,
}

/// A private cluster's files and programs, for tests that stop and start
/// the server (`pg_ctl -D data stop -m immediate`).
pub struct Cluster {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub socket_dir: PathBuf,
    /// The unprivileged user it runs as when the tests run as root.
    pub run_as: Option<(u32, u32)>,
}

impl Cluster {
    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`): no checkpoint, connections cut.
    pub fn stop_immediately(&self) {
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .output()
            .expect("run pg_ctl");
        assert!(
            stopped.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }

    /// Starts the server again after `stop_immediately` (it recovers from
    /// its log) and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.socket_dir.join("server.log");
        spawn_postmaster(self, &log);
        wait_until_accepting(self, &log);
    }

    /// A server program run as the cluster's user.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }
}

static SERVER: OnceLock<Option<Server>> = OnceLock::new();
static POSTMASTER: AtomicI32 = AtomicI32::new(0);
static FOLDER: OnceLock<PathBuf> = OnceLock::new();

/// The server, started on first use; `None` (said once) when there is none.
pub fn server() -> Option<&'static Server> {
    let server = SERVER.get_or_init(|| {
        if let Some(url) = std::env::var(URL_VARIABLE).ok().filter(|v| !v.is_empty()) {
            let admin = settings(&url);
            return Some(Server {
                admin,
                admin_url: url,
                cluster: None,
            });
        }
        let bin = server_binaries()?;
        Some(start_cluster(bin))
    });
    if server.is_none() {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED on PostgreSQL: no server binaries (initdb) on PATH or under \
/usr/lib/postgresql/*/bin, and {URL_VARIABLE} is not set; install the `postgresql` package"
            );
        });
    }
    server.as_ref()
}

fn settings(url: &str) -> PostgresSettings {
    PostgresSettings::from_values(&PostgresValues {
        database_url: Some(url.to_owned()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{URL_VARIABLE} or the test cluster: {e}"))
}

/// A database of its own for one test; dropped afterwards on a server the
/// tests did not start.
pub struct FreshDatabase {
    pub settings: PostgresSettings,
    /// The connection string a service process is given (`DATABASE_URL`).
    pub url: String,
    pub name: String,
    drop_after: bool,
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if !self.drop_after {
            return;
        }
        let Some(server) = server() else { return };
        let admin = server.admin.clone();
        let name = self.name.clone();
        // Its own runtime: the test's may be shutting down.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = admin_client(&admin).await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A new, empty database (no tables: connecting migrates it).
pub async fn fresh_database() -> Option<FreshDatabase> {
    let server = server()?;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "pipeline_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let client = admin_client(&server.admin).await;
    client
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    Some(FreshDatabase {
        settings: server.admin.with_dbname(&name),
        url: with_dbname(&server.admin_url, &name),
        name,
        drop_after: server.cluster.is_none(),
    })
}

/// A plain connection (for test set-up that needs raw SQL).
pub async fn connect(settings: &PostgresSettings) -> tokio_postgres::Client {
    let (client, connection) = settings
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", settings.redacted()));
    tokio::spawn(connection);
    client
}

/// `url` naming database `name` instead: the path of a `postgres://` URL,
/// or a last `dbname=` (a later keyword wins) in the `key=value` form.
fn with_dbname(url: &str, name: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return format!("{url} dbname={name}");
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    format!("postgres://{authority}/{name}{query}")
}

async fn admin_client(admin: &PostgresSettings) -> tokio_postgres::Client {
    connect(admin).await
}

/// `initdb`'s folder: from `PATH` (symlinks resolved, so its siblings are
/// found), else the newest `/usr/lib/postgresql/<version>/bin`.
fn server_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("initdb"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(initdb) = on_path {
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The user the cluster runs as when the tests run as root.
fn unprivileged_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in [c"postgres", c"nobody"] {
        // SAFETY: a NUL-terminated name; the result is read at once, before
        // any other call could reuse getpwnam's static buffer.
        let entry = unsafe { libc::getpwnam(name.as_ptr()) };
        if !entry.is_null() {
            // SAFETY: checked non-null above.
            let entry = unsafe { &*entry };
            return Some((entry.pw_uid, entry.pw_gid));
        }
    }
    panic!(
        "the tests run as root and there is no `postgres` or `nobody` user to run PostgreSQL as"
    );
}

/// Removes folders of earlier runs whose process is gone.
fn remove_stale_folders(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FOLDER_PREFIX))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_cluster(bin: PathBuf) -> Server {
    let temp = std::env::temp_dir();
    remove_stale_folders(&temp);
    let folder = temp.join(format!("{FOLDER_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("test cluster folder");
    let run_as = unprivileged_user();
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(&folder, Some(uid), Some(gid)).expect("chown the cluster folder");
    }
    let _ = FOLDER.set(folder.clone());
    let cluster = Cluster {
        data: folder.join("data"),
        socket_dir: folder.clone(),
        bin,
        run_as,
    };
    let initdb = cluster
        .command("initdb")
        .arg("-D")
        .arg(&cluster.data)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
        .arg("--no-sync")
        .output()
        .expect("run initdb");
    assert!(
        initdb.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    spawn_postmaster(&cluster, &folder.join("server.log"));
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(stop_at_exit) };
    let url = format!(
        "host={} port=5432 user=postgres dbname=postgres sslmode=disable",
        cluster.socket_dir.display()
    );
    let admin = settings(&url);
    wait_until_accepting(&cluster, &folder.join("server.log"));
    Server {
        admin,
        admin_url: url,
        cluster: Some(cluster),
    }
}

/// Starts `postgres` from a thread that lives until the binary exits; the
/// server gets SIGQUIT (immediate stop) if that thread, and so the test
/// binary, goes away without `atexit` running.
fn spawn_postmaster(cluster: &Cluster, log: &Path) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("server log");
    let mut command = cluster.command("postgres");
    command
        .arg("-D")
        .arg(&cluster.data)
        .arg("-k")
        .arg(&cluster.socket_dir)
        .args(["-c", "listen_addresses="])
        // A throwaway cluster: durability to disk is not under test.
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=300", "-c", "shared_buffers=64MB"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("server log"))
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = sender.send(Ok(child.id()));
                let _ = child.wait();
            }
            Err(error) => {
                let _ = sender.send(Err(error));
            }
        })
        .expect("keeper thread");
    let pid = receiver
        .recv()
        .expect("keeper thread answers")
        .expect("start postgres");
    POSTMASTER.store(pid as i32, Ordering::SeqCst);
}

fn wait_until_accepting(cluster: &Cluster, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = cluster
            .command("pg_isready")
            .arg("-h")
            .arg(&cluster.socket_dir)
            .args(["-p", "5432", "-U", "postgres", "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the test cluster did not start within 60 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// At exit: a fast shutdown (SIGINT), waiting up to 10 s for the server to
/// remove its pid file, then the folder goes.
extern "C" fn stop_at_exit() {
    let pid = POSTMASTER.load(Ordering::SeqCst);
    let Some(folder) = FOLDER.get() else { return };
    if pid > 0 {
        // SAFETY: our own child's pid.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let pid_file = folder.join("data/postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_dir_all(folder);
}
