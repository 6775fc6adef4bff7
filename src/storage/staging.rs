//! The staging area, where uploads stream before they are complete.
//!
//! Each process stages under `staging/<instance>/`. On local disk it also holds an exclusive
//! lock on `staging/<instance>.lock` for as long as it lives, so a later start can tell what a
//! dead process left behind (its lock is free: removed at once, whatever its age) from the
//! uploads of a live one sharing the directory (its lock is held: left alone).

use std::{
    fs::{File, OpenOptions, TryLockError},
    io,
    path::Path as FsPath,
    time::{Duration, SystemTime},
};

use object_store::path::Path;
use uuid::Uuid;

/// The staging area's prefix in the store.
pub(super) const PREFIX: &str = "staging";
const LOCK_SUFFIX: &str = ".lock";

/// This process's claim on its staging directory.
#[derive(Debug)]
pub(super) struct Lease {
    instance: Uuid,
    dir: Path,
    /// Held (locked) for the life of the process; the OS frees it when the process dies.
    _lock: Option<File>,
}

impl Lease {
    /// Claims a fresh staging directory; on local disk (`root`), locks its lock file.
    pub(super) fn take(root: Option<&FsPath>) -> io::Result<Self> {
        let instance = Uuid::now_v7();
        let lock = match root {
            Some(root) => {
                let staging = root.join(PREFIX);
                std::fs::create_dir_all(&staging)?;
                let file = File::create(staging.join(format!("{instance}{LOCK_SUFFIX}")))?;
                file.try_lock().map_err(|e| match e {
                    TryLockError::Error(e) => e,
                    TryLockError::WouldBlock => io::Error::other("a fresh lock file is taken"),
                })?;
                Some(file)
            }
            None => None,
        };
        Ok(Self {
            instance,
            dir: Path::from(format!("{PREFIX}/{instance}")),
            _lock: lock,
        })
    }

    /// Removes this process's staging directory under `root` and its lock file, when the
    /// process stops; returns how many files (uploads cut short) went.
    pub(super) fn clear(&self, root: &FsPath) -> io::Result<usize> {
        let staging = root.join(PREFIX);
        let removed = remove_tree(&staging.join(self.instance.to_string()))?;
        ignore_missing(std::fs::remove_file(
            staging.join(format!("{}{LOCK_SUFFIX}", self.instance)),
        ))?;
        Ok(removed)
    }

    /// A new upload's path.
    pub(super) fn new_path(&self) -> Path {
        self.dir.clone().join(Uuid::now_v7().to_string())
    }
}

/// Cleans the local staging area under `root`: directories of dead processes (their lock is
/// free) go at once; loose files go once older than `grace`. Returns how many files went.
pub(super) fn sweep_local(root: &FsPath, grace: Duration) -> io::Result<usize> {
    let staging = root.join(PREFIX);
    let entries = match std::fs::read_dir(&staging) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let cutoff = SystemTime::now() - grace;
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(instance) = name.strip_suffix(LOCK_SUFFIX) {
            if owner_is_dead(&path)? {
                // The directory first: a directory without its lock file is never live.
                removed += remove_tree(&staging.join(instance))?;
                ignore_missing(std::fs::remove_file(&path))?;
            }
        } else if entry.file_type()?.is_dir() {
            if !staging.join(format!("{name}{LOCK_SUFFIX}")).exists() {
                removed += remove_tree(&path)?;
            }
        } else if entry.metadata()?.modified()? <= cutoff {
            ignore_missing(std::fs::remove_file(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether no process holds this lock file (it may have gone meanwhile: then its owner too).
fn owner_is_dead(lock: &FsPath) -> io::Result<bool> {
    let file = match OpenOptions::new().read(true).write(true).open(lock) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Removes a directory tree; returns how many files it held.
fn remove_tree(dir: &FsPath) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut files = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            files += remove_tree(&entry.path())?;
        } else {
            ignore_missing(std::fs::remove_file(entry.path()))?;
            files += 1;
        }
    }
    ignore_missing(std::fs::remove_dir(dir))?;
    Ok(files)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &FsPath) -> usize {
        walk(&root.join(PREFIX))
    }

    fn walk(dir: &FsPath) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }

    #[test]
    fn a_dead_process_leftovers_go_and_a_live_one_stays() {
        let root = tempfile::tempdir().unwrap();
        let live = Lease::take(Some(root.path())).unwrap();
        let dead = Lease::take(Some(root.path())).unwrap();
        for lease in [&live, &dead] {
            let path = root.path().join(lease.new_path().as_ref());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path.with_file_name("part#1"), b"partial").unwrap();
        }
        drop(dead);
        // Two files per lease (lock and part); the dead one's go whatever their age.
        assert_eq!(files(root.path()), 4);
        assert_eq!(
            sweep_local(root.path(), Duration::from_secs(3600)).unwrap(),
            1
        );
        assert_eq!(files(root.path()), 2);
        drop(live);
        assert_eq!(
            sweep_local(root.path(), Duration::from_secs(3600)).unwrap(),
            1
        );
        assert_eq!(files(root.path()), 0);
    }
}
