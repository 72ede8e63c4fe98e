//! `kubetrail query workloads` and `query history KIND/NAME`: the reports over recorded
//! workload owners (the chain from a pod to its Deployment, StatefulSet, DaemonSet, CronJob or
//! Job). `--owner` on `query pods` and `query events` lives with their flags in `query`.

use std::io::Write;

use kubetrail::model::owner::WorkloadRef;
use kubetrail::model::time::Window;
use kubetrail::output::{Format, Renderer};
use kubetrail::query::rollout::{RolloutLine, rollout};
use kubetrail::query::workloads::{WorkloadFilter, WorkloadRecord, workloads};
use kubetrail::store::HistoryReader;

use super::query::{
    DbArgs, NamespaceArgs, OutputArgs, WindowArgs, cli_error, clustered, finish, open,
};

/// Filters of `query workloads` and `export workloads`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadFilterArgs {
    #[command(flatten)]
    pub namespaces: NamespaceArgs,
}

impl WorkloadFilterArgs {
    pub fn filter(&self, window: Window) -> WorkloadFilter {
        WorkloadFilter {
            namespace: self.namespaces.namespace.clone(),
            window,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct WorkloadsArgs {
    #[command(flatten)]
    pub filter: WorkloadFilterArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run_workloads<W: Write>(
    out: &mut W,
    args: WorkloadsArgs,
    now_ms: i64,
) -> anyhow::Result<()> {
    let filter = args.filter.filter(args.window.window(now_ms)?);
    let reader = open(&args.db)?;
    let rows = workloads(&*reader, &filter, now_ms).map_err(cli_error)?;
    let mut renderer =
        Renderer::with_clusters::<WorkloadRecord>(args.output.output, out, clustered(&*reader))?;
    for row in &rows {
        renderer.row(row)?;
    }
    finish(renderer, args.output.output, "no pods in the window")
}

pub fn print_rollout<W: Write>(
    out: &mut W,
    format: Format,
    reader: &dyn HistoryReader,
    workload: &WorkloadRef,
    namespace: Option<&str>,
    window: Window,
    now_ms: i64,
) -> anyhow::Result<()> {
    let lines = rollout(reader, workload, namespace, window, now_ms).map_err(cli_error)?;
    let mut renderer = Renderer::new::<RolloutLine>(format, out)?;
    for line in &lines {
        renderer.row(line)?;
    }
    finish(renderer, format, "nothing of it in the window")
}
