//! A throwaway PostgreSQL server for tests: the real server from the machine's PostgreSQL
//! package (Debian's `postgresql-15`: `initdb` and `postgres` under `/usr/lib/postgresql/*/bin`),
//! initialised in a temporary directory and reached over a Unix socket inside it, so that test
//! binaries running at the same time never fight over a TCP port.
//!
//! One server per test process ([`PgServer::shared`]) and one fresh database per test
//! ([`PgServer::fresh_database`]), so tests stay independent without paying for an `initdb`
//! each (about a second).
//!
//! Teardown needs no destructor (a `static` is never dropped): the server runs under a small
//! shell that waits on a pipe whose other end this process holds. However the process ends
//! (passing, panicking, aborted), the pipe closes, the shell stops the server and removes the
//! directory.
//!
//! [`PgServer::tls`] starts a server of its own that also listens on 127.0.0.1 and accepts only
//! TLS there (PostgreSQL has no TLS over a Unix socket), with a certificate authority made for
//! it by `openssl`, so that `sslmode` and `sslrootcert` are tested against a real handshake.
//!
//! The binaries: `$KUBETRAIL_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin` that has
//! `initdb`. PostgreSQL refuses to run as root, so as root (CI) the server runs as the
//! package's `postgres` user, through `runuser`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The port only names the socket file (`.s.PGSQL.5432`): no TCP listener is opened.
const PORT: u16 = 5432;
/// The superuser `initdb` creates.
const SUPERUSER: &str = "postgres";
/// The one role that must authenticate with a password (every other role is trusted): create
/// it with `CREATE ROLE ... LOGIN PASSWORD '...'` to test authentication.
pub const PASSWORD_ROLE: &str = "kt_password";

/// How much a commit waits for the disk.
#[derive(Clone, Copy)]
enum Durability {
    /// fsync, synchronous_commit and full_page_writes off: fast, and lost on a crash.
    Off,
    /// PostgreSQL's defaults.
    Default,
}

/// The TCP side of a [`PgServer::tls`] server.
struct Tcp {
    port: u16,
    /// The certificate authority that signed the server's certificate (for localhost).
    ca: PathBuf,
}

/// A running server. Dropping it is never needed; see the module doc.
pub struct PgServer {
    socket_dir: PathBuf,
    tcp: Option<Tcp>,
    /// Held open for the life of the process: its closing stops the server.
    _stop: ChildStdin,
    databases: AtomicU32,
}

