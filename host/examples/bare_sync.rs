//! The floor B2 compares `orch run sync-fleet` with: the same Proxmox requests from a bare
//! reqwest program, as a process of its own (start-up, TLS setup and all).
//!
//! Usage: bare_sync <base url> <node>; the password comes on stdin. Prints the number of VMs.

use std::io::Read;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(node)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_sync <base url> <node> (password on stdin)");
        std::process::exit(2);
    };
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).unwrap();
    // The simulator's certificate is self-signed; orch's homelab example trusts it the same way.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let login: serde_json::Value = client
        .post(format!("{url}/api2/json/access/ticket"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("username", "root@pam")
                .append_pair("password", password.trim_end())
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = login["data"]["ticket"].as_str().expect("no ticket");
    let cookie = format!("PVEAuthCookie={ticket}");
    let list: serde_json::Value = client
        .get(format!("{url}/api2/json/nodes/{node}/qemu"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vms = list["data"].as_array().expect("no VM list");
    for vm in vms.iter().filter(|vm| vm["status"] == "running") {
        let reply = client
            .get(format!(
                "{url}/api2/json/nodes/{node}/qemu/{}/agent/network-get-interfaces",
                vm["vmid"]
            ))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        std::hint::black_box(reply.bytes().await.unwrap());
    }
    println!("{}", vms.len());
}
