//! `proxmox/node`, `proxmox/vm`, `proxmox/lxc`, `proxmox/storage`, `proxmox/task`,
//! `proxmox/cluster` and `proxmox/guests`: Proxmox VE as orch models.
//!
//! `proxmox/node.auth` logs in and records the ticket; the other types read it through CEL and
//! keep one named resource per thing they list. Every sync retires, after a complete listing,
//! the resources it wrote before and no longer sees. The API logic lives in plain modules that talk
//! through [`pve::Transport`], so it is unit-tested natively; this file only wires it to the
//! host (HTTP, resources, logs).

mod agent;
mod cluster;
use orch_plugin_sdk::clock;
mod encode;
mod fields;
mod guests;
mod lxc;
mod names;
mod node;
mod pve;
mod retire;
mod storage;
mod task;
mod tasks;
mod vm;

use node::{NodeGlobals, NodeResource};
use orch_plugin_sdk::{
    Ctx, Error, Http, MethodKind, ModelType, PlannedChange, Plugin, Result, Value, json,
};
use std::collections::HashSet;
use vm::{
    ConfirmedArgs, CreateArgs, Fleet, NameArgs, NoArgs, Outcome, SetBootOrderArgs, SetConfigArgs,
    StartArgs, SyncSummary, VmGlobals, VmResource,
};

/// CalVer of every model type of the plugin.
const VERSION: &str = "2026.11.30.1";

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

