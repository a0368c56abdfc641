//! Which orch model type (and plugin) stands in for each swamp model type, and the argument
//! names that differ between the two. One table, so adding a type is adding a row.

use serde_json::Value;

/// One swamp model type orch ships a plugin for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeMapping {
    /// The swamp type as the home lab writes it, e.g. `@user/proxmox/vm`.
    pub swamp: &'static str,
    /// The orch type, e.g. `proxmox/vm`.
    pub orch: &'static str,
    /// The orch plugin (bundle id) providing it, as `plugins.txt` lists it.
    pub plugin: &'static str,
    /// Global argument renames, swamp name → orch name.
    pub renames: &'static [(&'static str, &'static str)],
    /// Global arguments orch needs where swamp had an implicit behaviour (name, YAML value, why).
    pub added: &'static [(&'static str, &'static str, &'static str)],
}

/// swamp's SSH-based extensions took the connection as `host`/`user`/`privateKey`; orch's SDK
/// names every connection field `ssh…` (plugins/sdk/src/remote.rs).
const SSH_RENAMES: &[(&str, &str)] = &[
    ("host", "sshHost"),
    ("port", "sshPort"),
    ("user", "sshUser"),
    ("username", "sshUser"),
    ("privateKey", "sshKey"),
    ("sshPrivateKey", "sshKey"),
    ("key", "sshKey"),
    ("password", "sshPassword"),
];

/// orch verifies TLS by default; the home lab's swamp extension talked to the node's
/// self-signed certificate without checking it.
const PROXMOX_TLS: &[(&str, &str, &str)] = &[(
    "insecureTls",
    "true",
    "orch verifies TLS and Proxmox nodes ship self-signed certificates; pin the node's \
     certificate with `fingerprint: \"AB:CD:…\"` and remove `insecureTls`",
)];

/// Every swamp type orch can take over.
pub const TYPE_TABLE: &[TypeMapping] = &[
    proxmox("@user/proxmox/node", "proxmox/node"),
    proxmox("@user/proxmox/vm", "proxmox/vm"),
    proxmox("@user/proxmox/lxc", "proxmox/lxc"),
    proxmox("@user/proxmox/storage", "proxmox/storage"),
    proxmox("@user/proxmox/task", "proxmox/task"),
    proxmox("@user/proxmox/cluster", "proxmox/cluster"),
    ssh("@user/minecraft/server", "minecraft/server", "minecraft"),
    ssh("@user/nginx/stream", "nginx/stream", "nginx"),
    ssh("@user/ssh/host", "ssh/host", "ssh"),
    ssh("@user/docker/compose", "docker/compose", "docker"),
    ssh("@user/dns/dnsmasq", "dns/dnsmasq", "dnsmasq"),
    // The reference names these types and `serverName` but not their other arguments: those
    // keep their names (plugins/terraria, plugins/monitoring take the SDK's `ssh…` fields).
    ssh("@user/terraria/server", "terraria/server", "terraria"),
    ssh("@user/monitoring/agent", "monitoring/agent", "monitoring"),
    ssh("@user/monitoring/hub", "monitoring/hub", "monitoring"),
    // The provisioning types (issue 14): SSH hosts like the others.
    ssh("@user/docker/engine", "docker/engine", "docker"),
    ssh("@user/alpine/install", "alpine/install", "alpine"),
    ssh("@user/alpine/overlay", "alpine/overlay", "alpine"),
    ssh(
        "@user/minecraft/installer",
        "minecraft/installer",
        "minecraft",
    ),
    ssh("@user/tailscale/node", "tailscale/node", "tailscale"),
    // HTTP to the Tailscale API: `apiUrl`, `tailnet` and `apiKey` keep their names.
    TypeMapping {
        swamp: "@user/tailscale/net",
        orch: "tailscale/net",
        plugin: "tailscale",
        renames: &[],
        added: &[],
    },
    // HTTP, not SSH: `url` and `token` (plugins/grafana) keep their names.
    TypeMapping {
        swamp: "@user/grafana/instance",
        orch: "grafana/instance",
        plugin: "grafana",
        renames: &[],
        added: &[],
    },
];

const fn proxmox(swamp: &'static str, orch: &'static str) -> TypeMapping {
    TypeMapping {
        swamp,
        orch,
        plugin: "proxmox",
        renames: &[],
        added: PROXMOX_TLS,
    }
}

const fn ssh(swamp: &'static str, orch: &'static str, plugin: &'static str) -> TypeMapping {
    TypeMapping {
        swamp,
        orch,
        plugin,
        renames: SSH_RENAMES,
        added: &[],
    }
}

