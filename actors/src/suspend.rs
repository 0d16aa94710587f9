//! Suspended destinations (`impulsectl suspend DOMAIN [--binding B] [--duration D]`,
//! `impulsectl resume DOMAIN`): while suspended, a domain's containers deliver nothing —
//! mail is still accepted and queued — until resumed or until the suspension's end.
//!
//! Suspensions survive restarts: they live in `DATA_DIR/suspensions.json`, rewritten
//! whole (temporary file, fsync, rename, fsync of the directory — on the pool) before
//! the command is answered, and read at start before any message is queued.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// One suspension: of `domain`, for every binding or one, until a time or for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub domain: String,
    #[serde(default)]
    pub binding: Option<String>,
    /// Ms since the epoch when it ends by itself; none = until `resume`.
    #[serde(default)]
    pub until_ms: Option<u64>,
}

/// The suspensions in force, shared by the control actor and the domain containers.
pub struct Suspensions {
    path: PathBuf,
    /// By (lower-case domain, binding).
    map: RwLock<BTreeMap<(String, Option<String>), Suspension>>,
}

impl Suspensions {
    /// Read `DATA_DIR/suspensions.json` (none yet: nothing is suspended).
    pub fn load(data_dir: &Path) -> Result<Suspensions, String> {
        let path = data_dir.join("suspensions.json");
        let list: Vec<Suspension> = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let map = list
            .into_iter()
            .map(|s| ((s.domain.to_ascii_lowercase(), s.binding.clone()), s))
            .collect();
        Ok(Suspensions {
            path,
            map: RwLock::new(map),
        })
    }

    /// Whether the queue of `domain` from `binding` is suspended at `now_ms`; when it
    /// is until a time, that time.
    pub fn check(&self, domain: &str, binding: Option<&str>, now_ms: u64) -> Option<Option<u64>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return None; // the common case, asked at every dispatch: no allocation
        }
        let key = domain.to_ascii_lowercase();
        let any = map.get(&(key.clone(), None));
        let own = binding.and_then(|b| map.get(&(key, Some(b.to_string()))));
        [any, own]
            .into_iter()
            .flatten()
            .filter(|s| s.until_ms.is_none_or(|u| u > now_ms))
            .map(|s| s.until_ms)
            .max_by_key(|u| u.unwrap_or(u64::MAX))
    }

    /// Add (or replace) a suspension; returns the new list to persist.
    pub fn suspend(&self, s: Suspension) -> Vec<Suspension> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.insert((s.domain.to_ascii_lowercase(), s.binding.clone()), s);
        map.values().cloned().collect()
    }

    /// Lift every suspension of `domain`; how many there were, and the list to persist.
    pub fn resume(&self, domain: &str) -> (usize, Vec<Suspension>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let key = domain.to_ascii_lowercase();
        let before = map.len();
        map.retain(|(d, _), _| *d != key);
        (before - map.len(), map.values().cloned().collect())
    }

    /// Where the list is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Write `list` to `path` durably: a temporary file, fsync, rename, fsync the directory.
/// Blocking: run it on the pool.
pub fn persist(path: &Path, list: &[Suspension]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(list).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(domain: &str, binding: Option<&str>, until: Option<u64>) -> Suspension {
        Suspension {
            domain: domain.into(),
            binding: binding.map(str::to_string),
            until_ms: until,
        }
    }

    #[test]
    fn check_covers_bindings_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let sus = Suspensions::load(dir.path()).unwrap();
        assert_eq!(sus.check("d.test", None, 0), None);
        sus.suspend(s("D.test", None, None));
        assert_eq!(
            sus.check("d.test", Some("b1"), 0),
            Some(None),
            "every binding"
        );
        sus.resume("d.test");
        sus.suspend(s("d.test", Some("b1"), Some(1000)));
        assert_eq!(sus.check("d.test", Some("b1"), 999), Some(Some(1000)));
        assert_eq!(sus.check("d.test", Some("b1"), 1000), None, "ended");
        assert_eq!(sus.check("d.test", None, 0), None, "other bindings go on");
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let sus = Suspensions::load(dir.path()).unwrap();
        let list = sus.suspend(s("d.test", None, Some(5)));
        persist(sus.path(), &list).unwrap();
        let again = Suspensions::load(dir.path()).unwrap();
        assert_eq!(again.check("d.test", None, 0), Some(Some(5)));
        let (n, list) = again.resume("d.test");
        assert_eq!(n, 1);
        persist(again.path(), &list).unwrap();
        assert_eq!(
            Suspensions::load(dir.path())
                .unwrap()
                .check("d.test", None, 0),
            None
        );
    }
}