/// Retires the resources of `spec` named in `gone` (already-retired ones are skipped) and logs
/// them; returns the names.
fn retire_gone<G>(ctx: &Ctx<G>, spec: &str, gone: Vec<String>) -> Result<Vec<String>> {
    for name in &gone {
        match ctx.retire_resource(spec, name) {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if !gone.is_empty() {
        let shown: Vec<&str> = gone.iter().take(20).map(String::as_str).collect();
        let more = gone.len().saturating_sub(shown.len());
        ctx.info(format!(
            "retired {} {spec} resource(s) Proxmox no longer lists: {}{}",
            gone.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    Ok(gone)
}

/// After a complete listing: retires every live `spec` resource in `before` that the sync did
/// not see and `in_scope` says the listing covered.
fn retire_unseen<G>(
    ctx: &Ctx<G>,
    spec: &str,
    before: &[String],
    seen: &HashSet<String>,
    in_scope: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    retire_gone(ctx, spec, retire::stale(before, seen, in_scope))
}

fn vm_sync(ctx: &Ctx<VmGlobals>, _: NoArgs) -> Result<SyncSummary> {
    let mut synced = with_fleet(ctx, |fleet| fleet.sync())?;
    if !ctx.dry_run {
        // Listed before writing: the names this model recorded in earlier runs.
        let before = ctx.list_resources("vm")?;
        let mut seen = HashSet::with_capacity(synced.resources.len());
        for resource in &synced.resources {
            write_vm(ctx, resource)?;
            seen.insert(resource.vm_name.clone());
        }
        // `sync` only succeeds after a complete listing, so what it did not see is gone.
        synced.summary.retired = retire_unseen(ctx, "vm", &before, &seen, |_| true)?;
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

/// Builds the container client for one call and runs `f` with it.
fn with_containers<T>(
    ctx: &Ctx<VmGlobals>,
    f: impl FnOnce(&lxc::Containers) -> Result<T>,
) -> Result<T> {
    let globals = &ctx.globals;
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let containers = lxc::Containers::new(
        &transport,
        globals,
        &warn,
        std::thread::sleep,
        clock::now_rfc3339(),
        ctx.dry_run,
    )?;
    f(&containers)
}

/// Writes a single-container outcome's resource and returns its output.
fn finish_ct(ctx: &Ctx<VmGlobals>, outcome: lxc::CtOutcome) -> Result<Value> {
    if let (Some(resource), false) = (&outcome.resource, ctx.dry_run) {
        ctx.write_resource("ct", &resource.name, resource)?;
    }
    Ok(outcome.output)
}

fn ct_sync(ctx: &Ctx<VmGlobals>, _: NoArgs) -> Result<lxc::CtSyncSummary> {
    let mut synced = with_containers(ctx, |c| c.sync())?;
    if !ctx.dry_run {
        let before = ctx.list_resources("ct")?;
        let mut seen = HashSet::with_capacity(synced.resources.len());
        for resource in &synced.resources {
            ctx.write_resource("ct", &resource.name, resource)?;
            seen.insert(resource.name.clone());
        }
        synced.summary.retired = retire_unseen(ctx, "ct", &before, &seen, |_| true)?;
    }
    ctx.info(format!(
        "synced {} containers ({} running) on {}",
        synced.summary.count, synced.summary.running, ctx.globals.node
    ));
    Ok(synced.summary)
}

fn ct_lookup(ctx: &Ctx<VmGlobals>, args: lxc::CtNameArgs) -> Result<lxc::CtResource> {
    let resource = with_containers(ctx, |c| c.lookup(&args.name))?;
    if !ctx.dry_run {
        ctx.write_resource("ct", &resource.name, &resource)?;
    }
    Ok(resource)
}

fn ct_start(ctx: &Ctx<VmGlobals>, args: lxc::CtNameArgs) -> Result<Value> {
    let outcome = with_containers(ctx, |c| c.start(&args.name))?;
    finish_ct(ctx, outcome)
}

fn ct_stop(ctx: &Ctx<VmGlobals>, args: lxc::CtConfirmedArgs) -> Result<Value> {
    let outcome = with_containers(ctx, |c| c.stop(&args))?;
    finish_ct(ctx, outcome)
}

fn ct_delete(ctx: &Ctx<VmGlobals>, args: lxc::CtConfirmedArgs) -> Result<Value> {
    let outcome = with_containers(ctx, |c| c.delete(&args))?;
    finish_ct(ctx, outcome)
}

fn ct_create(ctx: &Ctx<VmGlobals>, args: lxc::CtCreateArgs) -> Result<Value> {
    let outcome = with_containers(ctx, |c| c.create(&args))?;
    finish_ct(ctx, outcome)
}

fn ct_set_config(ctx: &Ctx<VmGlobals>, args: lxc::CtSetConfigArgs) -> Result<Value> {
    let outcome = with_containers(ctx, |c| c.set_config(&args.name, &args.config))?;
    finish_ct(ctx, outcome)
}

/// The `proxmox/lxc` model type.
fn lxc_type() -> ModelType {
    ModelType::new::<VmGlobals>(
        "proxmox/lxc",
        VERSION,
        "The LXC containers of one Proxmox node (or every node with node \"*\"): one `ct` resource per container, named like the container",
    )
    .resource::<lxc::CtResource>(
        "ct",
        "One container, named by its Proxmox name: vmid, name, status, node, cores, memory, rootfs, ips, tags, timestamp",
    )
    // Every sync stamps every container; a new timestamp alone is not a change.
    .volatile(&["timestamp"])
    .method(
        "sync",
        MethodKind::List,
        "Record every container (config, and addresses of running ones); retire those that are gone",
        ct_sync,
    )
    .method(
        "lookup",
        MethodKind::Read,
        "Record one container by name",
        ct_lookup,
    )
    .method(
        "create",
        MethodKind::Create,
        "Create a container from an ostemplate (next free vmid unless given) and wait for the task",
        ct_create,
    )
    .method(
        "start",
        MethodKind::Action,
        "Start a container by name (no-op if running) and record its addresses",
        ct_start,
    )
    .destructive_method(
        "stop",
        MethodKind::Action,
        "Hard-stop a container by name; expectVmid must match the recorded and the live vmid",
        ct_stop,
    )
    .confirm(lxc::confirm_rule())
    .destructive_method(
        "delete",
        MethodKind::Delete,
        "Delete a stopped container by name; expectVmid must match the recorded and the live vmid",
        ct_delete,
    )
    .confirm(lxc::confirm_rule())
    .method(
        "setConfig",
        MethodKind::Update,
        "Set Proxmox config keys (null deletes a key) and record the new config",
        ct_set_config,
    )
}

/// Builds the storage client for one call and runs `f` with it.
fn with_storage<T>(
    ctx: &Ctx<VmGlobals>,
    f: impl FnOnce(&storage::Storage) -> Result<T>,
) -> Result<T> {
    let globals = &ctx.globals;
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let client = storage::Storage::new(
        &transport,
        globals,
        &warn,
        std::thread::sleep,
        clock::now_rfc3339(),
    )?;
    f(&client)
}

fn storage_sync(ctx: &Ctx<VmGlobals>, _: NoArgs) -> Result<storage::ListSummary> {
    let pools = with_storage(ctx, |s| s.pools())?;
    let names: Vec<String> = pools.iter().map(|p| p.storage.clone()).collect();
    let mut retired = Vec::new();
    if !ctx.dry_run {
        let before = ctx.list_resources("pool")?;
        for pool in &pools {
            ctx.write_resource("pool", &pool.storage, pool)?;
        }
        let seen: HashSet<String> = names.iter().cloned().collect();
        retired = retire_unseen(ctx, "pool", &before, &seen, |_| true)?;
    }
    ctx.info(format!(
        "synced {} storage pools on {}",
        pools.len(),
        ctx.globals.node
    ));
    Ok(storage::ListSummary {
        count: pools.len(),
        names,
        retired,
    })
}

fn storage_content(
    ctx: &Ctx<VmGlobals>,
    args: storage::ContentArgs,
) -> Result<storage::ListSummary> {
    let volumes = with_storage(ctx, |s| s.content(&args.storage))?;
    let names: Vec<String> = volumes.iter().map(|v| v.volid.clone()).collect();
    let mut retired = Vec::new();
    if !ctx.dry_run {
        let before = ctx.list_resources("volume")?;
        for volume in &volumes {
            ctx.write_resource("volume", &volume.volid, volume)?;
        }
        let seen: HashSet<String> = names.iter().cloned().collect();
        // Only this pool was listed: volumes of other pools are out of scope.
        let prefix = format!("{}:", args.storage.trim());
        retired = retire_unseen(ctx, "volume", &before, &seen, |n| n.starts_with(&prefix))?;
    }
    ctx.info(format!(
        "synced {} volumes of {} on {}",
        volumes.len(),
        args.storage.trim(),
        ctx.globals.node
    ));
    Ok(storage::ListSummary {
        count: volumes.len(),
        names,
        retired,
    })
}

/// The `proxmox/storage` model type.
fn storage_type() -> ModelType {
    ModelType::new::<VmGlobals>(
        "proxmox/storage",
        VERSION,
        "The storage pools of one Proxmox node (`pool` resources) and the volumes of a pool (`volume` resources)",
    )
    .resource::<storage::PoolResource>(
        "pool",
        "One storage pool, named by its storage id: type, content, shared, enabled, active, total, used, avail",
    )
    // Bytes used are a real change (a filling disk); only the observation time is not.
    .volatile(&["timestamp"])
    .resource::<storage::VolumeResource>(
        "volume",
        "One volume, named by its volid (storage:path): content, format, size, vmid, ctime",
    )
    .volatile(&["timestamp"])
    .method(
        "sync",
        MethodKind::List,
        "Record every storage pool of the node with its usage; retire pools that are gone",
        storage_sync,
    )
    .method(
        "content",
        MethodKind::List,
        "Record every volume of one pool; retire that pool's volumes that are gone",
        storage_content,
    )
}

/// Builds the task client for one call and runs `f` with it.
fn with_tasks<T>(ctx: &Ctx<VmGlobals>, f: impl FnOnce(&tasks::Tasks) -> Result<T>) -> Result<T> {
    let globals = &ctx.globals;
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let client = tasks::Tasks::new(&transport, globals, &warn, std::thread::sleep)?;
    f(&client)
}

fn task_sync(ctx: &Ctx<VmGlobals>, args: tasks::TaskSyncArgs) -> Result<tasks::TaskSyncSummary> {
    let limit = args.limit.unwrap_or(tasks::DEFAULT_LIMIT).max(1);
    let listing = with_tasks(ctx, |t| t.list(limit))?;
    let mut summary = tasks::TaskSyncSummary {
        count: 0,
        by_status: Default::default(),
        unreachable_nodes: listing.unreachable.iter().map(|(n, _)| n.clone()).collect(),
        retired: Vec::new(),
    };
    let all = listing.nodes.iter().flat_map(|n| n.tasks.iter());
    for task in all.clone() {
        summary.count += 1;
        *summary.by_status.entry(task.status.clone()).or_default() += 1;
    }
    if !ctx.dry_run {
        let before = ctx.list_resources("task")?;
        let mut seen = HashSet::with_capacity(summary.count);
        for task in all {
            ctx.write_resource("task", &task.upid, task)?;
            seen.insert(task.upid.clone());
        }
        // Only tasks newer than each node's oldest listed one can be known gone; older ones
        // fell out of the window, and unreachable nodes were not seen at all.
        let windows = listing.windows();
        summary.retired = retire_unseen(ctx, "task", &before, &seen, |name| {
            tasks::TaskListing::covers(&windows, name)
        })?;
    }
    ctx.info(format!(
        "synced {} tasks of {} node(s)",
        summary.count,
        listing.nodes.len()
    ));
    Ok(summary)
}

fn task_status(ctx: &Ctx<VmGlobals>, args: tasks::UpidArgs) -> Result<tasks::TaskResource> {
    let mut resource = with_tasks(ctx, |t| t.status(&args.upid))?;
    if !ctx.dry_run {
        // The status endpoint has no end time; keep the one a sync recorded.
        if let Some(stored) = ctx.read_resource::<tasks::TaskResource>("task", &resource.upid)?
            && resource.status != "running"
        {
            resource.endtime = resource.endtime.or(stored.endtime);
        }
        ctx.write_resource("task", &resource.upid, &resource)?;
    }
    Ok(resource)
}

fn task_log(ctx: &Ctx<VmGlobals>, args: tasks::LogArgs) -> Result<Value> {
    with_tasks(ctx, |t| t.log(&args))
}

/// The `proxmox/task` model type.
fn task_type() -> ModelType {
    ModelType::new::<VmGlobals>(
        "proxmox/task",
        VERSION,
        "Proxmox tasks of one node (or every node with node \"*\"): one `task` resource per UPID",
    )
    // No volatile attributes: a finished task never changes, a running one changes for real.
    .resource::<tasks::TaskResource>(
        "task",
        "One task, named by its UPID: node, type, id, user, status (running/ok/warning/error), exitstatus, starttime, endtime",
    )
    .method(
        "sync",
        MethodKind::List,
        "Record the newest tasks of each node (limit per node, default 500); retire recorded tasks inside that window that are gone",
        task_sync,
    )
    .method(
        "status",
        MethodKind::Read,
        "Record and return the status of one task by UPID",
        task_status,
    )
    .method(
        "log",
        MethodKind::Read,
        "Return lines of one task's log (start, limit; default the first 500)",
        task_log,
    )
}

/// Writes `items` as resources of `spec` and retires the ones the complete listing no longer
/// has; returns the retired names as `spec/name`.
fn write_and_retire<G, R: serde::Serialize>(
    ctx: &Ctx<G>,
    spec: &str,
    items: &[(String, R)],
) -> Result<Vec<String>> {
    let before = ctx.list_resources(spec)?;
    let mut seen = HashSet::with_capacity(items.len());
    for (name, item) in items {
        ctx.write_resource(spec, name, item)?;
        seen.insert(name.clone());
    }
    let gone = retire_unseen(ctx, spec, &before, &seen, |_| true)?;
    Ok(gone.into_iter().map(|n| format!("{spec}/{n}")).collect())
}

fn cluster_sync(ctx: &Ctx<cluster::ClusterGlobals>, _: NoArgs) -> Result<cluster::ClusterSummary> {
    let globals = &ctx.globals;
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let view = cluster::read(
        &transport,
        globals,
        &warn,
        std::thread::sleep,
        &clock::now_rfc3339(),
    )?;
    let mut retired = Vec::new();
    if !ctx.dry_run {
        // One answer lists the whole cluster (offline nodes' guests included, as `unknown`),
        // so a guest, node or storage it lacks is gone.
        retired.extend(write_and_retire(ctx, "guest", &view.guests)?);
        retired.extend(write_and_retire(ctx, "node", &view.nodes)?);
        retired.extend(write_and_retire(ctx, "storage", &view.storages)?);
    }
    let summary = cluster::ClusterSummary {
        guests: view.guests.len(),
        nodes: view.nodes.len(),
        online_nodes: view
            .nodes
            .iter()
            .filter(|(_, n)| n.status == "online")
            .count(),
        storages: view.storages.len(),
        retired,
    };
    ctx.info(format!(
        "synced {} guests, {} nodes ({} online) and {} storages",
        summary.guests, summary.nodes, summary.online_nodes, summary.storages
    ));
    Ok(summary)
}

/// The `proxmox/cluster` model type.
fn cluster_type() -> ModelType {
    ModelType::new::<cluster::ClusterGlobals>(
        "proxmox/cluster",
        VERSION,
        "A whole Proxmox cluster from /cluster/resources: `guest` (qemu/100, lxc/101), `node` and `storage` (node/storage) resources",
    )
    .resource::<cluster::GuestResource>(
        "guest",
        "One VM or container, named by its cluster id (qemu/100, lxc/101): type, vmid, name, node, status, template, tags, limits, usage",
    )
    // Live counters change every sync; a change in them alone is not a change of the guest.
    .volatile(&["cpu", "mem", "disk", "uptime", "timestamp"])
    .resource::<cluster::NodeInfo>(
        "node",
        "One cluster node, named by the node: status, maxcpu, maxmem, maxdisk, level, usage",
    )
    .volatile(&["cpu", "mem", "disk", "uptime", "timestamp"])
    .resource::<cluster::ClusterStorage>(
        "storage",
        "One storage as one node sees it, named node/storage: plugintype, content, shared, status, total, used",
    )
    // `used` is kept: a filling pool is a real change.
    .volatile(&["timestamp"])
    .method(
        "sync",
        MethodKind::List,
        "Record every guest, node and storage of the cluster; retire those that are gone",
        cluster_sync,
    )
}

/// Builds the desired-guests client for one call (the declaration is checked first, before
/// any request) and runs `f` with it.
fn with_guests<T>(
    ctx: &Ctx<guests::GuestsGlobals>,
    f: impl FnOnce(&guests::Guests) -> Result<T>,
) -> Result<T> {
    let globals = &ctx.globals;
    let transport = http(globals.insecure_tls, globals.fingerprint.as_deref());
    let warn = |m: &str| ctx.warn(m);
    let client = guests::Guests::new(
        &transport,
        globals,
        &warn,
        std::thread::sleep,
        clock::now_rfc3339(),
    )?;
    f(&client)
}

fn guests_plan(
    ctx: &Ctx<guests::GuestsGlobals>,
    _: guests::ConvergeArgs,
) -> Result<Vec<PlannedChange>> {
    let plan = with_guests(ctx, |g| g.plan())?;
    Ok(plan.changes(&ctx.globals.guests))
}

fn guests_converge(
    ctx: &Ctx<guests::GuestsGlobals>,
    args: guests::ConvergeArgs,
) -> Result<guests::ConvergeSummary> {
    let declared = &ctx.globals.guests;
    let (states, summary) = with_guests(ctx, |g| {
        let plan = g.plan()?;
        if ctx.dry_run {
            return Ok((Vec::new(), plan.summary(declared)));
        }
        g.apply(&plan, args.allow_destroy)
    })?;
    if !ctx.dry_run {
        let before = ctx.list_resources("guest")?;
        for state in &states {
            ctx.write_resource("guest", &state.name, state)?;
        }
        // A guest removed from the declaration is no longer this model's.
        let gone: Vec<String> = before
            .into_iter()
            .filter(|name| !declared.iter().any(|g| &g.name == name))
            .collect();
        retire_gone(ctx, "guest", gone)?;
    }
    ctx.info(format!(
        "{} guest(s): {} created, {} updated, {} started, {} snapshotted, {} deleted, {} unchanged, {} undeclared",
        declared.len(),
        summary.created.len(),
        summary.updated.len(),
        summary.started.len(),
        summary.snapshotted.len(),
        summary.deleted.len(),
        summary.unchanged.len(),
        summary.undeclared.len()
    ));
    Ok(summary)
}

/// The `proxmox/guests` model type.
fn guests_type() -> ModelType {
    ModelType::new::<guests::GuestsGlobals>(
        "proxmox/guests",
        VERSION,
        "Desired guests: one definition declares many VMs and containers and `converge` makes the \
         live Proxmox match, in dependency order. Globals: the connection of proxmox/vm (apiUrl, \
         node, ticket, csrfToken, apiToken, insecureTls, fingerprint), `guests` (a list of {name, \
         kind: qemu|lxc, vmid, clone: template name or vmid, ostemplate and rootfs (lxc create \
         without clone), cores, memory (MiB), net0 (compared without the MAC), tags (a set), \
         start (default true), waitForAgent (qemu, default false), snapshot, dependsOn: [names]}) \
         and `prune` (default false: undeclared guests on the node are reported and left alone; \
         true: deleted, which converge refuses without allowDestroy: true)",
    )
    .resource::<guests::GuestState>(
        "guest",
        "One declared guest as converge left it, named like the guest: vmid, kind, node, status, ip, configDigest, snapshot, timestamp",
    )
    .volatile(&["timestamp"])
    .converge_method(
        "converge",
        "Per guest in dependency order: clone or create when missing, set only the config fields \
         that differ (PUT with the digest), start and (waitForAgent) wait for its address, take \
         the declared snapshot; then delete undeclared guests when prune (needs allowDestroy). \
         Its dry run (plan) only reads",
        guests_converge,
        guests_plan,
    )
}

/// The plugin: every Proxmox model type.
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
            lxc_type(),
            storage_type(),
            task_type(),
            cluster_type(),
            guests_type(),
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
        assert_eq!(
            names,
            [
                "proxmox/node",
                "proxmox/vm",
                "proxmox/lxc",
                "proxmox/storage",
                "proxmox/task",
                "proxmox/cluster",
                "proxmox/guests"
            ]
        );
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
    fn container_stop_and_delete_are_confirmed_by_the_recorded_vmid() {
        let types = describe();
        let lxc = types.iter().find(|t| t.name == "proxmox/lxc").unwrap();
        let destructive: Vec<_> = lxc.methods.iter().filter(|m| m.destructive).collect();
        assert_eq!(destructive.len(), 2);
        for method in destructive {
            let rule = method.confirm.as_ref().expect("a typed confirm rule");
            assert_eq!(
                (
                    rule.input.as_str(),
                    rule.spec.as_str(),
                    rule.name_argument.as_str(),
                    rule.attribute.as_str()
                ),
                ("expectVmid", "ct", "name", "vmid"),
                "{}",
                method.name
            );
        }
        assert_eq!(lxc.resources[0].volatile, ["timestamp"]);
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

#[cfg(test)]
mod retire_tests {
    use super::*;
    use orch_plugin_sdk::testing::FakeHost;

    const BASE: &str = "https://10.0.0.4:8006/api2/json";

    fn globals(node: &str) -> Value {
        json!({"apiUrl": "https://10.0.0.4:8006", "node": node, "ticket": "PVE:t", "insecureTls": true})
    }

    fn qemu(list: Value) -> FakeHost {
        FakeHost::new().with_http(
            "GET",
            &format!("{BASE}/nodes/n1/qemu"),
            200,
            json!({ "data": list }),
        )
    }

    #[test]
    fn a_vm_that_disappears_is_retired_and_one_that_comes_back_is_live_again() {
        let host = FakeHost::new()
            .with_http(
                "GET",
                &format!("{BASE}/nodes/n1/qemu"),
                200,
                json!({"data": [
                    {"vmid": 100, "name": "a", "status": "stopped"},
                    {"vmid": 101, "name": "b", "status": "stopped"}
                ]}),
            )
            .with_http(
                "GET",
                &format!("{BASE}/nodes/n1/qemu"),
                200,
                json!({"data": [{"vmid": 100, "name": "a", "status": "stopped"}]}),
            )
            .with_http(
                "GET",
                &format!("{BASE}/nodes/n1/qemu"),
                200,
                json!({"data": [
                    {"vmid": 100, "name": "a", "status": "stopped"},
                    {"vmid": 101, "name": "b", "status": "stopped"}
                ]}),
            );
        let sync = || host.call::<ProxmoxPlugin>("proxmox/vm", "sync", globals("n1"), json!({}));
        let first = sync().unwrap();
        assert!(first.get("retired").is_none(), "{first}");
        let second = sync().unwrap();
        assert_eq!(second["retired"], json!(["b"]));
        assert_eq!(host.list("vm"), ["a"]);
        assert_eq!(host.versions("vm", "b").last(), Some(&Value::Null));
        assert!(
            host.logs()
                .iter()
                .any(|l| l.contains("retired 1 vm resource(s)"))
        );
        sync().unwrap();
        assert_eq!(host.list("vm"), ["a", "b"]);
    }

    #[test]
    fn a_failed_listing_retires_nothing() {
        for (status, body) in [
            (
                596,
                json!({"data": null, "message": "Connection timed out"}),
            ),
            (200, json!({"errors": "none"})),
            (200, json!({"data": {"vmid": 1}})),
        ] {
            let host = FakeHost::new()
                .with_resource("vm", "old", json!({"vmid": 1, "vmName": "old"}))
                .with_http("GET", &format!("{BASE}/nodes/n1/qemu"), status, body);
            let err = host
                .call::<ProxmoxPlugin>("proxmox/vm", "sync", globals("n1"), json!({}))
                .unwrap_err();
            assert!(format!("{err:?}").contains("GET /nodes/n1/qemu"), "{err:?}");
            assert_eq!(host.list("vm"), ["old"], "{status}");
        }
    }

    #[test]
    fn a_dry_run_sync_retires_nothing() {
        let host = qemu(json!([])).with_resource("vm", "old", json!({"vmid": 1}));
        host.dry_run::<ProxmoxPlugin>("proxmox/vm", "sync", globals("n1"), json!({}))
            .unwrap();
        assert_eq!(host.list("vm"), ["old"]);
    }

    #[test]
    fn node_star_syncs_every_nodes_vms_and_keeps_each_vms_node() {
        let host = FakeHost::new()
            .with_http(
                "GET",
                &format!("{BASE}/cluster/resources?type=vm"),
                200,
                json!({"data": [
                    {"id": "qemu/100", "type": "qemu", "node": "pve1", "vmid": 100, "name": "web", "status": "running"},
                    {"id": "lxc/101", "type": "lxc", "node": "pve1", "vmid": 101, "name": "ct", "status": "running"},
                    {"id": "qemu/200", "type": "qemu", "node": "pve2", "vmid": "200", "name": "db", "status": "stopped"}
                ]}),
            )
            .with_http(
                "GET",
                &format!("{BASE}/nodes/pve1/qemu/100/agent/network-get-interfaces"),
                200,
                json!({"data": {"result": [{"name": "eth0", "ip-addresses": [{"ip-address": "10.0.0.5"}]}]}}),
            )
            .with_resource("vm", "gone", json!({"vmid": 300}));
        let out = host
            .call::<ProxmoxPlugin>("proxmox/vm", "sync", globals("*"), json!({}))
            .unwrap();
        assert_eq!(out["count"], 2);
        assert_eq!(out["retired"], json!(["gone"]));
        let web = host.latest("vm", "web").unwrap();
        assert_eq!(
            (web["node"].clone(), web["ip"].clone()),
            (json!("pve1"), json!("10.0.0.5"))
        );
        assert_eq!(host.latest("vm", "db").unwrap()["node"], "pve2");
        assert!(host.latest("vm", "ct").is_none(), "containers are not VMs");
    }

    #[test]
    fn node_star_stops_a_vm_on_its_own_node() {
        let host = FakeHost::new()
            .with_http(
                "GET",
                &format!("{BASE}/cluster/resources?type=vm"),
                200,
                json!({"data": [{"type": "qemu", "node": "pve2", "vmid": 200, "name": "db", "status": "running"}]}),
            )
            .with_http(
                "POST",
                &format!("{BASE}/nodes/pve2/qemu/200/status/stop"),
                200,
                json!({"data": null}),
            );
        let mut g = globals("*");
        g["csrfToken"] = json!("c");
        let out = host
            .call::<ProxmoxPlugin>(
                "proxmox/vm",
                "stop",
                g.clone(),
                json!({"vmName": "db", "expectVmid": 200}),
            )
            .unwrap();
        assert_eq!(
            (out["node"].clone(), out["status"].clone()),
            (json!("pve2"), json!("stopped"))
        );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/vm", "create", g, json!({"vmName": "new"}))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArguments(ref m) if m.contains("\"*\"")),
            "{err:?}"
        );
    }

    #[test]
    fn a_malformed_cluster_list_names_the_endpoint_and_field() {
        let host = FakeHost::new().with_http(
            "GET",
            &format!("{BASE}/cluster/resources?type=vm"),
            200,
            json!({"data": [{"type": "qemu", "node": "pve2", "vmid": "lots", "name": "db"}]}),
        );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/vm", "sync", globals("*"), json!({}))
            .unwrap_err();
        assert!(
            matches!(err, Error::Failed(ref m) if m.starts_with("GET /cluster/resources?type=vm: field `vmid` of entry 0")),
            "{err:?}"
        );
    }
}

#[cfg(test)]
mod storage_retire_tests {
    use super::*;
    use orch_plugin_sdk::testing::FakeHost;

    const NODE: &str = "https://10.0.0.4:8006/api2/json/nodes/pve1";

    fn globals() -> Value {
        json!({"apiUrl": "https://10.0.0.4:8006", "node": "pve1", "ticket": "PVE:t"})
    }

    #[test]
    fn a_removed_pool_is_retired_after_a_complete_listing() {
        let host = FakeHost::new()
            .with_resource("pool", "old-nfs", json!({"storage": "old-nfs"}))
            .with_http(
                "GET",
                &format!("{NODE}/storage"),
                200,
                json!({"data": [{"storage": "local", "type": "dir", "content": "iso", "enabled": 1, "active": 1, "used": 5}]}),
            );
        let out = host
            .call::<ProxmoxPlugin>("proxmox/storage", "sync", globals(), json!({}))
            .unwrap();
        assert_eq!(out["retired"], json!(["old-nfs"]));
        assert_eq!(host.list("pool"), ["local"]);
        assert_eq!(host.latest("pool", "local").unwrap()["used"], 5);
    }

    #[test]
    fn a_failed_pool_listing_retires_nothing() {
        let host = FakeHost::new()
            .with_resource("pool", "local", json!({"storage": "local"}))
            .with_http(
                "GET",
                &format!("{NODE}/storage"),
                596,
                json!({"data": null, "message": "Connection timed out"}),
            );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/storage", "sync", globals(), json!({}))
            .unwrap_err();
        assert!(matches!(err, Error::Transient(_)), "{err:?}");
        assert_eq!(host.list("pool"), ["local"]);
    }

    #[test]
    fn content_retires_only_volumes_of_the_listed_pool() {
        let host = FakeHost::new()
            .with_resource("volume", "local:iso/old.iso", json!({"volid": "local:iso/old.iso"}))
            .with_resource("volume", "local-lvm:vm-100-disk-0", json!({"volid": "local-lvm:vm-100-disk-0"}))
            .with_resource("volume", "local2:iso/x.iso", json!({"volid": "local2:iso/x.iso"}))
            .with_http(
                "GET",
                &format!("{NODE}/storage/local/content"),
                200,
                json!({"data": [{"volid": "local:iso/debian-12.iso", "content": "iso", "format": "iso", "size": 10}]}),
            )
            .with_http(
                "GET",
                &format!("{NODE}/storage/local-lvm/content"),
                500,
                json!({"data": null, "message": "storage 'local-lvm' is not online"}),
            );
        let out = host
            .call::<ProxmoxPlugin>(
                "proxmox/storage",
                "content",
                globals(),
                json!({"storage": "local"}),
            )
            .unwrap();
        assert_eq!(out["retired"], json!(["local:iso/old.iso"]));
        assert_eq!(
            host.list("volume"),
            [
                "local-lvm:vm-100-disk-0",
                "local2:iso/x.iso",
                "local:iso/debian-12.iso"
            ]
        );
        let err = host
            .call::<ProxmoxPlugin>(
                "proxmox/storage",
                "content",
                globals(),
                json!({"storage": "local-lvm"}),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Failed(ref m) if m.contains("GET /nodes/pve1/storage/local-lvm/content")),
            "{err:?}"
        );
        assert!(
            host.list("volume")
                .contains(&"local-lvm:vm-100-disk-0".to_string())
        );
    }
}

#[cfg(test)]
mod task_retire_tests {
    use super::*;
    use orch_plugin_sdk::testing::FakeHost;

    const API: &str = "https://10.0.0.4:8006/api2/json";

    fn globals(node: &str) -> Value {
        json!({"apiUrl": "https://10.0.0.4:8006", "node": node, "ticket": "PVE:t"})
    }

    fn upid(node: &str, start: u64) -> String {
        format!("UPID:{node}:00000001:00000002:{start:08X}:vzdump:101:root@pam:")
    }

    fn task(node: &str, start: u64) -> Value {
        json!({"upid": upid(node, start), "node": node, "starttime": start, "endtime": start + 1,
               "type": "vzdump", "id": "101", "user": "root@pam", "status": "OK"})
    }

    #[test]
    fn only_tasks_inside_the_listed_window_are_retired() {
        let host = FakeHost::new()
            .with_resource("task", &upid("pve1", 50), json!({}))
            .with_resource("task", &upid("pve1", 150), json!({}))
            .with_resource("task", &upid("pve2", 150), json!({}))
            .with_http(
                "GET",
                &format!("{API}/nodes"),
                200,
                json!({"data": [{"node": "pve1", "status": "online"}, {"node": "pve2", "status": "online"}]}),
            )
            .with_http(
                "GET",
                &format!("{API}/nodes/pve1/tasks?start=0&limit=2"),
                200,
                json!({"data": [task("pve1", 200), task("pve1", 100)], "total": 2}),
            )
            .with_http(
                "GET",
                &format!("{API}/nodes/pve2/tasks?start=0&limit=2"),
                596,
                json!({"data": null, "message": "Connection timed out"}),
            );
        let out = host
            .call::<ProxmoxPlugin>("proxmox/task", "sync", globals("*"), json!({"limit": 2}))
            .unwrap();
        assert_eq!(out["count"], 2);
        assert_eq!(out["byStatus"], json!({"ok": 2}));
        assert_eq!(out["unreachableNodes"], json!(["pve2"]));
        // 150 on pve1 was inside the window and is gone; 50 fell out of it; pve2 was not read.
        assert_eq!(out["retired"], json!([upid("pve1", 150)]));
        let mut live = host.list("task");
        live.sort();
        let mut expected = vec![
            upid("pve1", 50),
            upid("pve1", 100),
            upid("pve1", 200),
            upid("pve2", 150),
        ];
        expected.sort();
        assert_eq!(live, expected);
        assert_eq!(
            host.latest("task", &upid("pve1", 200)).unwrap()["status"],
            "ok"
        );
    }

    #[test]
    fn a_failed_task_listing_retires_nothing() {
        let host = FakeHost::new()
            .with_resource("task", &upid("pve1", 150), json!({}))
            .with_http(
                "GET",
                &format!("{API}/nodes/pve1/tasks?start=0&limit=500"),
                200,
                json!({"data": [task("pve1", 200), {"upid": "garbage"}]}),
            );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/task", "sync", globals("pve1"), json!({}))
            .unwrap_err();
        assert!(
            matches!(err, Error::Failed(ref m) if m.contains("field `upid` of entry 1")),
            "{err:?}"
        );
        assert_eq!(host.list("task"), [upid("pve1", 150)]);
    }

    #[test]
    fn status_keeps_the_end_time_a_sync_recorded() {
        let id = upid("pve1", 100);
        let host = FakeHost::new()
            .with_http(
                "GET",
                &format!("{API}/nodes/pve1/tasks?start=0&limit=500"),
                200,
                json!({"data": [task("pve1", 100)]}),
            )
            .with_http(
                "GET",
                &format!(
                    "{API}/nodes/pve1/tasks/{}/status",
                    encode::path_segment(&id)
                ),
                200,
                json!({"data": {"upid": id, "node": "pve1", "status": "stopped", "exitstatus": "OK",
                    "type": "vzdump", "id": "101", "user": "root@pam", "starttime": 100}}),
            );
        host.call::<ProxmoxPlugin>("proxmox/task", "sync", globals("pve1"), json!({}))
            .unwrap();
        let out = host
            .call::<ProxmoxPlugin>(
                "proxmox/task",
                "status",
                globals("pve1"),
                json!({"upid": id}),
            )
            .unwrap();
        assert_eq!(out["endtime"], 101);
        let versions = host.versions("task", &id);
        assert_eq!(versions.len(), 2, "both writes reach the fake host");
        assert_eq!(versions[0], versions[1], "and they are identical");
    }
}

#[cfg(test)]
mod cluster_retire_tests {
    use super::*;
    use orch_plugin_sdk::testing::FakeHost;

    const URL: &str = "https://10.0.0.4:8006/api2/json/cluster/resources";

    fn globals() -> Value {
        json!({"apiUrl": "https://10.0.0.4:8006", "ticket": "PVE:t"})
    }

    fn answer(with_db: bool, used: u64, cpu: f64) -> Value {
        let mut data = vec![
            json!({"id": "qemu/100", "type": "qemu", "node": "pve1", "vmid": 100, "name": "web", "status": "running", "cpu": cpu, "uptime": 10}),
            json!({"id": "node/pve1", "type": "node", "node": "pve1", "status": "online", "cpu": cpu}),
            json!({"id": "storage/pve1/local", "type": "storage", "node": "pve1", "storage": "local", "disk": used, "maxdisk": 100}),
        ];
        if with_db {
            data.push(json!({"id": "lxc/200", "type": "lxc", "node": "pve2", "vmid": 200, "name": "db", "status": "running"}));
            data.push(
                json!({"id": "node/pve2", "type": "node", "node": "pve2", "status": "online"}),
            );
        }
        json!({ "data": data })
    }

    #[test]
    fn a_cluster_sync_records_and_retires_guests_nodes_and_storages() {
        let host = FakeHost::new()
            .with_http("GET", URL, 200, answer(true, 40, 0.1))
            .with_http("GET", URL, 200, answer(false, 60, 0.9));
        let sync = || host.call::<ProxmoxPlugin>("proxmox/cluster", "sync", globals(), json!({}));
        let first = sync().unwrap();
        assert_eq!(
            (first["guests"].clone(), first["nodes"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(host.latest("guest", "lxc/200").unwrap()["node"], "pve2");
        assert_eq!(host.latest("storage", "pve1/local").unwrap()["used"], 40);
        let second = sync().unwrap();
        assert_eq!(second["retired"], json!(["guest/lxc/200", "node/pve2"]));
        assert_eq!(host.list("guest"), ["qemu/100"]);
        assert_eq!(host.latest("storage", "pve1/local").unwrap()["used"], 60);
    }

    #[test]
    fn a_failed_cluster_listing_retires_nothing() {
        let host = FakeHost::new()
            .with_resource("guest", "qemu/100", json!({}))
            .with_http(
                "GET",
                URL,
                200,
                json!({"data": [{"type": "qemu", "node": "x", "vmid": "one"}]}),
            );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/cluster", "sync", globals(), json!({}))
            .unwrap_err();
        assert!(
            matches!(err, Error::Failed(ref m) if m.contains("field `vmid` of entry 0")),
            "{err:?}"
        );
        assert_eq!(host.list("guest"), ["qemu/100"]);
    }

    #[test]
    fn cluster_volatile_fields_are_live_counters_but_not_storage_usage() {
        let types = ProxmoxPlugin::types();
        let info = types
            .iter()
            .find(|t| t.name() == "proxmox/cluster")
            .unwrap()
            .info();
        let volatile: Vec<(&str, Vec<&str>)> = info
            .resources
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.volatile.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            volatile,
            [
                ("guest", vec!["cpu", "mem", "disk", "uptime", "timestamp"]),
                ("node", vec!["cpu", "mem", "disk", "uptime", "timestamp"]),
                ("storage", vec!["timestamp"]),
            ]
        );
    }
}
