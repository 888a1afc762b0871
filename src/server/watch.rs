//! Reload when a key file or the configuration file changes: their directories are watched (inotify on
//! Linux, through `notify`), so an editor's in-place write, a `cp` and an atomic rename over the file (how
//! config management and Kubernetes secret volumes update files) are all seen. Changes are gathered for a
//! moment (one reload for a burst), then the daemon reloads exactly as on SIGHUP: a broken file is logged and
//! the running configuration stays.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// How long changes are gathered before one reload.
pub const SETTLE: Duration = Duration::from_millis(300);

/// The files to watch after each reload (the config file and every key file it names, or the key flags).
pub type Files = Box<dyn Fn() -> Vec<PathBuf> + Send + Sync>;

/// A file as watched: its directory resolved (the name stays, so a rename over it still matches).
fn resolved(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(parent).ok()?.join(name))
}

/// Watches what `files` names and reloads `shared` on changes, until `shutdown`.
pub fn spawn(files: Files, shared: Arc<Shared>, shutdown: CancellationToken) -> Result<(), String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && !matches!(e.kind, EventKind::Access(_) | EventKind::Other)
        {
            let _ = tx.send(e.paths);
        }
    })
    .map_err(|e| format!("cannot watch key files: {e}"))?;
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut refresh = move |watcher: &mut notify::RecommendedWatcher,
                            watched: &mut BTreeSet<PathBuf>| {
        *watched = files().iter().filter_map(|p| resolved(p)).collect();
        for f in watched.iter() {
            if let Some(dir) = f.parent()
                && dirs.insert(dir.to_path_buf())
                && let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch for key file changes; SIGHUP still reloads");
            }
        }
    };
    refresh(&mut watcher, &mut watched);
    tokio::spawn(async move {
        loop {
            let paths = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => return },
                () = shutdown.cancelled() => return,
            };
            if !paths.iter().any(|p| watched.contains(p)) {
                continue;
            }
            // Gather the rest of the burst (an editor writes, renames and chmods in quick succession).
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let s = shared.clone();
            match tokio::task::spawn_blocking(move || s.reload_now()).await {
                Ok(Ok(r)) => {
                    tracing::info!(keys = r.keys, restart_needed = ?r.restart_needed, "reloaded: a key or configuration file changed")
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "a key or configuration file changed but does not load; still serving the previous configuration")
                }
                Err(e) => tracing::error!(error = %e, "reload task failed"),
            }
            // The configuration may name other files now.
            refresh(&mut watcher, &mut watched);
        }
    });
    Ok(())
}
