//! `orch:plugin/data`: a plugin reads and writes only its own model's resources.
//!
//! Writes are buffered for the call and committed by the method runner in one short
//! transaction when the method succeeds, so the database is never held open across a plugin
//! call and a failed method moves nothing.
//!
//! A write equal to the resource's latest version, or differing from it only in the spec's
//! `volatile` attributes (0.2 `resource-spec.volatile`, e.g. a sync's `timestamp`), is not a
//! change: no new
//! version is stored and the write returns the latest version's number. So a sync of an
//! unchanged fleet adds nothing to the store, and the latest version keeps the volatile values
//! of the last real change. Such a write is still a sighting: the call hands it on as a
//! [`PendingWrite::seen`] and the commit records when the resource was last seen, in the same
//! transaction as the call's versions.

use crate::runtime::wit::v0_2::orch::plugin::{data as wit, types::Error as WitError};
use crate::store::{PendingWrite, ResourceStore};
use std::collections::HashMap;

/// Largest attributes document a plugin may write in one resource version.
const MAX_ATTRIBUTES_BYTES: usize = 4 * 1024 * 1024;

/// Latest (version, attributes) of each (spec, name) of the model, loaded once per call.
/// (spec, name) → (latest version, its attributes; None when that version retired it).
type LatestMap = HashMap<(String, String), (u64, Option<serde_json::Value>)>;

/// Per-call data state.
pub struct DataCapability {
    access: Option<ModelAccess>,
}

struct ModelAccess {
    model: String,
    type_name: String,
    specs: Vec<String>,
    store: ResourceStore,
    max_writes: u64,
    max_writes_origin: String,
    max_write_bytes: u64,
    max_write_bytes_origin: String,
    pending_bytes: u64,
    latest: Option<LatestMap>,
    /// (spec, name) → newest stored version, from the store's index alone: numbering a write
    /// needs no attributes, so it does not load and decode every resource of the model.
    numbers: Option<HashMap<(String, String), u64>>,
    pending: Vec<PendingWrite>,
    /// Sightings of resources whose write changed only volatile attributes: (spec, name) →
    /// the version that stands. One per resource however often it is written, so a plugin
    /// that repeats such writes holds no more than the model's stored resources.
    seen: std::collections::BTreeMap<(String, String), u64>,
    pending_versions: HashMap<(String, String), u64>,
    /// spec → its volatile attribute names (only specs that declare some); shared, so a write
    /// can hold them while it looks up the latest version.
    volatile: HashMap<String, std::sync::Arc<[String]>>,
}

impl DataCapability {
    /// Access to `model`'s resources of the declared `specs`.
    pub fn for_model(
        model: &str,
        type_name: &str,
        specs: Vec<String>,
        store: ResourceStore,
        max_writes: u64,
    ) -> Self {
        DataCapability {
            access: Some(ModelAccess {
                model: model.to_string(),
                type_name: type_name.to_string(),
                specs,
                store,
                max_writes,
                max_writes_origin: "limits.max-writes".into(),
                max_write_bytes: crate::runtime::Limits::default().max_write_bytes,
                max_write_bytes_origin: "limits.max-write-bytes".into(),
                pending_bytes: 0,
                latest: None,
                numbers: None,
                pending: Vec::new(),
                seen: std::collections::BTreeMap::new(),
                pending_versions: HashMap::new(),
                volatile: HashMap::new(),
            }),
        }
    }

    /// Declares the volatile attributes of each spec: a write that changes only those stores
    /// no new version.
    pub fn with_volatile<'a>(
        mut self,
        specs: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Self {
        if let Some(access) = self.access.as_mut() {
            access.volatile = specs
                .into_iter()
                .filter(|(_, names)| !names.is_empty())
                .map(|(spec, names)| (spec.to_string(), names.into()))
                .collect();
        }
        self
    }

    /// Applies a call's limits (count and bytes of buffered writes), naming where each came from.
    pub fn limited_by(mut self, limits: &crate::runtime::EffectiveLimits) -> Self {
        if let Some(a) = &mut self.access {
            a.max_writes = limits.values.max_writes;
            a.max_writes_origin = limits.origin("max-writes").to_string();
            a.max_write_bytes = limits.values.max_write_bytes;
            a.max_write_bytes_origin = limits.origin("max-write-bytes").to_string();
        }
        self
    }

