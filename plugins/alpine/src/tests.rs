//! Unit tests of the method logic against the SDK's fake remote.

use crate::install::{self, InstallArgs, InstallGlobals};
use crate::overlay::{self, OverlayGlobals};
use crate::remote::fake::{FakeConnector, FakeRemote, Op, exit, ok};
use orch_plugin_sdk::ModelType;
use orch_plugin_sdk::Plugin;
use serde_json::json;
use sha2::{Digest, Sha256};

fn message(e: &orch_plugin_sdk::Error) -> String {
    format!("{e:?}")
}

fn install_globals() -> InstallGlobals {
    serde_json::from_value(json!({
        "sshHost": "10.0.0.96",
        "sshPort": 22,
        "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx",
        "answers": "KEYMAPOPTS=\"us us\"\nDISKOPTS=\"-m sys /dev/sda\"\n",
        "postInstall": ["apk add qemu-guest-agent", "rc-update add qemu-guest-agent default"],
    }))
    .unwrap()
}

const EXPECTED_INSTALL: [&str; 8] = [
    "ERASE_DISKS='/dev/sda' setup-alpine -e -f '/tmp/orch-setup-alpine.answers'",
    "mount '/dev/sda3' '/mnt'",
    "mount -t proc proc '/mnt/proc'",
    "mount --bind /dev '/mnt/dev'",
    "chroot '/mnt' /bin/sh -c 'apk add qemu-guest-agent'",
    "chroot '/mnt' /bin/sh -c 'rc-update add qemu-guest-agent default'",
    "umount '/mnt/dev' '/mnt/proc' '/mnt'",
    "rm -f '/tmp/orch-setup-alpine.answers'",
];

#[test]
fn install_uploads_the_answers_then_runs_setup_and_the_chroot_steps() {
    let connector = FakeConnector::new(FakeRemote::new(|_| ok("")));
    let out = install::install(
        &connector,
        &install_globals(),
        "slate",
        &InstallArgs { reboot: true },
    )
    .unwrap();
    let ops = connector.remote.ops();
    assert_eq!(
        ops[0],
        Op::Upload(
            "/tmp/orch-setup-alpine.answers".into(),
            install_globals().answers,
            0o600
        )
    );
    let mut expected: Vec<String> = EXPECTED_INSTALL.iter().map(|s| s.to_string()).collect();
    expected.push("reboot".into());
    assert_eq!(connector.remote.commands(), expected);
    assert!(out.rebooted);
    assert_eq!(out.commands.last().map(String::as_str), Some("reboot"));
}

#[test]
fn a_failing_chroot_step_stops_with_its_stderr_unmounts_and_still_removes_the_answers() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.contains("apk add") {
            exit(1, "", "ERROR: unable to select packages: qemu-guest-agent")
        } else {
            ok("")
        }
    }));
    let err = install::install(
        &connector,
        &install_globals(),
        "slate",
        &InstallArgs::default(),
    )
    .unwrap_err();
    assert!(
        message(&err).contains("unable to select packages"),
        "{}",
        message(&err)
    );
    assert!(message(&err).contains("post-install"), "{}", message(&err));
    let commands = connector.remote.commands();
    assert_eq!(commands.len(), 7, "{commands:?}");
    assert_eq!(commands[4], EXPECTED_INSTALL[4]);
    assert_eq!(
        commands[5], EXPECTED_INSTALL[6],
        "unmounted after the failure"
    );
    assert_eq!(commands[6], EXPECTED_INSTALL[7]);
}

#[test]
fn an_empty_answer_file_is_refused_before_connecting() {
    let mut globals = install_globals();
    globals.answers = "  \n".into();
    let connector = FakeConnector::new(FakeRemote::new(|_| ok("")));
    let err = install::install(&connector, &globals, "slate", &InstallArgs::default()).unwrap_err();
    assert!(
        message(&err).contains("answers is empty"),
        "{}",
        message(&err)
    );
    assert_eq!(connector.opens(), 0);
}

