//! `${{ … }}` templates in swamp files: model ids become names, and whatever orch's expressions
//! do not know (roots, functions) is reported rather than silently passed on.

use std::collections::BTreeMap;

/// What an expression rewrite found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Roots or functions orch's CEL context does not provide, e.g. `workflow` or `file.read`.
    pub unknown: Vec<String>,
    /// `env.NAME` references (orch.yaml declares them).
    pub env: Vec<String>,
    /// `vault.get("vault", "key")` references.
    pub vault: Vec<(String, String)>,
    /// How many ids were rewritten to names.
    pub ids_rewritten: usize,
}

/// The roots orch's expression context provides (DESIGN.md, CEL wiring).
const ORCH_ROOTS: &[&str] = &["model", "inputs", "env", "vault", "data", "run", "self"];

/// The functions orch provides under a root. swamp also has `data.version`,
/// `data.listVersions`, `data.findBySpec`, `data.findByTag`, `data.query` and `file.contents`;
/// an expression using one is reported, never passed on as if it worked.
const ORCH_FUNCTIONS: &[(&str, &[&str])] = &[("data", &["latest"]), ("vault", &["get"])];

/// CEL's own words and global functions, which need no conversion.
const CEL_GLOBALS: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "size",
    "has",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "matches",
];

/// Rewrites every `${{ … }}` in `text`; `ids` maps swamp ids (uuids) to model/workflow names.
pub fn rewrite(text: &str, ids: &BTreeMap<String, String>) -> (String, Findings) {
    let mut out = String::with_capacity(text.len());
    let mut findings = Findings::default();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let body_start = start + 3;
        let Some(len) = rest[body_start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..body_start]);
        let body = rewrite_ids(&rest[body_start..body_start + len], ids, &mut findings);
        analyse(&body, &mut findings);
        out.push_str(&body);
        out.push_str("}}");
        rest = &rest[body_start + len + 2..];
    }
    out.push_str(rest);
    (out, findings)
}

/// `${{ expr }}` → `expr`, for swamp's step `condition` which becomes orch's bare-CEL `guard`.
pub fn bare(text: &str) -> String {
    let t = text.trim();
    match t.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("${{") => inner.trim().to_string(),
        _ => t.to_string(),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn rewrite_ids(body: &str, ids: &BTreeMap<String, String>, findings: &mut Findings) -> String {
    let mut body = body.to_string();
    for (id, name) in ids {
        if !body.contains(id.as_str()) {
            continue;
        }
        let member = if is_ident(name) {
            format!("model.{name}")
        } else {
            format!("model[\"{name}\"]")
        };
        for quote in ['"', '\''] {
            body = body.replace(&format!("model[{quote}{id}{quote}]"), &member);
        }
        findings.ids_rewritten += body.matches(id.as_str()).count().max(1);
        body = body.replace(id.as_str(), name);
    }
    body
}

/// Walks the identifiers of one expression body (outside string literals).
fn analyse(body: &str, findings: &mut Findings) {
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_string(&chars, i);
            prev = Some(c);
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if prev != Some('.') {
                root(&word, &chars, i, findings);
            }
            prev = Some('a');
            continue;
        }
        if !c.is_whitespace() {
            prev = Some(c);
        }
        i += 1;
    }
}

fn root(word: &str, chars: &[char], after: usize, findings: &mut Findings) {
    let next = chars[after..].iter().find(|c| !c.is_whitespace()).copied();
    if word == "env" && next == Some('.') {
        let name: String = chars[after..]
            .iter()
            .skip_while(|c| c.is_whitespace() || **c == '.')
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        if !name.is_empty() && !findings.env.contains(&name) {
            findings.env.push(name);
        }
    }
    if word == "vault" {
        let tail: String = chars[after..].iter().collect();
        if let Some(pair) = vault_get_args(&tail)
            && !findings.vault.contains(&pair)
        {
            findings.vault.push(pair);
        }
    }
    if let Some((_, known)) = ORCH_FUNCTIONS.iter().find(|(root, _)| *root == word)
        && next == Some('.')
    {
        let method: String = chars[after..]
            .iter()
            .skip_while(|c| c.is_whitespace() || **c == '.')
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        let shown = format!("{word}.{method}()");
        if !known.contains(&method.as_str()) && !findings.unknown.contains(&shown) {
            findings.unknown.push(shown);
        }
        return;
    }
    if ORCH_ROOTS.contains(&word) || CEL_GLOBALS.contains(&word) {
        return;
    }
    // A bare word before `:` is a map key in `{a: 1}` only when quoted; anything else is a root.
    let shown = if next == Some('(') {
        format!("{word}()")
    } else {
        word.to_string()
    };
    if !findings.unknown.contains(&shown) {
        findings.unknown.push(shown);
    }
}

