//! `kubetrail record`: watch a cluster and record its history into SQLite until SIGINT/SIGTERM,
//! then commit everything received and exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::connect::{kube_client, shutdown_signal};
use kubetrail::model::time::parse_duration;
use kubetrail::query::LabelSelector;
use kubetrail::recorder::backoff::{Retry, RetryPolicy, jitter};
use kubetrail::recorder::{self, Recorder, RecorderConfig};
use kubetrail::store::{HistoryWriter, Location, WriteMode, open_writer};
use kubetrail::usage;

/// Flags of `kubetrail record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Record pods of this namespace only.
    #[arg(short = 'n', long, conflicts_with = "all_namespaces", value_parser = super::query::namespace_name)]
    pub namespace: Option<String>,
    /// Record pods of all namespaces (the default).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Record only pods matching this label selector (e.g. app=web,tier!=cache).
    #[arg(short = 'l', long, value_parser = selector)]
    pub selector: Option<String>,
    /// Where to record: a SQLite file (created, mode 0600, if missing), or a PostgreSQL server
    /// as postgres://USER@HOST:PORT/DB (libpq's PG* variables and sslmode apply; give the
    /// password in PGPASSWORD, not the URL).
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "KUBETRAIL_DB",
        default_value = "kubetrail.db"
    )]
    pub db: String,
    /// With a PostgreSQL --db: the name of the recorded cluster, on every row. Default: the
    /// kubeconfig context's name; required in a cluster.
    #[arg(long, value_name = "NAME", env = "KUBETRAIL_CLUSTER")]
    pub cluster: Option<String>,
    /// Also write every node's utilisation this often when it has not changed (a keyframe).
    /// Every change is written when it happens, so queries are exact without keyframes; they
    /// bound how far back a reader must look, and each costs a row per node.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = snapshot_interval)]
    pub snapshot_interval: Duration,
    /// Log a one-line status this often.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub status_interval: Duration,
    /// How long each watch request lasts before it is resumed (server-side timeoutSeconds).
    #[arg(long, value_name = "DURATION", default_value = "290s", value_parser = duration)]
    pub watch_timeout: Duration,
    /// Objects per list page. Fewer, larger pages make the initial list of a big cluster faster
    /// at the cost of larger responses.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Serve /healthz, /readyz and Prometheus /metrics at this address (IP:PORT, or :PORT for
    /// every interface). Off by default.
    #[arg(long, value_name = "ADDR", value_parser = listen_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// /readyz fails when the oldest rows waiting for a commit are older than this, or when a
    /// watch has been failing (the API server unreachable, refusing, or silent: a quiet watch
    /// is probed, and one whose server does not answer is restarted) this long.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = duration)]
    pub unready_after: Duration,
    /// Do not watch nodes: for an identity that may only read pods in its namespace (see
    /// deploy/kubernetes/kubetrail-namespaced.yaml). Node utilisation is then not recorded.
    #[arg(long)]
    pub no_nodes: bool,
    /// Do not watch Kubernetes Events (events.k8s.io/v1, or core v1) about pods and nodes.
    #[arg(long)]
    pub no_events: bool,
    /// Do not watch ReplicaSets and Jobs (apps/v1, batch/v1): pods then name only their
    /// direct owner, and `--owner deployment/NAME` and `query workloads` cannot see past it.
    #[arg(long)]
    pub no_owners: bool,
    /// Event rows that may wait for the database writer; newer events beyond it are dropped
    /// and counted (kubetrail_events_dropped_total). For tests of the flood policy.
    #[arg(long, hide = true, default_value_t = 50_000)]
    pub event_queue_rows: usize,
    /// How often measured usage is sampled from the metrics API (metrics.k8s.io, served by
    /// metrics-server): from 1s to 1h. A pod or node whose sample has not moved is not written
    /// again.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = usage_interval)]
    pub usage_interval: Duration,
    /// Do not sample the metrics API: only requests and limits are recorded, not usage.
    #[arg(long)]
    pub no_usage: bool,
    #[command(flatten)]
    pub retention: kubetrail::retention::RetentionArgs,
}

/// `--usage-interval`: a duration within the sampler's bounds.
fn usage_interval(s: &str) -> Result<Duration, String> {
    use kubetrail::recorder::usage::{MAX_INTERVAL_SECS, MIN_INTERVAL_SECS};
    let d = duration(s)?;
    if d < Duration::from_secs(MIN_INTERVAL_SECS) || d > Duration::from_secs(MAX_INTERVAL_SECS) {
        return Err(format!(
            "{s:?} is outside the sampling bounds; give a duration from {MIN_INTERVAL_SECS}s to {}h, such as 30s",
            MAX_INTERVAL_SECS / 3600
        ));
    }
    Ok(d)
}

/// Validated up front, so a typo is a usage error and not a watch that fails forever.
fn selector(s: &str) -> Result<String, String> {
    LabelSelector::parse(s).map(|_| s.to_string())
}

/// `IP:PORT`, or `:PORT` for every interface (as Go servers take it).
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.parse().map_err(|_| {
        format!("{s:?} is not an address to listen on; give IP:PORT such as 127.0.0.1:9090, or :9090 for every interface")
    })
}

/// At least 1 s: each keyframe is a row per node, so 1ms would write 1000 rows per node and
/// second and bury every real change.
fn snapshot_interval(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?} is shorter than 1s; keyframes are written for every node each interval, give 1s or more (default 30m)"
        ));
    }
    Ok(d)
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!(
            "{s:?} is zero; give a positive duration such as 30s"
        ));
    }
    Ok(d)
}

