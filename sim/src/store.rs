//! Persistence of the simulated world: an SQLite database, `DIR/world.db`,
//! in WAL mode, one row per object.
//!
//! Tables:
//!
//! * `objects (kind, key, gen, body)` — one row per accelerator, listener,
//!   endpoint group, health check, backend service, URL map, target proxy,
//!   forwarding rule, gateway, peering, route, unhealthy region and
//!   idempotency token; `body` is the
//!   object as JSON, or NULL once it is deleted (a tombstone, so that
//!   another process can tell a deletion from an object it never read);
//! * `counters (kind, key, gen, body)` — call counters per operation and
//!   rate-limit meters per bucket: what every call, reads included, moves;
//! * `history (seq, at_ms, operation, target, detail, request_id)` — every
//!   successful write, appended, with the request id of the API call that
//!   made it (NULL outside an API call; the column is added to databases
//!   made before it was kept);
//! * `meta (key, value)` — the format, the database's identity, the
//!   generation, the id counter and the settings.
//!
//! Every API call is one `BEGIN IMMEDIATE` transaction, so processes that
//! share a directory are serialised by SQLite's own lock and a process
//! killed mid-call leaves the last committed world. Each transaction bumps
//! the generation and stamps the rows it wrote with it.
//!
//! A store keeps the world in memory. A call first reads the generation;
//! if another process committed since, it reads only the rows stamped
//! after the generation it holds, then runs, then writes only the rows it
//! touched ([`Table`] remembers which). An API call therefore costs what it
//! touches, not the size of the world; the first call of a process reads
//! the world once.
//!
//! WAL with `synchronous = NORMAL`: a commit survives a killed process but
//! not necessarily a power cut, which a simulated world need not.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::world::{HistoryEntry, Table, World};

/// The layout this version writes; a database with another is refused.
const FORMAT: &str = "1";

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
    /// The database could not be opened, read or written.
    #[error("simulated cloud database {path}: {cause}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause (part of the message, not a chained source).
        cause: rusqlite::Error,
    },
    /// A row is not what this version understands.
    #[error("simulated cloud database {path}: {what} is unreadable: {cause}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which row.
        what: String,
        /// The cause (part of the message, not a chained source).
        cause: serde_json::Error,
    },
    /// The directory holds a world in a layout this version does not read.
    #[error(
        "{path} holds a simulated world in {found}, which this version of meridian no longer reads: it keeps the world in {expected}. Move the directory aside (or delete {path}) and recreate the world, e.g. `meridian --sim DIR apply --yes`"
    )]
    OldFormat {
        /// The file found.
        path: PathBuf,
        /// What it is.
        found: String,
        /// What this version reads.
        expected: String,
    },
}

/// A world persisted in a directory.
#[derive(Debug, Clone)]
pub struct SimStore {
    dir: PathBuf,
    db: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    conn: Connection,
    cache: Option<Cached>,
}

/// The world as of one generation of one database.
#[derive(Debug)]
struct Cached {
    instance: String,
    generation: i64,
    next_id: u64,
    settings: String,
    world: Arc<World>,
}

/// What a row of `objects` or `counters` is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Accelerator,
    Listener,
    EndpointGroup,
    HealthCheck,
    BackendService,
    UrlMap,
    Frontend,
    TransitGateway,
    Peering,
    Route,
    UnhealthyRegion,
    Idempotency,
    Call,
    Meter,
}

impl Kind {
    const OBJECTS: [Kind; 12] = [
        Kind::Accelerator,
        Kind::Listener,
        Kind::EndpointGroup,
        Kind::HealthCheck,
        Kind::BackendService,
        Kind::UrlMap,
        Kind::Frontend,
        Kind::TransitGateway,
        Kind::Peering,
        Kind::Route,
        Kind::UnhealthyRegion,
        Kind::Idempotency,
    ];
    const COUNTERS: [Kind; 2] = [Kind::Call, Kind::Meter];

