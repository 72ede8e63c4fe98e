//! `kubetrail query pods|history|transitions|events|nodes`: reports on a recorded database, printed as
//! a table, JSON or CSV.
//!
//! Raw flags are turned into validated filters (`query::*Filter`) before the database is
//! opened, so a typo is a usage error (exit 2) that names the value. The flag groups here are
//! shared with `kubetrail export`, which writes the same rows as CSV.
//!
//! The store is opened read-only through the store seam (`store::open_reader`): a query never
//! creates or changes it and runs while `record` writes.

use std::io::{self, BufWriter, Write};

use anyhow::Context;

use kubetrail::model::Phase;
use kubetrail::model::owner::WorkloadRef;
use kubetrail::model::time::Window;
use kubetrail::output::{Format, JsonWriter, Record, Renderer, TableWriter};
use kubetrail::query::events::HistoryEventLine;
use kubetrail::query::transitions::{HistoryLine, TRANSITION_FIELDS};
use kubetrail::query::{
    self, LabelSelector, NodeFilter, PodFilter, PodRef, QueryError, TransitionFilter,
    for_each_node_bucket, for_each_pod, for_each_transition, parse_kinds,
};
use kubetrail::store::{HistoryReader, Location, ReadOptions, open_reader};
use kubetrail::usage;

/// Subcommands of `kubetrail query`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// One line per pod incarnation: node, lifecycle times, lifetime, final phase and reason,
    /// restarts, effective requests.
    Pods(PodsArgs),
    /// One pod's whole timeline, one line per transition (every incarnation of a reused name).
    History(HistoryArgs),
    /// Transitions matching filters, e.g. `--kind container_terminated --reason OOMKilled --since 12h`.
    Transitions(TransitionsArgs),
    /// Kubernetes Events about pods and nodes, e.g. `--reason BackOff --type Warning --since 1h`.
    Events(EventsArgs),
    /// Per-node utilisation per time bucket: time-weighted average and peak of requests and
    /// limits against allocatable.
    Nodes(NodesArgs),
    /// One line per workload (Deployment, StatefulSet, DaemonSet, CronJob, Job, or a bare pod):
    /// pods, restarts, OOMKills, failures, evictions and time spent Pending in the window.
    Workloads(super::owners::WorkloadsArgs),
    /// Requests against measured usage (metrics API samples) per pod, container or owner:
    /// average, p95 and max, efficiency, idle request and a right-sizing recommendation.
    Usage(UsageArgs),
}

/// Which samples and how to group them, shared by `query usage` and `export usage`.
#[derive(Debug, Clone, clap::Args)]
pub struct UsageFilterArgs {
    /// One row per pod, per container, or per owner (the pod's controller, e.g. a ReplicaSet).
    #[arg(long, value_enum, default_value = "pod")]
    pub by: query::usage::UsageBy,
    /// Only pods in this namespace.
    #[arg(short = 'n', long, value_name = "NAMESPACE", value_parser = namespace_name)]
    pub namespace: Option<String>,
    /// All namespaces (the default; accepted for kubectl habits).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Only the pod with this name.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
}

impl UsageFilterArgs {
    pub fn filter(&self, window: Window) -> query::usage::UsageFilter {
        query::usage::UsageFilter {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            since_ms: window.since_ms,
            until_ms: window.until_ms,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub filter: UsageFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// `--db`.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// The kubetrail database to read (never created or modified): a SQLite file, or a
    /// PostgreSQL server as postgres://USER@HOST:PORT/DB (libpq's PG* variables and sslmode
    /// apply; give the password in PGPASSWORD, not the URL).
    #[arg(
        long,
        value_name = "PATH|URL",
        env = "KUBETRAIL_DB",
        default_value = "kubetrail.db"
    )]
    pub db: String,
    /// With a PostgreSQL --db: read only this cluster (repeat for several). Default: all.
    #[arg(long, value_name = "NAME")]
    pub cluster: Vec<String>,
}

