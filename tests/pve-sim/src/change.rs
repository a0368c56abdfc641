//! Changes a test makes to the simulated world between two syncs, and injected faults.
//!
//! The same changes arrive through `Simulator::change` and, as JSON, through
//! `POST /_sim/change`: `{"change": "delete_guest", "vmid": 105}`.

use serde::{Deserialize, Serialize};

/// One change to the simulated world. It happens at once, without a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorldChange {
    /// Removes a VM or container, running or not.
    DeleteGuest {
        /// The guest's vmid.
        vmid: u32,
    },
    /// Stops a guest (nothing happens if it is stopped).
    StopGuest {
        /// The guest's vmid.
        vmid: u32,
    },
    /// Starts a guest (nothing happens if it runs).
    StartGuest {
        /// The guest's vmid.
        vmid: u32,
    },
    /// Sets a guest's `name` (VM) or `hostname` (container).
    RenameGuest {
        /// The guest's vmid.
        vmid: u32,
        /// The new name; any text is accepted.
        name: String,
    },
    /// Sets (or, with `value` null or absent, removes) one key of a guest's config, as an
    /// edit behind orch's back would; the config digest changes with it.
    SetConfig {
        /// The guest's vmid.
        vmid: u32,
        /// The config key, e.g. `memory`; any non-empty key is accepted.
        key: String,
        /// The new value, as PVE stores it (`"4096"`); `None` removes the key.
        #[serde(default)]
        value: Option<String>,
    },
    /// Moves a guest to another node, keeping its state.
    MoveGuest {
        /// The guest's vmid.
        vmid: u32,
        /// The target node's name.
        node: String,
    },
    /// Sets a pool's used bytes: exactly one of `used` and `used_fraction` (0.0–1.0). On a pool
    /// that is not shared it applies to `node` (default: every node).
    FillStorage {
        /// The storage id.
        storage: String,
        /// The node whose copy of a non-shared pool changes; `None` for all.
        #[serde(default)]
        node: Option<String>,
        /// Bytes used (capped at the capacity).
        #[serde(default)]
        used: Option<u64>,
        /// Share of the capacity used.
        #[serde(default)]
        used_fraction: Option<f64>,
    },
    /// Adds a finished task, newest of its node, started and ended now.
    AddTask {
        /// The node that ran it.
        node: String,
        /// Its type, e.g. `vzdump`.
        #[serde(rename = "type")]
        kind: String,
        /// Its object, e.g. a vmid (may be empty).
        #[serde(default)]
        id: String,
        /// Its exit status: `OK`, `WARNINGS: 2` or an error text.
        status: String,
    },
    /// Makes requests whose method and path match answer with `fault` until cleared.
    Fault {
        /// `GET`, `POST`, …; `None` matches every method.
        #[serde(default)]
        method: Option<String>,
        /// The path, with or without `/api2/json`, e.g. `/nodes/keeb-dev-02/lxc`; a `*`
        /// segment matches any one segment (`/nodes/*/storage`). The query is ignored.
        path: String,
        /// What the answer looks like.
        fault: Fault,
    },
    /// Removes every fault.
    ClearFaults,
    /// Sets `SimConfig::agent_warmup` for guests that boot from now on.
    AgentWarmup {
        /// Address requests a freshly booted guest answers without an address.
        calls: u32,
    },
}

/// A malformed or failed answer, for the plugin's error tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Status 200 with body `{}`.
    MissingData,
    /// The real answer with `field` (in `data`, or in each row of a list) set to the string
    /// `value`.
    StringField {
        /// The field to replace, e.g. `maxmem`.
        field: String,
        /// The text to put there, e.g. `lots`.
        value: String,
    },
    /// An HTML error page (`Content-Type: text/html`) with this status (500 or 200).
    Html {
        /// The HTTP status.
        status: u16,
    },
    /// Status 596 `Connection timed out`, as pveproxy answers for a node that does not answer.
    Timeout,
    /// The real answer with `data` of the wrong type: an object for a list, a list otherwise.
    WrongDataType,
}