    fn name(self) -> &'static str {
        match self {
            Kind::Accelerator => "accelerator",
            Kind::Listener => "listener",
            Kind::EndpointGroup => "endpoint_group",
            Kind::HealthCheck => "health_check",
            Kind::BackendService => "backend_service",
            Kind::UrlMap => "url_map",
            Kind::Frontend => "gcp_frontend",
            Kind::TransitGateway => "transit_gateway",
            Kind::Peering => "peering",
            Kind::Route => "route",
            Kind::UnhealthyRegion => "unhealthy_region",
            Kind::Idempotency => "idempotency",
            Kind::Call => "call",
            Kind::Meter => "meter",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::OBJECTS
            .into_iter()
            .chain(Kind::COUNTERS)
            .find(|kind| kind.name() == name)
    }

    fn table(self) -> &'static str {
        match self {
            Kind::Call | Kind::Meter => "counters",
            _ => "objects",
        }
    }
}

/// Calls `$body` with `$table` bound to the world's table of `$kind`.
macro_rules! with_table {
    ($world:expr, $kind:expr, |$table:ident| $body:expr) => {
        match $kind {
            Kind::Accelerator => {
                let $table = &mut $world.accelerators;
                $body
            }
            Kind::Listener => {
                let $table = &mut $world.listeners;
                $body
            }
            Kind::EndpointGroup => {
                let $table = &mut $world.endpoint_groups;
                $body
            }
            Kind::HealthCheck => {
                let $table = &mut $world.health_checks;
                $body
            }
            Kind::BackendService => {
                let $table = &mut $world.backend_services;
                $body
            }
            Kind::UrlMap => {
                let $table = &mut $world.url_maps;
                $body
            }
            Kind::Frontend => {
                let $table = &mut $world.frontends;
                $body
            }
            Kind::TransitGateway => {
                let $table = &mut $world.transit_gateways;
                $body
            }
            Kind::Peering => {
                let $table = &mut $world.peerings;
                $body
            }
            Kind::Route => {
                let $table = &mut $world.routes;
                $body
            }
            Kind::UnhealthyRegion => {
                let $table = &mut $world.unhealthy_regions;
                $body
            }
            Kind::Idempotency => {
                let $table = &mut $world.idempotency;
                $body
            }
            Kind::Call => {
                let $table = &mut $world.calls;
                $body
            }
            Kind::Meter => {
                let $table = &mut $world.meters;
                $body
            }
        }
    };
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, key TEXT NOT NULL, gen INTEGER NOT NULL, body TEXT,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_by_gen ON objects (gen);
CREATE TABLE IF NOT EXISTS counters (
    kind TEXT NOT NULL, key TEXT NOT NULL, gen INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_by_gen ON counters (gen);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
    operation TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL,
    request_id TEXT);
";

/// Brings a database made by an earlier version of this layout up to
/// [`SCHEMA`]: columns added since are added, nullable, so older rows read
/// as `None`. Idempotent, and safe with another process doing the same.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    if has_column(conn, "history", "request_id")? {
        return Ok(());
    }
    match conn.execute_batch("ALTER TABLE history ADD COLUMN request_id TEXT") {
        Ok(()) => Ok(()),
        // Another process added it between the look and the change.
        Err(_) if has_column(conn, "history", "request_id")? => Ok(()),
        Err(error) => Err(error),
    }
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut statement = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        if row.get::<_, String>(1)? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