    /// No data access at all (used for `describe`).
    pub fn none() -> Self {
        DataCapability { access: None }
    }

    /// The writes buffered during the call, in order, followed by the sightings of resources
    /// whose writes stored no version ([`PendingWrite::unchanged`] is set on those).
    pub fn into_pending(self) -> Vec<PendingWrite> {
        self.access
            .map(|mut a| {
                let seen = std::mem::take(&mut a.seen);
                a.pending.extend(
                    seen.into_iter()
                        .map(|((spec, name), version)| PendingWrite::seen(spec, name, version)),
                );
                a.pending
            })
            .unwrap_or_default()
    }

    fn access(&mut self) -> Result<&mut ModelAccess, WitError> {
        self.access
            .as_mut()
            .ok_or_else(|| WitError::Denied("data access is not available during describe".into()))
    }
}

impl ModelAccess {
    fn check_spec(&self, spec: &str) -> Result<(), WitError> {
        if self.specs.iter().any(|s| s == spec) {
            Ok(())
        } else {
            Err(WitError::Denied(format!(
                "type `{}` declares no resource spec `{spec}` (declared: {})",
                self.type_name,
                self.specs.join(", ")
            )))
        }
    }

    /// The newest stored version of `key`, 0 if it has none: what a new version is numbered after.
    fn stored_version(&mut self, key: &(String, String)) -> Result<u64, WitError> {
        if let Some(latest) = &self.latest {
            return Ok(latest.get(key).map_or(0, |(v, _)| *v));
        }
        if self.numbers.is_none() {
            let numbers = self
                .store
                .latest_versions_of(&self.model)
                .map_err(|e| WitError::Transient(format!("data store: {e}")))?;
            self.numbers = Some(numbers);
        }
        Ok(self
            .numbers
            .as_ref()
            .and_then(|n| n.get(key).copied())
            .unwrap_or(0))
    }

    /// The latest version's number when `value` equals it, or differs from it only in volatile
    /// attributes of the spec; `None` when the write is a change.
    fn unchanged_but_volatile(
        &mut self,
        key: &(String, String),
        value: &serde_json::Value,
    ) -> Result<Option<u64>, WitError> {
        let ignored = self.volatile.get(&key.0).cloned().unwrap_or_default();
        Ok(match self.latest()?.get(key) {
            Some((version, Some(stored))) if same_but(stored, value, &ignored) => Some(*version),
            _ => None,
        })
    }

    fn latest(&mut self) -> Result<&LatestMap, WitError> {
        if self.latest.is_none() {
            let loaded = self
                .store
                .latest_for_models(&[self.model.as_str()])
                .map_err(|e| WitError::Transient(format!("data store: {e}")))?;
            let map = loaded
                .into_values()
                .flatten()
                .map(|v| {
                    let attributes = (!v.retired).then_some(v.attributes);
                    ((v.spec, v.name), (v.version, attributes))
                })
                .collect();
            self.latest = Some(map);
        }
        Ok(self.latest.as_ref().expect("loaded above"))
    }
}

fn check_name(name: &str) -> Result<(), WitError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(WitError::InvalidArguments(format!(
            "resource name {name:?} must be 1 to 256 characters without control characters"
        )));
    }
    Ok(())
}

impl wit::Host for DataCapability {
    async fn write_resource(
        &mut self,
        spec: String,
        name: String,
        attributes: String,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        Ok(write(self, spec, name, attributes))
    }

    async fn read_resource(
        &mut self,
        spec: String,
        name: String,
    ) -> wasmtime::Result<Result<Option<String>, WitError>> {
        Ok(read(self, spec, name))
    }

    async fn list_resources(
        &mut self,
        spec: String,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        Ok(list(self, spec))
    }

    async fn retire_resource(
        &mut self,
        spec: String,
        name: String,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        Ok(retire(self, spec, name))
    }
}

