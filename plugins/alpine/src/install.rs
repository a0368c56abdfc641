//! `alpine/install`: an Alpine disk install on a PXE-booted (diskless) VM over SSH. The answer
//! file is uploaded 0600, `setup-alpine -e -f` installs to disk (with `ERASE_DISKS` so setup-disk
//! does not ask), then the new root is mounted and the post-install commands run in a chroot.
//! The first failing command stops the method with its stderr (after unmounting what it
//! mounted); the answer file is removed whatever happens.

use crate::remote::{self, Connector, Remote};
use orch_plugin_sdk::ssh::shell_quote;
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};

fn default_disk() -> String {
    "/dev/sda".to_string()
}

fn default_root_device() -> String {
    "/dev/sda3".to_string()
}

fn default_mount_point() -> String {
    "/mnt".to_string()
}

fn default_answers_path() -> String {
    "/tmp/orch-setup-alpine.answers".to_string()
}

fn default_post_install() -> Vec<String> {
    vec![
        "apk add qemu-guest-agent".to_string(),
        "rc-update add qemu-guest-agent default".to_string(),
    ]
}

remote::ssh_globals! {
    /// Global arguments of `alpine/install`.
    pub struct InstallGlobals {
        /// The `setup-alpine` answer file text, e.g. `${{ file.contents("config/slate-setup-alpine.conf") }}`.
        pub answers: String,
        /// The disk setup-disk erases and installs to (default `/dev/sda`); must match the answer file's DISKOPTS.
        #[serde(default = "default_disk")]
        pub disk: String,
        /// The installed root partition, mounted for the post-install (default `/dev/sda3`, setup-disk's `sys` layout).
        #[serde(default = "default_root_device")]
        pub root_device: String,
        /// Where the new root is mounted (default `/mnt`).
        #[serde(default = "default_mount_point")]
        pub mount_point: String,
        /// Where the answer file is written on the VM, 0600, removed afterwards (default `/tmp/orch-setup-alpine.answers`).
        #[serde(default = "default_answers_path")]
        pub answers_path: String,
        /// Shell commands run in the chroot, in order (default: install and enable qemu-guest-agent).
        #[serde(default = "default_post_install")]
        pub post_install: Vec<String>,
    }
}

/// Arguments of `install`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallArgs {
    /// Run `reboot` after a successful install (default false; the workflow usually reboots through Proxmox).
    #[serde(default)]
    pub reboot: bool,
}

/// What `install` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallOutput {
    /// The disk installed to.
    pub disk: String,
    /// The commands run, in order (the answer file's content is never in them).
    pub commands: Vec<String>,
    /// Whether `reboot` was sent.
    pub rebooted: bool,
}

fn check_path(field: &str, value: &str) -> Result<()> {
    if !value.starts_with('/') || value.chars().any(|c| c.is_control()) {
        return Err(error::invalid(format!(
            "{field} {value:?} must be an absolute path; fix it in the definition's globalArguments"
        )));
    }
    Ok(())
}

/// The commands `install` runs after the answer file upload, in order (without the cleanup and
/// the optional reboot).
pub fn plan(globals: &InstallGlobals) -> Result<Vec<String>> {
    check_path("disk", &globals.disk)?;
    check_path("rootDevice", &globals.root_device)?;
    check_path("mountPoint", &globals.mount_point)?;
    check_path("answersPath", &globals.answers_path)?;
    if globals.answers.trim().is_empty() {
        return Err(error::invalid(
            "answers is empty; set it to the setup-alpine answer file, e.g. \
             ${{ file.contents(\"config/slate-setup-alpine.conf\") }}",
        ));
    }
    let mnt = shell_quote(&globals.mount_point);
    let sub = |p: &str| {
        shell_quote(&format!(
            "{}/{p}",
            globals.mount_point.trim_end_matches('/')
        ))
    };
    let mut commands = vec![
        format!(
            "ERASE_DISKS={} setup-alpine -e -f {}",
            shell_quote(&globals.disk),
            shell_quote(&globals.answers_path)
        ),
        format!("mount {} {mnt}", shell_quote(&globals.root_device)),
        format!("mount -t proc proc {}", sub("proc")),
        format!("mount --bind /dev {}", sub("dev")),
    ];
    for command in &globals.post_install {
        commands.push(format!("chroot {mnt} /bin/sh -c {}", shell_quote(command)));
    }
    commands.push(format!("umount {} {} {mnt}", sub("dev"), sub("proc")));
    Ok(commands)
}

/// Uploads the answer file, runs [`plan`]'s commands until one fails, and removes the answer file.
pub fn install<C: Connector>(
    connector: &C,
    globals: &InstallGlobals,
    model: &str,
    args: &InstallArgs,
) -> Result<InstallOutput> {
    let mut commands = plan(globals)?;
    let session = remote::connect(connector, &globals.ssh(), model)?;
    session.upload(&globals.answers_path, globals.answers.as_bytes(), 0o600)?;
    let mut result = Ok(());
    let unmount = commands.last().cloned().unwrap_or_default();
    for (i, command) in commands.iter().enumerate() {
        let what = command
            .split_whitespace()
            .find(|w| !w.contains('='))
            .unwrap_or("command");
        let what = if what == "chroot" {
            format!("post-install `{command}`")
        } else {
            format!("`{what}`")
        };
        if let Err(e) = session.run_ok(command, &what) {
            // Past the root mount (command 1) and before the final unmount, leave nothing
            // mounted so that a second attempt can mount again; its own failure is secondary.
            if (2..commands.len() - 1).contains(&i) {
                let _ = session.run(&unmount);
            }
            result = Err(e);
            break;
        }
    }
    let cleanup = format!("rm -f {}", shell_quote(&globals.answers_path));
    let removed = session.run_ok(&cleanup, "removing the answer file");
    result?;
    removed?;
    if args.reboot {
        session.run_ok("reboot", "`reboot`")?;
        commands.push("reboot".to_string());
    }
    Ok(InstallOutput {
        disk: globals.disk.clone(),
        rebooted: args.reboot,
        commands,
    })
}