impl SimStore {
    /// Opens (creating if needed) the world in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|cause| StoreError::Io {
            path: dir.clone(),
            cause,
        })?;
        let old = dir.join("world.json");
        if old.exists() {
            return Err(StoreError::OldFormat {
                path: old,
                found: "one JSON file (world.json)".to_owned(),
                expected: "an SQLite database (world.db)".to_owned(),
            });
        }
        let db = dir.join("world.db");
        let database = |cause| StoreError::Database {
            path: db.clone(),
            cause,
        };
        let conn = Connection::open(&db).map_err(database)?;
        conn.busy_timeout(std::time::Duration::from_secs(60))
            .map_err(database)?;
        // `journal_mode` answers with the mode now in force.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(database)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "the simulated world's database is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(database)?;
        conn.execute_batch(SCHEMA).map_err(database)?;
        migrate(&conn).map_err(database)?;
        let format: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(database)?;
        match format.as_deref() {
            None => {
                let instance = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?1), ('instance', ?2), ('generation', '0')",
                    params![FORMAT, instance],
                )
                .map_err(database)?;
            }
            Some(FORMAT) => {}
            Some(other) => {
                return Err(StoreError::OldFormat {
                    path: db.clone(),
                    found: format!("database layout {other}"),
                    expected: format!("layout {FORMAT}"),
                });
            }
        }
        Ok(Self {
            dir,
            db,
            inner: Arc::new(Mutex::new(Inner { conn, cache: None })),
        })
    }

    /// The directory holding the world.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn database(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |cause| StoreError::Database {
            path: self.db.clone(),
            cause,
        }
    }

    fn corrupt(&self, what: String) -> impl FnOnce(serde_json::Error) -> StoreError + '_ {
        move |cause| StoreError::Corrupt {
            path: self.db.clone(),
            what,
            cause,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(inner) => inner,
            Err(poisoned) => {
                // A call panicked half-way: what is in memory may be half
                // changed and was never committed. Forget it.
                let mut inner = poisoned.into_inner();
                inner.cache = None;
                inner
            }
        }
    }

    /// The world as of now (without its history: see [`SimStore::history`]).
    /// Cheap: it is the store's own copy, shared.
    pub fn read(&self) -> Result<Arc<World>, StoreError> {
        let mut inner = self.inner();
        let Inner { conn, cache } = &mut *inner;
        let tx = conn.transaction().map_err(self.database())?;
        self.refresh(&tx, cache)?;
        tx.commit().map_err(self.database())?;
        Ok(cache
            .as_ref()
            .map(|c| Arc::clone(&c.world))
            .unwrap_or_default())
    }

    /// Every successful write so far, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        let inner = self.inner();
        let mut statement = inner
            .conn
            .prepare(
                "SELECT at_ms, operation, target, detail, request_id FROM history ORDER BY seq",
            )
            .map_err(self.database())?;
        let rows = statement
            .query_map([], |row| {
                Ok(HistoryEntry {
                    at_ms: row.get::<_, i64>(0)?.try_into().unwrap_or(0),
                    operation: row.get(1)?,
                    target: row.get(2)?,
                    detail: row.get(3)?,
                    request_id: row.get(4)?,
                })
            })
            .map_err(self.database())?;
        rows.collect::<Result<_, _>>().map_err(self.database())
    }

    /// Runs `f` on the world in one transaction and commits what it
    /// changed. What `f` changed is committed even when it reports an
    /// error, because failed calls are counted too.
    pub fn transact<R>(&self, f: impl FnOnce(&mut World) -> R) -> Result<R, StoreError> {
        let mut inner = self.inner();
        let Inner { conn, cache } = &mut *inner;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.database())?;
        self.refresh(&tx, cache)?;
        let Some(cached) = cache.as_mut() else {
            unreachable!("refresh fills the cache");
        };
        let world = Arc::make_mut(&mut cached.world);
        let result = f(world);
        match self.save(&tx, cached) {
            Ok(()) => {}
            Err(error) => {
                *cache = None;
                return Err(error);
            }
        }
        if let Err(cause) = tx.commit() {
            *cache = None;
            return Err(self.database()(cause));
        }
        Ok(result)
    }

    /// Brings `cache` to the database's generation: a full read when there
    /// is none (or the database is another one), else the rows stamped
    /// since.
    fn refresh(&self, conn: &Connection, cache: &mut Option<Cached>) -> Result<(), StoreError> {
        let meta = |key: &str| -> Result<Option<String>, StoreError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(self.database())
        };
        let generation: i64 = meta("generation")?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        let instance = meta("instance")?.unwrap_or_default();
        let since = match cache {
            Some(c) if c.instance == instance && c.generation == generation => return Ok(()),
            Some(c) if c.instance == instance && c.generation < generation => Some(c.generation),
            _ => None,
        };
        if since.is_none() {
            *cache = Some(Cached {
                instance: instance.clone(),
                generation: 0,
                next_id: 0,
                settings: String::new(),
                world: Arc::new(World::default()),
            });
        }
        let Some(cached) = cache.as_mut() else {
            unreachable!("filled above");
        };
        let world = Arc::make_mut(&mut cached.world);
        for table in ["objects", "counters"] {
            let sql = format!(
                "SELECT kind, key, body FROM {table} WHERE gen > ?1{}",
                if since.is_none() {
                    " AND body IS NOT NULL"
                } else {
                    ""
                }
            );
            let mut statement = conn.prepare(&sql).map_err(self.database())?;
            let mut rows = statement
                .query([since.unwrap_or(-1)])
                .map_err(self.database())?;
            while let Some(row) = rows.next().map_err(self.database())? {
                let kind: String = row.get(0).map_err(self.database())?;
                let key: String = row.get(1).map_err(self.database())?;
                let body: Option<String> = row.get(2).map_err(self.database())?;
                let Some(kind) = Kind::parse(&kind) else {
                    // A kind from a later version: not this version's to read.
                    continue;
                };
                with_table!(world, kind, |rows| load_row(self, rows, kind, key, body)?);
            }
        }
        let next_id: u64 = meta("next_id")?.and_then(|n| n.parse().ok()).unwrap_or(0);
        world.next_id = next_id;
        let settings = meta("settings")?.unwrap_or_default();
        if settings != cached.settings {
            world.settings = if settings.is_empty() {
                crate::world::Settings::default()
            } else {
                serde_json::from_str(&settings).map_err(self.corrupt("the settings".to_owned()))?
            };
        }
        cached.instance = instance;
        cached.generation = generation;
        cached.next_id = next_id;
        cached.settings = settings;
        Ok(())
    }

    /// Writes what the transaction changed in `cached`'s world.
    fn save(&self, conn: &Connection, cached: &mut Cached) -> Result<(), StoreError> {
        let generation = cached.generation + 1;
        let world = Arc::make_mut(&mut cached.world);
        let mut changed = false;
        for kind in Kind::OBJECTS.into_iter().chain(Kind::COUNTERS) {
            let wrote = with_table!(world, kind, |rows| save_rows(
                self, conn, rows, kind, generation
            )?);
            changed |= wrote;
        }
        if world.next_id != cached.next_id {
            put_meta(self, conn, "next_id", &world.next_id.to_string())?;
            cached.next_id = world.next_id;
            changed = true;
        }
        let settings = serde_json::to_string(&world.settings)
            .map_err(self.corrupt("the settings".to_owned()))?;
        if settings != cached.settings {
            put_meta(self, conn, "settings", &settings)?;
            cached.settings = settings;
            changed = true;
        }
        if !world.history.is_empty() {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO history (at_ms, operation, target, detail, request_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.database())?;
            for entry in world.history.drain(..) {
                insert
                    .execute(params![
                        i64::try_from(entry.at_ms).unwrap_or(i64::MAX),
                        entry.operation,
                        entry.target,
                        entry.detail,
                        entry.request_id
                    ])
                    .map_err(self.database())?;
            }
            changed = true;
        }
        if changed {
            put_meta(self, conn, "generation", &generation.to_string())?;
            cached.generation = generation;
        }
        Ok(())
    }
}

