use std::fs;
use std::path::Path;

use super::*;
use crate::repo::Repo;

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A repository with `orch.yaml` and one `models/<name>.yaml` per `(name, text)`.
fn repo_with(models: &[(&str, &str)]) -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "orch.yaml", "");
    for (name, text) in models {
        write(dir.path(), &format!("models/{name}.yaml"), text);
    }
    let repo = Repo::load(dir.path()).unwrap();
    (dir, repo)
}

/// A definition whose global argument `x` is `text` (leaked: a test lives briefly).
fn reads(text: &str) -> &'static str {
    Box::leak(format!("type: t/a\nglobalArguments:\n  x: '{text}'\n").into_boxed_str())
}

const PLAIN: &str = "type: t/a\n";

fn graph(models: &[(&str, &str)]) -> Result<ModelGraph, GraphError> {
    let (_dir, repo) = repo_with(models);
    ModelGraph::of(&repo)
}

#[test]
fn a_model_is_converged_after_every_model_it_reads() {
    let auth = reads("${{ model.auth.resource.node.n.attributes.ticket }}");
    let g = graph(&[
        (
            "web",
            reads("${{ model.guests.resource.guest.a.attributes.ip }}"),
        ),
        ("guests", auth),
        ("auth", PLAIN),
        ("dns", auth),
    ])
    .unwrap();
    assert_eq!(g.order(), ["auth", "dns", "guests", "web"]);
    assert_eq!(g.dependencies("web"), ["guests"]);
    assert_eq!(g.dependencies("auth"), Vec::<&str>::new());
}

#[test]
fn models_ready_together_are_ordered_by_name() {
    let g = graph(&[
        ("zeta", PLAIN),
        ("alpha", PLAIN),
        ("Mid", PLAIN),
        ("beta", reads("${{ model.zeta.x }}")),
    ])
    .unwrap();
    // Mid, alpha and zeta are ready at once and go by name (upper case sorts first); beta
    // waits for zeta.
    assert_eq!(g.order(), ["Mid", "alpha", "zeta", "beta"]);
}

#[test]
fn order_of_gives_the_named_models_and_what_they_read() {
    let g = graph(&[
        ("a", PLAIN),
        ("b", reads("${{ model.a.x }}")),
        ("c", reads("${{ model.b.x }}")),
        ("d", reads("${{ model.a.x }}")),
        ("e", PLAIN),
    ])
    .unwrap();
    assert_eq!(g.order_of(&["c"]).unwrap(), ["a", "b", "c"]);
    assert_eq!(g.order_of(&["e", "d"]).unwrap(), ["a", "d", "e"]);
    let err = g.order_of(&["cc"]).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown model `cc`; did you mean `c`?"),
        "{err}"
    );
    let part = g.restrict(&["c"]).unwrap();
    assert_eq!(part.order(), ["a", "b", "c"]);
    assert_eq!(part.edges().len(), 2);
}

#[test]
fn edges_name_the_field_of_every_reference() {
    let g = graph(&[
        ("auth", PLAIN),
        ("store", PLAIN),
        (
            "guests",
            "type: t/a\nglobalArguments:\n  ticket: ${{ model.auth.resource.node.n.attributes.ticket }}\n  \
             list:\n    - 'x ${{ model[\"store\"].a }}'\nmethods:\n  converge:\n    arguments:\n      \
             last: ${{ data.latest(\"auth\", \"n\") }}\n",
        ),
    ])
    .unwrap();
    let edges: Vec<(&str, &str, &str, Option<usize>)> = g
        .edges()
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.via.as_str(), e.line))
        .collect();
    assert_eq!(
        edges,
        [
            ("auth", "guests", "globalArguments.ticket", Some(3)),
            ("auth", "guests", "methods.converge.arguments.last", Some(9)),
            ("store", "guests", "globalArguments.list[0]", Some(5)),
        ]
    );
    assert_eq!(
        g.to_json(),
        serde_json::json!({
            "order": ["auth", "store", "guests"],
            "edges": [
                {"from": "auth", "to": "guests", "via": "globalArguments.ticket"},
                {"from": "auth", "to": "guests", "via": "methods.converge.arguments.last"},
                {"from": "store", "to": "guests", "via": "globalArguments.list[0]"},
            ]
        })
    );
}