impl PgServer {
    /// The server of this test process, started on first use. Panics with the reason (and the
    /// server's own output) when it cannot start: a test that needs PostgreSQL must not pass
    /// without it.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(|| match PgServer::start(Durability::Off, false) {
            Ok(server) => server,
            Err(why) => panic!("cannot start a PostgreSQL server for the tests: {why}"),
        })
    }

    /// A server of its own with PostgreSQL's default durability (every commit flushed to
    /// disk), for benchmarks that compare it with SQLite fairly. Like the shared one, it stops
    /// when the process ends.
    pub fn durable() -> Result<PgServer, String> {
        PgServer::start(Durability::Default, false)
    }

    /// A server of its own that also listens on 127.0.0.1, where it accepts TLS connections
    /// only (`hostssl`; `hostnossl` is rejected), with a certificate for `localhost` only (so that
    /// reaching it as 127.0.0.1 fails a host name check) signed by a certificate authority of its own ([`PgServer::ca_file`]).
    pub fn tls() -> Result<PgServer, String> {
        PgServer::start(Durability::Off, true)
    }

    /// The TCP port of a [`PgServer::tls`] server.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp.as_ref().map(|t| t.port)
    }

    /// The PEM file of the certificate authority of a [`PgServer::tls`] server.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tcp.as_ref().map(|t| t.ca.as_path())
    }

    /// Creates an empty database and returns a libpq connection string for it.
    pub fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("kt_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.conninfo("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.conninfo(&name)
    }

    /// A `postgres://` URL for the database, as a user would pass it to `--db`.
    pub fn url(&self, conninfo: &str) -> String {
        let db = conninfo
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("dbname="))
            .unwrap_or("postgres");
        // A Unix socket directory goes in the `host` query parameter, percent-encoded.
        let host: String = self
            .socket_dir
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_string(),
                b => (b as char).to_string(),
            })
            .collect();
        format!("postgres://{SUPERUSER}@{host}:{}/{db}", self.port())
    }

    /// The key=value connection string of a database on this server.
    pub fn conninfo(&self, database: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={database}",
            self.socket_dir.display(),
            self.port()
        )
    }

    /// The port: it names the socket file, and for a [`PgServer::tls`] server the TCP port too.
    fn port(&self) -> u16 {
        self.tcp.as_ref().map_or(PORT, |t| t.port)
    }

    /// The directory that holds the server's socket (libpq's `host` for a Unix socket).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    fn start(durability: Durability, tls: bool) -> Result<PgServer, String> {
        let bindir = find_bindir()?;
        // Under /tmp, not a long target path: a socket path is limited to 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("kt-pg-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("creating a temporary directory: {e}"))?
            // The shell below removes it when the server stops.
            .keep();
        let as_root = is_root();
        // Certificates are made before the directory is handed to the postgres user: the
        // server refuses a key file that others may read or that it does not own.
        let tcp = if tls {
            Some(Tcp {
                port: free_port()?,
                ca: make_certificates(&dir)?,
            })
        } else {
            None
        };
        if as_root {
            run(Command::new("chown").args(["-R", SUPERUSER]).arg(&dir))?;
        }
        let data = dir.join("data");
        let mut initdb = command(as_root, &bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync"]);
        run(&mut initdb)?;
        // One role must give its password (the rest are trusted), so that a test can see a
        // wrong one refused: the first matching line of pg_hba.conf wins.
        let hba = data.join("pg_hba.conf");
        let trusted =
            std::fs::read_to_string(&hba).map_err(|e| format!("reading {}: {e}", hba.display()))?;
        std::fs::write(
            &hba,
            format!("local all {PASSWORD_ROLE} scram-sha-256\n{trusted}"),
        )
        .map_err(|e| format!("writing {}: {e}", hba.display()))?;
        if tcp.is_some() {
            // Before initdb's own `host ... trust` lines, which would let plain TCP in.
            let hba_text = std::fs::read_to_string(&hba)
                .map_err(|e| format!("reading {}: {e}", hba.display()))?;
            std::fs::write(&hba, format!("hostnossl all all all reject\n{hba_text}"))
                .map_err(|e| format!("writing {}: {e}", hba.display()))?;
        }

        // The shell starts the server, then waits for its stdin to close, then stops the
        // server quickly and removes the directory. For tests durability is off: their data
        // is thrown away, and fsync would make every commit wait for the disk.
        let mut settings = match durability {
            Durability::Off => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            Durability::Default => "",
        }
        .to_string();
        // For profiling a benchmark: more server settings, such as
        // `-c shared_preload_libraries=pg_stat_statements`.
        if let Ok(extra) = std::env::var("KUBETRAIL_PG_SETTINGS") {
            settings.push(' ');
            settings.push_str(&extra);
        }
        // listen_addresses is given last, so that this one wins over the script's empty one.
        if tcp.is_some() {
            let certs = dir.join("certs");
            settings.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key \
                 -c listen_addresses=127.0.0.1",
                certs.display()
            ));
        }
        let script = r#"
            "$0/postgres" -D "$1/data" -k "$1" -p "$2" -c listen_addresses= \
                -c max_connections=200 $3 >"$1/server.log" 2>&1 &
            pid=$!
            read -r _
            kill -INT "$pid"
            wait "$pid"
            rm -rf "$1"
        "#;
        let mut shell = command(as_root, Path::new("sh"));
        shell
            .arg("-c")
            .arg(script)
            .arg(&bindir)
            .arg(&dir)
            .arg(tcp.as_ref().map_or(PORT, |t| t.port).to_string())
            .arg(settings)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child: Child = shell
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bindir.join("postgres").display()))?;
        let stop = child.stdin.take().expect("stdin is piped");
        // Reap the shell in the background, so that it never lingers as a zombie.
        std::thread::spawn(move || child.wait());

        let server = PgServer {
            socket_dir: dir.clone(),
            tcp,
            _stop: stop,
            databases: AtomicU32::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match postgres::Client::connect(&server.conninfo("postgres"), postgres::NoTls) {
                Ok(_) => return Ok(server),
                Err(e) if Instant::now() > deadline => {
                    let mut log = String::new();
                    if let Ok(mut f) = std::fs::File::open(dir.join("server.log")) {
                        let _ = f.read_to_string(&mut log);
                    }
                    return Err(format!(
                        "the server in {} did not accept connections within 30 s ({e}); \
                         its log:\n{log}",
                        dir.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now. Another process could take it before
/// the server binds it; the server then fails to start and says so in its log.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free TCP port: {e}"))
}

/// Makes `dir/certs/` with a certificate authority (`ca.crt`, returned) and a server
/// certificate for `localhost` (not its address) signed by it (`server.crt`, `server.key`).
fn make_certificates(dir: &Path) -> Result<PathBuf, String> {
    let certs = dir.join("certs");
    std::fs::create_dir(&certs).map_err(|e| format!("creating {}: {e}", certs.display()))?;
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(&certs).args(args))
            .map_err(|e| format!("{e} (the TLS test server needs the openssl command)"))
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kubetrail test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        certs.join("san.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| format!("writing the certificate extensions: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ])?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        certs.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| format!("restricting the server key: {e}"))?;
    Ok(certs.join("ca.crt"))
}

/// `$KUBETRAIL_PG_BINDIR`, else the newest installed major version that has `initdb`.
fn find_bindir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("KUBETRAIL_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "KUBETRAIL_PG_BINDIR={} has no initdb",
                dir.display()
            ))
        };
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no PostgreSQL server is installed (no /usr/lib/postgresql/*/bin/initdb); install \
         Debian's postgresql package, or set KUBETRAIL_PG_BINDIR"
            .to_string()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program`, run as the `postgres` user when this process is root.
fn command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", SUPERUSER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_fresh_databases_are_separate() {
        let server = PgServer::shared();
        let a = server.fresh_database();
        let b = server.fresh_database();
        let mut ca = postgres::Client::connect(&a, postgres::NoTls).unwrap();
        ca.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            .unwrap();
        let mut cb = postgres::Client::connect(&b, postgres::NoTls).unwrap();
        let err = cb.batch_execute("SELECT x FROM t").unwrap_err();
        assert_eq!(
            err.code(),
            Some(&postgres::error::SqlState::UNDEFINED_TABLE),
            "{err}"
        );
        let one: i32 = ca.query_one("SELECT x FROM t", &[]).unwrap().get(0);
        assert_eq!(one, 1);
    }

    #[test]
    fn the_url_form_reaches_the_same_database() {
        let server = PgServer::shared();
        let conninfo = server.fresh_database();
        let url = server.url(&conninfo);
        assert!(
            url.starts_with("postgres://postgres@%2Ftmp%2Fkt-pg-"),
            "{url}"
        );
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let db: String = c
            .query_one("SELECT current_database()", &[])
            .unwrap()
            .get(0);
        assert!(
            conninfo.ends_with(&format!("dbname={db}")),
            "{db} vs {conninfo}"
        );
    }
}