/// `@user/proxmox/vm` → `proxmox/vm`: swamp prefixes extension types with their namespace.
pub fn strip_namespace(swamp_type: &str) -> &str {
    let t = swamp_type.trim();
    match t.strip_prefix('@').and_then(|rest| rest.split_once('/')) {
        Some((_, rest)) => rest,
        None => t,
    }
}

/// The mapping for a swamp type, written with or without its `@namespace/`.
pub fn lookup(swamp_type: &str) -> Option<&'static TypeMapping> {
    let wanted = strip_namespace(swamp_type);
    TYPE_TABLE
        .iter()
        .find(|m| strip_namespace(m.swamp) == wanted)
}

impl TypeMapping {
    /// The orch name of a swamp global argument.
    pub fn rename<'a>(&self, swamp_arg: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(from, _)| *from == swamp_arg)
            .map_or(swamp_arg, |(_, to)| to)
    }

    /// The added arguments as JSON values.
    pub fn added_values(&self) -> impl Iterator<Item = (&'static str, Value, &'static str)> {
        self.added.iter().map(|(name, yaml, why)| {
            (
                *name,
                serde_json::from_str(yaml).unwrap_or(Value::String((*yaml).to_string())),
                *why,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_types_map_to_orch_plugins() {
        assert_eq!(lookup("@user/proxmox/vm").unwrap().orch, "proxmox/vm");
        assert_eq!(lookup("@user/proxmox/node").unwrap().plugin, "proxmox");
        assert_eq!(
            lookup("@user/minecraft/server").unwrap().plugin,
            "minecraft"
        );
        assert_eq!(lookup("@user/nginx/stream").unwrap().orch, "nginx/stream");
        // The readme writes types without the namespace; both spellings map.
        assert_eq!(lookup("docker/compose").unwrap().orch, "docker/compose");
        assert_eq!(lookup("@someone/ssh/host").unwrap().orch, "ssh/host");
    }

    #[test]
    fn game_and_monitoring_types_map_to_their_plugins() {
        let terraria = lookup("@user/terraria/server").unwrap();
        assert_eq!(
            (terraria.orch, terraria.plugin),
            ("terraria/server", "terraria")
        );
        assert_eq!(terraria.rename("host"), "sshHost");
        assert_eq!(terraria.rename("serverName"), "serverName");
        assert_eq!(
            lookup("@user/monitoring/agent").unwrap().orch,
            "monitoring/agent"
        );
        let hub = lookup("@user/monitoring/hub").unwrap();
        assert_eq!((hub.orch, hub.plugin), ("monitoring/hub", "monitoring"));
        assert_eq!(hub.rename("apiUrl"), "apiUrl");
        let grafana = lookup("@user/grafana/instance").unwrap();
        assert_eq!(
            (grafana.orch, grafana.plugin),
            ("grafana/instance", "grafana")
        );
        assert_eq!(grafana.rename("url"), "url");
        assert_eq!(grafana.rename("token"), "token");
    }

    #[test]
    fn extension_types_orch_lacks_are_not_mapped() {
        assert!(lookup("@user/unifi/controller").is_none());
        assert!(lookup("@user/swamp/repo").is_none());
    }

    #[test]
    fn provisioning_types_map_to_their_plugins() {
        let ts = lookup("@user/tailscale/node").unwrap();
        assert_eq!((ts.orch, ts.plugin), ("tailscale/node", "tailscale"));
        assert_eq!(ts.rename("host"), "sshHost");
        assert_eq!(ts.rename("authKey"), "authKey");
        assert_eq!(
            lookup("@user/tailscale/net").unwrap().rename("apiKey"),
            "apiKey"
        );
        assert_eq!(lookup("@user/docker/engine").unwrap().plugin, "docker");
        assert_eq!(
            lookup("@user/alpine/overlay").unwrap().orch,
            "alpine/overlay"
        );
        assert_eq!(
            lookup("@user/minecraft/installer").unwrap().plugin,
            "minecraft"
        );
    }

    #[test]
    fn ssh_arguments_take_orch_names_and_others_stay() {
        let m = lookup("@user/minecraft/server").unwrap();
        assert_eq!(m.rename("host"), "sshHost");
        assert_eq!(m.rename("privateKey"), "sshKey");
        assert_eq!(m.rename("tmuxSession"), "tmuxSession");
        let pve = lookup("@user/proxmox/node").unwrap();
        assert_eq!(pve.rename("password"), "password");
        let added: Vec<_> = pve.added_values().collect();
        assert_eq!(added[0].0, "insecureTls");
        assert_eq!(added[0].1, Value::Bool(true));
    }

    #[test]
    fn namespace_is_stripped_once() {
        assert_eq!(strip_namespace("@user/proxmox/vm"), "proxmox/vm");
        assert_eq!(strip_namespace("proxmox/vm"), "proxmox/vm");
        assert_eq!(strip_namespace("tailscale/node"), "tailscale/node");
    }
}
