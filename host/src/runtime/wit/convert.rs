//! 0.1 types to 0.2 types and back. 0.2 is a superset of 0.1, so every 0.1 value has a 0.2
//! value (new fields empty), and every 0.2 value a 0.1 plugin can receive (errors, responses,
//! exec results, calls) has a 0.1 value.

use super::v0_1::orch::plugin as old;
use super::v0_2::orch::plugin as new;

/// A 0.1 error as 0.2.
pub fn error_up(e: old::types::Error) -> new::types::Error {
    use new::types::Error as N;
    use old::types::Error as O;
    match e {
        O::InvalidArguments(m) => N::InvalidArguments(m),
        O::Denied(m) => N::Denied(m),
        O::NotFound(m) => N::NotFound(m),
        O::Conflict(m) => N::Conflict(m),
        O::Transient(m) => N::Transient(m),
        O::Failed(m) => N::Failed(m),
    }
}

/// A 0.2 error as 0.1.
pub fn error_down(e: new::types::Error) -> old::types::Error {
    use new::types::Error as N;
    use old::types::Error as O;
    match e {
        N::InvalidArguments(m) => O::InvalidArguments(m),
        N::Denied(m) => O::Denied(m),
        N::NotFound(m) => O::NotFound(m),
        N::Conflict(m) => O::Conflict(m),
        N::Transient(m) => O::Transient(m),
        N::Failed(m) => O::Failed(m),
    }
}

/// A 0.1 log level as 0.2.
pub fn level_up(level: old::log::Level) -> new::log::Level {
    use new::log::Level as N;
    use old::log::Level as O;
    match level {
        O::Trace => N::Trace,
        O::Debug => N::Debug,
        O::Info => N::Info,
        O::Warn => N::Warn,
        O::Error => N::Error,
    }
}

/// A 0.1 HTTP request as 0.2.
pub fn request_up(r: old::http::Request) -> new::http::Request {
    new::http::Request {
        method: r.method,
        url: r.url,
        headers: r.headers,
        body: r.body,
        timeout_ms: r.timeout_ms,
        insecure_tls: r.insecure_tls,
        pinned_cert_sha256: r.pinned_cert_sha256,
    }
}

