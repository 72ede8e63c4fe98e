//! Where the PostgreSQL server is: a `postgres://` URL (or a libpq `key=value` string), with
//! the usual libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//! `PGDATABASE`, `PGSSLMODE`, `PGAPPNAME`) filling in whatever the URL leaves out, as `psql`
//! does; `sslmode` as libpq means it ([`super::tls`]). And how to name that server in a message
//! without its password.

use std::str::FromStr;

use postgres::config::{Config, Host};

use super::tls::{self, Tls};

/// Where a server is and how to talk to it.
#[derive(Clone, Debug)]
pub struct Target {
    pub config: Config,
    pub tls: Tls,
}

impl Target {
    /// `--db`, with the process's libpq environment variables.
    pub fn from_url(url: &str) -> Result<Target, String> {
        parse(url, &|k| std::env::var(k).ok())
    }
}

/// Parses `--db`. `env` is the process environment (a parameter, so tests need not set it).
pub fn parse(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, String> {
    let (rest, tls) = tls::split(url, env("PGSSLMODE").as_deref())
        .map_err(|e| format!("{}: {e}", redact(url)))?;
    let mut config = Config::from_str(&rest).map_err(|e| {
        // The error of tokio-postgres names the bad option, never the password.
        format!("{} is not a valid PostgreSQL URL: {e}", redact(url))
    })?;
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',') {
                    config.host(host);
                }
            }
            // libpq's default on Debian: the local server's socket directory.
            None => {
                config.host("/var/run/postgresql");
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = env("PGPORT")
    {
        let port = port
            .parse()
            .map_err(|_| format!("PGPORT={port} is not a port number"))?;
        config.port(port);
    }
    if config.get_user().is_none() {
        // libpq's default user is the operating system user.
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        config.user(&user);
    }
    if config.get_password().is_none()
        && let Some(password) = env("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").to_string());
        config.dbname(&db);
    }
    config.ssl_mode(tls.mode);
    if config.get_options().is_none() {
        // The server's NOTICEs ("relation already exists, skipping") would reach our log.
        config.options("-c client_min_messages=warning");
    }
    if config.get_application_name().is_none() {
        config.application_name(&env("PGAPPNAME").unwrap_or_else(|| "kubetrail".to_string()));
    }
    Ok(Target { config, tls })
}

/// Whether `--db` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `user@host:port/dbname`, for messages and logs: never the password.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// The URL with any password replaced by `***`, for a URL that did not even parse.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (authority, tail) = rest
        .split_once('/')
        .map_or((rest, None), |(a, t)| (a, Some(t)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = tail.map(|t| match t.split_once('?') {
        Some((path, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|kv| {
                    if kv.starts_with("password=") {
                        "password=***"
                    } else {
                        kv
                    }
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => t.to_string(),
    });
    match tail {
        Some(t) => format!("{scheme}://{authority}/{t}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_url_keeps_what_it_says_and_the_environment_fills_the_rest() {
        let env = |k: &str| match k {
            "PGPASSWORD" => Some("s3cret".to_string()),
            "PGUSER" => Some("ignored".to_string()),
            "PGDATABASE" => Some("history".to_string()),
            _ => None,
        };
        let c = parse("postgres://trail@db.example:6543", &env)
            .unwrap()
            .config;
        assert_eq!(c.get_user(), Some("trail"));
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(c.get_dbname(), Some("history"));
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(describe(&c), "postgres://trail@db.example:6543/history");
    }

    #[test]
    fn without_a_host_it_is_the_local_socket_directory() {
        let c = parse("postgres:///kt", &no_env).unwrap().config;
        assert_eq!(
            describe(&c),
            format!(
                "postgres://{}@/var/run/postgresql:5432/kt",
                c.get_user().unwrap()
            )
        );
    }

    #[test]
    fn a_password_never_shows_in_a_description_or_an_error() {
        let c = parse("postgres://u:hunter2@h/db?sslmode=disable", &no_env)
            .unwrap()
            .config;
        assert!(!describe(&c).contains("hunter2"), "{}", describe(&c));
        let err = parse("postgres://u:hunter2@h/db?sslmode=sideways", &no_env).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("sslmode"), "{err}");
        assert_eq!(redact("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("postgres://h/db?password=hunter2&x=1"),
            "postgres://h/db?password=***&x=1"
        );
        assert_eq!(redact("host=h password=hunter2"), "host=h password=***");
    }

    #[test]
    fn only_postgres_urls_are_servers() {
        assert!(is_postgres_url("postgres://h/db"));
        assert!(is_postgres_url("postgresql://h/db"));
        assert!(!is_postgres_url("trail.db"));
        assert!(!is_postgres_url("/var/lib/kubetrail/trail.db"));
    }
}
