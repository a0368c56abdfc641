//! `proxmox/node` and `proxmox/vm`: Proxmox VE as orch models.
//!
//! `proxmox/node.auth` logs in and records the ticket; `proxmox/vm` (the fleet) reads it through
//! CEL and keeps one named `vm` resource per VM. The API logic lives in plain modules that talk
//! through [`pve::Transport`], so it is unit-tested natively; this file only wires it to the
//! host (HTTP, resources, logs).

mod agent;
use orch_plugin_sdk::clock;
mod encode;
mod names;
mod node;
mod pve;
mod task;
mod vm;

use node::{NodeGlobals, NodeResource};
use orch_plugin_sdk::{Ctx, Http, MethodKind, ModelType, Plugin, Result, Value, json};
use vm::{
    ConfirmedArgs, CreateArgs, Fleet, NameArgs, NoArgs, Outcome, SetBootOrderArgs, SetConfigArgs,
    StartArgs, SyncSummary, VmGlobals, VmResource,
};

/// CalVer of both model types.
const VERSION: &str = "2026.11.21.1";

/// The host HTTP client with the node's TLS settings.
fn http(insecure_tls: bool, fingerprint: Option<&str>) -> Http {
    Http {
        insecure_tls,
        pinned_cert_sha256: fingerprint
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(String::from),
        ..Http::default()
    }
}

fn node_auth(ctx: &Ctx<NodeGlobals>, _: NoArgs) -> Result<Value> {
    let globals = &ctx.globals;
    let api_url = pve::normalize_api_url(&globals.api_url)?;
    let login = node::login(globals)?;
    if ctx.dry_run {
        return Ok(json!({ "dryRun": true, "wouldSend": node::first_request(&login) }));
    }
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let resource: NodeResource = node::authenticate(
        &transport,
        &api_url,
        globals,
        login,
        clock::now_rfc3339(),
        &warn,
    )?;
    ctx.write_resource("node", "node", &resource)?;
    ctx.info(format!(
        "authenticated as {} on {}",
        resource.username, resource.node
    ));
    // The output goes to run records and chat bots, so it names the login but not the ticket.
    Ok(json!({
        "username": resource.username,
        "node": resource.node,
        "apiToken": resource.api_token,
        "timestamp": resource.timestamp,
    }))
}

/// Builds the fleet client for one call and runs `f` with it.
fn with_fleet<T>(ctx: &Ctx<VmGlobals>, f: impl FnOnce(&Fleet) -> Result<T>) -> Result<T> {
    let globals = &ctx.globals;
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let fleet = Fleet::new(
        &transport,
        globals,
        &warn,
        std::thread::sleep,
        clock::now_rfc3339(),
        ctx.dry_run,
    )?;
    f(&fleet)
}

fn write_vm(ctx: &Ctx<VmGlobals>, resource: &VmResource) -> Result<()> {
    ctx.write_resource("vm", &resource.vm_name, resource)?;
    Ok(())
}

/// Writes the outcome's resource (not in dry runs) and returns its output.
fn finish(ctx: &Ctx<VmGlobals>, outcome: Outcome) -> Result<Value> {
    if let Some(resource) = outcome.resource() {
        write_vm(ctx, resource)?;
    }
    Ok(outcome.output())
}

fn vm_sync(ctx: &Ctx<VmGlobals>, _: NoArgs) -> Result<SyncSummary> {
    let synced = with_fleet(ctx, |fleet| fleet.sync())?;
    if !ctx.dry_run {
        for resource in &synced.resources {
            write_vm(ctx, resource)?;
        }
    }
    ctx.info(format!(
        "synced {} VMs ({} running) on {}",
        synced.summary.count, synced.summary.running, ctx.globals.node
    ));
    Ok(synced.summary)
}

fn vm_lookup(ctx: &Ctx<VmGlobals>, args: NameArgs) -> Result<VmResource> {
    let resource = with_fleet(ctx, |fleet| fleet.lookup(&args.vm_name))?;
    if !ctx.dry_run {
        write_vm(ctx, &resource)?;
    }
    Ok(resource)
}

fn vm_create(ctx: &Ctx<VmGlobals>, args: CreateArgs) -> Result<Value> {
    let outcome = with_fleet(ctx, |fleet| fleet.create(&args))?;
    finish(ctx, outcome)
}

fn vm_start(ctx: &Ctx<VmGlobals>, args: StartArgs) -> Result<Value> {
    let outcome = with_fleet(ctx, |fleet| fleet.start(&args))?;
    finish(ctx, outcome)
}