fn overlay_globals() -> OverlayGlobals {
    serde_json::from_value(json!({
        "sshHost": "10.0.0.109",
        "sshPort": 22,
        "sshKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nx",
        "serverHost": "10.0.0.191",
        "serverPort": 2222,
        "bootFiles": ["/media/sda/boot/vmlinuz-lts"],
    }))
    .unwrap()
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[test]
fn deploy_packages_on_the_gold_image_and_renames_after_the_checksum() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c == "cat '/tmp/alpine.apkovl.tar.gz'" {
            ok("OVERLAY")
        } else if c == "cat '/media/sda/boot/vmlinuz-lts'" {
            ok("KERNEL")
        } else if c.starts_with("sha256sum '/srv") {
            ok(&format!("{}  x\n", sha("OVERLAY")))
        } else if c.starts_with("sha256sum '/tftp") {
            ok(&format!("{}  x\n", sha("KERNEL")))
        } else {
            ok("")
        }
    }));
    let out = overlay::deploy(&connector, &overlay_globals(), "goldImageOverlay", "now").unwrap();
    assert_eq!(
        connector.targets(),
        ["root@10.0.0.109:22", "root@10.0.0.191:2222"]
    );
    assert_eq!(
        connector.remote.commands(),
        [
            "lbu package '/tmp/alpine.apkovl.tar.gz'",
            "cat '/tmp/alpine.apkovl.tar.gz'",
            "cat '/media/sda/boot/vmlinuz-lts'",
            "mkdir -p '/srv/http/alpine'",
            "sha256sum '/srv/http/alpine/.alpine.apkovl.tar.gz.orch-tmp'",
            "mv -f '/srv/http/alpine/.alpine.apkovl.tar.gz.orch-tmp' '/srv/http/alpine/alpine.apkovl.tar.gz'",
            "mkdir -p '/tftp'",
            "sha256sum '/tftp/.vmlinuz-lts.orch-tmp'",
            "mv -f '/tftp/.vmlinuz-lts.orch-tmp' '/tftp/vmlinuz-lts'",
        ]
    );
    let uploads = connector.remote.uploads();
    assert_eq!(
        uploads[0],
        (
            "/srv/http/alpine/.alpine.apkovl.tar.gz.orch-tmp".to_string(),
            "OVERLAY".to_string(),
            0o644
        )
    );
    assert_eq!(out.overlay.sha256, sha("OVERLAY"));
    assert_eq!(out.boot_files[0].path, "/tftp/vmlinuz-lts");
}

#[test]
fn a_failed_or_corrupted_upload_never_renames_over_the_served_file() {
    // The upload itself fails (the session dropped half-way).
    let connector = FakeConnector::new(
        FakeRemote::new(|c| {
            if c.starts_with("cat ") {
                ok("OVERLAY")
            } else {
                ok("")
            }
        })
        .with_uploads(|_| Err(orch_plugin_sdk::error::failed("connection reset"))),
    );
    let mut globals = overlay_globals();
    globals.boot_files.clear();
    let err = overlay::deploy(&connector, &globals, "g", "now").unwrap_err();
    assert!(
        message(&err).contains("served file is unchanged"),
        "{}",
        message(&err)
    );
    assert!(
        connector
            .remote
            .commands()
            .iter()
            .all(|c| !c.starts_with("mv "))
    );
    // The upload arrived but differs.
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.starts_with("cat ") {
            ok("OVERLAY")
        } else if c.starts_with("sha256sum") {
            ok("0000  x\n")
        } else {
            ok("")
        }
    }));
    let err = overlay::deploy(&connector, &globals, "g", "now").unwrap_err();
    assert!(
        message(&err).contains("arrived corrupted"),
        "{}",
        message(&err)
    );
    let commands = connector.remote.commands();
    assert!(
        commands.iter().all(|c| !c.starts_with("mv ")),
        "{commands:?}"
    );
    assert_eq!(
        commands.last().unwrap(),
        "rm -f '/srv/http/alpine/.alpine.apkovl.tar.gz.orch-tmp'"
    );
}

#[test]
fn a_failing_lbu_stops_before_the_server_is_contacted() {
    let connector = FakeConnector::new(FakeRemote::new(|c| {
        if c.starts_with("lbu") {
            exit(2, "", "lbu: no changes to commit")
        } else {
            ok("")
        }
    }));
    let err = overlay::deploy(&connector, &overlay_globals(), "g", "now").unwrap_err();
    assert!(
        message(&err).contains("lbu: no changes"),
        "{}",
        message(&err)
    );
    assert_eq!(connector.opens(), 1);
}

#[test]
fn both_types_are_described_with_their_methods() {
    let types: Vec<_> = crate::AlpinePlugin::types()
        .iter()
        .map(ModelType::info)
        .collect();
    assert_eq!(types[0].name, "alpine/install");
    assert_eq!(types[0].methods[0].name, "install");
    assert_eq!(types[1].name, "alpine/overlay");
    assert_eq!(types[1].methods[0].name, "deployApkovl");
    let g: serde_json::Value = serde_json::from_str(&types[1].global_arguments_schema).unwrap();
    for key in [
        "sshHost",
        "serverHost",
        "serverPort",
        "httpDir",
        "tftpDir",
        "bootFiles",
    ] {
        assert!(g["properties"][key].is_object(), "{key}");
    }
}
