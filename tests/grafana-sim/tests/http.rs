//! The simulator over a real socket: auth, a dashboard round trip, the request log.

use grafana_sim::{SimConfig, Simulator};
use std::io::{Read, Write};
use std::net::TcpStream;

/// One HTTP/1.1 request by hand; returns the status and the body.
fn send(sim: &Simulator, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", sim.port())).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[test]
fn a_dashboard_pushed_over_http_is_returned_by_uid_and_a_wrong_token_is_401() {
    let sim = Simulator::start_blocking(SimConfig {
        token: "glsa_right".into(),
        port: 0,
    })
    .unwrap();
    let (status, body) = send(&sim, "GET", "/api/health", "glsa_wrong", "");
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"message":"Invalid API key"}"#)
    );
    let (status, _) = send(
        &sim,
        "POST",
        "/api/dashboards/db",
        "glsa_right",
        r#"{"dashboard":{"uid":"mc","title":"MC"},"overwrite":true}"#,
    );
    assert_eq!(status, 200);
    let (status, body) = send(&sim, "GET", "/api/dashboards/uid/mc", "glsa_right", "");
    assert_eq!(status, 200);
    assert!(body.contains(r#""title":"MC""#), "{body}");
    assert_eq!(sim.dashboard_uids(), ["mc"]);
    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].status, 401);
    assert_eq!(sim.writes().len(), 1);
}