fn write(
    cap: &mut DataCapability,
    spec: String,
    name: String,
    attributes: String,
) -> Result<u64, WitError> {
    let access = cap.access()?;
    access.check_spec(&spec)?;
    check_name(&name)?;
    if access.pending.len() as u64 >= access.max_writes {
        return Err(WitError::Denied(format!(
            "write limit of {} resource versions per call reached ({})",
            access.max_writes, access.max_writes_origin
        )));
    }
    // Buffered writes are held by the host until the call ends: their bytes count too.
    let bytes = (spec.len() + name.len() + attributes.len()) as u64;
    if access.pending_bytes.saturating_add(bytes) > access.max_write_bytes {
        return Err(WitError::Denied(format!(
            "write byte limit of {} bytes per call reached: {} bytes are buffered and {spec}/{name} adds {bytes} ({})",
            access.max_write_bytes, access.pending_bytes, access.max_write_bytes_origin
        )));
    }
    if attributes.len() > MAX_ATTRIBUTES_BYTES {
        return Err(WitError::InvalidArguments(format!(
            "attributes of {spec}/{name} are {} bytes; the limit is {MAX_ATTRIBUTES_BYTES}",
            attributes.len()
        )));
    }
    let value: serde_json::Value = serde_json::from_str(&attributes).map_err(|e| {
        WitError::InvalidArguments(format!("attributes of {spec}/{name} are not JSON: {e}"))
    })?;
    let key = (spec.clone(), name.clone());
    if !access.pending_versions.contains_key(&key)
        && let Some(unchanged) = access.unchanged_but_volatile(&key, &value)?
    {
        access.seen.insert(key, unchanged);
        return Ok(unchanged);
    }
    let version = match access.pending_versions.get(&key) {
        Some(v) => v + 1,
        None => access.stored_version(&key)? + 1,
    };
    access.pending_versions.insert(key, version);
    access.pending_bytes += bytes;
    access.pending.push(PendingWrite::new(spec, name, value));
    Ok(version)
}

/// Whether `a` and `b` are equal once the top-level attributes `ignored` are left out of both.
fn same_but(a: &serde_json::Value, b: &serde_json::Value, ignored: &[String]) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let kept = |k: &String| !ignored.contains(k);
            a.keys().filter(|k| kept(k)).count() == b.keys().filter(|k| kept(k)).count()
                && a.iter()
                    .filter(|(k, _)| kept(k))
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

/// Records that resource `name` of kind `spec` is gone: a tombstone version, after which reads
/// and lists no longer see it and expressions that use it fail naming who retired it and when.
fn retire(cap: &mut DataCapability, spec: String, name: String) -> Result<u64, WitError> {
    if read(cap, spec.clone(), name.clone())?.is_none() {
        return Err(WitError::NotFound(format!(
            "no live resource {spec}/{name} to retire"
        )));
    }
    let access = cap.access()?;
    if access.pending.len() as u64 >= access.max_writes {
        return Err(WitError::Denied(format!(
            "write limit of {} resource versions per call reached ({})",
            access.max_writes, access.max_writes_origin
        )));
    }
    let key = (spec.clone(), name.clone());
    let version = match access.pending_versions.get(&key) {
        Some(v) => v + 1,
        None => access.stored_version(&key)? + 1,
    };
    access.pending_versions.insert(key, version);
    access.pending.push(PendingWrite::retire(spec, name));
    Ok(version)
}

fn read(cap: &mut DataCapability, spec: String, name: String) -> Result<Option<String>, WitError> {
    let access = cap.access()?;
    access.check_spec(&spec)?;
    if let Some(w) = access
        .pending
        .iter()
        .rev()
        .find(|w| w.spec == spec && w.name == name)
    {
        return Ok((!w.retired).then(|| w.attributes.to_string()));
    }
    Ok(access
        .latest()?
        .get(&(spec, name))
        .and_then(|(_, v)| v.as_ref().map(|v| v.to_string())))
}

