use super::*;
use orch_plugin_sdk::Error;
use serde_json::json;

fn rules(value: serde_json::Value) -> Result<Vec<PortRule>> {
    let map: PortMap = serde_json::from_value(value).expect("portMap shape");
    port_rules(&map)
}

fn tcp(listen: u16, backend: u16) -> PortRule {
    PortRule {
        listen,
        protocol: Protocol::Tcp,
        backend,
    }
}

fn udp(listen: u16, backend: u16) -> PortRule {
    PortRule {
        listen,
        protocol: Protocol::Udp,
        backend,
    }
}

#[test]
fn the_object_form_maps_listen_ports_to_backend_ports() {
    assert_eq!(
        rules(json!({"25565": 25565, "8080": "80", "19132/udp": 19132})).unwrap(),
        [tcp(8080, 80), udp(19132, 19132), tcp(25565, 25565)]
    );
}

#[test]
fn the_list_form_takes_protocols() {
    assert_eq!(
        rules(json!([
            {"listen": 7777, "backend": 7777},
            {"listen": "19132", "backend": 19133, "protocol": "udp"},
            {"listen": 19132, "backend": 19132, "protocol": "tcp"},
        ]))
        .unwrap(),
        [tcp(7777, 7777), tcp(19132, 19132), udp(19132, 19133)]
    );
}

#[test]
fn json_text_is_read_as_either_form() {
    assert_eq!(
        rules(json!("{\"25565\": 25565}")).unwrap(),
        [tcp(25565, 25565)]
    );
    assert_eq!(
        rules(json!("[{\"listen\": 1, \"backend\": 2}]")).unwrap(),
        [tcp(1, 2)]
    );
    assert!(matches!(
        rules(json!("25565")),
        Err(Error::InvalidArguments(_))
    ));
    assert!(rules(json!("not json")).is_err());
}

#[test]
fn ports_out_of_range_are_refused() {
    for bad in [
        json!({"0": 25565}),
        json!({"65536": 25565}),
        json!({"25565": 0}),
        json!({"25565": 70000}),
        json!({"25565": -1}),
        json!({"abc": 1}),
        json!({"25565": "x"}),
        json!({"25565/sctp": 1}),
        json!([{"listen": 1.5, "backend": 2}]),
    ] {
        let result = serde_json::from_value::<PortMap>(bad.clone())
            .map_err(|e| e.to_string())
            .and_then(|m| port_rules(&m).map_err(|e| format!("{e:?}")));
        assert!(result.is_err(), "{bad}");
    }
}

#[test]
fn duplicate_listen_ports_are_refused_but_tcp_and_udp_may_share() {
    let e = rules(json!([
        {"listen": 25565, "backend": 1},
        {"listen": "25565", "backend": 2},
    ]))
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArguments(ref m) if m.contains("25565/tcp appears twice")));
    assert!(rules(json!({"25565": 1, "25565/tcp": 2})).is_err());
    assert_eq!(rules(json!({"53": 53, "53/udp": 53})).unwrap().len(), 2);
}

#[test]
fn an_empty_port_map_is_refused() {
    assert!(rules(json!({})).is_err());
    assert!(rules(json!([])).is_err());
}

