//! Expressions that are too deep or too costly fail with the file, line and expression, before
//! a run starts when that can be known and during the step otherwise; they never crash `orch`.

mod support;

use support::TestRepo;

fn repo_with_step_value(value: &str) -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/source.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: hello\n",
    );
    repo.write(
        "workflows/w.yaml",
        &format!(
            "name: w\njobs:\n  - name: main\n    steps:\n      - name: a\n        task:\n          \
             type: model_method\n          modelIdOrName: source\n          methodName: echo\n          \
             inputs:\n            value: \"{value}\"\n"
        ),
    );
    repo
}

#[test]
fn a_long_operator_chain_is_refused_by_validation_with_file_and_line() {
    let chain = vec!["1"; 100].join(" + ");
    let repo = repo_with_step_value(&format!("${{{{ {chain} }}}}"));
    let run = repo.orch(&["workflow", "validate", "w"]).code(2);
    assert!(run.stderr.contains("workflows/w.yaml:11"), "{}", run.stderr);
    assert!(
        run.stderr.contains("nests 100 levels deep"),
        "{}",
        run.stderr
    );
    let run = repo.orch(&["run", "w"]).code(2);
    assert!(run.stderr.contains("workflows/w.yaml:11"), "{}", run.stderr);
}

#[test]
fn a_chain_of_sixty_additions_runs_and_succeeds() {
    let chain = vec!["1"; 60].join(" + ");
    let repo = repo_with_step_value(&format!("${{{{ {chain} }}}}"));
    let out = repo.orch(&["--json", "run", "w"]).ok().json();
    assert_eq!(out["status"], "succeeded", "{out}");
}

#[test]
fn a_nested_comprehension_fails_its_step_quickly_naming_the_expression_and_line() {
    let hundred = format!(
        "[{}]",
        (1..=100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let expr = format!("{hundred}.map(a, {hundred}.map(b, {hundred}.map(c, a + b + c)))");
    let repo = repo_with_step_value(&format!("${{{{ {expr} }}}}"));
    repo.orch(&["workflow", "validate", "w"]).ok();
    let run = repo.orch(&["--json", "run", "w"]).code(1);
    let out = run.json();
    assert_eq!(out["status"], "failed", "{out}");
    let error = out["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("workflows/w.yaml:11"), "{error}");
    assert!(error.contains("budget exceeded"), "{error}");
    assert!(
        error.contains(".map(c, a + b + c)"),
        "names the expression: {error}"
    );
}

#[test]
fn broken_templates_in_a_definition_are_quoted_as_written() {
    let repo = repo_with_step_value("plain");
    repo.write(
        "models/source.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: \"x ${{ env.X\"\n  other: \"${{ ${{ env.X }} }}\"\n",
    );
    let run = repo.orch(&["workflow", "validate", "w"]).code(2);
    let err = run.stderr;
    assert!(
        err.contains("models/source.yaml:3: globalArguments.greeting: `${{ env.X`: syntax error: unterminated"),
        "{err}"
    );
    assert!(
        !err.contains("${{ x ${{"),
        "never wrapped in a second template: {err}"
    );
    assert!(
        err.contains("models/source.yaml:4: globalArguments.other: `${{ ${{ env.X }} }}`: syntax error: a template cannot contain another `${{`"),
        "{err}"
    );
}
