//! Independent TLS clients: `curl` and `openssl s_client` reach the default-mode port over
//! TLS 1.2 and 1.3, verify the server certificate against the generated CA for the names
//! phones use, and get phone-shaped answers.

use tokio::process::Command;

use crate::common::{TestServer, run, write};

#[tokio::test]
async fn curl_posts_a_start_up_over_tls_1_2_and_1_3() {
    let srv = TestServer::start().await;
    let ca = write(srv.dir.path(), "ca.pem", &srv.ca_pem());
    let body = write(srv.dir.path(), "startup.xml", include_str!("../../../../tests/samples/wpi/startup.xml"));
    let mut nonce = "6D3A0F7C19B24E58A1C0D2E3F4051627".to_owned();
    for (host, versions) in
        [("127.0.0.1", ["--tlsv1.2", "--tls-max", "1.2"]), ("localhost", ["--tlsv1.3", "--tls-max", "1.3"])]
    {
        let url = format!("https://{host}:{}/DeploymentService/LoginService", srv.wpi.port());
        let (code, out, err) = run(
            Command::new("curl")
                .args(["-sS", "-i", "--max-time", "10", "-H", "Content-Type: text/xml", "--cacert"])
                .arg(&ca)
                .args(versions)
                .arg("--data-binary")
                .arg(format!("@{}", body.display()))
                .arg(&url),
            30,
        )
        .await;
        assert_eq!(code, 0, "{host}: {err}");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        let lower = out.to_ascii_lowercase();
        assert!(lower.contains("content-length: "), "exact Content-Length: {out}");
        assert!(!lower.contains("transfer-encoding"), "never chunked: {out}");
        assert!(
            lower.contains("set-cookie: jsessionid=") && lower.contains("path=/deploymentservice; secure"),
            "{out}"
        );
        assert!(out.contains("<Action>ReadAllItems</Action>") && out.contains(&format!("nonce=\"{nonce}\"")), "{out}");
        // A new interaction next time: the nonce must change, as real phones do.
        let fresh = include_str!("../../../../tests/samples/wpi/startup.xml")
            .replace(&nonce, "00000000000000000000000000000001");
        nonce = "00000000000000000000000000000001".to_owned();
        write(srv.dir.path(), "startup.xml", &fresh);
    }
    srv.stop().await;
}

#[tokio::test]
async fn openssl_verifies_the_chain_for_both_protocol_versions() {
    let srv = TestServer::start().await;
    let ca = write(srv.dir.path(), "ca.pem", &srv.ca_pem());
    for (version, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (code, out, err) = run(
            Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &format!("127.0.0.1:{}", srv.wpi.port()),
                    version,
                    "-verify_return_error",
                    "-verify_ip",
                    "127.0.0.1",
                    "-CAfile",
                ])
                .arg(&ca)
                .arg("-brief"),
            30,
        )
        .await;
        let all = format!("{out}{err}");
        assert_eq!(code, 0, "{all}");
        assert!(all.contains(name), "{all}");
        assert!(all.contains("Verification: OK"), "{all}");
    }
    // A client that trusts another CA fails verification.
    let other = write(srv.dir.path(), "other.pem", &srv.ca_pem().replace("MII", "MIJ"));
    let (code, _, _) = run(
        Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", srv.wpi.port()), "-verify_return_error", "-CAfile"])
            .arg(&other),
        30,
    )
    .await;
    assert_ne!(code, 0);
    srv.stop().await;
}
