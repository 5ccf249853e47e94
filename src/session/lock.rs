//! One session per repository: an exclusive `flock` on `.autoresearch/lock`. The kernel
//! drops the lock when the process dies, so a crashed or SIGKILLed session never leaves it
//! stuck.

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another autoresearch session{pid} is running on this repository; wait for it to finish or stop it (Ctrl-C) first"
    )]
    Held { pid: String },
    #[error("cannot create the lock file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the life of the session.
pub struct SessionLock {
    _lock: Flock<File>,
}

impl SessionLock {
    pub fn acquire(dir: &Path) -> Result<SessionLock, LockError> {
        let path = dir.join("lock");
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                lock.set_len(0).map_err(io)?;
                lock.rewind().map_err(io)?;
                write!(lock, "{}", std::process::id()).map_err(io)?;
                lock.sync_all().map_err(io)?;
                Ok(SessionLock { _lock: lock })
            }
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                Err(LockError::Held {
                    pid: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = SessionLock::acquire(dir.path()).unwrap();
        let e = SessionLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("another autoresearch session") && e.contains("pid"),
            "{e}"
        );
        drop(first);
        assert!(SessionLock::acquire(dir.path()).is_ok());
    }
}