/// `.get("a", "b")…` → `("a", "b")`.
fn vault_get_args(tail: &str) -> Option<(String, String)> {
    let args = tail.trim_start().strip_prefix(".get")?.trim_start();
    let args = args.strip_prefix('(')?;
    let (first, rest) = string_literal(args.trim_start())?;
    let rest = rest.trim_start().strip_prefix(',')?;
    let (second, _) = string_literal(rest.trim_start())?;
    Some((first, second))
}

fn string_literal(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let end = text[1..].find(quote)? + 1;
    Some((text[1..end].to_string(), &text[end + 1..]))
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_ID: &str = "3f6c2a9e-8b1d-4c7a-9e2f-5d4b3a2c1e0f";

    fn ids() -> BTreeMap<String, String> {
        BTreeMap::from([(NODE_ID.to_string(), "keebDev02".to_string())])
    }

    #[test]
    fn ids_in_expressions_become_names() {
        let (out, f) = rewrite(
            &format!("${{{{ model[\"{NODE_ID}\"].resource.node.attributes.ticket }}}}"),
            &ids(),
        );
        assert_eq!(
            out,
            "${{ model.keebDev02.resource.node.attributes.ticket }}"
        );
        assert_eq!(f.ids_rewritten, 1);
        assert!(f.unknown.is_empty(), "{:?}", f.unknown);
    }

    #[test]
    fn text_outside_templates_is_kept() {
        let (out, f) = rewrite("plain 3f6c2a9e and ${{ inputs.vmName }}!", &ids());
        assert_eq!(out, "plain 3f6c2a9e and ${{ inputs.vmName }}!");
        assert_eq!(f, Findings::default());
    }

    #[test]
    fn env_and_vault_references_are_collected() {
        let (_, f) = rewrite(
            "${{ env.PROXMOX_API_URL }}/${{ vault.get(\"proxmox-vault\", \"password\") }}",
            &ids(),
        );
        assert_eq!(f.env, vec!["PROXMOX_API_URL"]);
        assert_eq!(
            f.vault,
            vec![("proxmox-vault".to_string(), "password".to_string())]
        );
        assert!(f.unknown.is_empty());
    }

    #[test]
    fn roots_orch_lacks_are_reported() {
        let (_, f) = rewrite(
            "${{ workflow.run.id + file.read(\"x\") + size(inputs.a) + \"steps\" }}",
            &ids(),
        );
        assert_eq!(f.unknown, vec!["workflow", "file"]);
    }

    #[test]
    fn swamp_only_data_functions_are_reported() {
        let (_, f) = rewrite(
            "${{ data.findBySpec(\"scanner\", \"subnet\") + data.latest(\"fleet\", \"slate\") + file.contents(\"a\", \"b\") }}",
            &ids(),
        );
        assert_eq!(f.unknown, vec!["data.findBySpec()", "file"]);
    }

    #[test]
    fn member_names_and_strings_are_not_roots() {
        let (_, f) = rewrite(
            "${{ model.fleet.resource.vm[\"gold-image\"].attributes.ip != null && inputs.x.startsWith('y') }}",
            &ids(),
        );
        assert!(f.unknown.is_empty(), "{:?}", f.unknown);
    }

    #[test]
    fn condition_becomes_bare_cel() {
        assert_eq!(
            bare("${{ inputs.env == \"dev\" }}"),
            "inputs.env == \"dev\""
        );
        assert_eq!(bare("inputs.x"), "inputs.x");
    }
}