#[test]
fn names_become_file_names_so_they_are_strict() {
    assert!(check_name("allthemons").is_ok());
    assert!(check_name("calamity-terraria_2").is_ok());
    for bad in [
        "",
        "../etc/passwd",
        "a b",
        "a;b",
        "-x",
        "a.conf",
        &"a".repeat(65),
    ] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn backends_are_ips_or_host_names() {
    assert_eq!(backend_host("10.0.0.96").unwrap(), "10.0.0.96");
    assert_eq!(backend_host(" 10.0.0.96 ").unwrap(), "10.0.0.96");
    assert_eq!(backend_host("fd00::5").unwrap(), "[fd00::5]");
    assert_eq!(backend_host("[fd00::5]").unwrap(), "[fd00::5]");
    assert_eq!(backend_host("Calamity.lan").unwrap(), "calamity.lan");
    for bad in [
        "",
        "10.0.0.96; include /etc/passwd",
        "a..b",
        "-x",
        "host:25565",
        "a b",
    ] {
        assert!(
            matches!(backend_host(bad), Err(Error::InvalidArguments(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn paths_must_be_plain_and_absolute() {
    assert!(check_path("includeDir", "/etc/nginx/stream.d").is_ok());
    for bad in [
        "etc/nginx",
        "/etc/nginx;",
        "/etc/{x}",
        "/a b",
        "/a'b",
        "/$x",
    ] {
        assert!(check_path("includeDir", bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        proxy_path("/etc/nginx/stream.d/", "atm"),
        "/etc/nginx/stream.d/atm.conf"
    );
    assert_eq!(parent_dir("/etc/nginx/nginx.conf"), "/etc/nginx");
    assert_eq!(parent_dir("/nginx.conf"), "/");
}

#[test]
fn renders_one_upstream_and_server_per_port() {
    let text = render_proxy(
        "allthemons",
        "10.0.0.96",
        &[tcp(25565, 25565), udp(24454, 24454)],
    );
    assert_eq!(
        text,
        "# Managed by orch (nginx/stream configure) for `allthemons`; edits here are overwritten.\n\
         \n\
         upstream allthemons_25565_tcp {\n    server 10.0.0.96:25565;\n}\n\
         \n\
         server {\n    listen 25565;\n    proxy_pass allthemons_25565_tcp;\n}\n\
         \n\
         upstream allthemons_24454_udp {\n    server 10.0.0.96:24454;\n}\n\
         \n\
         server {\n    listen 24454 udp;\n    proxy_pass allthemons_24454_udp;\n}\n"
    );
    let v6 = render_proxy("x", "[fd00::5]", &[tcp(1, 2)]);
    assert!(v6.contains("server [fd00::5]:2;"));
}

const DEBIAN_CONF: &str = "\
user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
}

http {
\tinclude /etc/nginx/mime.types;
\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}

#mail {
#\tserver {
#\t\tlisten     localhost:110;
#\t}
#}
";

#[test]
fn init_appends_a_stream_block_to_a_stock_config() {
    let updated = with_stream_include(DEBIAN_CONF, "/etc/nginx", "/etc/nginx/stream.d").unwrap();
    assert!(updated.starts_with(DEBIAN_CONF));
    assert!(updated.ends_with(
        "\n# Added by orch (nginx/stream init).\nstream {\n    include /etc/nginx/stream.d/*.conf;\n}\n"
    ));
    // Running init again changes nothing.
    assert_eq!(
        with_stream_include(&updated, "/etc/nginx", "/etc/nginx/stream.d/"),
        None
    );
}

#[test]
fn init_joins_an_existing_stream_block_instead_of_adding_a_second() {
    let conf =
        "events {}\nstream {\n    # old\n    server { listen 53 udp; proxy_pass 1.1.1.1:53; }\n}\n";
    let updated = with_stream_include(conf, "/etc/nginx", "/etc/nginx/stream.d").unwrap();
    assert_eq!(
        updated,
        "events {}\nstream {\n    include /etc/nginx/stream.d/*.conf;\n    # old\n    server { listen 53 udp; proxy_pass 1.1.1.1:53; }\n}\n"
    );
    assert_eq!(updated.matches("stream {").count(), 1);
}

#[test]
fn an_existing_include_of_the_dir_is_recognized_in_any_spelling() {
    for conf in [
        "stream { include /etc/nginx/stream.d/*.conf; }",
        "stream {\n  include   \"/etc/nginx/stream.d/*.conf\" ;\n}",
        "stream { include /etc/nginx/stream.d/game.conf; }",
        "stream { include stream.d/*.conf; }",
    ] {
        assert!(
            includes_dir(conf, "/etc/nginx", "/etc/nginx/stream.d"),
            "{conf}"
        );
    }
    for conf in [
        "# include /etc/nginx/stream.d/*.conf;",
        "http { include /etc/nginx/conf.d/*.conf; }",
        "stream { include /etc/nginx/stream.d.old/*.conf; }",
        "",
    ] {
        assert!(
            !includes_dir(conf, "/etc/nginx", "/etc/nginx/stream.d"),
            "{conf}"
        );
    }
}

#[test]
fn a_stream_word_in_comments_strings_or_nested_blocks_is_not_the_stream_block() {
    let conf = "# stream {\nhttp {\n  map $x $y { stream { } }\n  add_header X \"stream {\";\n}\n";
    let updated = with_stream_include(conf, "/etc/nginx", "/etc/nginx/stream.d").unwrap();
    assert!(updated.starts_with(conf));
    assert!(updated.ends_with("stream {\n    include /etc/nginx/stream.d/*.conf;\n}\n"));
}

#[test]
fn malformed_configs_do_not_panic() {
    for conf in [
        "stream {",
        "}}}}",
        "\"unterminated",
        "include",
        "include ;",
        "stream",
    ] {
        let _ = with_stream_include(conf, "/etc/nginx", "/etc/nginx/stream.d");
        let _ = includes_dir(conf, "/etc/nginx", "/etc/nginx/stream.d");
    }
    assert!(
        with_stream_include("no newline", "/", "/s")
            .unwrap()
            .starts_with("no newline\n")
    );
}

#[test]
fn after_a_failed_test_the_previous_file_comes_back_or_the_new_one_goes() {
    assert_eq!(after_test(true, Some("old")), AfterTest::Reload);
    assert_eq!(after_test(true, None), AfterTest::Reload);
    assert_eq!(after_test(false, Some("old")), AfterTest::Restore("old"));
    assert_eq!(after_test(false, Some("")), AfterTest::Restore(""));
    assert_eq!(after_test(false, None), AfterTest::Remove);
}

#[test]
fn a_missing_stream_module_gets_a_hint() {
    let text =
        test_failure("nginx: [emerg] unknown directive \"stream\" in /etc/nginx/nginx.conf:40\n");
    assert!(text.contains("libnginx-mod-stream"));
    assert_eq!(test_failure(" other \n"), "other");
}
