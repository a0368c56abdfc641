use super::*;
use crate::remote::fake::{self, FakeConnector, FakeRemote};
use orch_plugin_sdk::Error;
use serde_json::json;

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn globals() -> InstallerGlobals {
    serde_json::from_value(json!({ "sshHost": "10.0.0.60", "sshKey": "k" })).unwrap()
}

#[test]
fn install_deps_skips_when_java_and_unzip_are_there() {
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let out = install_deps(&c, &globals(), "mc").unwrap();
    assert!(!out.changed);
    assert_eq!(out.commands.len(), 1);
}

#[test]
fn install_deps_installs_with_apt_and_stops_at_a_failure() {
    let c = FakeConnector::new(FakeRemote::new(|cmd| {
        if cmd.starts_with("command -v") {
            fake::exit(1, "", "")
        } else {
            fake::ok("")
        }
    }));
    let out = install_deps(&c, &globals(), "mc").unwrap();
    assert_eq!(
        out.commands[1..],
        [
            "apt-get update",
            "DEBIAN_FRONTEND=noninteractive apt-get install -y 'openjdk-17-jre-headless' unzip",
            "'java' -version",
        ]
    );
    let c = FakeConnector::new(FakeRemote::new(|cmd| {
        if cmd.starts_with("command -v") {
            fake::exit(1, "", "")
        } else if cmd.contains("install") {
            fake::exit(
                100,
                "",
                "E: Unable to locate package openjdk-17-jre-headless",
            )
        } else {
            fake::ok("")
        }
    }));
    let err = install_deps(&c, &globals(), "mc").unwrap_err();
    assert!(
        format!("{err:?}").contains("Unable to locate package"),
        "{err:?}"
    );
    assert!(!c.remote.commands().iter().any(|c| c.ends_with("-version")));
}

fn upload_args(sha: Option<&str>) -> UploadArgs {
    serde_json::from_value(json!({
        "url": "https://example.org/packs/atm10.zip",
        "zip": "/opt/minecraft/atm10.zip",
        "sha256": sha,
    }))
    .unwrap()
}

#[test]
fn upload_downloads_to_a_part_file_then_renames() {
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    let out = upload(&c, &globals(), "mc", &upload_args(None)).unwrap();
    assert_eq!(
        out.commands,
        [
            "curl -fsSL -o '/opt/minecraft/atm10.zip.part' 'https://example.org/packs/atm10.zip'",
            "mv -f '/opt/minecraft/atm10.zip.part' '/opt/minecraft/atm10.zip'",
        ]
    );
}

#[test]
fn upload_skips_a_zip_with_the_expected_digest_and_refuses_a_wrong_download() {
    let c = FakeConnector::new(FakeRemote::new(|cmd| {
        if cmd.starts_with("sha256sum") {
            fake::ok(&format!("{SHA}  f\n"))
        } else {
            fake::ok("")
        }
    }));
    let out = upload(&c, &globals(), "mc", &upload_args(Some(SHA))).unwrap();
    assert!(!out.changed, "{out:?}");
    let c = FakeConnector::new(FakeRemote::new(|cmd| {
        if cmd.starts_with("test -f") {
            fake::exit(1, "", "")
        } else if cmd.starts_with("sha256sum") {
            fake::ok(&format!("{}  f\n", "0".repeat(64)))
        } else {
            fake::ok("")
        }
    }));
    let err = upload(&c, &globals(), "mc", &upload_args(Some(SHA))).unwrap_err();
    assert!(format!("{err:?}").contains("not the expected"), "{err:?}");
    assert!(!c.remote.commands().iter().any(|c| c.starts_with("mv ")));
    let mut bad = upload_args(None);
    bad.url = "file:///etc/passwd".into();
    let c = FakeConnector::new(FakeRemote::new(|_| fake::ok("")));
    assert!(matches!(
        upload(&c, &globals(), "mc", &bad),
        Err(Error::InvalidArguments(_))
    ));
}

#[test]
fn a_corrupt_zip_is_a_clear_error_and_nothing_is_unpacked() {
    let c = FakeConnector::new(FakeRemote::new(|_| {
        fake::exit(9, "", "End-of-central-directory signature not found.")
    }));
    let args = ExtractArgs {
        zip: "/opt/p.zip".into(),
        server_dir: "/opt/mc".into(),
    };
    let err = extract(&c, &globals(), "mc", &args).unwrap_err();
    let msg = format!("{err:?}");
    assert!(
        msg.contains("not a readable zip") && msg.contains("End-of-central-directory"),
        "{msg}"
    );
    assert_eq!(c.remote.commands().len(), 1);
}

#[test]
fn properties_merge_key_by_key() {
    let current =
        "#Minecraft server properties\nmotd=A Minecraft Server\nserver-port=25565\npvp=true\n";
    let mut set = BTreeMap::new();
    set.insert("motd".to_string(), json!("ATM10"));
    set.insert("max-players".to_string(), json!(12));
    let merged = merge_properties(current, &set).unwrap();
    assert_eq!(
        merged,
        "#Minecraft server properties\nmotd=ATM10\nserver-port=25565\npvp=true\nmax-players=12\n"
    );
    assert_eq!(merge_properties(&merged, &set).unwrap(), merged);
    set.insert("bad key".to_string(), json!("x"));
    assert!(merge_properties(current, &set).is_err());
}

#[test]
fn configure_writes_only_what_changes_and_needs_the_eula() {
    let c = FakeConnector::new(FakeRemote::new(|cmd| {
        if cmd.contains("eula.txt") {
            fake::exit(3, "", "")
        } else {
            fake::ok("motd=old\n")
        }
    }));
    let args: ConfigureArgs = serde_json::from_value(
        json!({"serverDir": "/opt/mc/", "eula": true, "properties": {"motd": "new"}}),
    )
    .unwrap();
    let out = configure(&c, &globals(), "mc", &args).unwrap();
    assert!(out.changed);
    let uploads = c.remote.uploads();
    assert_eq!(
        uploads[0],
        ("/opt/mc/eula.txt".into(), "eula=true\n".into(), 0o644)
    );
    assert_eq!(
        uploads[1],
        (
            "/opt/mc/server.properties".into(),
            "motd=new\n".into(),
            0o644
        )
    );
    let c = FakeConnector::new(FakeRemote::new(|cmd| {
        if cmd.contains("eula.txt") {
            fake::ok("eula=true\n")
        } else {
            fake::ok("motd=new\n")
        }
    }));
    let out = configure(&c, &globals(), "mc", &args).unwrap();
    assert!(!out.changed);
    assert!(c.remote.uploads().is_empty());
    let mut no = args.clone();
    no.eula = false;
    assert!(matches!(
        configure(&c, &globals(), "mc", &no),
        Err(Error::InvalidArguments(_))
    ));
}