/// A 0.2 HTTP response as 0.1.
pub fn response_down(r: new::http::Response) -> old::http::Response {
    old::http::Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

/// A 0.1 SSH target as 0.2.
pub fn target_up(t: old::ssh::Target) -> new::ssh::Target {
    new::ssh::Target {
        host: t.host,
        port: t.port,
        user: t.user,
        auth: match t.auth {
            old::ssh::Auth::PrivateKey(k) => new::ssh::Auth::PrivateKey(new::ssh::PrivateKey {
                key: k.key,
                passphrase: k.passphrase,
            }),
            old::ssh::Auth::Password(p) => new::ssh::Auth::Password(p),
        },
        trust_on_first_use: t.trust_on_first_use,
        connect_timeout_ms: t.connect_timeout_ms,
    }
}

/// A 0.2 SSH exec result as 0.1.
pub fn exec_result_down(r: new::ssh::ExecResult) -> old::ssh::ExecResult {
    old::ssh::ExecResult {
        exit_code: r.exit_code,
        stdout: r.stdout,
        stderr: r.stderr,
    }
}

/// A 0.1 method kind as 0.2.
pub fn kind_up(kind: old::types::MethodKind) -> new::types::MethodKind {
    use new::types::MethodKind as N;
    use old::types::MethodKind as O;
    match kind {
        O::Create => N::Create,
        O::Read => N::Read,
        O::Update => N::Update,
        O::Delete => N::Delete,
        O::List => N::List,
        O::Action => N::Action,
    }
}

/// A 0.1 `type-info` as 0.2: no typed confirm rule (a 0.1 plugin keeps `x-orch-confirm` in its
/// argument schema) and no volatile attributes.
pub fn type_info_up(t: old::types::TypeInfo) -> new::types::TypeInfo {
    new::types::TypeInfo {
        name: t.name,
        version: t.version,
        description: t.description,
        global_arguments_schema: t.global_arguments_schema,
        resources: t
            .resources
            .into_iter()
            .map(|r| new::types::ResourceSpec {
                name: r.name,
                description: r.description,
                schema: r.schema,
                volatile: Vec::new(),
            })
            .collect(),
        methods: t
            .methods
            .into_iter()
            .map(|m| new::types::MethodInfo {
                name: m.name,
                description: m.description,
                kind: kind_up(m.kind),
                destructive: m.destructive,
                confirm: None,
                arguments_schema: m.arguments_schema,
            })
            .collect(),
    }
}

/// A 0.2 call as 0.1 (the records are the same).
pub fn call_down(c: new::types::Call) -> old::types::Call {
    old::types::Call {
        type_name: c.type_name,
        method: c.method,
        model_name: c.model_name,
        global_arguments: c.global_arguments,
        arguments: c.arguments,
        dry_run: c.dry_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_variant_and_message_both_ways() {
        let all = [
            old::types::Error::InvalidArguments("a".into()),
            old::types::Error::Denied("b".into()),
            old::types::Error::NotFound("c".into()),
            old::types::Error::Conflict("d".into()),
            old::types::Error::Transient("e".into()),
            old::types::Error::Failed("f".into()),
        ];
        for e in all {
            let shown = format!("{e:?}");
            assert_eq!(format!("{:?}", error_down(error_up(e))), shown);
        }
    }

    #[test]
    fn a_0_1_type_info_maps_field_for_field_with_the_new_fields_empty() {
        let t = old::types::TypeInfo {
            name: "x/y".into(),
            version: "2026.01.01.1".into(),
            description: "d".into(),
            global_arguments_schema: "{}".into(),
            resources: vec![old::types::ResourceSpec {
                name: "vm".into(),
                description: "a vm".into(),
                schema: "{\"type\":\"object\"}".into(),
            }],
            methods: vec![old::types::MethodInfo {
                name: "delete".into(),
                description: "gone".into(),
                kind: old::types::MethodKind::Delete,
                destructive: true,
                arguments_schema: "{\"x-orch-confirm\":{}}".into(),
            }],
        };
        let n = type_info_up(t);
        assert_eq!(n.name, "x/y");
        assert_eq!(n.resources[0].schema, "{\"type\":\"object\"}");
        assert!(n.resources[0].volatile.is_empty());
        let m = &n.methods[0];
        assert!(m.destructive && m.confirm.is_none());
        assert!(matches!(m.kind, new::types::MethodKind::Delete));
        assert_eq!(m.arguments_schema, "{\"x-orch-confirm\":{}}");
    }

    #[test]
    fn requests_targets_and_results_map_field_for_field() {
        let r = request_up(old::http::Request {
            method: "GET".into(),
            url: "https://x/".into(),
            headers: vec![("a".into(), "b".into())],
            body: Some(vec![1]),
            timeout_ms: Some(5),
            insecure_tls: true,
            pinned_cert_sha256: Some("ab".into()),
        });
        assert_eq!(
            (r.method.as_str(), r.url.as_str(), r.body, r.timeout_ms),
            ("GET", "https://x/", Some(vec![1]), Some(5))
        );
        assert!(r.insecure_tls && r.pinned_cert_sha256.as_deref() == Some("ab"));
        let t = target_up(old::ssh::Target {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            auth: old::ssh::Auth::PrivateKey(old::ssh::PrivateKey {
                key: "k".into(),
                passphrase: Some("p".into()),
            }),
            trust_on_first_use: true,
            connect_timeout_ms: Some(9),
        });
        assert!(matches!(
            t.auth,
            new::ssh::Auth::PrivateKey(ref k) if k.key == "k" && k.passphrase.as_deref() == Some("p")
        ));
        assert_eq!((t.port, t.connect_timeout_ms), (22, Some(9)));
        let e = exec_result_down(new::ssh::ExecResult {
            exit_code: 3,
            stdout: vec![1],
            stderr: vec![2],
        });
        assert_eq!((e.exit_code, e.stdout, e.stderr), (3, vec![1], vec![2]));
    }
}
