//! The contact-me listener answers as phones do, and honours its contact gap.

use std::time::Duration;

use dls_workpoint::{ContactListener, ContactMe};

async fn curl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %header{server}"])
        .args(args)
        .output()
        .await
        .expect("curl must be installed for this test");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn contact_me_is_answered_204_and_delivered_once_per_gap() {
    let mut l =
        ContactListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::from_secs(60)).await.expect("bind");
    let url = format!("http://{}/contact_dls.html/ContactDLS", l.local_addr());
    assert_eq!(curl(&["-d", "ContactMe=true&dls_ip_addr=192.0.2.10&dls_ip_port=18443", &url]).await, "204 DlsClient");
    assert_eq!(
        l.next(Duration::from_secs(5)).await,
        Some(ContactMe { dls_ip_addr: Some("192.0.2.10".into()), dls_ip_port: Some(18443) })
    );
    // Within the contact gap: answered, ignored.
    assert_eq!(curl(&["-d", "ContactMe=true", &url]).await, "204 DlsClient");
    assert_eq!(l.next(Duration::from_millis(300)).await, None);
    // Malformed requests.
    assert!(curl(&["-d", "ContactMe=false", &url]).await.starts_with("400"));
    assert!(curl(&[&url]).await.starts_with("405"));
    assert!(curl(&["-d", "ContactMe=true", &format!("http://{}/other", l.local_addr())]).await.starts_with("404"));
}

#[tokio::test]
async fn without_a_gap_every_contact_me_is_delivered() {
    let mut l = ContactListener::bind("127.0.0.1:0".parse().expect("addr"), Duration::ZERO).await.expect("bind");
    let url = format!("http://{}/contact_dls.html/ContactDLS", l.local_addr());
    for _ in 0..3 {
        assert_eq!(curl(&["-d", "ContactMe=true", &url]).await, "204 DlsClient");
        assert!(l.next(Duration::from_secs(5)).await.is_some());
    }
}
