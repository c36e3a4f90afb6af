//! Persistence of the simulated world in a directory.
//!
//! Every API call is one transaction: take an exclusive lock on `DIR/lock`,
//! read `DIR/world.json`, mutate, write a temporary file, fsync and rename it
//! over the old one, release the lock. Two processes on one directory are
//! therefore serialised and a reader never sees a torn file, even if a writer
//! is killed mid-write.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::world::World;

/// Errors reading or writing the world.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory or a file in it could not be used.
    #[error("simulated cloud directory {path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause (part of the message, not a chained source).
        cause: std::io::Error,
    },
    /// `world.json` is not a world this version understands.
    #[error("simulated cloud state {path} is unreadable: {cause}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause (part of the message, not a chained source).
        cause: serde_json::Error,
    },
}

/// A world persisted in a directory.
#[derive(Debug, Clone)]
pub struct SimStore {
    dir: PathBuf,
}

impl SimStore {
    /// Opens (creating if needed) the world in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|cause| StoreError::Io {
            path: dir.clone(),
            cause,
        })?;
        Ok(Self { dir })
    }

    /// The directory holding the world.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn world_path(&self) -> PathBuf {
        self.dir.join("world.json")
    }

    fn io(&self, path: PathBuf) -> impl FnOnce(std::io::Error) -> StoreError {
        move |cause| StoreError::Io { path, cause }
    }

    fn lock(&self) -> Result<File, StoreError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io(path.clone()))?;
        file.lock().map_err(self.io(path))?;
        Ok(file)
    }

    fn load(&self) -> Result<World, StoreError> {
        let path = self.world_path();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|cause| StoreError::Corrupt { path, cause })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(World::default()),
            Err(error) => Err(self.io(path)(error)),
        }
    }

    fn save(&self, world: &World) -> Result<(), StoreError> {
        let path = self.world_path();
        let tmp = self
            .dir
            .join(format!("world.json.tmp.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(world).map_err(|cause| StoreError::Corrupt {
            path: path.clone(),
            cause,
        })?;
        let mut file = File::create(&tmp).map_err(self.io(tmp.clone()))?;
        file.write_all(&bytes).map_err(self.io(tmp.clone()))?;
        file.sync_all().map_err(self.io(tmp.clone()))?;
        fs::rename(&tmp, &path).map_err(self.io(path))?;
        Ok(())
    }

    /// Reads the world under the lock.
    pub fn read(&self) -> Result<World, StoreError> {
        let _lock = self.lock()?;
        self.load()
    }

    /// Runs `f` on the world under the lock and persists the result. The
    /// world is written even when `f` reports an error, because failed calls
    /// are counted too.
    pub fn transact<R>(&self, f: impl FnOnce(&mut World) -> R) -> Result<R, StoreError> {
        let _lock = self.lock()?;
        let mut world = self.load()?;
        let result = f(&mut world);
        self.save(&world)?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_from_many_threads_never_lose_an_update() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SimStore::open(dir.path()).expect("open");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        store
                            .transact(|world| world.next_id += 1)
                            .expect("transact");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert_eq!(store.read().expect("read").next_id, 100);
    }
}