fn list(cap: &mut DataCapability, spec: String) -> Result<Vec<String>, WitError> {
    let access = cap.access()?;
    access.check_spec(&spec)?;
    // name → live, from the store and then this call's writes in order.
    let mut live: std::collections::BTreeMap<String, bool> = access
        .latest()?
        .iter()
        .filter(|((s, _), _)| *s == spec)
        .map(|((_, n), (_, v))| (n.clone(), v.is_some()))
        .collect();
    for w in &access.pending {
        if w.spec == spec {
            live.insert(w.name.clone(), !w.retired);
        }
    }
    Ok(live
        .into_iter()
        .filter_map(|(n, is_live)| is_live.then_some(n))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{EffectiveLimits, Limits};
    use crate::store::StoreOptions;

    #[test]
    fn buffered_write_bytes_are_capped_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let limits = EffectiveLimits::as_asked(&Limits {
            max_write_bytes: 1000,
            ..Limits::default()
        });
        let mut cap = DataCapability::for_model("m", "t/x", vec!["item".into()], store, 100)
            .limited_by(&limits);
        let doc = format!("\"{}\"", "x".repeat(400));
        write(&mut cap, "item".into(), "a".into(), doc.clone()).unwrap();
        write(&mut cap, "item".into(), "b".into(), doc.clone()).unwrap();
        // The count limit (100) is far away; the bytes are not.
        let err = write(&mut cap, "item".into(), "c".into(), doc).unwrap_err();
        let WitError::Denied(message) = err else {
            panic!("want denied, got {err:?}")
        };
        assert!(
            message.contains("write byte limit of 1000")
                && message.contains("limits.max-write-bytes in its plugin.toml"),
            "{message}"
        );
        assert_eq!(cap.into_pending().len(), 2);
    }

    #[test]
    fn writes_are_numbered_after_the_stored_versions_and_an_identical_write_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let provenance = crate::store::Provenance {
            run_id: "r".into(),
            step: "s".into(),
            method: "m".into(),
            time: crate::store::now_rfc3339(),
        };
        let big = serde_json::json!({"big": "x".repeat(100)});
        let seed = |name: &str| PendingWrite::new("item", name, big.clone());
        store
            .commit_writes("m", &provenance, &[seed("a"), seed("a"), seed("b")])
            .unwrap();
        let mut cap =
            DataCapability::for_model("m", "t/x", vec!["item".into()], store.clone(), 100);
        assert_eq!(
            write(&mut cap, "item".into(), "a".into(), "1".into()).unwrap(),
            3
        );
        // The same attributes as the stored b@v1: no new version, a sighting of v1.
        assert_eq!(
            write(&mut cap, "item".into(), "b".into(), big.to_string()).unwrap(),
            1
        );
        assert_eq!(
            write(&mut cap, "item".into(), "c".into(), "1".into()).unwrap(),
            1
        );
        assert_eq!(
            write(&mut cap, "item".into(), "a".into(), "2".into()).unwrap(),
            4
        );
        assert_eq!(read(&mut cap, "item".into(), "zz".into()).unwrap(), None);
        assert_eq!(
            write(&mut cap, "item".into(), "d".into(), "1".into()).unwrap(),
            1
        );
        let pending = cap.into_pending();
        assert_eq!(
            pending.iter().map(|w| w.unchanged).collect::<Vec<_>>(),
            vec![None, None, None, None, Some(1)],
            "b is handed on last, as a sighting"
        );
        let versions = store.commit_writes("m", &provenance, &pending).unwrap();
        assert_eq!(versions, vec![3, 1, 4, 1, 1]);
        assert_eq!(store.versions("m", "item", "b").unwrap().len(), 1);
    }

    #[test]
    fn a_write_that_changes_only_volatile_attributes_stores_no_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let volatile = vec!["timestamp".to_string()];
        let call = || {
            DataCapability::for_model(
                "m",
                "t/x",
                vec!["vm".into(), "log".into()],
                store.clone(),
                100,
            )
            .with_volatile([("vm", volatile.as_slice()), ("log", &[][..])])
        };
        let provenance = crate::store::Provenance {
            run_id: "r".into(),
            step: "s".into(),
            method: "sync".into(),
            time: "2026-11-30T00:00:00Z".into(),
        };
        let doc = |status: &str, at: u32| format!(r#"{{"status":"{status}","timestamp":{at}}}"#);
        let mut first = call();
        assert_eq!(
            write(&mut first, "vm".into(), "a".into(), doc("up", 1)).unwrap(),
            1
        );
        assert_eq!(
            write(&mut first, "log".into(), "a".into(), doc("up", 1)).unwrap(),
            1
        );
        store
            .commit_writes("m", &provenance, &first.into_pending())
            .unwrap();

        let mut second = call();
        // Only the timestamp moved: the latest version stands, nothing is buffered.
        assert_eq!(
            write(&mut second, "vm".into(), "a".into(), doc("up", 2)).unwrap(),
            1
        );
        // A spec without volatile attributes versions every write.
        assert_eq!(
            write(&mut second, "log".into(), "a".into(), doc("up", 2)).unwrap(),
            2
        );
        // A real change is a new version, volatile attributes included.
        assert_eq!(
            write(&mut second, "vm".into(), "b".into(), doc("up", 2)).unwrap(),
            1
        );
        let pending = second.into_pending();
        // The unchanged vm/a is handed on last, as a sighting of version 1 that stores nothing.
        assert_eq!(
            pending
                .iter()
                .map(|w| (w.spec.as_str(), w.name.as_str(), w.unchanged))
                .collect::<Vec<_>>(),
            vec![("log", "a", None), ("vm", "b", None), ("vm", "a", Some(1))]
        );
        let second_time = crate::store::Provenance {
            run_id: "r2".into(),
            time: "2026-11-30T01:00:00Z".into(),
            ..provenance.clone()
        };
        assert_eq!(
            store.commit_writes("m", &second_time, &pending).unwrap(),
            vec![2, 1, 1]
        );
        assert_eq!(store.versions("m", "vm", "a").unwrap().len(), 1);
        let seen = store.last_seen("m", "vm", "a").unwrap().unwrap();
        assert_eq!((seen.run_id.as_str(), seen.version), ("r2", 1));

        let mut third = call();
        assert_eq!(
            write(&mut third, "vm".into(), "a".into(), doc("down", 3)).unwrap(),
            2
        );
        // Within one call, a second write of the same resource is always a version.
        assert_eq!(
            write(&mut third, "vm".into(), "a".into(), doc("down", 4)).unwrap(),
            3
        );
        store
            .commit_writes("m", &provenance, &third.into_pending())
            .unwrap();
        let latest = store.latest("m", "vm", "a").unwrap().unwrap();
        assert_eq!(
            (latest.version, latest.attributes["timestamp"].clone()),
            (3, 4.into())
        );
    }

    #[test]
    fn repeated_unchanged_writes_hand_on_one_sighting() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let volatile = vec!["at".to_string()];
        let call = || {
            DataCapability::for_model("m", "t/x", vec!["vm".into()], store.clone(), 10)
                .with_volatile([("vm", volatile.as_slice())])
        };
        let provenance = crate::store::Provenance {
            run_id: "r".into(),
            step: "s".into(),
            method: "sync".into(),
            time: "2026-11-30T00:00:00Z".into(),
        };
        let mut first = call();
        write(&mut first, "vm".into(), "a".into(), r#"{"at":0}"#.into()).unwrap();
        store
            .commit_writes("m", &provenance, &first.into_pending())
            .unwrap();
        let mut second = call();
        // Far past the write limit of 10: none of these is a version.
        for at in 1..1000 {
            let doc = format!(r#"{{"at":{at}}}"#);
            assert_eq!(write(&mut second, "vm".into(), "a".into(), doc).unwrap(), 1);
        }
        let pending = second.into_pending();
        assert_eq!(pending, vec![PendingWrite::seen("vm", "a", 1)]);
    }

    #[test]
    fn a_retired_resource_is_gone_from_reads_and_lists_within_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let mut cap = DataCapability::for_model("m", "t/x", vec!["item".into()], store, 100);
        assert!(matches!(
            retire(&mut cap, "item".into(), "a".into()),
            Err(WitError::NotFound(_))
        ));
        write(&mut cap, "item".into(), "a".into(), "1".into()).unwrap();
        write(&mut cap, "item".into(), "b".into(), "2".into()).unwrap();
        assert_eq!(retire(&mut cap, "item".into(), "a".into()).unwrap(), 2);
        assert_eq!(read(&mut cap, "item".into(), "a".into()).unwrap(), None);
        assert_eq!(
            list(&mut cap, "item".into()).unwrap(),
            vec!["b".to_string()]
        );
        // Writing it again brings it back as a new version.
        assert_eq!(
            write(&mut cap, "item".into(), "a".into(), "3".into()).unwrap(),
            3
        );
        assert_eq!(list(&mut cap, "item".into()).unwrap(), vec!["a", "b"]);
        let pending = cap.into_pending();
        assert!(pending[2].retired && pending[2].attributes.is_null());
    }
}