fn put_meta(store: &SimStore, conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
        .and_then(|mut statement| statement.execute(params![key, value]))
        .map_err(store.database())?;
    Ok(())
}

fn load_row<V: DeserializeOwned>(
    store: &SimStore,
    rows: &mut Table<V>,
    kind: Kind,
    key: String,
    body: Option<String>,
) -> Result<(), StoreError> {
    let value = match body {
        Some(body) => Some(
            serde_json::from_str(&body).map_err(store.corrupt(format!("{} {key}", kind.name())))?,
        ),
        None => None,
    };
    rows.load(key, value);
    Ok(())
}

/// Writes the rows of `rows` changed since the last save; whether any were.
fn save_rows<V: Serialize>(
    store: &SimStore,
    conn: &Connection,
    rows: &mut Table<V>,
    kind: Kind,
    generation: i64,
) -> Result<bool, StoreError> {
    let dirty = rows.take_dirty();
    if dirty.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "INSERT OR REPLACE INTO {} (kind, key, gen, body) VALUES (?1, ?2, ?3, ?4)",
        kind.table()
    );
    let mut upsert = conn.prepare_cached(&sql).map_err(store.database())?;
    let mut delete = conn
        .prepare_cached("DELETE FROM counters WHERE kind = ?1 AND key = ?2")
        .map_err(store.database())?;
    for (key, row) in dirty {
        match row {
            Some(row) => {
                let body = serde_json::to_string(row)
                    .map_err(store.corrupt(format!("{} {key}", kind.name())))?;
                upsert
                    .execute(params![kind.name(), key, generation, body])
                    .map_err(store.database())?;
            }
            // Counters are never deleted by a call; objects leave a tombstone.
            None if kind.table() == "counters" => {
                delete
                    .execute(params![kind.name(), key])
                    .map_err(store.database())?;
            }
            None => {
                upsert
                    .execute(params![kind.name(), key, generation, None::<String>])
                    .map_err(store.database())?;
            }
        }
    }
    Ok(true)
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

    #[test]
    fn two_stores_on_one_directory_see_each_others_writes_and_deletions() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Two opens stand for two processes: each has its own connection
        // and its own copy of the world.
        let one = SimStore::open(dir.path()).expect("open");
        let two = SimStore::open(dir.path()).expect("open");
        one.transact(|world| {
            world.unhealthy_regions.insert("us-east-1".into(), true);
            world.unhealthy_regions.insert("eu-west-1".into(), true);
            world.settings.deploy_delay_ms = 7;
        })
        .expect("write");
        let seen = two.read().expect("read");
        assert_eq!(seen.unhealthy_regions.len(), 2);
        assert_eq!(seen.settings.deploy_delay_ms, 7);
        two.transact(|world| world.unhealthy_regions.remove("us-east-1"))
            .expect("delete");
        let seen = one.read().expect("read");
        assert_eq!(
            seen.unhealthy_regions.keys().collect::<Vec<_>>(),
            ["eu-west-1"]
        );
        // A third process starting cold reads the same world.
        let three = SimStore::open(dir.path()).expect("open");
        let seen = three.read().expect("read");
        assert_eq!(
            seen.unhealthy_regions.keys().collect::<Vec<_>>(),
            ["eu-west-1"]
        );
        assert_eq!(seen.settings.deploy_delay_ms, 7);
    }

    #[test]
    fn a_transaction_writes_only_the_rows_it_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SimStore::open(dir.path()).expect("open");
        store
            .transact(|world| {
                for n in 0..50 {
                    world.unhealthy_regions.insert(format!("region-{n}"), false);
                }
            })
            .expect("write");
        store
            .transact(|world| {
                if let Some(flag) = world.unhealthy_regions.get_mut("region-7") {
                    *flag = true;
                }
                world.calls.entry_or_default("Read").ok += 1;
            })
            .expect("write");
        let conn = Connection::open(dir.path().join("world.db")).expect("db");
        let generation: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get(0)
            })
            .expect("generation");
        let written: Vec<String> = conn
            .prepare("SELECT key FROM objects WHERE gen = ?1 UNION ALL SELECT key FROM counters WHERE gen = ?1")
            .expect("sql")
            .query_map([&generation], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("keys");
        assert_eq!(written, ["region-7", "Read"]);
    }

    #[test]
    fn a_history_table_without_request_ids_gains_the_column_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // The layout before request ids were kept.
            let conn = Connection::open(dir.path().join("world.db")).expect("db");
            conn.execute_batch(
                "CREATE TABLE history (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,
                    operation TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
                 INSERT INTO history (at_ms, operation, target, detail)
                    VALUES (1, 'CreateAccelerator', 'arn:old', 'name=old');",
            )
            .expect("old layout");
        }
        let store = SimStore::open(dir.path()).expect("open migrates");
        // A second open (another process) finds the column there.
        let again = SimStore::open(dir.path()).expect("open again");
        store
            .transact(|world| {
                world.record("UpdateAccelerator", "arn:old", "enabled=false");
                if let Some(entry) = world.history.last_mut() {
                    entry.request_id = Some("r-1".to_owned());
                }
            })
            .expect("write");
        let history = again.history().expect("history");
        let seen: Vec<(&str, Option<&str>)> = history
            .iter()
            .map(|e| (e.operation.as_str(), e.request_id.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("CreateAccelerator", None),
                ("UpdateAccelerator", Some("r-1"))
            ]
        );
    }

    #[test]
    fn an_old_world_json_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("world.json"), "{}").expect("write");
        let error = SimStore::open(dir.path()).expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("world.json"), "{message}");
        assert!(message.contains("world.db"), "{message}");
        assert!(message.contains("recreate the world"), "{message}");
        assert!(!dir.path().join("world.db").exists(), "nothing written");
    }
}
