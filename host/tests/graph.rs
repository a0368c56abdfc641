//! `orch graph` and `orch workflow graph` through the real binary: converge order from the
//! references between definitions, loops and undefined models refused, and the drawings.

mod support;

use std::path::Path;

use serde_json::json;
use support::TestRepo;

/// `auth` is read by `guests` (twice) and `dns-records`; `web.front` reads `guests`.
fn small_repo() -> TestRepo {
    let repo = TestRepo::new(&[]);
    repo.write("models/auth.yaml", "type: t/node\n")
        .write(
            "models/guests.yaml",
            "type: t/guests\nglobalArguments:\n  ticket: ${{ model.auth.resource.node.n.attributes.ticket }}\n  \
             note: model.web is only text here\nmethods:\n  converge:\n    arguments:\n      \
             csrf: ${{ model.auth.resource.node.n.attributes.csrf }}\n",
        )
        .write(
            "models/dns-records.yaml",
            "type: t/dns\nglobalArguments:\n  token: ${{ model.auth.resource.node.n.attributes.ticket }}\n",
        )
        .write(
            "models/web.front.yaml",
            "type: t/web\nglobalArguments:\n  hosts: '${{ model.guests.resource.guest.a.attributes.ip }}'\n",
        );
    repo
}

#[test]
fn graph_prints_models_in_converge_order_with_what_they_read() {
    let repo = small_repo();
    let run = repo.orch(&["graph"]).ok();
    assert_eq!(
        run.stdout,
        "auth\ndns-records  ← auth\nguests       ← auth\nweb.front    ← guests\n"
    );
    let run = repo.orch(&["graph", "web.front"]).ok();
    assert_eq!(run.stdout, "auth\nguests     ← auth\nweb.front  ← guests\n");
}

#[test]
fn graph_draws_valid_mermaid_and_dot_with_quoted_names() {
    let repo = small_repo();
    let run = repo.orch(&["graph", "--format", "mermaid"]).ok();
    assert_eq!(
        run.stdout,
        "graph TD\n  auth\n  n1[\"dns-records\"]\n  guests\n  n3[\"web.front\"]\n  \
         auth --> n1\n  auth --> guests\n  guests --> n3\n"
    );
    let run = repo.orch(&["graph", "--format", "dot"]).ok();
    assert_eq!(
        run.stdout,
        "digraph models {\n  auth;\n  \"dns-records\";\n  guests;\n  \"web.front\";\n  \
         auth -> \"dns-records\";\n  auth -> guests;\n  guests -> \"web.front\";\n}\n"
    );
}

#[test]
fn graph_json_gives_the_order_and_every_reference_with_its_field() {
    let repo = small_repo();
    let value = repo.orch(&["graph", "--json"]).ok().json();
    assert_eq!(
        value,
        json!({
            "order": ["auth", "dns-records", "guests", "web.front"],
            "edges": [
                {"from": "auth", "to": "dns-records", "via": "globalArguments.token"},
                {"from": "auth", "to": "guests", "via": "globalArguments.ticket"},
                {"from": "auth", "to": "guests", "via": "methods.converge.arguments.csrf"},
                {"from": "guests", "to": "web.front", "via": "globalArguments.hosts"},
            ]
        })
    );
}

#[test]
fn a_loop_between_definitions_exits_2_naming_it() {
    let repo = small_repo();
    repo.write(
        "models/auth.yaml",
        "type: t/node\nglobalArguments:\n  hosts: ${{ model[\"web.front\"].resource }}\n",
    );
    let run = repo.orch(&["graph"]).code(2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: model definitions read each other in a loop: auth → web.front → guests → auth; \
         no converge order exists, remove one of these references:\n  \
         models/auth.yaml:3: globalArguments.hosts: reads model `web.front`\n  \
         models/web.front.yaml:3: globalArguments.hosts: reads model `guests`\n  \
         models/guests.yaml:3: globalArguments.ticket: reads model `auth`\n"
    );
    let value = repo.orch(&["graph", "--json"]).code(2).json();
    assert_eq!(value["exitCode"], 2);
    // `orch check` (CI) reports the loop too.
    let check = repo.orch(&["--json", "check"]).code(2).json();
    let problem = check["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["message"]
                .as_str()
                .unwrap_or("")
                .contains("read each other in a loop")
        })
        .unwrap_or_else(|| panic!("no loop in {check}"))
        .clone();
    assert_eq!(
        (&problem["file"], &problem["line"], &problem["field"]),
        (
            &serde_json::json!("models/auth.yaml"),
            &serde_json::json!(3),
            &serde_json::json!("globalArguments.hosts")
        )
    );
}

#[test]
fn reading_an_undefined_model_exits_2_with_file_line_and_field() {
    let repo = small_repo();
    repo.write(
        "models/dns-records.yaml",
        "type: t/dns\nglobalArguments:\n  a: 1\n  token: ${{ model.auht.resource }}\n",
    );
    let run = repo.orch(&["graph"]).code(2);
    assert_eq!(
        run.stderr,
        "error: models/dns-records.yaml:4: globalArguments.token: unknown model `auht`; did you \
         mean `auth`? (models/ has: auth, dns-records, guests, web.front)\n"
    );
    // Only what the named models read is checked.
    let run = repo.orch(&["graph", "web.front"]).ok();
    assert_eq!(run.stdout, "auth\nguests     ← auth\nweb.front  ← guests\n");
    let run = small_repo().orch(&["graph", "gusts"]).code(2);
    assert!(
        run.stderr
            .contains("unknown model `gusts`; did you mean `guests`?"),
        "{}",
        run.stderr
    );
}

