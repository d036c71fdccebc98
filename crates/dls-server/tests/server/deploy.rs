//! Deployment files end to end: upload through the admin API, a job, the phone's download
//! over HTTPS (and `curl`'s, with ranges), its status report or its start-up with the new
//! firmware.

use std::time::Duration;

use dls_engine::firmware::fake_image;
use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::deploy::DownloadLimits;
use dls_workpoint::{Phone, ServerTrust};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::common::{TestServer, run};

const MAC: &str = "00:1A:E8:71:00:01";

fn mac() -> MacAddr {
    MacAddr::parse(MAC).expect("mac")
}

/// `POST /api/v1/files?{query}` with `content` as the body.
pub(crate) async fn upload(server: &TestServer, query: &str, content: Vec<u8>) -> (u16, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(server.admin).await.expect("admin connects");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("/api/v1/files?{query}"))
        .header("host", server.admin.to_string())
        .header("authorization", format!("Bearer {}", server.token()))
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(content)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

async fn started_phone(server: &TestServer) -> Phone {
    let mut phone = Phone::new(mac());
    let mut c = server.client();
    phone.interact(&mut c, Reason::StartUp).await.expect("start-up");
    phone
}

async fn queue(server: &TestServer, job: serde_json::Value) -> (u16, serde_json::Value) {
    server.admin("POST", "/api/v1/jobs", Some(json!({ "target": { "mac": MAC }, "job": job }))).await
}

async fn job_state(server: &TestServer, id: &serde_json::Value) -> serde_json::Value {
    server.admin("GET", &format!("/api/v1/jobs/{id}"), None).await.1
}

fn trust(server: &TestServer) -> ServerTrust {
    ServerTrust::Verify(vec![server.ca_pem()])
}

/// The names in a directory, sorted.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The node's directory of uploads in progress, in its file store.
fn uploads(server: &TestServer) -> std::path::PathBuf {
    let files = server.data().join("files");
    let mine: Vec<String> = entries(&files).into_iter().filter(|n| n.starts_with(".uploads-")).collect();
    assert_eq!(mine.len(), 1, "one node, one directory of uploads: {mine:?}");
    files.join(&mine[0])
}

async fn curl(args: &[&str]) -> (i32, String, String) {
    run(tokio::process::Command::new("curl").args(["-s", "-S"]).args(args), 30).await
}

