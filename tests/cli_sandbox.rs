//! `audience-operator sandbox --listen ADDR`: the built binary serves every simulator on one port,
//! and what it prints is enough for `sync --sandbox` to use it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_audience-operator");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// Kills the sandbox process this test started when the test ends, however it ends.
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free a moment ago (the sandbox binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.1 GET: status and body.
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

#[test]
fn sandbox_serves_every_vendor_and_its_stats_on_one_port() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["sandbox", "--listen", &addr, "--customers", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let guard = Sandbox(child);

    // Everything it prints up to "serving until ctrl-c" (it prints that once it is listening).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("serving until ctrl-c");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "the sandbox did not start; printed:\n{}",
                    printed.join("\n")
                )
            });
        let done = line.starts_with("serving until ctrl-c");
        printed.push(line);
        if done {
            break;
        }
    }
    let printed = printed.join("\n");
    let url = format!("http://{addr}");
    assert!(
        printed.contains(&format!("sandbox listening on {url}")),
        "{printed}"
    );
    for base in [
        format!("{url}/mailchimp/3.0"),
        format!("{url}/shopify"),
        format!("{url}/lightspeed-x/api/2.0"),
        format!("{url}/lightspeed-r/API/V3/Account/230001"),
        format!("{url}/retailcrm"),
    ] {
        assert!(printed.contains(&base), "{base} missing from:\n{printed}");
    }
    for credential in [
        audience_sandbox::mailchimp::EXAMPLE_API_KEY,
        audience_sandbox::shopify::DEFAULT_ACCESS_TOKEN,
        audience_sandbox::lightspeed_x::DEMO_TOKEN,
        audience_sandbox::lightspeed_r::DEMO_TOKEN,
        audience_sandbox::retailcrm::DEFAULT_API_KEY,
        audience_sandbox::mailchimp::DEMO_LIST_ID,
    ] {
        assert!(
            printed.contains(credential),
            "{credential} missing from:\n{printed}"
        );
    }

    let (status, body) = http_get(&addr, "/_sandbox/stats");
    assert_eq!(status, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON stats");
    for vendor in [
        "mailchimp",
        "shopify",
        "lightspeed-x",
        "lightspeed-r",
        "retailcrm",
    ] {
        assert_eq!(stats[vendor]["total"], 0, "{stats}");
    }

    // What it printed is enough for `sync --sandbox`.
    let out = Command::new(BIN)
        .args([
            "sync",
            "-f",
            &format!("{EXAMPLES}/lightspeed-x-to-mailchimp.yaml"),
            "--sandbox",
            &url,
            "--output",
            "json",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["syncs"][0]["counts"]["source"], 25);

    let (_, body) = http_get(&addr, "/_sandbox/stats");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        stats["lightspeed-x"]["total"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(stats["mailchimp"]["total"].as_u64().unwrap() > 0, "{stats}");
    drop(guard);
}

#[test]
fn sandbox_refuses_an_address_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["sandbox", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("listening on {addr}")), "{err}");
}
