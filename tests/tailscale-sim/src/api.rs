//! Tailscale's API v2 (the device endpoints) as a pure state machine: a request in, a status and
//! JSON body out.

use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) use sim_http::{ApiRequest, Reply};

fn message(status: u16, text: &str) -> Reply {
    Reply {
        status,
        body: json!({ "message": text }),
    }
}

/// One request as the log keeps it: never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// `bearer`, `basic` or `none`: how the caller authenticated (never the key).
    pub auth: String,
    /// The status the simulator answered with.
    pub status: u16,
}

/// One machine in the tailnet.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// The legacy numeric id (a string in the API), e.g. `"92960230385"`.
    pub id: String,
    /// The stable node id, e.g. `"n292kg92CNTRL"`.
    pub node_id: String,
    /// The machine's OS host name.
    pub hostname: String,
    /// Its Tailscale IPs, IPv4 first.
    pub addresses: Vec<String>,
    /// `linux`, `windows`, …
    pub os: String,
    /// ACL tags, e.g. `tag:server`.
    pub tags: Vec<String>,
    /// Whether the device is authorized in the tailnet.
    pub authorized: bool,
    /// RFC 3339 time it was last seen.
    pub last_seen: String,
    /// The routes the device advertises (only with `fields=all`).
    pub advertised_routes: Vec<String>,
}

impl Device {
    /// A linux device `hostname` with Tailscale IPv4 `ipv4`; the ids are derived from both.
    pub fn new(hostname: &str, ipv4: &str) -> Device {
        let digits: u64 = ipv4
            .bytes()
            .chain(hostname.bytes())
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
            % 100_000_000_000;
        let last = ipv4.rsplit('.').next().unwrap_or("1");
        Device {
            id: digits.to_string(),
            node_id: format!("n{digits:x}CNTRL"),
            hostname: hostname.to_string(),
            addresses: vec![ipv4.to_string(), format!("fd7a:115c:a1e0::{last}")],
            os: "linux".to_string(),
            tags: Vec::new(),
            authorized: true,
            last_seen: "2026-01-01T00:00:00Z".to_string(),
            advertised_routes: Vec::new(),
        }
    }

    fn to_json(&self, tailnet: &str, all: bool) -> Value {
        let mut v = json!({
            "addresses": self.addresses,
            "id": self.id,
            "nodeId": self.node_id,
            "user": format!("admin@{tailnet}"),
            "name": format!("{}.tail-sim.ts.net", self.hostname),
            "hostname": self.hostname,
            "clientVersion": "1.76.6-t2a1b3c4d5",
            "updateAvailable": false,
            "os": self.os,
            "created": "2025-12-01T00:00:00Z",
            "lastSeen": self.last_seen,
            "keyExpiryDisabled": true,
            "expires": "0001-01-01T00:00:00Z",
            "authorized": self.authorized,
            "isExternal": false,
            "machineKey": format!("mkey:{}", self.node_id),
            "nodeKey": format!("nodekey:{}", self.node_id),
            "blocksIncomingConnections": false,
            "tailnetLockKey": format!("nlpub:{}", self.node_id),
            "tailnetLockError": "",
        });
        if !self.tags.is_empty() {
            v["tags"] = json!(self.tags);
        }
        if all {
            v["enabledRoutes"] = json!(self.advertised_routes);
            v["advertisedRoutes"] = json!(self.advertised_routes);
            v["clientConnectivity"] = json!({
                "endpoints": [],
                "latency": {},
                "mappingVariesByDestIP": false,
                "clientSupports": {"hairPinning": false, "ipv6": false, "pcp": false, "pmp": false, "udp": true, "upnp": false},
            });
        }
        v
    }
}

/// The simulated Tailscale control plane: one tailnet and its devices.
pub(crate) struct Api {
    api_key: String,
    tailnet: String,
    /// By id.
    devices: BTreeMap<String, Device>,
    log: Vec<LoggedRequest>,
    fail_next: Option<u16>,
}

impl Api {
    pub(crate) fn new(api_key: &str, tailnet: &str) -> Api {
        Api {
            api_key: api_key.to_string(),
            tailnet: tailnet.to_string(),
            devices: BTreeMap::new(),
            log: Vec::new(),
            fail_next: None,
        }
    }

    pub(crate) fn fail_next(&mut self, status: u16) {
        self.fail_next = Some(status);
    }

    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        self.log.clone()
    }

    pub(crate) fn devices(&self) -> Vec<Device> {
        self.devices.values().cloned().collect()
    }

    pub(crate) fn set_devices(&mut self, devices: Vec<Device>) {
        self.devices = devices.into_iter().map(|d| (d.id.clone(), d)).collect();
    }

    pub(crate) fn add_device(&mut self, device: Device) {
        self.devices.insert(device.id.clone(), device);
    }

    pub(crate) fn remove_device(&mut self, hostname: &str) -> bool {
        let before = self.devices.len();
        self.devices.retain(|_, d| d.hostname != hostname);
        self.devices.len() != before
    }

    /// Answers one request and logs it.
    pub(crate) fn handle(&mut self, request: &ApiRequest) -> Reply {
        let (auth, answer) = self.answer(request);
        self.log.push(LoggedRequest {
            method: request.method.to_string(),
            path: request.path.to_string(),
            query: request.query.map(str::to_string),
            auth: auth.to_string(),
            status: answer.status,
        });
        answer
    }

    /// Which scheme carried the key, and whether it is the right one.
    fn authenticate(&self, header: Option<&str>) -> (&'static str, bool) {
        let Some(header) = header else {
            return ("none", false);
        };
        if let Some(token) = header.strip_prefix("Bearer ") {
            return ("bearer", token == self.api_key);
        }
        if let Some(encoded) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let ok = decoded.is_some_and(|d| {
                let (user, _password) = d.split_once(':').unwrap_or((d.as_str(), ""));
                user == self.api_key
            });
            return ("basic", ok);
        }
        ("none", false)
    }

    fn answer(&mut self, request: &ApiRequest) -> (&'static str, Reply) {
        let (auth, ok) = self.authenticate(request.authorization);
        if !ok {
            return (auth, message(401, "API token invalid"));
        }
        if let Some(status) = self.fail_next.take() {
            return (auth, message(status, "simulated failure"));
        }
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let all = match query
            .iter()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v.as_str())
        {
            None | Some("default") => false,
            Some("all") => true,
            Some(other) => {
                return (
                    auth,
                    message(
                        400,
                        &format!("invalid fields value {other:?}: use all or default"),
                    ),
                );
            }
        };
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        let reply = match (request.method, segments.as_slice()) {
            ("GET", ["api", "v2", "tailnet", tailnet, "devices"]) => {
                if *tailnet != "-" && *tailnet != self.tailnet {
                    message(
                        403,
                        "access denied: the API key does not belong to this tailnet",
                    )
                } else {
                    let devices: Vec<Value> = self
                        .devices
                        .values()
                        .map(|d| d.to_json(&self.tailnet, all))
                        .collect();
                    Reply {
                        status: 200,
                        body: json!({ "devices": devices }),
                    }
                }
            }
            ("GET", ["api", "v2", "device", id]) => {
                match self
                    .devices
                    .values()
                    .find(|d| d.id == *id || d.node_id == *id)
                {
                    Some(d) => Reply {
                        status: 200,
                        body: d.to_json(&self.tailnet, all),
                    },
                    None => message(404, "device not found"),
                }
            }
            _ => message(404, "not found"),
        };
        (auth, reply)
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;

impl sim_http::Handler for Api {
    fn handle(&mut self, request: &ApiRequest) -> Reply {
        Api::handle(self, request)
    }
}
