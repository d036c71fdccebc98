//! Connection limits, as the attack found them missing: one client that holds idle
//! connections (TLS handshake done or not) cannot fill a listener's cap and lock the phones
//! out, and refused connections are logged in bounded summaries, not a line each.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dls_message::{Action, MacAddr, Reason};
use dls_workpoint::{Phone, ServerTrust};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{Logs, TestServer};

const PER_SOURCE: usize = 8;

/// A TCP connection from `from` (a loopback address) to `to`; the kernel accepts it, the
/// service may then close it at once.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from.parse().expect("address"), 0)).expect("binds (127.0.0.0/8 is loopback)");
    socket.connect(to).await.expect("connects")
}

/// A connection that completes its TLS handshake and then sends nothing.
async fn idle_tls(to: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let config = dls_workpoint::tls::client_config(&ServerTrust::AcceptAny).expect("TLS client");
    let tcp = connect_from("127.0.0.1", to).await;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("handshake")
}

/// Waits until `done` (the service handles connections in its own time); fails after 30 s.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The summary lines of refused connections, and the refusals they count in all.
fn summaries(logs: &Logs) -> (Vec<String>, u64) {
    let lines: Vec<String> = logs.lines().into_iter().filter(|l| l.contains("at the per-source cap of")).collect();
    let counted = lines
        .iter()
        .map(|l| {
            l.split("refused ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<u64>().ok()).expect(l)
        })
        .sum();
    (lines, counted)
}

/// At most one summary line per listener every 10 s, and one more at shutdown.
fn bound(listeners: u64, started: Instant) -> usize {
    usize::try_from(listeners * (2 + started.elapsed().as_secs() / 10)).expect("small")
}

fn phone() -> Phone {
    Phone::new(MacAddr::parse("00:1A:E8:3C:4D:5E").expect("mac"))
}

#[tokio::test]
async fn one_client_holding_idle_connections_does_not_lock_phones_out() {
    let logs = Logs::capture();
    let started = Instant::now();
    let srv = TestServer::start_with(|c| {
        c.max_connections_per_source = PER_SOURCE;
        c.tls_handshake_timeout_secs = 300;
    })
    .await;
    let running = srv.running.as_ref().expect("running");

    // The attack: idle connections from one address, half after their TLS handshake, the
    // others before it, and 40 more than the cap.
    let mut tls = Vec::new();
    for _ in 0..PER_SOURCE / 2 {
        tls.push(idle_tls(srv.wpi).await);
    }
    let mut tcp = Vec::new();
    for _ in 0..PER_SOURCE / 2 + 40 {
        tcp.push(connect_from("127.0.0.1", srv.wpi).await);
    }
    wait_for("40 refusals", || running.refused_connections().per_source_cap == 40).await;
    assert_eq!(running.refused_connections().global_cap, 0);

    // A phone at another address completes its start-up.
    let mut p = phone();
    let mut c = srv.client();
    c.set_local_address("127.0.0.2".parse().expect("address"));
    let r = p.interact(&mut c, Reason::StartUp).await.expect("the other phone is served");
    assert_eq!((r.actions.first(), r.actions.last()), (Some(&Action::ReadAllItems), Some(&Action::CleanUp)));

    // The attacker's next connection is refused too.
    tcp.push(connect_from("127.0.0.1", srv.wpi).await);
    wait_for("the next refusal", || running.refused_connections().per_source_cap == 41).await;

    // Once the attacker's connections are closed, its address is served again.
    drop((tls, tcp));
    let mut c = srv.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        match p.interact(&mut c, Reason::StartUp).await {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < deadline, "127.0.0.1 not served again: {e}");
                c.close();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(r.actions.last(), Some(&Action::CleanUp));
    let refused = running.refused_connections();
    srv.stop().await;

    // Bounded log: a few summary lines that count every refusal, not a line each.
    let (lines, counted) = summaries(&logs);
    assert_eq!(counted, refused.per_source_cap + refused.global_cap, "{lines:#?}");
    assert!(!lines.is_empty() && lines.len() <= bound(1, started), "{lines:#?}");
    assert!(lines[0].contains("top source 127.0.0.1 (") && lines[0].contains("wpi"), "{}", lines[0]);
    let warnings = logs.lines().into_iter().filter(|l| l.contains("WARN")).count();
    assert_eq!(warnings, lines.len(), "no other warning: {:#?}", logs.lines());
}

#[tokio::test]
async fn the_global_cap_is_summarised_too_and_every_listener_has_the_per_source_cap() {
    let logs = Logs::capture();
    let started = Instant::now();
    let srv = TestServer::start_with(|c| {
        c.max_connections = 12;
        c.max_connections_per_source = PER_SOURCE;
        c.tls_handshake_timeout_secs = 300;
    })
    .await;
    let running = srv.running.as_ref().expect("running");
    let mut held = Vec::new();
    for (from, n) in [("127.0.0.1", PER_SOURCE), ("127.0.0.2", 4), ("127.0.0.3", 200)] {
        for _ in 0..n {
            held.push(connect_from(from, srv.wpi).await);
        }
    }
    wait_for("200 refusals at the global cap", || running.refused_connections().global_cap == 200).await;
    assert_eq!(running.refused_connections().per_source_cap, 0);
    // The secure, plain-HTTP and admin listeners: one more than the cap from one address.
    for addr in [srv.secure, srv.http, srv.admin] {
        for _ in 0..=PER_SOURCE {
            held.push(connect_from("127.0.0.4", addr).await);
        }
    }
    wait_for("one refusal on each listener", || running.refused_connections().per_source_cap == 3).await;
    let refused = running.refused_connections();
    drop(held);
    srv.stop().await;

    let (lines, counted) = summaries(&logs);
    assert_eq!(counted, refused.global_cap + refused.per_source_cap, "{lines:#?}");
    assert!(lines.len() <= bound(4, started), "{lines:#?}");
    let wpi: Vec<&String> = lines.iter().filter(|l| l.contains("\"wpi\"")).collect();
    assert!(wpi.len() <= bound(1, started), "{wpi:#?}");
    assert!(wpi.iter().all(|l| l.contains("at the global cap of 12")), "{wpi:#?}");
    assert!(wpi.iter().any(|l| l.contains("top source 127.0.0.3 (")), "{wpi:#?}");
    for name in ["\"secure\"", "\"http\"", "\"admin\""] {
        assert!(lines.iter().any(|l| l.contains(name) && l.contains("top source 127.0.0.4 (1)")), "{name}: {lines:#?}");
    }
}
