//! Persistence of the simulated world in a directory.
//!
//! Every API call is one transaction: take an exclusive lock on `DIR/lock`,
//! read `DIR/world.json`, mutate, write a temporary file and rename it over
//! the old one, release the lock. Two processes on one directory are
//! therefore serialised and a reader never sees a torn file, even if a writer
//! is killed mid-write.
//!
//! A store keeps the world it last read or wrote in memory, with the file's
//! identity (inode, size, modification time) at that moment. While the file
//! still has that identity, no other process wrote it and the world is not
//! parsed again: a run of a thousand calls costs a thousand writes of the
//! file, not a thousand parses of it as well. The file is not fsynced: a
//! simulated world need survive a killed process (the rename is atomic), not
//! a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
    /// The world as last read or written, shared by clones of this store.
    cache: Arc<Mutex<Option<Cached>>>,
}

/// The identity of `world.json` when a cached world matched it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            inode,
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    world: World,
}

impl SimStore {
    /// Opens (creating if needed) the world in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|cause| StoreError::Io {
            path: dir.clone(),
            cause,
        })?;
        Ok(Self {
            dir,
            cache: Arc::new(Mutex::new(None)),
        })
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

    fn stamp(&self) -> Result<Option<Stamp>, StoreError> {
        let path = self.world_path();
        match fs::metadata(&path) {
            Ok(metadata) => Ok(Some(Stamp::of(&metadata))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(self.io(path)(error)),
        }
    }

    /// The cache, with a world matching the file in it. Called under the
    /// file lock.
    fn current(&self) -> Result<std::sync::MutexGuard<'_, Option<Cached>>, StoreError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stamp = self.stamp()?;
        let fresh = matches!((&*cache, &stamp), (Some(c), Some(s)) if c.stamp == *s);
        if !fresh {
            *cache = None;
            let world = match stamp {
                None => World::default(),
                Some(_) => {
                    let path = self.world_path();
                    let bytes = fs::read(&path).map_err(self.io(path.clone()))?;
                    serde_json::from_slice(&bytes)
                        .map_err(|cause| StoreError::Corrupt { path, cause })?
                }
            };
            // A missing file is cached under no stamp: it never matches,
            // so the next call looks again.
            if let Some(stamp) = self.stamp()? {
                *cache = Some(Cached { stamp, world });
            } else {
                *cache = Some(Cached {
                    stamp: Stamp {
                        inode: u64::MAX,
                        len: u64::MAX,
                        modified: None,
                    },
                    world,
                });
            }
        }
        Ok(cache)
    }

    fn save(&self, world: &World) -> Result<Stamp, StoreError> {
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
        drop(file);
        fs::rename(&tmp, &path).map_err(self.io(path.clone()))?;
        let metadata = fs::metadata(&path).map_err(self.io(path))?;
        Ok(Stamp::of(&metadata))
    }

    /// Reads the world under the lock.
    pub fn read(&self) -> Result<World, StoreError> {
        let _lock = self.lock()?;
        let cache = self.current()?;
        Ok(cache.as_ref().map(|c| c.world.clone()).unwrap_or_default())
    }

    /// Runs `f` on the world under the lock and persists the result. The
    /// world is written even when `f` reports an error, because failed calls
    /// are counted too.
    pub fn transact<R>(&self, f: impl FnOnce(&mut World) -> R) -> Result<R, StoreError> {
        let _lock = self.lock()?;
        let mut cache = self.current()?;
        let Some(cached) = cache.as_mut() else {
            unreachable!("current() fills the cache");
        };
        let result = f(&mut cached.world);
        match self.save(&cached.world) {
            Ok(stamp) => cached.stamp = stamp,
            Err(error) => {
                // What is in memory was never written: forget it.
                *cache = None;
                return Err(error);
            }
        }
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
