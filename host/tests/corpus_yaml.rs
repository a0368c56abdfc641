//! The YAML front end against hostile input: every file under `tests/corpus/yaml/` is loaded as
//! a model definition, as a workflow and as `orch.yaml` through the library, and random
//! nested YAML-ish text is thrown at the parsers. Nothing may panic or overflow the stack; each
//! load ends with the file loaded or with problems that name the file.

use std::path::{Path, PathBuf};

use orch::repo::{Definition, LineIndex, MAX_FILE_BYTES, Repo, RepoConfig, RepoError};
use orch::workflow::Workflow;
use proptest::prelude::*;

/// Stack for each load: smaller than the main thread's 8 MiB, so recursion that grows with
/// the input shows up here first.
const STACK: usize = 1024 * 1024;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/yaml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut cases: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    // Too big to keep in the repository: generated here.
    let cap = MAX_FILE_BYTES as usize;
    let mut over = b"type: test/echo\nglobalArguments:\n  blob: ".to_vec();
    over.resize(cap + 1, b'x');
    cases.push(("generated: one byte over the size cap".into(), over));
    let mut under = b"type: test/echo\nglobalArguments:\n  blob: ".to_vec();
    under.resize(cap - 1, b'y');
    under.push(b'\n');
    cases.push(("generated: just under the size cap".into(), under));
    let mut brackets = b"jobs: ".to_vec();
    brackets.resize(cap, b'[');
    cases.push(("generated: the size cap of brackets".into(), brackets));
    cases
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Model,
    Workflow,
    Config,
}

/// Loads `bytes` in `role` on a small stack; Err names what went wrong.
fn load_as(role: Role, bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for sub in ["models", "workflows"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let file = match role {
        Role::Model => "models/x.yaml",
        Role::Workflow => "workflows/x.yaml",
        Role::Config => "orch.yaml",
    };
    if !matches!(role, Role::Config) {
        std::fs::write(root.join("orch.yaml"), "").unwrap();
    }
    std::fs::write(root.join(file), bytes).unwrap();
    let loaded = std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || Repo::load(&root).map(|repo| repo.broken.all()))
        .unwrap()
        .join()
        .map_err(|_| "panicked".to_string())?;
    let named = |diags: &[orch::repo::Diagnostic]| -> Result<(), String> {
        for d in diags {
            if d.file != Path::new(file) {
                return Err(format!(
                    "a problem names {} instead of {file}: {d}",
                    d.file.display()
                ));
            }
            if d.to_string().len() > 4000 {
                return Err(format!("a problem is {} bytes long", d.to_string().len()));
            }
        }
        Ok(())
    };
    match loaded {
        Ok(problems) => named(&problems),
        Err(RepoError::Invalid(diags)) if matches!(role, Role::Config) => named(&diags),
        Err(e) => Err(format!("unexpected error: {e}")),
    }
}

#[test]
fn every_corpus_file_loads_or_is_reported_with_its_name() {
    let mut failures = Vec::new();
    for (name, bytes) in corpus() {
        for role in [Role::Model, Role::Workflow, Role::Config] {
            if let Err(why) = load_as(role, &bytes) {
                failures.push(format!("{name} as {role:?}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Loads one corpus file as a model and returns its problems as text.
fn model_problems(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/yaml")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orch.yaml"), "").unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::copy(path, dir.path().join("models/x.yaml")).unwrap();
    let repo = Repo::load(dir.path()).unwrap();
    repo.broken.all().iter().map(ToString::to_string).collect()
}

#[test]
fn the_corpus_gets_the_right_diagnoses() {
    let first = |name: &str| model_problems(name).first().cloned().unwrap_or_default();
    let deep = "mappings and lists nest deeper than 64 levels here";
    assert!(
        first("deep-block-sequences.yaml").starts_with("models/x.yaml:4:"),
        "{}",
        first("deep-block-sequences.yaml")
    );
    assert!(first("deep-block-sequences.yaml").contains(deep));
    assert!(first("deep-flow-mappings.yaml").starts_with("models/x.yaml:2:"));
    assert!(first("deep-flow-mappings.yaml").contains(deep));
    assert!(
        first("deep-after-block-scalar.yaml").starts_with("models/x.yaml:5:"),
        "{}",
        first("deep-after-block-scalar.yaml")
    );
    assert!(model_problems("deep-at-the-limit.yaml").is_empty());
    assert!(model_problems("bom-definition.yaml").is_empty());
    assert!(model_problems("crlf.yaml").is_empty());
    assert_eq!(
        first("invalid-utf8.yaml"),
        "models/x.yaml:3:16: invalid UTF-8 (byte 0xe9 at byte offset 48); save the file as UTF-8"
    );
    assert!(first("utf16le.yaml").contains("UTF-16"));
    assert_eq!(
        first("duplicate-keys.yaml"),
        "models/x.yaml:4:3: duplicate key `greeting` (first at line 3); keys must be unique, keep only one"
    );
    assert!(first("tabs.yaml").contains("tab"), "{}", first("tabs.yaml"));
    assert!(
        first("billion-laughs.yaml").starts_with("models/x.yaml"),
        "{}",
        first("billion-laughs.yaml")
    );
}

/// Pieces of YAML syntax, glued at random.
fn fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        "- ",
        "? ",
        ": ",
        ":",
        ",",
        "\n",
        "  ",
        "\t",
        "'",
        "\"",
        "''",
        "\\",
        "# c",
        "|",
        ">-",
        "&a ",
        "*a",
        "!t ",
        "!!str ",
        "key",
        "x",
        "1",
        "~",
        "---",
        "...",
        "${{ env.X }}",
        "${{",
        "}}",
        "\u{feff}",
        "é",
        "type: test/echo\n",
        "jobs:\n",
    ])
}

fn yamlish() -> impl Strategy<Value = String> {
    let glued = prop::collection::vec(fragment(), 0..300).prop_map(|parts| parts.concat());
    let nested = (
        prop::collection::vec(fragment(), 0..20),
        prop::sample::select(vec![
            "[", "{", "- ", "? ", "{a: ", "[a, ", "- a: ", "k:\n  ",
        ]),
        0usize..4000,
        prop::collection::vec(fragment(), 0..20),
    )
        .prop_map(|(head, open, depth, tail)| {
            format!("{}{}{}", head.concat(), open.repeat(depth), tail.concat())
        });
    prop_oneof![glued, nested]
}

fn parse_everything(text: String) {
    std::thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || {
            let _ = LineIndex::parse(&text);
            let _ = Definition::parse(&text, Path::new("models/x.yaml"));
            let _ = Workflow::parse(&text, Path::new("workflows/x.yaml"));
            let _ = RepoConfig::parse(&text, Path::new("orch.yaml"));
        })
        .unwrap()
        .join()
        .expect("parsing panicked");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_nested_yaml_never_panics(text in yamlish()) {
        parse_everything(text);
    }

    #[test]
    fn every_refusal_names_a_line_in_the_file(text in yamlish()) {
        let lines = text.lines().count().max(1);
        if let Some(refusal) = LineIndex::parse(&text).refusal() {
            prop_assert!(refusal.line >= 1 && refusal.line <= lines + 1, "{refusal:?}");
        }
    }
}
