//! Runs the Autobahn|Testsuite fuzzingserver protocol with Tether's client: asks the server how
//! many cases there are, runs each one by echoing every message back, then asks it to write its
//! reports.
//!
//! Usage: `cargo run --release -p tether-tokio --example autobahn_client -- ws://127.0.0.1:9001 [AGENT]`
//! (`scripts/autobahn-client.sh` starts the fuzzingserver and checks the verdicts).
use tether_tokio::{ClientBuilder, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let agent = args.next().unwrap_or_else(|| "tether".to_owned());

    let (mut ws, _) = ClientBuilder::new(&format!("{base}/getCaseCount")).connect().await?;
    let count: u32 = match ws.recv().await {
        Some(Ok(Message::Text(text))) => text.parse()?,
        other => return Err(format!("unexpected answer to getCaseCount: {other:?}").into()),
    };
    while ws.recv().await.is_some() {}
    println!("running {count} cases as agent {agent}");

    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match ClientBuilder::new(&url).connect().await {
            Ok((mut ws, _)) => {
                while let Some(Ok(message)) = ws.recv().await {
                    if ws.feed(&message).await.is_err() {
                        break;
                    }
                }
            }
            Err(error) => eprintln!("case {case}: {error}"),
        }
    }

    let (mut ws, _) = ClientBuilder::new(&format!("{base}/updateReports?agent={agent}")).connect().await?;
    while ws.recv().await.is_some() {}
    println!("reports updated");
    Ok(())
}