#[tokio::test]
async fn firmware_is_deployed_end_to_end() {
    let server = TestServer::start().await;
    let mut phone = started_phone(&server).await;
    assert_eq!(phone.get("software-version", None), Some("V3 R5.12.0"));
    let image = fake_image(&["OpenStage 60"], "Siemens SIP", "V3 R5.13.0", 300_000);
    let (status, file) = upload(&server, "name=os60-V3R5.13.0.img&type=APP", image.clone()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["software_version"], "V3 R5.13.0", "read from the image's header");
    assert_eq!(file["device_types"], json!(["OpenStage 60"]));
    assert_eq!(file["size"], image.len());

    let (status, v) = queue(&server, json!({ "kind": "deploy-firmware", "file": file["id"] })).await;
    assert_eq!(status, 201, "{v}");
    let id = v["jobs"][0]["id"].clone();
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert!(r.actions.contains(&Action::SoftwareDeployment), "{:?}", r.actions);
    assert_eq!(r.deployments.len(), 1);
    let url = r.deployments[0].url.clone();
    assert!(url.starts_with(&format!("https://127.0.0.1:{}/files/", server.wpi.port())), "{url}");
    let j = job_state(&server, &id).await;
    assert_eq!((j["state"].as_str(), j["accepted"].as_bool()), (Some("sent"), Some(true)), "{j}");

    // curl, an independent client, sees the same bytes, ranges and refusals.
    let ca = server.data().join("ca.crt");
    let ca = ca.to_str().expect("utf-8 path");
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = dir.path().join("whole");
    let (code, _, err) = curl(&["--cacert", ca, "-o", whole.to_str().expect("path"), "-w", "%{http_code}", &url]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&whole).expect("read"), image);
    let (_, out, _) = curl(&["--cacert", ca, "-r", "100-199", "-D", "-", "-o", "/dev/null", &url]).await;
    assert!(out.starts_with("HTTP/1.1 206"), "{out}");
    assert!(out.to_ascii_lowercase().contains(&format!("content-range: bytes 100-199/{}", image.len())), "{out}");
    let (_, out, _) = curl(&["--cacert", ca, "-r", "100-199", &url]).await;
    assert_eq!(out.as_bytes(), &image[100..200]);
    let (_, out, _) = curl(&["--cacert", ca, "-r", "999999999-", "-o", "/dev/null", "-w", "%{http_code}", &url]).await;
    assert_eq!(out, "416");
    let wrong = url.replacen("/files/", "/files/0", 1).replacen("/files/0", "/files/", 1);
    let forged = {
        let (base, name) = wrong.rsplit_once('/').expect("url");
        let (base, token) = base.rsplit_once('/').expect("url");
        let flipped: String = token.chars().map(|c| if c == 'a' { 'b' } else { 'a' }).collect();
        format!("{base}/{flipped}/{name}")
    };
    let (_, out, _) = curl(&["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", &forged]).await;
    assert_eq!(out, "404", "another token opens nothing");

    // The phone downloads, installs, reboots and starts up with the new version.
    let runs = phone.run_deployments(&mut c, &r.deployments, &trust(&server), &DownloadLimits::default()).await;
    assert!(runs[0].outcome.ok(), "{:?}", runs[0].outcome.result);
    assert_eq!(runs[0].reason, Reason::StartUp);
    assert_eq!(phone.get("software-version", None), Some("V3 R5.13.0"));
    let j = job_state(&server, &id).await;
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(j["answer"], "the phone started with V3 R5.13.0");
    let (_, out, _) = curl(&["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", &url]).await;
    assert_eq!(out, "404", "the token ends with its job");
    server.stop().await;
}

