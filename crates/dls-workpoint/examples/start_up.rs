//! One phone's start-up against a DLS:
//!
//! ```sh
//! cargo run -p dls-workpoint --example start_up -- 127.0.0.1:18443 00:1A:E8:3C:4D:5E
//! ```

use dls_message::{MacAddr, Reason};
use dls_workpoint::{Phone, ServerTrust, WpiClient};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "127.0.0.1:18443".to_owned());
    let mac = MacAddr::parse(&args.next().unwrap_or_else(|| "00:1A:E8:3C:4D:5E".to_owned()))?;
    // A default-mode phone does not authenticate the server.
    let mut client = WpiClient::new(&server, &ServerTrust::AcceptAny)?;
    let mut phone = Phone::new(mac);
    let report = phone.interact(&mut client, Reason::StartUp).await?;
    println!("actions: {:?}", report.actions);
    println!("written: {} items, refused: {}", report.written.len(), report.refused.len());
    if let Some(kind) = report.bootstrap {
        println!("the DLS started secure mode ({kind}); see Phone::enter_pin and Phone::secure_client");
    }
    Ok(())
}
