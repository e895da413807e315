//! The `dynamic_resources` files (LDS, CDS) and runtime disk layers under watch: one inotify instance on the reactor,
//! watching each file's directory for moves, as Envoy watches them (only a file moved into
//! place is a new version: a file written in place may be read half-written). A new version
//! is applied by a reload, the same hot restart SIGHUP starts.

use std::collections::HashMap;
use std::path::PathBuf;

use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::os::fd::{AsFd, AsRawFd};

use crate::config::xds::WatchedFile;
use crate::reactor::Tok;

pub struct FileWatch {
    inotify: Inotify,
    files: Vec<WatchedFile>,
    /// Each watched directory's descriptor, and the files in it.
    dirs: HashMap<WatchDescriptor, Vec<usize>>,
    /// Reading the events failed: the owner drops the watch.
    pub broken: bool,
}

impl FileWatch {
    /// Watches `files` (none: no watch at all). Errors name the directory that cannot be
    /// watched: a config whose updates would never be seen is refused at start.
    pub fn new(files: Vec<WatchedFile>, registry: &Registry) -> Result<Option<FileWatch>, String> {
        if files.is_empty() {
            return Ok(None);
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| format!("dynamic_resources: inotify: {e}"))?;
        let mut by_dir: HashMap<PathBuf, WatchDescriptor> = HashMap::new();
        let mut dirs: HashMap<WatchDescriptor, Vec<usize>> = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            let wd = match by_dir.get(&f.dir) {
                Some(wd) => *wd,
                None => {
                    let wd = inotify
                        .add_watch(&f.dir, AddWatchFlags::IN_MOVED_TO)
                        .map_err(|e| {
                            format!(
                                "cannot watch {} for new versions of {}: {e}",
                                f.dir.display(),
                                f.path.display()
                            )
                        })?;
                    by_dir.insert(f.dir.clone(), wd);
                    wd
                }
            };
            dirs.entry(wd).or_default().push(i);
        }
        registry
            .register(
                &mut SourceFd(&inotify.as_fd().as_raw_fd()),
                Tok::Files.token(),
                Interest::READABLE,
            )
            .map_err(|e| format!("dynamic_resources: register inotify: {e}"))?;
        Ok(Some(FileWatch {
            inotify,
            files,
            dirs,
            broken: false,
        }))
    }

    /// Reads every pending event; the first file a move announced whose text changed,
    /// described for the log, or `None`. (One reload reads every file again, so one name is
    /// enough.)
    pub fn moved(&mut self) -> Option<String> {
        let mut found = None;
        // The descriptor is non-blocking: this ends with EAGAIN once the queue is empty.
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => events,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => {
                    // Left readable, the level-triggered descriptor would wake the loop for
                    // ever: stop watching, say so.
                    log::error!(
                        "inotify: {e}; new versions of the watched files are no longer seen"
                    );
                    self.broken = true;
                    break;
                }
            };
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: look at every file.
                    if found.is_none() {
                        found = self.files.iter().find(|f| f.differs()).map(describe);
                    }
                    continue;
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    if let Some(list) = self.dirs.remove(&ev.wd) {
                        for f in list.iter().filter_map(|&i| self.files.get(i)) {
                            log::warn!(
                                "{}: its directory {} is gone; new versions are no longer seen \
                                 (a reload watches it again)",
                                describe(f),
                                f.dir.display()
                            );
                        }
                    }
                    continue;
                }
                let Some(list) = self.dirs.get(&ev.wd) else {
                    continue;
                };
                for &i in list {
                    let Some(f) = self.files.get(i) else { continue };
                    if found.is_none() && f.moved_in(ev.name.as_deref()) && f.differs() {
                        found = Some(describe(f));
                    }
                }
            }
        }
        found
    }

    /// Takes the descriptor off the reactor (before the watch is dropped).
    pub fn deregister(&self, registry: &Registry) {
        let _ = registry.deregister(&mut SourceFd(&self.inotify.as_fd().as_raw_fd()));
    }

    /// A file that is not the version the configuration was read from (one moved into place
    /// while this process was starting), described for the log.
    pub fn stale(&self) -> Option<String> {
        self.files.iter().find(|f| f.replaced()).map(describe)
    }
}

fn describe(f: &WatchedFile) -> String {
    format!("{} file {}", f.kind.api(), f.path.display())
}