#[tokio::test]
async fn firmware_for_another_device_type_or_not_newer_is_refused() {
    let server = TestServer::start().await;
    started_phone(&server).await;
    let other = fake_image(&["OpenStage 40"], "Siemens SIP", "V3 R6.0.0", 1000);
    let (_, f40) = upload(&server, "name=os40.img&type=APP", other).await;
    let (status, v) = queue(&server, json!({ "kind": "deploy-firmware", "file": f40["id"] })).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("OpenStage 40"), "{v}");
    let (status, v) = queue(&server, json!({ "kind": "deploy-firmware", "file": f40["id"], "force": true })).await;
    assert_eq!(status, 409, "force does not cross device types: {v}");

    let same = fake_image(&["OpenStage 60"], "Siemens SIP", "V3 R5.12.0", 1000);
    let (_, f60) = upload(&server, "name=os60-same.img&type=APP", same).await;
    let (status, v) = queue(&server, json!({ "kind": "deploy-firmware", "file": f60["id"] })).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("runs V3 R5.12.0"), "{v}");
    let (status, v) = queue(&server, json!({ "kind": "deploy-firmware", "file": f60["id"], "force": true })).await;
    assert_eq!(status, 201, "{v}");

    // A selection skips what does not fit, and says why.
    let (status, v) = server
        .admin(
            "POST",
            "/api/v1/jobs",
            Some(json!({ "target": { "all": true }, "job": { "kind": "deploy-firmware", "file": f40["id"] } })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["jobs"], json!([]));
    assert_eq!(v["skipped"][0]["mac"], mac().to_string());

    // Uploads: the image's header wins over a contradicting declaration; firmware needs a
    // version; other files must not claim one.
    let img = fake_image(&["OpenStage 60"], "Siemens SIP", "V3 R5.13.0", 100);
    assert_eq!(upload(&server, "name=a.img&type=APP&software-version=V3%20R9.0.0", img).await.0, 400);
    assert_eq!(upload(&server, "name=plain.img&type=APP", vec![0u8; 100]).await.0, 400);
    let (status, v) = upload(&server, "name=plain.img&type=APP&software-version=V3%20R9.0.0", vec![0u8; 100]).await;
    assert_eq!((status, v["software_version"].as_str()), (201, Some("V3 R9.0.0")));
    assert_eq!(upload(&server, "name=r.mp3&type=RINGTONE&software-version=V1%20R1", vec![1]).await.0, 400);
    assert_eq!(upload(&server, "type=RINGTONE", vec![1]).await.0, 400);
    assert_eq!(upload(&server, "name=a%2Fb&type=RINGTONE", vec![1]).await.0, 400);
    assert_eq!(upload(&server, "name=plain.img&type=APP&software-version=V3%20R9.0.0", vec![0u8; 100]).await.0, 409);
    server.stop().await;
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused() {
    let server = TestServer::start_with(|c| c.max_file_bytes = 1000).await;
    let (status, v) = upload(&server, "name=big.mp3&type=RINGTONE", vec![7u8; 1001]).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(upload(&server, "name=ok.mp3&type=RINGTONE", vec![7u8; 1000]).await.0, 201);
    assert_eq!(entries(&server.data().join("files")).len(), 2, "the file and the node's directory of uploads");
    assert_eq!(entries(&uploads(&server)), Vec::<String>::new(), "no temporary file left behind");
    server.stop().await;
}

#[tokio::test]
async fn an_upload_slower_than_its_deadline_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(|c| c.upload_timeout_secs = 1).await;
    let mut tcp = tokio::net::TcpStream::connect(server.admin).await.expect("admin connects");
    let head = format!(
        "POST /api/v1/files?name=slow.mp3&type=RINGTONE HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: 1000\r\n\r\n",
        server.admin,
        server.token()
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    // A byte every 200 ms: never idle long, but 1,000 bytes would take 200 s.
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while answer.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no answer to a slow upload");
        let _ = tcp.write_all(b"x").await;
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
            answer.extend_from_slice(&buf[..n]);
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The temporary file goes with the upload.
    let files = uploads(&server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !entries(&files).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "a temporary file was left behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_file_is_deployed_and_the_status_report_completes_the_job() {
    let server = TestServer::start().await;
    let mut phone = started_phone(&server).await;
    let tone: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let (status, f) = upload(&server, "name=ring%20tone%201.mp3&type=RINGTONE", tone.clone()).await;
    assert_eq!(status, 201, "{f}");
    let (status, v) = queue(&server, json!({ "kind": "deploy-file", "file": f["id"], "priority": "immediate" })).await;
    assert_eq!(status, 201, "{v}");
    let id = v["jobs"][0]["id"].clone();
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert!(r.actions.contains(&Action::FileDeployment), "{:?}", r.actions);
    let runs = phone.run_deployments(&mut c, &r.deployments, &trust(&server), &DownloadLimits::default()).await;
    assert!(runs[0].outcome.ok(), "{:?}", runs[0].outcome.result);
    assert_eq!(runs[0].reason, Reason::Status);
    assert!(phone.installed.iter().any(|i| i.name == "ring tone 1.mp3" && i.size == tone.len() as u64));
    let j = job_state(&server, &id).await;
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(j["answer"], "the phone reported the deployment ok");
    let (_, device) = server.admin("GET", &format!("/api/v1/devices/{MAC}"), None).await;
    assert!(device["last_deployment_status"].to_string().contains("ring tone 1.mp3"), "{device}");
    server.stop().await;
}

#[tokio::test]
async fn a_file_deleted_while_a_phone_downloads_it() {
    let server = TestServer::start().await;
    let mut phone = started_phone(&server).await;
    let logo = vec![0x5Au8; 3 << 20];
    let (_, f) = upload(&server, "name=logo.png&type=LOGO", logo.clone()).await;
    let (_, v) = queue(&server, json!({ "kind": "deploy-file", "file": f["id"] })).await;
    let id = v["jobs"][0]["id"].clone();
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    let url = r.deployments[0].url.clone();
    let ca = server.data().join("ca.crt").to_str().expect("path").to_owned();
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("logo");
    let out = out_path.to_str().expect("path").to_owned();
    // A slow download (about 5 s), and the file is deleted once its first bytes have
    // arrived and before its last have: the test waits for that state, not for a time.
    let slow = tokio::spawn(async move { curl(&["--cacert", &ca, "--limit-rate", "600k", "-o", &out, &url]).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let received = loop {
        let n = std::fs::metadata(&out_path).map_or(0, |m| m.len());
        if n > 0 {
            break n;
        }
        assert!(!slow.is_finished() && tokio::time::Instant::now() < deadline, "the download did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(received < logo.len() as u64, "the download is in progress ({received} bytes)");
    let (status, _) = server.admin("DELETE", &format!("/api/v1/files/{}", f["id"]), None).await;
    assert_eq!(status, 200);
    let j = job_state(&server, &id).await;
    assert_eq!((j["state"].as_str(), j["answer"].as_str()), (Some("failed"), Some("the file was deleted")));
    // The download in progress completes with the whole file, never a mix; a new one finds nothing.
    let (code, _, err) = slow.await.expect("curl task");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out_path).expect("read").len(), logo.len());
    let runs = phone.run_deployments(&mut c, &r.deployments, &trust(&server), &DownloadLimits::default()).await;
    assert!(!runs[0].outcome.ok(), "the phone's own download now fails");
    assert_eq!(runs[0].reason, Reason::Status, "and it reports that");
    assert!(!server.data().join("files").join(f["id"].to_string()).exists());
    server.stop().await;
}

/// A download path's file name is a path segment: `+` is a plus sign. A phone that requests
/// `fw+1.img` unencoded gets the file (the query-string decoder once made it `fw 1.img`).
#[tokio::test]
async fn a_file_name_with_a_plus_sign_is_served_encoded_or_not() {
    let server = TestServer::start().await;
    let mut phone = started_phone(&server).await;
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 241) as u8).collect();
    let (status, f) = upload(&server, "name=fw%2B1.mp3&type=RINGTONE", content.clone()).await;
    assert_eq!((status, f["name"].as_str()), (201, Some("fw+1.mp3")), "{f}");
    let (status, v) = queue(&server, json!({ "kind": "deploy-file", "file": f["id"] })).await;
    assert_eq!(status, 201, "{v}");
    let mut c = server.client();
    let r = phone.interact(&mut c, Reason::Solicited).await.expect("solicited");
    assert_eq!(r.deployments.len(), 1, "{:?}", r.actions);
    let url = r.deployments[0].url.clone();
    let (base, _) = url.rsplit_once('/').expect("a URL with a file name");
    let ca = server.data().join("ca.crt");
    let ca = ca.to_str().expect("utf-8 path");
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["fw+1.mp3", "fw%2B1.mp3", "fw%2b1.mp3"] {
        let out = dir.path().join("out");
        let target = format!("{base}/{name}");
        let (code, http, err) =
            curl(&["--cacert", ca, "-o", out.to_str().expect("path"), "-w", "%{http_code}", &target]).await;
        assert_eq!((code, http.as_str()), (0, "200"), "{target}: {err}");
        assert_eq!(std::fs::read(&out).expect("read"), content, "{target}");
    }
    let (_, http, _) =
        curl(&["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/fw%201.mp3")]).await;
    assert_eq!(http, "404", "another name opens nothing");
    server.stop().await;
}