impl DbArgs {
    /// Where `--db` (and `--cluster`) point.
    pub fn location(&self) -> anyhow::Result<Location> {
        Location::parse(&self.db, &self.cluster).map_err(|e| usage!("{e}"))
    }
}

/// `--since` / `--until`.
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Start of the window: a duration before now (90s, 30m, 2h, 7d) or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// End of the window (exclusive), in the same forms as --since. Default: now.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl WindowArgs {
    /// Parses both ends against one `now_ms`; a bad value or a reversed window is a usage error.
    pub fn window(&self, now_ms: i64) -> anyhow::Result<Window> {
        Window::parse(self.since.as_deref(), self.until.as_deref(), now_ms)
            .map_err(|e| usage!("{e}"))
    }
}

/// `-o`.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format: an aligned table for people, or JSON / CSV in machine units.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Parses `-n`: a namespace name is a DNS-1123 label (what the API server accepts), so a typo
/// such as `-n Web` or `-n web/` is refused up front instead of matching nothing.
pub fn namespace_name(s: &str) -> Result<String, String> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum);
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a namespace name; a namespace is 1 to 63 lowercase letters, digits or \
             '-', starting and ending with a letter or digit (e.g. kube-system)"
        ))
    }
}

/// `-n` / `-A`.
#[derive(Debug, Clone, clap::Args)]
pub struct NamespaceArgs {
    /// Only pods in this namespace.
    #[arg(short = 'n', long, value_name = "NAMESPACE", value_parser = namespace_name)]
    pub namespace: Option<String>,
    /// All namespaces (the default; accepted for kubectl habits).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

/// Filters on pods, shared by `query pods` and `export pods`.
#[derive(Debug, Clone, clap::Args)]
pub struct PodFilterArgs {
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
    /// Only pods bound to this node.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only pods whose last recorded phase is this (Pending, Running, Succeeded, Failed, Unknown).
    #[arg(long, value_parser = query::parse_phase)]
    pub phase: Option<Phase>,
    /// Only pods whose labels match (kubectl syntax: app=web,tier!=db,env in (a,b),!canary).
    #[arg(short = 'l', long, value_parser = LabelSelector::parse)]
    pub selector: Option<LabelSelector>,
    /// At most this many rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Only pods of this workload, through the recorded owner chain: deployment/NAME,
    /// statefulset/, daemonset/, cronjob/, job/, replicaset/, or pod/NAME for a bare pod.
    #[arg(long, value_name = "KIND/NAME", value_parser = WorkloadRef::parse)]
    pub owner: Option<WorkloadRef>,
}

impl PodFilterArgs {
    pub fn filter(&self, window: Window) -> PodFilter {
        PodFilter {
            namespace: self.namespaces.namespace.clone(),
            node: self.node.clone(),
            phase: self.phase,
            selector: self.selector.clone().unwrap_or_default(),
            window,
            limit: self.limit,
            owners: None,
        }
    }
}

/// Filters on transitions, shared by `query transitions` and `export transitions`.
#[derive(Debug, Clone, clap::Args)]
pub struct TransitionFilterArgs {
    /// Only these kinds (repeat or comma-separate). Node kinds (added, not_ready, cordoned, ...)
    /// select node rows; `ready` and `deleted` mean the pod kind unless written node:ready.
    #[arg(long, value_name = "KIND")]
    pub kind: Vec<String>,
    /// Only rows with this reason, exactly (OOMKilled, Error, Evicted, ...; repeat or comma-separate).
    #[arg(long, value_name = "REASON", value_delimiter = ',')]
    pub reason: Vec<String>,
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
    /// Only pods bound to this node, and this node's own transitions.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only pods whose labels match (kubectl syntax). Node rows are not filtered by labels.
    #[arg(short = 'l', long, value_parser = LabelSelector::parse)]
    pub selector: Option<LabelSelector>,
    /// Include node transitions (added, deleted, ready, not_ready, cordoned, uncordoned,
    /// capacity_changed) along with pod transitions.
    #[arg(long)]
    pub nodes: bool,
    /// At most this many rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

impl TransitionFilterArgs {
    pub fn filter(&self, window: Window) -> anyhow::Result<TransitionFilter> {
        let kinds = parse_kinds(&self.kind, self.nodes).map_err(|e| usage!("--kind: {e}"))?;
        Ok(TransitionFilter {
            kinds,
            include_nodes: self.nodes,
            reasons: self
                .reason
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
            namespace: self.namespaces.namespace.clone(),
            node: self.node.clone(),
            selector: self.selector.clone().unwrap_or_default(),
            window,
            pod_ids: None,
            limit: self.limit,
        })
    }
}

/// Filters on events, shared by `query events` and `export events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventFilterArgs {
    /// Only events with this reason, exactly (BackOff, FailedScheduling, ...; repeat or
    /// comma-separate).
    #[arg(long, value_name = "REASON", value_delimiter = ',')]
    pub reason: Vec<String>,
    /// Only events of this type: Normal or Warning.
    #[arg(long = "type", value_name = "TYPE", value_parser = query::events::parse_event_type)]
    pub event_type: Option<query::events::EventType>,
    /// Only events about objects in this namespace.
    #[arg(short = 'n', long, value_name = "NAMESPACE", value_parser = namespace_name)]
    pub namespace: Option<String>,
    /// All namespaces (the default; accepted for kubectl habits).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Only events about the pod with this name.
    #[arg(long, value_name = "POD", conflicts_with = "node")]
    pub pod: Option<String>,
    /// Only events about the node with this name.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Only events about the pods of this workload (deployment/NAME, statefulset/, ...; see
    /// `query pods --owner`).
    #[arg(long, value_name = "KIND/NAME", value_parser = WorkloadRef::parse, conflicts_with_all = ["pod", "node"])]
    pub owner: Option<WorkloadRef>,
    /// At most this many rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

impl EventFilterArgs {
    pub fn filter(&self, window: Window) -> query::events::EventFilter {
        query::events::EventFilter {
            reasons: self
                .reason
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
            event_type: self.event_type,
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            node: self.node.clone(),
            regarding_uids: None,
            window,
            limit: self.limit,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub filter: EventFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Node selection and bucket size, shared by `query nodes` and `export nodes`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeFilterArgs {
    /// Only this node (every incarnation of the name).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Bucket size (buckets are aligned to multiples of it since the epoch, in UTC).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = kubetrail::model::time::parse_duration_ms)]
    pub step: i64,
}

impl NodeFilterArgs {
    pub fn filter(&self, window: Window) -> NodeFilter {
        NodeFilter {
            node: self.node.clone(),
            window,
            step_ms: self.step,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PodsArgs {
    #[command(flatten)]
    pub filter: PodFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The pod's name. Without -n every namespace is searched; a name found in several is
    /// ambiguous (exit 2) and the message lists the namespaces. KIND/NAME (deployment/web,
    /// cronjob/backup, ...) shows a workload instead: its ReplicaSets or Jobs (revision,
    /// template hash, images, scaling) and its pods over time.
    #[arg(
        value_name = "POD",
        required_unless_present = "uid",
        conflicts_with = "uid"
    )]
    pub pod: Option<String>,
    /// The pod's namespace.
    #[arg(short = 'n', long, value_name = "NAMESPACE", conflicts_with = "uid", value_parser = namespace_name)]
    pub namespace: Option<String>,
    /// One incarnation by uid instead of a name.
    #[arg(long, value_name = "UID")]
    pub uid: Option<String>,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct TransitionsArgs {
    #[command(flatten)]
    pub filter: TransitionFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub filter: NodeFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    // SQLite calls block; keep them off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(command))
        .await
        .context("query task failed")?
}

fn run_blocking(command: Command) -> anyhow::Result<()> {
    let now_ms = kubetrail::model::time::now_ms();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    match command {
        Command::Pods(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open(&args.db)?;
            let mut renderer = Renderer::with_clusters::<query::PodSummary>(
                args.output.output,
                &mut out,
                clustered(&*reader),
            )?;
            match &args.filter.owner {
                Some(owner) => {
                    query::owners::for_each_pod_of(&*reader, &filter, owner, now_ms, |row| {
                        Ok(renderer.row(&row)?)
                    })
                }
                None => for_each_pod(&*reader, &filter, now_ms, |row| Ok(renderer.row(&row)?)),
            }
            .map_err(cli_error)?;
            finish(renderer, args.output.output, "no pods match")?;
        }
        Command::History(args) if args.pod.as_deref().is_some_and(|p| p.contains('/')) => {
            let window = args.window.window(now_ms)?;
            let workload = WorkloadRef::parse(args.pod.as_deref().unwrap_or_default())
                .map_err(|e| usage!("{e}"))?;
            let reader = open(&args.db)?;
            super::owners::print_rollout(
                &mut out,
                args.output.output,
                &*reader,
                &workload,
                args.namespace.as_deref(),
                window,
                now_ms,
            )?;
        }
        Command::Workloads(args) => super::owners::run_workloads(&mut out, args, now_ms)?,
        Command::History(args) => {
            let window = args.window.window(now_ms)?;
            let pod = match (args.uid, args.pod) {
                (Some(uid), _) => PodRef::Uid(uid),
                (None, Some(name)) => PodRef::Name {
                    namespace: args.namespace,
                    name,
                },
                (None, None) => return Err(usage!("name a pod, or pass --uid")),
            };
            let reader = open(&args.db)?;
            let incarnations = query::history(&*reader, &pod, window).map_err(cli_error)?;
            print_history(&mut out, args.output.output, &incarnations)?;
        }
        Command::Transitions(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?)?;
            let reader = open(&args.db)?;
            let mut renderer = Renderer::with_clusters::<query::TransitionRecord>(
                args.output.output,
                &mut out,
                clustered(&*reader),
            )?;
            for_each_transition(&*reader, &filter, |row| Ok(renderer.row(&row)?))
                .map_err(cli_error)?;
            finish(renderer, args.output.output, "no transitions match")?;
        }
        Command::Events(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open(&args.db)?;
            let mut renderer =
                Renderer::new::<query::events::EventRecord>(args.output.output, &mut out)?;
            match &args.filter.owner {
                Some(owner) => {
                    query::owners::for_each_event_of(&*reader, &filter, owner, now_ms, |row| {
                        Ok(renderer.row(&row)?)
                    })
                }
                None => {
                    query::events::for_each_event(&*reader, &filter, |row| Ok(renderer.row(&row)?))
                }
            }
            .map_err(cli_error)?;
            finish(renderer, args.output.output, "no events match")?;
        }
        Command::Usage(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open(&args.db)?;
            let rows = query::usage::usage(&*reader, &filter, args.filter.by).map_err(cli_error)?;
            let mut renderer =
                Renderer::new::<query::usage::UsageRecord>(args.output.output, &mut out)?;
            for row in &rows {
                renderer.row(row)?;
            }
            finish(
                renderer,
                args.output.output,
                "no usage samples match (is the metrics API served? see kubetrail_usage_available)",
            )?;
        }
        Command::Nodes(args) => {
            let filter = args.filter.filter(args.window.window(now_ms)?);
            let reader = open_pool(&args.db, query::nodes::WORKERS as u32 + 1)?;
            let mut renderer = Renderer::with_clusters::<query::NodeUsageRecord>(
                args.output.output,
                &mut out,
                clustered(&*reader),
            )?;
            let report =
                for_each_node_bucket(&*reader, &filter, now_ms, |row| Ok(renderer.row(&row)?))
                    .map_err(cli_error)?;
            finish(
                renderer,
                args.output.output,
                "no node usage recorded in the window",
            )?;
            for note in &report.notes {
                eprintln!("{note}");
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A reader of up to `size` snapshots at once (never creates the store).
pub fn open_pool(db: &DbArgs, size: u32) -> anyhow::Result<Box<dyn HistoryReader>> {
    open_with(
        db,
        ReadOptions {
            connections: size,
            streaming: false,
        },
    )
}

/// A reader for one report (never creates the store; clear errors for missing or foreign files).
pub fn open(db: &DbArgs) -> anyhow::Result<Box<dyn HistoryReader>> {
    open_pool(db, 1)
}

/// A reader opened with `options`.
pub fn open_with(db: &DbArgs, options: ReadOptions) -> anyhow::Result<Box<dyn HistoryReader>> {
    Ok(open_reader(&db.location()?, options)?)
}

/// Ends a report; an empty table says so on stderr (stdout stays empty, as with kubectl).
pub(super) fn finish<W: Write>(
    renderer: Renderer<W>,
    format: Format,
    empty: &str,
) -> anyhow::Result<()> {
    let rows = renderer.finish()?;
    if rows == 0 && format == Format::Table {
        eprintln!("{empty}");
    }
    Ok(())
}

/// Turns a query error into the CLI's exit-code convention: the user's mistakes exit 2; an io
/// error stays an io::Error so a closed pipe exits quietly.
pub fn cli_error(err: QueryError) -> anyhow::Error {
    match err {
        QueryError::Io(io) => anyhow::Error::new(io),
        err if err.is_usage() => usage!("{err}"),
        err => anyhow::Error::new(err),
    }
}

/// Whether a report reads several clusters, and so shows which cluster each row is of.
pub(super) fn clustered(reader: &dyn kubetrail::store::HistoryReader) -> bool {
    reader.clusters().len() > 1
}

fn print_history<W: Write>(
    out: &mut W,
    format: Format,
    incarnations: &[query::Incarnation],
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            for (i, inc) in incarnations.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                // Over several clusters, the heading says whose pod this is.
                let cluster = inc.transitions.iter().find_map(|t| t.cluster.as_deref());
                match cluster {
                    Some(c) => {
                        writeln!(out, "{} in cluster {c}", inc.heading(i, incarnations.len()))?
                    }
                    None => writeln!(out, "{}", inc.heading(i, incarnations.len()))?,
                }
                let mut table = TableWriter::new(&mut *out, HistoryLine::TABLE_HEADERS);
                // Transitions and events merged by time (events at their last sighting); a
                // transition comes first at equal times.
                let mut events = inc.events.iter().peekable();
                for t in &inc.transitions {
                    while let Some(e) = events.next_if(|e| e.last_seen_ms < t.at_ms) {
                        table.row(HistoryEventLine(e).table_cells())?;
                    }
                    let line = HistoryLine(t);
                    if let Some(note) = line.table_footnote() {
                        table.set_footnote(note);
                    }
                    table.row(line.table_cells())?;
                }
                for e in events {
                    table.row(HistoryEventLine(e).table_cells())?;
                }
                if table.finish()? == 0 {
                    writeln!(out, "  (no transitions in the window)")?;
                }
            }
        }
        Format::Json => {
            let mut json = JsonWriter::new(&mut *out);
            for inc in incarnations {
                json.row(inc)?;
            }
            json.finish()?;
        }
        Format::Csv => {
            // Flat: one transition per record; the uid column tells incarnations apart.
            let transitions = || incarnations.iter().flat_map(|i| &i.transitions);
            let mut header = TRANSITION_FIELDS.to_vec();
            if transitions().any(|t| t.cluster.is_some()) {
                header.insert(0, "cluster");
            }
            let mut csv = kubetrail::output::CsvWriter::new(&mut *out, &header)?;
            for t in transitions() {
                csv.row(t)?;
            }
            csv.finish()?;
        }
    }
    Ok(())
}