fn vm_stop(ctx: &Ctx<VmGlobals>, args: ConfirmedArgs) -> Result<Value> {
    let outcome = with_fleet(ctx, |fleet| fleet.stop(&args))?;
    finish(ctx, outcome)
}

fn vm_delete(ctx: &Ctx<VmGlobals>, args: ConfirmedArgs) -> Result<Value> {
    let outcome = with_fleet(ctx, |fleet| fleet.delete(&args))?;
    finish(ctx, outcome)
}

fn vm_set_config(ctx: &Ctx<VmGlobals>, args: SetConfigArgs) -> Result<Value> {
    let form = vm::config_form(&args.config)?;
    let outcome = with_fleet(ctx, |fleet| fleet.set_config(&args.vm_name, &form))?;
    finish(ctx, outcome)
}

fn vm_set_boot_order(ctx: &Ctx<VmGlobals>, args: SetBootOrderArgs) -> Result<Value> {
    let form = vm::boot_order_form(&args.order)?;
    let outcome = with_fleet(ctx, |fleet| fleet.set_config(&args.vm_name, &form))?;
    finish(ctx, outcome)
}

/// The plugin: both Proxmox model types.
struct ProxmoxPlugin;

impl Plugin for ProxmoxPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<NodeGlobals>(
                "proxmox/node",
                VERSION,
                "A Proxmox VE node: logs in and records the ticket other Proxmox models use",
            )
            .resource::<NodeResource>(
                "node",
                "Login state (instance `node`): ticket, csrfToken, username, timestamp",
            )
            .method(
                "auth",
                MethodKind::Action,
                "Log in with password (POST /access/ticket) or verify apiToken (GET /version); \
                 writes resource node/node",
                node_auth,
            ),
            ModelType::new::<VmGlobals>(
                "proxmox/vm",
                VERSION,
                "The VMs of one Proxmox node as a fleet: one `vm` resource per VM, named like the VM",
            )
            .resource::<VmResource>(
                "vm",
                "One VM, named by its Proxmox name: vmid, vmName, status, ip, node, timestamp",
            )
            // Every sync stamps every VM; a new timestamp alone is not a change.
            .volatile(&["timestamp"])
            .method(
                "sync",
                MethodKind::List,
                "Record every VM on the node (status, and the guest agent's IP for running VMs)",
                vm_sync,
            )
            .method(
                "lookup",
                MethodKind::Read,
                "Record one VM by name (status and IP)",
                vm_lookup,
            )
            .method(
                "create",
                MethodKind::Create,
                "Create a VM (next free vmid unless given) and wait for the task",
                vm_create,
            )
            .method(
                "start",
                MethodKind::Action,
                "Start a VM by name (no-op if running) and wait for its IP from the guest agent",
                vm_start,
            )
            .destructive_method(
                "stop",
                MethodKind::Action,
                "Hard-stop a VM by name; expectVmid must match the recorded and the live vmid",
                vm_stop,
            )
            .confirm(vm::confirm_rule())
            .destructive_method(
                "delete",
                MethodKind::Delete,
                "Delete a stopped VM by name; expectVmid must match the recorded and the live vmid",
                vm_delete,
            )
            .confirm(vm::confirm_rule())
            .method(
                "setConfig",
                MethodKind::Update,
                "Set Proxmox config keys (null deletes a key) and record the new config",
                vm_set_config,
            )
            .method(
                "setBootOrder",
                MethodKind::Update,
                "Set the boot order, e.g. [\"net0\", \"scsi0\"], and record the new config",
                vm_set_boot_order,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(ProxmoxPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    fn describe() -> Vec<orch_plugin_sdk::bindings::orch::plugin::types::TypeInfo> {
        ProxmoxPlugin::types().iter().map(ModelType::info).collect()
    }

    fn schema(text: &str) -> Value {
        serde_json::from_str(text).expect("schema is JSON")
    }

    #[test]
    fn both_types_are_described_with_their_methods() {
        let types = describe();
        let names: Vec<_> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["proxmox/node", "proxmox/vm"]);
        assert!(types.iter().all(|t| t.version == VERSION));
        let vm_methods: Vec<_> = types[1].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            vm_methods,
            [
                "sync",
                "lookup",
                "create",
                "start",
                "stop",
                "delete",
                "setConfig",
                "setBootOrder"
            ]
        );
        let destructive: Vec<_> = types[1]
            .methods
            .iter()
            .filter(|m| m.destructive)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(destructive, ["stop", "delete"]);
    }

    #[test]
    fn destructive_methods_carry_the_typed_confirm_rule() {
        let types = describe();
        for method in types[1].methods.iter().filter(|m| m.destructive) {
            let rule = method.confirm.as_ref().expect("a typed confirm rule");
            assert_eq!(
                (
                    rule.input.as_str(),
                    rule.spec.as_str(),
                    rule.name_argument.as_str(),
                    rule.attribute.as_str()
                ),
                ("expectVmid", "vm", "vmName", "vmid"),
                "{}",
                method.name
            );
            let s = schema(&method.arguments_schema);
            assert!(s.get("x-orch-confirm").is_none(), "{}", method.name);
            assert_eq!(s["required"], json!(["vmName"]));
            assert!(s["properties"]["expectVmid"].is_object());
            assert_eq!(s["additionalProperties"], json!(false));
        }
    }

    #[test]
    fn globals_schemas_use_camel_case_names() {
        let types = describe();
        let node = schema(&types[0].global_arguments_schema);
        let mut required: Vec<_> = node["required"]
            .as_array()
            .expect("required")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect();
        required.sort();
        assert_eq!(required, ["apiUrl", "node", "username"]);
        for key in [
            "password",
            "realm",
            "apiToken",
            "insecureTls",
            "fingerprint",
        ] {
            assert!(node["properties"][key].is_object(), "{key}");
        }
        let vm = schema(&types[1].global_arguments_schema);
        for key in [
            "apiUrl",
            "node",
            "ticket",
            "csrfToken",
            "apiToken",
            "insecureTls",
            "fingerprint",
        ] {
            assert!(vm["properties"][key].is_object(), "{key}");
        }
    }

    #[test]
    fn fingerprint_is_pinned_and_blank_means_none() {
        assert_eq!(
            http(false, Some(" AB:CD ")).pinned_cert_sha256.as_deref(),
            Some("AB:CD")
        );
        assert_eq!(http(true, Some("")).pinned_cert_sha256, None);
        assert!(http(true, None).insecure_tls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_plugin_sdk::testing::FakeHost;

    /// The node's login, run whole through the SDK's fake host: the method's real HTTP call,
    /// resource write and log line, without wasmtime.
    #[test]
    fn node_auth_posts_the_login_form_and_records_the_ticket() {
        let host = FakeHost::new().with_http(
            "POST",
            "https://10.0.0.4:8006/api2/json/access/ticket",
            200,
            json!({"data": {
                "ticket": "PVE:root@pam:6819A3C2::sig",
                "CSRFPreventionToken": "6819A3C2:tok",
                "username": "root@pam"
            }}),
        );
        let globals = json!({
            "apiUrl": "https://10.0.0.4:8006",
            "username": "root",
            "password": "p@ss word&=",
            "node": "keeb-dev-02",
            "insecureTls": true
        });
        let out = host
            .call::<ProxmoxPlugin>("proxmox/node", "auth", globals, json!({}))
            .unwrap();
        assert_eq!(out["username"], "root@pam");
        assert!(
            out.get("ticket").is_none(),
            "the output must not carry the ticket"
        );
        let node = host.latest("node", "node").expect("node/node written");
        assert_eq!(node["ticket"], "PVE:root@pam:6819A3C2::sig");
        assert_eq!(node["csrfToken"], "6819A3C2:tok");
        let requests = host.requests();
        assert_eq!(requests.len(), 1);
        let body = String::from_utf8(requests[0].body.clone().unwrap()).unwrap();
        assert_eq!(
            body,
            format!(
                "username=root@pam&password={}",
                encode::form_component("p@ss word&=")
            )
        );
        assert_eq!(
            host.logs(),
            vec!["info: authenticated as root@pam on keeb-dev-02"]
        );
    }

    #[test]
    fn node_auth_reports_a_denied_host_as_denied() {
        let host = FakeHost::new();
        let globals = json!({
            "apiUrl": "https://10.0.0.4:8006", "username": "root", "password": "x", "node": "n"
        });
        let err = host
            .call::<ProxmoxPlugin>("proxmox/node", "auth", globals, json!({}))
            .unwrap_err();
        assert!(matches!(err, orch_plugin_sdk::Error::Denied(_)), "{err:?}");
        assert!(host.latest("node", "node").is_none());
    }
}

#[cfg(test)]
mod sync_tests {
    use super::*;
    use orch_plugin_sdk::testing::FakeHost;

    const API: &str = "https://10.0.0.4:8006/api2/json/nodes/n1";

    fn globals() -> Value {
        json!({"apiUrl": "https://10.0.0.4:8006", "node": "n1", "ticket": "PVE:t", "insecureTls": true})
    }

    fn agent(vmid: u64) -> String {
        format!("{API}/qemu/{vmid}/agent/network-get-interfaces")
    }

    fn interfaces(ip: &str) -> Value {
        json!({"data": {"result": [
            {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1"}]},
            {"name": "eth0", "ip-addresses": [{"ip-address": ip}]}
        ]}})
    }

    /// Four running VMs whose agents answer in every way sync tolerates, and one stopped VM.
    fn fleet() -> FakeHost {
        FakeHost::new()
            .with_http(
                "GET",
                &format!("{API}/qemu"),
                200,
                json!({"data": [
                    {"vmid": 100, "name": "web", "status": "running"},
                    {"vmid": 101, "name": "off", "status": "stopped"},
                    {"vmid": 102, "name": "noagent", "status": "running"},
                    {"vmid": 103, "name": "odd", "status": "running"},
                    {"vmid": 104, "name": "db", "status": "running"}
                ]}),
            )
            .with_http("GET", &agent(100), 200, interfaces("10.0.0.10"))
            .with_http(
                "GET",
                &agent(102),
                500,
                json!({"data": null, "message": "No QEMU guest agent configured\n"}),
            )
            .with_http(
                "GET",
                &agent(103),
                404,
                json!({"data": null, "message": "gone"}),
            )
            .with_http("GET", &agent(104), 200, interfaces("10.0.0.11"))
    }

    #[test]
    fn sync_asks_every_running_vms_agent_in_one_batch_and_keeps_the_tolerant_parsing() {
        let host = fleet();
        let out = host
            .call::<ProxmoxPlugin>("proxmox/vm", "sync", globals(), json!({}))
            .unwrap();
        assert_eq!(
            (out["count"].clone(), out["running"].clone()),
            (json!(5), json!(4))
        );
        assert_eq!(
            host.batch_sizes(),
            vec![4],
            "one batch for the four running VMs"
        );
        let ip = |name: &str| host.latest("vm", name).unwrap()["ip"].clone();
        assert_eq!(
            [ip("web"), ip("off"), ip("noagent"), ip("odd"), ip("db")],
            [
                json!("10.0.0.10"),
                Value::Null,
                Value::Null,
                Value::Null,
                json!("10.0.0.11")
            ]
        );
        // Only the unexpected 404 is worth a warning; "no agent configured" is not.
        let warnings: Vec<_> = host
            .logs()
            .into_iter()
            .filter(|l| l.starts_with("warn"))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("odd"), "{warnings:?}");
    }

    #[test]
    fn a_forbidden_agent_call_fails_the_sync_and_writes_nothing() {
        let host = FakeHost::new()
            .with_http(
                "GET",
                &format!("{API}/qemu"),
                200,
                json!({"data": [
                    {"vmid": 100, "name": "web", "status": "running"},
                    {"vmid": 102, "name": "locked", "status": "running"}
                ]}),
            )
            .with_http("GET", &agent(100), 200, interfaces("10.0.0.10"))
            .with_http(
                "GET",
                &agent(102),
                403,
                json!({"data": null, "message": "Permission check failed (/vms/102, VM.Monitor)"}),
            );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/vm", "sync", globals(), json!({}))
            .unwrap_err();
        assert!(matches!(err, orch_plugin_sdk::Error::Denied(_)), "{err:?}");
        assert_eq!(host.batch_sizes(), vec![2]);
        assert_eq!(host.list("vm"), Vec::<String>::new());
    }

    #[test]
    fn a_transport_error_of_one_agent_call_fails_the_sync_like_a_single_call_did() {
        let host = fleet().with_http_error(
            "GET",
            &agent(100),
            orch_plugin_sdk::Error::Transient("connection reset".into()),
        );
        // 100's first answer is the scripted 200, its second the error: the second sync fails.
        let sync = || host.call::<ProxmoxPlugin>("proxmox/vm", "sync", globals(), json!({}));
        assert!(sync().is_ok());
        let err = sync().unwrap_err();
        assert!(
            matches!(err, orch_plugin_sdk::Error::Transient(ref m) if m.contains("reset")),
            "{err:?}"
        );
    }
}
