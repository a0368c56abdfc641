//! `orch data list|get|versions|diff|changes`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{CliError, CmdResult, Ctx};
use crate::repo::{Repo, Retention};
use crate::store::{
    ChangeKind, ChangeWindow, FieldDiff, KeepRule, ResourceKey, ResourceStore, ResourceVersion,
    StoreError, Tags, diff_attributes, mask_sensitive, rfc3339,
};

/// The window `orch data changes` shows without `--since`.
const DEFAULT_SINCE: &str = "24h";

/// `orch data` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// List resources (of one model, or all); retired ones only with --all.
    List {
        /// Model name.
        model: Option<String>,
        /// Also list resources whose latest version retired them (marked `retired`).
        #[arg(long)]
        all: bool,
        /// Only resources whose latest version carries this tag (repeatable: all must match).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Show a resource's latest version (or --version N), with when it was last seen (`lastSeen`).
    Get {
        /// Model name.
        model: String,
        /// Resource (instance) name.
        name: String,
        /// A specific version.
        #[arg(long)]
        version: Option<u64>,
        /// The resource spec, when the name exists under several.
        #[arg(long)]
        spec: Option<String>,
    },
    /// List every version of a resource, and when it was last seen.
    ///
    /// A write that changes only volatile attributes stores no version, so the last line
    /// (`last seen <time> by run <id> (step <s>)`; `lastSeen` on the newest entry in --json)
    /// tells when a sync last saw the resource. A retirement is not a sighting.
    Versions {
        /// Model name.
        model: String,
        /// Resource (instance) name.
        name: String,
        /// The resource spec, when the name exists under several.
        #[arg(long)]
        spec: Option<String>,
    },
    /// Field-level differences between two versions of a resource (default: the last two).
    ///
    /// Attributes the resource spec declares volatile are ignored. Nested objects compare by
    /// dotted path (`config.net0`), arrays as whole values. A line per field:
    /// `~ path: old → new`, `+ path: new`, `- path: old`; a tombstone compared with a live
    /// version says `retired`. --json: {"model","spec","name","from","to","added":{path:value},
    /// "removed":{path:value},"changed":{path:{"from","to"}}}, plus "retired": true.
    Diff {
        /// Model name.
        model: String,
        /// Resource (instance) name.
        name: String,
        /// The older version (default: the one before --to).
        #[arg(long)]
        from: Option<u64>,
        /// The newer version (default: the latest).
        #[arg(long)]
        to: Option<u64>,
        /// The resource spec, when the name exists under several.
        #[arg(long)]
        spec: Option<String>,
    },
    /// Resources that appeared, changed or were retired in a window, newest first, by model.
    ///
    /// `appeared` is a first version or the first live one after a retirement; `changed` lists
    /// the changed fields (volatile attributes ignored; a version that changed only those is
    /// not shown); `retired` is a tombstone. --json: [{"model", "changes": [{"spec", "name",
    /// "kind": "appeared|changed|retired", "version", "run", "step", "time", "fields":
    /// {path: {"from", "to"}}}]}], where an added field has only "to", a removed one only
    /// "from", and `fields` is empty unless the kind is `changed`.
    Changes {
        /// Only this model.
        model: Option<String>,
        /// The window: a run id (or a prefix of 6+ characters) for the changes written by runs
        /// started after that run; an RFC 3339 time (2026-11-30T09:00:00Z) or a date
        /// (2026-11-30, midnight UTC) for those committed since then; or a duration back from
        /// now (90s, 30m, 24h, 7d, 2w). Default: 24h.
        #[arg(long, value_name = "RUN|TIME|DURATION")]
        since: Option<String>,
    },
    /// Resources whose latest live version matches a CEL predicate, with an optional selected value.
    ///
    /// The predicate and --select see `model`, `spec`, `name`, `version` (int), `attributes`,
    /// `tags` (map of strings) and `provenance` ({runId, step, method, time}) of each resource,
    /// plus the usual functions (`data.latest`, `data.findByTag`); `model` is the model's name
    /// here, not the root of `model.X.resource`. Sensitive (`writeOnly`) attributes are
    /// replaced by `(sensitive)` before either expression sees them, so they never print. A
    /// predicate that reads an attribute a resource does not have does not match it (as in
    /// swamp); one that gives anything but true or false is refused. --json: [{"model",
    /// "spec", "name", "version", "value"}] (`value` only with --select).
    Query {
        /// The CEL predicate, e.g. 'attributes.status == "running"'.
        predicate: String,
        /// A CEL expression whose value is printed for each match, e.g. 'attributes.ip'.
        #[arg(long)]
        select: Option<String>,
        /// Only this model's resources.
        #[arg(long)]
        model: Option<String>,
        /// Only resources whose latest version carries this tag (repeatable: all must match).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Delete the versions that the definitions' `garbageCollection` no longer keep, then compact the file.
    ///
    /// Only resource specs with `resources.<spec>.garbageCollection` in their model's
    /// definition lose versions (the default keeps everything). The latest version of a
    /// resource and the one its last sighting points to are always kept. The deletions are one
    /// transaction; compacting needs the file to itself, so it fails (after the deletions are
    /// committed) while another orch process has the store open, unless nothing was deleted.
    /// --json: {"deleted": [{"model",
    /// "spec", "name", "version", "time"}], "dryRun", "sizeBefore", "sizeAfter"} (bytes).
    Gc {
        /// List what would be deleted and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this model's resources.
        #[arg(long)]
        model: Option<String>,
    },
}

fn find_spec(
    store: &ResourceStore,
    model: &str,
    name: &str,
    spec: Option<String>,
) -> Result<String, CliError> {
    if let Some(s) = spec {
        return Ok(s);
    }
    let keys: Vec<ResourceKey> = store.find_by_name(model, name).map_err(CliError::failed)?;
    match keys.len() {
        0 => Err(CliError::failed(format!(
            "model `{model}` has no resource named `{name}` (see `orch data list {model}`)"
        ))),
        1 => Ok(keys[0].spec.clone()),
        _ => Err(CliError::usage(format!(
            "`{name}` exists under several specs of `{model}` ({}); pass --spec",
            keys.iter()
                .map(|k| k.spec.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Runs an `orch data` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let store = ctx.store(&repo);
    match cmd {
        Cmd::List { model, all, tags } => {
            let shown = list(&repo, &store, model.as_deref(), all, &parse_tags(&tags)?)?;
            ctx.printer.result(&shown.value, || shown.text.clone());
            Ok(0)
        }
        Cmd::Get {
            model,
            name,
            version,
            spec,
        } => {
            let shown = get(ctx, &repo, &store, &model, &name, version, spec).await?;
            ctx.printer.result(&shown.value, || shown.text.clone());
            Ok(0)
        }
        Cmd::Versions { model, name, spec } => {
            let shown = versions(ctx, &repo, &store, &model, &name, spec).await?;
            ctx.printer.result(&shown.value, || shown.text.clone());
            Ok(0)
        }
        Cmd::Diff {
            model,
            name,
            from,
            to,
            spec,
        } => {
            let shown = diff(ctx, &repo, &store, &model, &name, from, to, spec).await?;
            ctx.printer.result(&shown.value, || shown.text.clone());
            Ok(0)
        }
        Cmd::Changes { model, since } => {
            let shown = changes(ctx, &repo, &store, model, since).await?;
            ctx.printer.result(&shown.value, || shown.text.clone());
            Ok(0)
        }
        Cmd::Query {
            predicate,
            select,
            model,
            tags,
        } => {
            query(
                ctx,
                &repo,
                &store,
                &predicate,
                select.as_deref(),
                model,
                &tags,
            )
            .await
        }
        Cmd::Gc { dry_run, model } => gc(ctx, &repo, &store, dry_run, model.as_deref()),
    }
}

/// A command's result: the `--json` value and the human text, made once for both the CLI
/// and `orch serve`.
pub(crate) struct Shown {
    /// What `--json` prints and the API returns.
    pub value: Value,
    /// What the CLI prints otherwise.
    pub text: String,
}

/// `orch data list`: resources (of one model, or all), retired ones only with `all`.
pub(crate) fn list(
    repo: &Repo,
    store: &ResourceStore,
    model: Option<&str>,
    all: bool,
    wanted: &Tags,
) -> Result<Shown, CliError> {
    if let Some(m) = model {
        repo.model(m).map_err(CliError::usage)?;
    }
    let mut list = store.list(model).map_err(CliError::failed)?;
    if !all {
        list.retain(|r| !r.retired);
    }
    list.retain(|r| has_tags(&r.tags, wanted));
    let value: Vec<serde_json::Value> = list
        .iter()
        .map(|r| serde_json::json!({"model": r.model, "spec": r.spec, "name": r.name, "latest": r.latest, "writtenAt": r.written_at, "retired": r.retired, "tags": r.tags}))
        .collect();
    let text = list
        .iter()
        .map(|r| {
            let line = format!(
                "{:<16} {:<10} {:<24} v{:<4} {}",
                r.model, r.spec, r.name, r.latest, r.written_at
            );
            if r.retired {
                format!("{line}  retired")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Shown {
        value: Value::Array(value),
        text,
    })
}

/// `orch data get`: a resource's latest version (or `version`), sensitive attributes masked.
pub(crate) async fn get(
    ctx: &Ctx,
    repo: &Repo,
    store: &ResourceStore,
    model: &str,
    name: &str,
    version: Option<u64>,
    spec: Option<String>,
) -> Result<Shown, CliError> {
    let spec = find_spec(store, model, name, spec)?;
    let found = match version {
        Some(v) => store.version(model, &spec, name, v),
        None => store.latest(model, &spec, name),
    }
    .map_err(CliError::failed)?;
    let Some(mut rv) = found else {
        return Err(CliError::failed(format!(
            "{model}/{spec}/{name} has no version {}",
            version.map(|v| v.to_string()).unwrap_or_default()
        )));
    };
    let traits = traits_of(ctx, repo, &BTreeSet::from([model.to_string()])).await;
    mask_sensitive(
        &mut rv.attributes,
        &traits_for(&traits, model, &spec).sensitive,
    );
    let seen = store
        .last_seen(model, &spec, name)
        .map_err(CliError::failed)?;
    let expired = version.is_none() && expired(repo, &rv);
    let mut value = serde_json::to_value(&rv).map_err(CliError::failed)?;
    if let (Some(seen), Some(fields)) = (seen, value.as_object_mut()) {
        fields.insert("lastSeen".into(), json!(seen));
    }
    if let (true, Some(fields)) = (expired, value.as_object_mut()) {
        fields.insert("expired".into(), json!(true));
    }
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    Ok(Shown { value, text })
}

/// `orch data versions`: every version of a resource, and when it was last seen.
pub(crate) async fn versions(
    ctx: &Ctx,
    repo: &Repo,
    store: &ResourceStore,
    model: &str,
    name: &str,
    spec: Option<String>,
) -> Result<Shown, CliError> {
    let spec = find_spec(store, model, name, spec)?;
    let mut versions = store
        .versions(model, &spec, name)
        .map_err(CliError::failed)?;
    let traits = traits_of(ctx, repo, &BTreeSet::from([model.to_string()])).await;
    let sensitive = &traits_for(&traits, model, &spec).sensitive;
    for v in &mut versions {
        mask_sensitive(&mut v.attributes, sensitive);
    }
    let seen = store
        .last_seen(model, &spec, name)
        .map_err(CliError::failed)?;
    let mut value = serde_json::to_value(&versions).map_err(CliError::failed)?;
    if let (Some(seen), Some(newest)) = (
        &seen,
        value
            .as_array_mut()
            .and_then(|a| a.last_mut())
            .and_then(Value::as_object_mut),
    ) {
        newest.insert("lastSeen".into(), json!(seen));
    }
    let mut lines: Vec<String> = versions
        .iter()
        .map(|v| {
            let what = if v.retired {
                "retired (the plugin saw it gone)".to_string()
            } else {
                v.attributes.to_string()
            };
            let tags = if v.tags.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = v.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("  tags {}", pairs.join(","))
            };
            format!(
                "v{:<4} {}  run {}  step {}{tags}  {what}",
                v.version, v.provenance.time, v.provenance.run_id, v.provenance.step,
            )
        })
        .collect();
    if let Some(seen) = &seen {
        lines.push(format!(
            "last seen {} by run {} (step {})",
            seen.time, seen.run_id, seen.step
        ));
    }
    Ok(Shown {
        value,
        text: lines.join("\n"),
    })
}

/// `orch data query`.
async fn query(
    ctx: &Ctx,
    repo: &Repo,
    store: &ResourceStore,
    predicate: &str,
    select: Option<&str>,
    model: Option<String>,
    tags: &[String],
) -> CmdResult {
    if let Some(m) = &model {
        check_model(repo, store, m)?;
    }
    let wanted = parse_tags(tags)?;
    let evaluator = crate::expr::Evaluator::new();
    for (flag, expr) in [("predicate", Some(predicate)), ("--select", select)] {
        if let Some(expr) = expr {
            evaluator
                .check_syntax(expr)
                .map_err(|e| CliError::usage(format!("{flag} `{expr}`: {}", e.kind)))?;
        }
    }
    let mut found = store
        .latest_live(model.as_deref())
        .map_err(CliError::failed)?;
    found.retain(|v| has_tags(&v.tags, &wanted));
    let models: BTreeSet<String> = found.iter().map(|v| v.model.clone()).collect();
    let traits = traits_of(ctx, repo, &models).await;
    let data = crate::method::StoreDataSource::new(store.clone(), ctx.vault(repo)?, repo);
    let mut rows: Vec<(ResourceVersion, Option<Value>)> = Vec::new();
    for mut v in found {
        mask_sensitive(
            &mut v.attributes,
            &traits_for(&traits, &v.model, &v.spec).sensitive,
        );
        let bindings = json!({
            "model": v.model,
            "spec": v.spec,
            "name": v.name,
            "version": v.version,
            "attributes": v.attributes,
            "tags": v.tags,
            "provenance": v.provenance,
        });
        let bindings = bindings.as_object().cloned().unwrap_or_default();
        let scope = evaluator.scope_with_bindings(&data, crate::expr::Vars::default(), &bindings);
        let what = format!("{}/{}/{}", v.model, v.spec, v.name);
        let matched = match scope.eval_expr(predicate) {
            Ok(Value::Bool(b)) => b,
            Ok(other) => {
                return Err(CliError::usage(format!(
                    "the predicate `{predicate}` gave {} for {what}; it must give true or false (e.g. compare with ==)",
                    kind_of(&other)
                )));
            }
            // A resource without the attribute does not match, as in swamp.
            Err(e) if matches!(e.kind, crate::expr::ExprErrorKind::NoSuchKey { .. }) => false,
            Err(e) => {
                return Err(CliError::usage(format!(
                    "the predicate `{predicate}` failed on {what}: {}",
                    e.kind
                )));
            }
        };
        if !matched {
            continue;
        }
        let value = match select {
            None => None,
            Some(select) => Some(match scope.eval_expr(select) {
                Ok(value) => value,
                Err(e) if matches!(e.kind, crate::expr::ExprErrorKind::NoSuchKey { .. }) => {
                    Value::Null
                }
                Err(e) => {
                    return Err(CliError::usage(format!(
                        "--select `{select}` failed on {what}: {}",
                        e.kind
                    )));
                }
            }),
        };
        rows.push((v, value));
    }
    // A --select may read the vault; its values never reach the output.
    let redactor = crate::vault::Redactor::default();
    for secret in evaluator.secrets() {
        redactor.add(&secret);
    }
    for (_, selected) in &mut rows {
        if let Some(selected) = selected {
            redactor.redact_json(selected);
        }
    }
    let value: Vec<Value> = rows
        .iter()
        .map(|(v, selected)| {
            let mut row =
                json!({"model": v.model, "spec": v.spec, "name": v.name, "version": v.version});
            if let (Some(selected), Some(fields)) = (selected, row.as_object_mut()) {
                fields.insert("value".into(), selected.clone());
            }
            row
        })
        .collect();
    ctx.printer.result(&value, || {
        if rows.is_empty() {
            return "no resource matches".to_string();
        }
        rows.iter()
            .map(|(v, selected)| {
                let line = format!(
                    "{:<16} {:<32} v{:<4}",
                    v.model,
                    format!("{}/{}", v.spec, v.name),
                    v.version
                );
                match selected {
                    Some(Value::String(s)) => format!("{line} {s}"),
                    Some(other) => format!("{line} {other}"),
                    None => line.trim_end().to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}

/// The JSON type of a value, for messages.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// `orch data gc`.
fn gc(
    ctx: &Ctx,
    repo: &Repo,
    store: &ResourceStore,
    dry_run: bool,
    model: Option<&str>,
) -> CmdResult {
    if let Some(m) = model {
        repo.model(m).map_err(CliError::usage)?;
    }
    // A skipped definition may hold the retention its owner expects; do not guess it.
    let mut problems = repo.problems();
    problems.retain(|d| d.file.starts_with("models"));
    if !problems.is_empty() {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(CliError::usage(format!(
            "{}\nnothing was deleted: fix the definitions first (`orch check` lists every problem)",
            listed.join("\n")
        )));
    }
    let now = OffsetDateTime::now_utc();
    let mut rules = BTreeMap::new();
    for def in repo.models.values() {
        if model.is_some_and(|m| m != def.name) {
            continue;
        }
        for (spec, policy) in &def.resources {
            let rule = match &policy.garbage_collection {
                None => continue,
                Some(Retention::KeepVersions(n)) => KeepRule::Versions(*n),
                Some(Retention::OlderThan(secs)) => KeepRule::Since(
                    i64::try_from(*secs)
                        .ok()
                        .and_then(|s| now.checked_sub(time::Duration::seconds(s)))
                        .map(rfc3339)
                        .unwrap_or_default(),
                ),
            };
            rules.insert((def.name.clone(), spec.clone()), rule);
        }
    }
    let before = store.file_size();
    let deleted = store
        .gc_versions(&rules, dry_run)
        .map_err(CliError::failed)?;
    if !dry_run {
        compact(ctx, store, deleted.len())?;
    }
    let after = store.file_size();
    print_gc(ctx, "version", &deleted, dry_run, before, after, |d| {
        format!(
            "{} {}/{}@v{}  {}",
            d.model, d.spec, d.name, d.version, d.time
        )
    });
    Ok(0)
}

/// Compacts the store after a gc that deleted `deleted` records. Compacting needs the file to
/// itself: while another process has it open, a gc that deleted something fails (its
/// deletions stay committed) and one that deleted nothing only says it could not compact.
pub(crate) fn compact(ctx: &Ctx, store: &ResourceStore, deleted: usize) -> Result<(), CliError> {
    match store.compact() {
        Ok(()) => Ok(()),
        Err(e @ StoreError::InUse { .. }) if deleted == 0 => {
            ctx.printer
                .note(&format!("nothing to delete; not compacted: {e}"));
            Ok(())
        }
        Err(e) => Err(CliError::failed(e)),
    }
}

/// Prints what a gc deleted (or would delete) and the file size before and after.
pub(crate) fn print_gc<T: serde::Serialize>(
    ctx: &Ctx,
    noun: &str,
    deleted: &[T],
    dry_run: bool,
    before: u64,
    after: u64,
    line: impl Fn(&T) -> String,
) {
    let value = json!({
        "deleted": deleted,
        "dryRun": dry_run,
        "sizeBefore": before,
        "sizeAfter": after,
    });
    ctx.printer.result(&value, || {
        let mut lines: Vec<String> = deleted.iter().map(&line).collect();
        let count = deleted.len();
        let plural = if count == 1 { "" } else { "s" };
        lines.push(if dry_run {
            format!("would delete {count} {noun}{plural} (dry run: nothing changed; the file is {before} bytes)")
        } else {
            format!("deleted {count} {noun}{plural}; the file went from {before} to {after} bytes")
        });
        lines.join("\n")
    });
}

/// Whether the spec's `lifetime` has ended for this (latest) version, seen from outside any
/// run: expressions no longer resolve it.
fn expired(repo: &Repo, v: &ResourceVersion) -> bool {
    let Ok(def) = repo.model(&v.model) else {
        return false;
    };
    def.lifetime_of(&v.spec).is_some_and(|lifetime| {
        lifetime.ended(
            &v.provenance.time,
            &v.provenance.run_id,
            None,
            OffsetDateTime::now_utc(),
        )
    })
}

/// Refuses a model that is neither defined nor in the store, suggesting the closest defined
/// one (a model whose file was removed keeps its history, so its data can still be read).
fn check_model(repo: &Repo, store: &ResourceStore, model: &str) -> Result<(), CliError> {
    match repo.model(model) {
        Ok(_) => Ok(()),
        Err(err) => {
            let stored = store.latest_versions_of(model).map_err(CliError::failed)?;
            if stored.is_empty() {
                Err(CliError::usage(err))
            } else {
                Ok(())
            }
        }
    }
}

/// What the types say about one resource spec's attributes.
#[derive(Default)]
struct SpecTraits {
    /// Left out of comparisons (`resource-spec.volatile`).
    volatile: Vec<String>,
    /// Shown as [`crate::store::SENSITIVE`], never with their values (`"writeOnly": true` in the schema).
    sensitive: Vec<String>,
}

/// model → spec → its [`SpecTraits`].
type TraitsMap = HashMap<String, HashMap<String, SpecTraits>>;

/// The [`SpecTraits`] of these models' resource specs, from the types' resource specs
/// (describe() is cached, so no plugin is compiled unless its types were never described). A
/// model whose type cannot be found compares every attribute and masks none, with a warning.
async fn traits_of(ctx: &Ctx, repo: &Repo, models: &BTreeSet<String>) -> TraitsMap {
    let mut out = HashMap::new();
    if models.is_empty() {
        return out;
    }
    let registry = match ctx.registry(repo).await {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.printer.warn(&format!(
                "cannot load the plugins to learn which attributes are volatile or sensitive ({}); every attribute is compared and shown",
                e.message
            ));
            None
        }
    };
    for model in models {
        let Ok(def) = repo.model(model) else {
            continue;
        };
        let Some(registry) = &registry else {
            continue;
        };
        match registry.get(&def.type_name) {
            Ok(t) => {
                let specs = t
                    .description
                    .resources
                    .iter()
                    .map(|r| {
                        let traits = SpecTraits {
                            volatile: r.volatile.clone(),
                            sensitive: r.sensitive(),
                        };
                        (r.name.clone(), traits)
                    })
                    .collect();
                out.insert(model.clone(), specs);
            }
            Err(why) => ctx.printer.warn(&format!(
                "model `{model}`: {why}; its volatile and sensitive attributes are unknown, so every attribute is compared and shown"
            )),
        }
    }
    out
}

fn traits_for<'a>(traits: &'a TraitsMap, model: &str, spec: &str) -> &'a SpecTraits {
    static NONE: SpecTraits = SpecTraits {
        volatile: Vec::new(),
        sensitive: Vec::new(),
    };
    traits
        .get(model)
        .and_then(|specs| specs.get(spec))
        .unwrap_or(&NONE)
}

/// `orch data diff`: field-level differences between two versions of a resource.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn diff(
    ctx: &Ctx,
    repo: &Repo,
    store: &ResourceStore,
    model: &str,
    name: &str,
    from: Option<u64>,
    to: Option<u64>,
    spec: Option<String>,
) -> Result<Shown, CliError> {
    check_model(repo, store, model)?;
    let spec = find_spec(store, model, name, spec)?;
    let latest = store
        .latest_versions_of(model)
        .map_err(CliError::failed)?
        .get(&(spec.clone(), name.to_string()))
        .copied()
        .ok_or_else(|| {
            CliError::failed(format!(
                "model `{model}` has no resource `{spec}/{name}` (see `orch data list {model}`)"
            ))
        })?;
    let what = format!("{model}/{spec}/{name}");
    let exists = |v: u64, flag: &str| {
        if v == 0 || v > latest {
            Err(CliError::usage(format!(
                "{flag} {v}: {what} has versions 1..{latest}"
            )))
        } else {
            Ok(v)
        }
    };
    let to = exists(to.unwrap_or(latest), "--to")?;
    let from = match from {
        Some(v) => exists(v, "--from")?,
        None if to > 1 => to - 1,
        None => {
            return Err(CliError::failed(format!(
                "{what} has only version 1; there is nothing to compare it with"
            )));
        }
    };
    if from >= to {
        return Err(CliError::usage(format!(
            "--from {from} must be older than --to {to} ({what} has versions 1..{latest})"
        )));
    }
    let load = |v: u64| -> Result<ResourceVersion, CliError> {
        store
            .version(model, &spec, name, v)
            .map_err(CliError::failed)?
            .ok_or_else(|| CliError::failed(format!("{what} has no version {v}")))
    };
    let (older, newer) = (load(from)?, load(to)?);
    let models = BTreeSet::from([model.to_string()]);
    let traits = traits_of(ctx, repo, &models).await;
    let SpecTraits {
        volatile: ignored,
        sensitive,
    } = traits_for(&traits, model, &spec);
    let retired = newer.retired && !older.retired;
    let mut diff = if retired || (newer.retired && older.retired) {
        FieldDiff::default()
    } else if older.retired {
        // Back after a retirement: everything it has is new.
        diff_attributes(&json!({}), &newer.attributes, ignored)
    } else {
        diff_attributes(&older.attributes, &newer.attributes, ignored)
    };
    diff.mask(sensitive);
    let mut value = serde_json::Map::new();
    value.insert("model".into(), json!(model));
    value.insert("spec".into(), json!(spec));
    value.insert("name".into(), json!(name));
    value.insert("from".into(), json!(from));
    value.insert("to".into(), json!(to));
    value.extend(diff.to_json());
    if retired {
        value.insert("retired".into(), json!(true));
    }
    let text = {
        let mut lines = vec![format!("{what} v{from} → v{to}")];
        if retired {
            lines.push(format!(
                "retired by run {} (step {}) at {}",
                newer.provenance.run_id, newer.provenance.step, newer.provenance.time
            ));
        } else if diff.is_empty() {
            lines.push("no differences".to_string());
        } else {
            lines.extend(diff.lines());
        }
        if !ignored.is_empty() {
            lines.push(format!("(volatile, not compared: {})", ignored.join(", ")));
        }
        lines.join("\n")
    };
    Ok(Shown {
        value: Value::Object(value),
        text,
    })
}

/// `orch data changes`: resources that appeared, changed or were retired in a window.
pub(crate) async fn changes(
    ctx: &Ctx,
    repo: &Repo,
    store: &ResourceStore,
    model: Option<String>,
    since: Option<String>,
) -> Result<Shown, CliError> {
    if let Some(m) = &model {
        check_model(repo, store, m)?;
    }
    let (mut window, described) = parse_since(store, since.as_deref().unwrap_or(DEFAULT_SINCE))?;
    window.model = model;
    let found = store.changes(&window).map_err(CliError::failed)?;
    let changed_models: BTreeSet<String> = found
        .iter()
        .filter(|c| c.kind == ChangeKind::Changed)
        .map(|c| c.version.model.clone())
        .collect();
    let traits = traits_of(ctx, repo, &changed_models).await;
    // model → entries, newest first (the store's order).
    let mut by_model: BTreeMap<String, Vec<(Value, String)>> = BTreeMap::new();
    for change in found {
        let v = &change.version;
        let fields = match &change.previous {
            Some(previous) => {
                let traits = traits_for(&traits, &v.model, &v.spec);
                let mut diff = diff_attributes(previous, &v.attributes, &traits.volatile);
                if diff.is_empty() {
                    continue;
                }
                diff.mask(&traits.sensitive);
                diff
            }
            None => Default::default(),
        };
        let kind = change.kind.as_str();
        let entry = json!({
            "spec": v.spec,
            "name": v.name,
            "kind": kind,
            "version": v.version,
            "run": v.provenance.run_id,
            "step": v.provenance.step,
            "time": v.provenance.time,
            "fields": fields.fields_json(),
        });
        let mark = match change.kind {
            ChangeKind::Appeared => "+",
            ChangeKind::Changed => "~",
            ChangeKind::Retired => "-",
        };
        let mut text = format!(
            "  {mark} {}/{} v{}  {kind}  {}  run {} (step {})",
            v.spec, v.name, v.version, v.provenance.time, v.provenance.run_id, v.provenance.step
        );
        for line in fields.lines() {
            text.push_str(&format!("\n      {line}"));
        }
        by_model
            .entry(v.model.clone())
            .or_default()
            .push((entry, text));
    }
    let value: Vec<Value> = by_model
        .iter()
        .map(|(model, entries)| {
            json!({
                "model": model,
                "changes": entries.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let text = if by_model.is_empty() {
        format!("no changes {described}")
    } else {
        let mut out = vec![format!("changes {described}")];
        for (model, entries) in &by_model {
            out.push(model.clone());
            out.extend(entries.iter().map(|(_, t)| t.clone()));
        }
        out.join("\n")
    };
    Ok(Shown {
        value: Value::Array(value),
        text,
    })
}

/// `--tag KEY=VALUE` flags as tags; a flag without `=` or with an empty key is a usage error.
pub(crate) fn parse_tags(flags: &[String]) -> Result<Tags, CliError> {
    let mut tags = Tags::new();
    for flag in flags {
        match flag.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                tags.insert(key.trim().to_string(), value.to_string());
            }
            _ => {
                return Err(CliError::usage(format!(
                    "--tag {flag:?}: expected KEY=VALUE, e.g. --tag env=prod"
                )));
            }
        }
    }
    Ok(tags)
}

/// True when `tags` carries every one of `wanted`.
fn has_tags(tags: &Tags, wanted: &Tags) -> bool {
    wanted.iter().all(|(k, v)| tags.get(k) == Some(v))
}

/// The window `--since` names, and how to say it ("since run …", "since <time>").
fn parse_since(store: &ResourceStore, text: &str) -> Result<(ChangeWindow, String), CliError> {
    let text = text.trim();
    let explain = "give a run id (see `orch runs list`), an RFC 3339 time such as \
                   2026-11-30T09:00:00Z, or a duration such as 30m, 24h or 7d";
    if let Some(back) = parse_duration(text) {
        let since = back
            .and_then(|d| OffsetDateTime::now_utc().checked_sub(d))
            .map(rfc3339)
            // Longer than the clock goes back: the whole history.
            .unwrap_or_default();
        return Ok((
            ChangeWindow {
                since,
                ..ChangeWindow::default()
            },
            format!("in the last {text}"),
        ));
    }
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        let since = rfc3339(at);
        return Ok((
            ChangeWindow {
                since: since.clone(),
                ..ChangeWindow::default()
            },
            format!("since {since}"),
        ));
    }
    // A bare date is midnight UTC.
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &day) {
        let since = rfc3339(date.midnight().assume_utc());
        return Ok((
            ChangeWindow {
                since: since.clone(),
                ..ChangeWindow::default()
            },
            format!("since {since}"),
        ));
    }
    let looks_like_id = text.len() >= 6
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if looks_like_id {
        return match store.run_start(text) {
            Ok(Some((id, started))) => Ok((
                ChangeWindow {
                    since: started,
                    after_run: Some(id.clone()),
                    ..ChangeWindow::default()
                },
                format!("by runs started after run {id}"),
            )),
            Ok(None) => Err(CliError::usage(format!(
                "--since {text}: no run has that id in this repository (see `orch runs list`)"
            ))),
            Err(e @ StoreError::AmbiguousRunId { .. }) => Err(CliError::usage(e)),
            Err(e) => Err(CliError::failed(e)),
        };
    }
    let shown: String = text.chars().take(80).collect();
    Err(CliError::usage(format!(
        "--since {shown:?} is not a run id, a time or a duration; {explain}"
    )))
}

/// `90s`, `30m`, `24h`, `7d`, `2w`: `Some(None)` when it is a duration too long to represent
/// (it then reaches back past every record), `None` when the text is not a duration.
fn parse_duration(text: &str) -> Option<Option<time::Duration>> {
    let unit = text.chars().last()?;
    let seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds))
            .and_then(|s| i64::try_from(s).ok())
            .map(time::Duration::seconds),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_huge_ones_reach_back_past_everything() {
        assert_eq!(
            parse_duration("30m"),
            Some(Some(time::Duration::minutes(30)))
        );
        assert_eq!(parse_duration("7d"), Some(Some(time::Duration::days(7))));
        assert_eq!(parse_duration("99999999999999999999999d"), Some(None));
        for not in ["", "h", "24", "1.5h", "-3h", "24 h", "2026-11-30T00:00:00Z"] {
            assert_eq!(parse_duration(not), None, "{not}");
        }
    }
}