#[test]
fn of_models_checks_only_the_named_models_and_what_they_read() {
    let (_dir, repo) = repo_with(&[
        ("a", PLAIN),
        ("b", reads("${{ model.a.x }}")),
        ("c", reads("${{ model.b.x }}")),
        ("loop1", reads("${{ model.loop2.x }}")),
        ("loop2", reads("${{ model.loop1.x }}")),
        ("typo", reads("${{ model.nope.x }}")),
        ("broken", "type: t/a\nglobalArgs: {}\n"),
    ]);
    assert!(ModelGraph::of(&repo).is_err());
    let g = ModelGraph::of_models(&repo, &["c"]).unwrap();
    assert_eq!(g.order(), ["a", "b", "c"]);
    assert_eq!(g.edges().len(), 2);
    let err = ModelGraph::of_models(&repo, &["loop1"]).unwrap_err();
    assert!(
        err.to_string().contains("loop: loop1 → loop2 → loop1;"),
        "{err}"
    );
    let err = ModelGraph::of_models(&repo, &["typo"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("models/typo.yaml:3: globalArguments.x: unknown model `nope`"),
        "{err}"
    );
    let err = ModelGraph::of_models(&repo, &["broken"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("models/broken.yaml:2: globalArgs:"),
        "{err}"
    );
    let err = ModelGraph::of_models(&repo, &["cc"]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown model `cc`; did you mean `c`?"),
        "{err}"
    );
}

#[test]
fn a_name_outside_an_expression_is_not_a_reference() {
    let g = graph(&[
        ("a", PLAIN),
        (
            "b",
            "type: t/a\ndescription: reads model.a\nglobalArguments:\n  note: model.a is read first\n  \
             literal: \"${{ 'model.a' }}\"\n  input: ${{ inputs.model.a }}\n",
        ),
    ])
    .unwrap();
    assert!(g.edges().is_empty(), "{:?}", g.edges());
    assert_eq!(g.order(), ["a", "b"]);
}

#[test]
fn two_models_reading_each_other_are_a_named_loop() {
    let err = graph(&[
        ("b", reads("${{ model.a.x }}")),
        ("a", reads("${{ model.b.x }}")),
        ("c", PLAIN),
    ])
    .unwrap_err();
    let GraphError::Cycle(loops) = &err else {
        panic!("{err}");
    };
    assert_eq!(loops.len(), 1);
    assert_eq!(
        err.to_string(),
        "model definitions read each other in a loop: a → b → a; no converge order exists, \
         remove one of these references:\n  models/a.yaml:3: globalArguments.x: reads model `b`\n  \
         models/b.yaml:3: globalArguments.x: reads model `a`"
    );
}

#[test]
fn a_three_model_loop_is_named_in_reading_order() {
    let err = graph(&[
        ("b", reads("${{ model.c.x }}")),
        ("c", reads("${{ model.a.x }}")),
        ("a", reads("${{ model.b.x }}")),
        ("d", reads("${{ model.a.x }}")),
    ])
    .unwrap_err();
    let GraphError::Cycle(loops) = &err else {
        panic!("{err}");
    };
    let names: Vec<&str> = loops[0].steps.iter().map(|s| s.model.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(err.to_string().contains("a → b → c → a;"), "{err}");
    assert_eq!(loops[0].steps[2].file, Path::new("models/c.yaml"));
    assert_eq!(loops[0].steps[2].reads, "a");
}

#[test]
fn a_model_reading_itself_is_a_loop() {
    let err = graph(&[("a", reads("${{ model.a.x }}")), ("b", PLAIN)]).unwrap_err();
    assert!(matches!(err, GraphError::Cycle(_)), "{err}");
    assert!(err.to_string().contains("loop: a → a;"), "{err}");
    assert!(
        err.to_string()
            .contains("models/a.yaml:3: globalArguments.x: reads model `a`"),
        "{err}"
    );
}

#[test]
fn reading_an_undefined_model_names_file_line_and_field() {
    let err = graph(&[
        ("keebDev02", PLAIN),
        (
            "fleet",
            "type: t/a\nglobalArguments:\n  a: 1\n  ticket: ${{ model.keebDev2.x }}\n",
        ),
    ])
    .unwrap_err();
    assert!(matches!(err, GraphError::Invalid(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "models/fleet.yaml:4: globalArguments.ticket: unknown model `keebDev2`; did you mean \
         `keebDev02`? (models/ has: fleet, keebDev02)"
    );
}

#[test]
fn a_broken_model_file_fails_the_graph_with_its_problems() {
    let err = graph(&[("a", PLAIN), ("b", "type: t/a\nglobalArgs: {}\n")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("models/b.yaml:2: globalArgs: unknown field"),
        "{err}"
    );
}

#[test]
fn drawings_quote_names_mermaid_and_dot_cannot_take_as_they_are() {
    let g = graph(&[
        ("keeb-dev", PLAIN),
        ("app.web", reads("${{ model[\"keeb-dev\"].x }}")),
        (
            "end",
            reads("${{ model[\"keeb-dev\"].x }} ${{ model[\"app.web\"].y }}"),
        ),
        ("fleet", reads("${{ model[\"keeb-dev\"].x }}")),
    ])
    .unwrap();
    assert_eq!(g.order(), ["keeb-dev", "app.web", "end", "fleet"]);
    assert_eq!(
        g.render(Format::Text),
        "keeb-dev\napp.web   ← keeb-dev\nend       ← keeb-dev, app.web\nfleet     ← keeb-dev\n"
    );
    assert_eq!(
        g.render(Format::Mermaid),
        "graph TD\n  n0[\"keeb-dev\"]\n  n1[\"app.web\"]\n  n2[\"end\"]\n  fleet\n  \
         n0 --> n1\n  n0 --> n2\n  n1 --> n2\n  n0 --> fleet\n"
    );
    assert_eq!(
        g.render(Format::Dot),
        "digraph models {\n  \"keeb-dev\";\n  \"app.web\";\n  end;\n  fleet;\n  \
         \"keeb-dev\" -> \"app.web\";\n  \"keeb-dev\" -> end;\n  \"app.web\" -> end;\n  \
         \"keeb-dev\" -> fleet;\n}\n"
    );
}

fn workflow_repo(workflow: &str) -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "orch.yaml", "");
    write(dir.path(), "models/m.yaml", PLAIN);
    write(dir.path(), "workflows/w.yaml", workflow);
    let repo = Repo::load(dir.path()).unwrap();
    (dir, repo)
}

const WORKFLOW: &str = "jobs:
  - name: deploy
    dependsOn: [ { job: build } ]
    steps:
      - name: ship it
        task: { type: model_method, modelIdOrName: m, methodName: ship }
  - name: build
    steps:
      - name: b
        dependsOn: [ { step: a } ]
        task: { type: model_method, modelIdOrName: m, methodName: build }
      - name: c
        weight: -1
        task: { type: model_method, modelIdOrName: m, methodName: test }
      - name: a
        task: { type: model_method, modelIdOrName: m, methodName: fetch }
";

#[test]
fn workflow_graph_lists_jobs_and_steps_in_the_order_they_can_start() {
    let (_dir, repo) = workflow_repo(WORKFLOW);
    let g = WorkflowGraph::of(&repo, "w").unwrap();
    assert_eq!(
        g.render(Format::Text),
        "job build\n  c\n  a\n  b  ← a\njob deploy  ← build\n  ship it\n"
    );
    assert_eq!(
        g.render(Format::Mermaid),
        "graph TD\n  subgraph j0[\"build\"]\n    j0s0[\"c\"]\n    j0s1[\"a\"]\n    j0s2[\"b\"]\n  end\n  \
         subgraph j1[\"deploy\"]\n    j1s0[\"ship it\"]\n  end\n  j0s1 --> j0s2\n  j0 --> j1\n"
    );
    assert_eq!(
        g.render(Format::Dot),
        "digraph w {\n  compound=true;\n  subgraph cluster_j0 {\n    label=\"build\";\n    \
         j0s0 [label=\"c\"];\n    j0s1 [label=\"a\"];\n    j0s2 [label=\"b\"];\n  }\n  \
         subgraph cluster_j1 {\n    label=\"deploy\";\n    j1s0 [label=\"ship it\"];\n  }\n  \
         j0s1 -> j0s2;\n  j0s0 -> j1s0 [ltail=cluster_j0, lhead=cluster_j1];\n}\n"
    );
    let json = serde_json::to_value(&g).unwrap();
    assert_eq!(json["jobs"][1]["dependsOn"], serde_json::json!(["build"]));
    assert_eq!(json["jobs"][0]["steps"][2]["task"], "m.build");
}

#[test]
fn workflow_graph_refuses_a_step_loop_with_its_line() {
    let (_dir, repo) = workflow_repo(&WORKFLOW.replace(
        "      - name: a\n",
        "      - name: a\n        dependsOn: [ { step: b } ]\n",
    ));
    let err = WorkflowGraph::of(&repo, "w").unwrap_err().to_string();
    assert!(
        err.contains("steps depend on each other in a loop: b → a → b"),
        "{err}"
    );
    assert!(err.starts_with("workflows/w.yaml:10: "), "{err}");
}

#[test]
fn workflow_graph_of_an_unknown_workflow_suggests_one() {
    let (_dir, repo) = workflow_repo(WORKFLOW);
    let err = WorkflowGraph::of(&repo, "ww").unwrap_err().to_string();
    assert!(
        err.starts_with("unknown workflow `ww`; did you mean `w`?"),
        "{err}"
    );
}
