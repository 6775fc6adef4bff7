//! The staging area, where uploads stream before they are complete.
//!
//! Each process stages under `staging/<instance>/`. On local disk it also holds an exclusive
//! lock on `staging/<instance>.lock` for as long as it lives, so a later start can tell what a
//! dead process left behind (its lock is free: removed at once, whatever its age) from the
//! uploads of a live one sharing the directory (its lock is held: left alone).

use std::{
    fs::{File, OpenOptions, TryLockError},
    io,
    os::unix::fs::MetadataExt,
    path::Path as FsPath,
    time::{Duration, SystemTime},
};

use object_store::path::Path;
use uuid::Uuid;

/// The staging area's prefix in the store.
pub(super) const PREFIX: &str = "staging";
const LOCK_SUFFIX: &str = ".lock";
/// Attempts at a lock file no sweep got hold of first.
const LEASE_ATTEMPTS: usize = 8;

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
        let Some(root) = root else {
            return Ok(Self::new(Uuid::now_v7(), None));
        };
        let staging = root.join(PREFIX);
        std::fs::create_dir_all(&staging)?;
        for _ in 0..LEASE_ATTEMPTS {
            let instance = Uuid::now_v7();
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(staging.join(format!("{instance}{LOCK_SUFFIX}")))?;
            // A sweep may take the new, unlocked file for a dead process's: then it holds the
            // lock (WouldBlock), or has already unlinked the file (no links left).
            match file.try_lock() {
                Ok(()) if file.metadata()?.nlink() > 0 => {
                    return Ok(Self::new(instance, Some(file)));
                }
                Ok(()) | Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        Err(io::Error::other("could not claim a staging directory"))
    }

    fn new(instance: Uuid, lock: Option<File>) -> Self {
        Self {
            instance,
            dir: Path::from(format!("{PREFIX}/{instance}")),
            _lock: lock,
        }
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
        let instance = |name: &str| Uuid::parse_str(name).is_ok();
        if let Some(owner) = name.strip_suffix(LOCK_SUFFIX).filter(|n| instance(n)) {
            if let Some(_held) = lock_if_dead(&path)? {
                // The directory first (a directory without its lock file is never live), and
                // under the lock, so that no process can claim this name meanwhile.
                removed += remove_tree(&staging.join(owner))?;
                ignore_missing(std::fs::remove_file(&path))?;
            }
        } else if instance(&name) && entry.file_type()?.is_dir() {
            if !staging.join(format!("{name}{LOCK_SUFFIX}")).exists() {
                removed += remove_tree(&path)?;
            }
        } else if entry.file_type()?.is_file() && is_older(&path, cutoff)? {
            ignore_missing(std::fs::remove_file(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether the file at `path` was last modified before `cutoff` (a vanished file is not).
fn is_older(path: &FsPath, cutoff: SystemTime) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.modified()? <= cutoff),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The lock file, locked, if no process held it (a vanished file is not dead: it was swept).
fn lock_if_dead(lock: &FsPath) -> io::Result<Option<File>> {
    // flock needs no write access: another account's lock files can be tested too.
    let file = match File::open(lock) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
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
        // Names that are not instances are left to the age rule, whatever they look like.
        let staging = root.path().join(PREFIX);
        std::fs::write(staging.join(".lock"), b"").unwrap();
        std::fs::create_dir_all(staging.join("not-an-instance")).unwrap();
        std::fs::write(staging.join("not-an-instance/kept"), b"").unwrap();
        let hour = Duration::from_secs(3600);
        // Two files per lease (lock and part); the dead one's go whatever their age.
        assert_eq!(files(root.path()), 6);
        assert_eq!(sweep_local(root.path(), hour).unwrap(), 1);
        assert_eq!(files(root.path()), 4);
        drop(live);
        assert_eq!(sweep_local(root.path(), hour).unwrap(), 1);
        assert_eq!(files(root.path()), 2);
        // A fresh lease is not mistaken for a dead one; old loose files go.
        let fresh = Lease::take(Some(root.path())).unwrap();
        assert_eq!(sweep_local(root.path(), Duration::ZERO).unwrap(), 1);
        assert!(
            staging
                .join(format!("{}{LOCK_SUFFIX}", fresh.instance))
                .exists()
        );
        assert!(staging.join("not-an-instance/kept").exists());
    }
}
