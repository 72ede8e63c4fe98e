//! Writes the kubeconfig that points clients (kubectl, kube-rs, `kubetrail record`) at the
//! simulator. Written atomically (temp file + rename) so a test polling for it never reads a
//! half-written file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The kubeconfig text for a plain-HTTP, unauthenticated server.
pub fn render(server_url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubetrail-sim
  cluster:
    server: {server_url}
contexts:
- name: kubetrail-sim
  context:
    cluster: kubetrail-sim
    user: kubetrail-sim
    namespace: default
current-context: kubetrail-sim
users:
- name: kubetrail-sim
  user: {{}}
preferences: {{}}
"
    )
}

pub fn write(path: &Path, server_url: &str) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("--kubeconfig-out {} is not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(render(server_url).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write the kubeconfig {}", path.display()))
}