/// A copy of `workflows/homelab` (definitions and workflows; no plugins are needed).
fn homelab() -> TestRepo {
    let repo = TestRepo::new(&[]);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
    std::fs::copy(src.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
    for dir in ["models", "workflows"] {
        for entry in std::fs::read_dir(src.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, repo.path().join(dir).join(path.file_name().unwrap())).unwrap();
        }
    }
    repo
}

#[test]
fn homelab_converges_keeb_dev02_before_the_models_that_read_its_ticket() {
    let repo = homelab();
    let run = repo.orch(&["graph"]).ok();
    assert_eq!(
        run.stdout,
        "grafanaHub\n\
         keebDev02\n\
         cluster              ← keebDev02\n\
         containers           ← keebDev02\n\
         fleet                ← keebDev02\n\
         allthemonsMinecraft  ← fleet\n\
         calamity             ← fleet\n\
         calamityTerraria     ← fleet\n\
         infinityMinecraft    ← fleet\n\
         minecraftGame        ← fleet\n\
         storage              ← keebDev02\n\
         streamProxy\n\
         tasks                ← keebDev02\n\
         testVmSsh            ← fleet\n"
    );
    let value = repo.orch(&["graph", "--json"]).ok().json();
    let to_fleet: Vec<&serde_json::Value> = value["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "fleet")
        .collect();
    assert_eq!(
        to_fleet,
        [
            &json!({"from": "keebDev02", "to": "fleet", "via": "globalArguments.csrfToken"}),
            &json!({"from": "keebDev02", "to": "fleet", "via": "globalArguments.ticket"}),
        ]
    );
    let run = repo.orch(&["graph", "containers", "storage", "tasks"]).ok();
    assert_eq!(
        run.stdout,
        "keebDev02\ncontainers  ← keebDev02\nstorage     ← keebDev02\ntasks       ← keebDev02\n"
    );
}

#[test]
fn workflow_graph_draws_the_homelab_sync_all_dag() {
    let repo = homelab();
    let run = repo.orch(&["workflow", "graph", "sync-all"]).ok();
    assert_eq!(
        run.stdout,
        "job sync\n  auth\n  vms         ← auth\n  containers  ← auth\n  storage     ← auth\n  \
         tasks       ← auth\n"
    );
    let run = repo
        .orch(&["workflow", "graph", "sync-all", "--format", "mermaid"])
        .ok();
    assert_eq!(
        run.stdout,
        "graph TD\n  subgraph j0[\"sync\"]\n    j0s0[\"auth\"]\n    j0s1[\"vms\"]\n    \
         j0s2[\"containers\"]\n    j0s3[\"storage\"]\n    j0s4[\"tasks\"]\n  end\n  \
         j0s0 --> j0s1\n  j0s0 --> j0s2\n  j0s0 --> j0s3\n  j0s0 --> j0s4\n"
    );
    let run = repo
        .orch(&["workflow", "graph", "sync-all", "--format", "dot"])
        .ok();
    assert_eq!(
        run.stdout,
        "digraph \"sync-all\" {\n  compound=true;\n  subgraph cluster_j0 {\n    label=\"sync\";\n    \
         j0s0 [label=\"auth\"];\n    j0s1 [label=\"vms\"];\n    j0s2 [label=\"containers\"];\n    \
         j0s3 [label=\"storage\"];\n    j0s4 [label=\"tasks\"];\n  }\n  j0s0 -> j0s1;\n  \
         j0s0 -> j0s2;\n  j0s0 -> j0s3;\n  j0s0 -> j0s4;\n}\n"
    );
    let value = repo
        .orch(&["workflow", "graph", "vm-lifecycle-test", "--json"])
        .ok()
        .json();
    let steps: Vec<(&str, &str)> = value["jobs"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["task"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("auth", "keebDev02.auth"),
            ("create", "fleet.create"),
            ("start", "fleet.start"),
            ("stop", "fleet.stop"),
            ("delete", "fleet.delete"),
        ]
    );
}

#[test]
fn workflow_graph_of_an_invalid_workflow_exits_2() {
    let repo = homelab();
    repo.write(
        "workflows/sync-all.yaml",
        "jobs:\n  - name: sync\n    steps:\n      - name: auth\n        dependsOn: [ { step: vms } ]\n        \
         task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }\n      - name: vms\n        \
         dependsOn: [ { step: auth } ]\n        task: { type: model_method, modelIdOrName: fleet, methodName: sync }\n",
    );
    let run = repo.orch(&["workflow", "graph", "sync-all"]).code(2);
    assert!(
        run.stderr.starts_with(
            "error: workflows/sync-all.yaml:5: jobs[0].steps[0].dependsOn[0].step: steps depend on \
             each other in a loop: auth → vms → auth"
        ),
        "{}",
        run.stderr
    );
    let run = repo.orch(&["workflow", "graph", "sync-al"]).code(2);
    assert!(
        run.stderr.contains("did you mean `sync-all`?"),
        "{}",
        run.stderr
    );
}