/// A file-size limit (`ulimit -f`, a container's) sends SIGXFSZ when a write crosses it, and
/// its default action kills the process without a word. Handled, the write fails instead
/// (EFBIG), which the writer treats like a full disk: it keeps the rows, says so, and retries.
fn ignore_file_size_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(XFSZ)) {
        Ok(mut signals) => {
            tokio::spawn(async move { while signals.recv().await.is_some() {} });
        }
        Err(err) => tracing::debug!(%err, "cannot handle SIGXFSZ"),
    }
}

/// SIGXFSZ on Linux (x86, arm and most others).
const XFSZ: i32 = 25;

/// Opens the store. A server that cannot be reached yet (it is starting, the network is not
/// up) is retried with backoff, each failure logged, until it answers or the recorder is told
/// to stop (None). A file's errors, and a server's refusals (a wrong password, a foreign
/// database), fail at once.
async fn open_store(at: &Location) -> anyhow::Result<Option<Box<dyn HistoryWriter>>> {
    let mut policy = RetryPolicy::default();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let target = at.clone();
        match tokio::task::spawn_blocking(move || open_writer(&target, WriteMode::Record)).await? {
            Ok(store) => return Ok(Some(store)),
            Err(err) if err.is_transient() && at.file().is_none() => {
                let delay = policy.next_delay(Retry::Watch, jitter());
                tracing::warn!(
                    error = %err,
                    retry_in_ms = delay.as_millis() as u64,
                    "cannot reach the database yet; retrying"
                );
                tokio::select! {
                    _ = &mut stop => return Ok(None),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Where to record. A PostgreSQL database holds many clusters, so it needs this one's name:
/// `--cluster`, else the kubeconfig context's; a SQLite file holds one and takes none.
fn location(args: &Args, context: Option<String>) -> anyhow::Result<Location> {
    let is_server = args.db.starts_with("postgres://") || args.db.starts_with("postgresql://");
    if !is_server {
        if let Some(cluster) = &args.cluster {
            return Err(usage!(
                "--cluster {cluster} is for a PostgreSQL --db (postgres://...): the SQLite file \
                 {} holds one cluster",
                args.db
            ));
        }
        return Ok(Location::Sqlite(PathBuf::from(&args.db)));
    }
    if args.retention.policy.max_db_size.is_some() {
        return Err(usage!(
            "--max-db-size is a budget for a SQLite file; a PostgreSQL database is kept in \
             bounds by the age rules (--max-age, --raw-usage-age, --rollup-age)"
        ));
    }
    let cluster = match (&args.cluster, context) {
        (Some(name), _) => name.clone(),
        (None, Some(context)) => context,
        (None, None) => {
            return Err(usage!(
                "--db {}: name this cluster with --cluster NAME (or KUBETRAIL_CLUSTER): there \
                 is no kubeconfig context to take the name from",
                Location::parse(&args.db, &[])
                    .map(|l| l.to_string())
                    .unwrap_or_default()
            ));
        }
    };
    Location::parse(&args.db, &[cluster]).map_err(|e| usage!("{e}"))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let retention = args.retention.schedule()?;
    // The cluster config first: a bad kubeconfig must not leave a new empty database behind.
    let (client, url, context) =
        kube_client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let at = location(&args, context)?;
    // Bound before the database is opened: a busy port must not leave a new empty file behind.
    let listener = match args.metrics_addr {
        Some(addr) => Some(recorder::http::bind(addr).await?),
        None => None,
    };
    let Some(store) = open_store(&at).await? else {
        tracing::info!("stopped before the database could be reached; nothing was recorded");
        return Ok(());
    };
    let config = RecorderConfig {
        namespace: args.namespace.clone(),
        label_selector: args.selector.clone(),
        snapshot_interval: args.snapshot_interval,
        status_interval: args.status_interval,
        server: url.clone(),
        watch_timeout: args.watch_timeout,
        page_size: args.page_size,
        watch_nodes: !args.no_nodes,
        watch_events: !args.no_events,
        watch_owners: !args.no_owners,
        event_queue_rows: args.event_queue_rows,
        usage_interval: (!args.no_usage).then_some(args.usage_interval),
        unready_after: args.unready_after,
        max_db_bytes: args.retention.policy.max_db_size,
        ..Default::default()
    };
    ignore_file_size_signal();
    let mut recorder = Recorder::new(client, store, config);
    // `--retention-interval off` leaves the recorder without periodic passes.
    if let Some((policy, interval)) = retention {
        recorder = recorder.on_writer_started(move |writer| {
            kubetrail::retention::periodic::spawn(writer, policy, interval);
        });
    }
    if let Some(listener) = listener {
        let endpoint = recorder::http::Endpoint {
            stats: recorder.stats(),
            db: at.clone(),
            unready_after: args.unready_after,
        };
        let bound = recorder::http::serve(listener, endpoint)?;
        tracing::info!("serving http://{bound}/metrics, /healthz and /readyz");
    }
    tracing::info!(
        server = %url,
        db = %at,
        namespace = args.namespace.as_deref().unwrap_or("(all)"),
        selector = args.selector.as_deref().unwrap_or("(none)"),
        "recording; stop with Ctrl-C or SIGTERM"
    );
    let outcome = recorder.run(shutdown_signal()).await?;
    let w = &outcome.stats.writer;
    tracing::info!(
        transitions = w.transitions_total(),
        rows = w.rows.get(),
        "stopped; everything received is committed"
    );
    Ok(())
}
