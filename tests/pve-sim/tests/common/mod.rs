//! A small PVE client over reqwest, as orch's Proxmox plugin would talk to the simulator.

#![allow(dead_code)] // each test binary uses a different part of this helper

use pve_sim::Simulator;
use serde_json::Value;

/// The node every default simulator serves.
pub const NODE: &str = "keeb-dev-02";

/// A client that accepts the simulator's self-signed certificate.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .expect("client builds")
}

/// Form-encodes fields the way PVE clients send them.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Status code and JSON body of a response.
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

/// POSTs credentials to `/access/ticket`.
pub async fn post_login(base: &str, username: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/api2/json/access/ticket"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("username", username), ("password", password)]))
        .send()
        .await
        .expect("login request")
}

/// A logged-in ticket session.
pub struct Session {
    pub client: reqwest::Client,
    pub base: String,
    pub ticket: String,
    pub csrf: String,
}

impl Session {
    /// Logs in as root@pam with the default password.
    pub async fn login(sim: &Simulator) -> Session {
        let base = sim.url();
        let (status, body) = read(post_login(&base, "root@pam", "simulator-password").await).await;
        assert_eq!(status, 200, "{body}");
        Session {
            client: client(),
            base,
            ticket: body["data"]["ticket"].as_str().unwrap().to_string(),
            csrf: body["data"]["CSRFPreventionToken"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api2/json{path}", self.base)
    }

    /// GET with the ticket cookie.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .header("Cookie", format!("PVEAuthCookie={}", self.ticket))
            .send()
            .await
            .expect("GET");
        read(response).await
    }

    /// A write with the ticket cookie and CSRF token.
    pub async fn write(&self, method: &str, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .client
            .request(method, self.url(path))
            .header("Cookie", format!("PVEAuthCookie={}", self.ticket))
            .header("CSRFPreventionToken", &self.csrf)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .expect("write");
        read(response).await
    }

    /// Polls a task until it stops; returns every status seen and the exitstatus.
    pub async fn wait(&self, upid: &Value) -> (Vec<String>, String) {
        let path = format!("/nodes/{NODE}/tasks/{}/status", upid.as_str().unwrap());
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (status, body) = self.get(&path).await;
            assert_eq!(status, 200, "{body}");
            let state = body["data"]["status"].as_str().unwrap().to_string();
            seen.push(state.clone());
            if state == "stopped" {
                let exit = body["data"]["exitstatus"].as_str().unwrap().to_string();
                return (seen, exit);
            }
        }
        panic!("task {upid} never stopped: {seen:?}");
    }
}
