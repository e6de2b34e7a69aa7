//! `medledger testnet`: a local consortium of real node processes on
//! 127.0.0.1, from the example city consortium with fresh keys (the layout
//! and the processes are `medledger_testnet`'s).

use std::path::Path;
use std::time::Duration;

use medledger_testnet::Consortium;

/// The consortium `medledger testnet` lays out.
pub struct Shape {
    /// Validators.
    pub validators: usize,
    /// Members that run a node but do not vote.
    pub observers: usize,
    /// Institutions outside genesis.
    pub spares: usize,
    /// The crypto suite.
    pub suite: medledger_contracts::crypto::CryptoSuite,
}

/// Makes (or reuses) a testnet in `dir` and runs its nodes until Ctrl-C.
pub fn run(dir: &Path, shape: Shape, chain_id: &str, init_only: bool) -> anyhow::Result<()> {
    let Shape {
        validators,
        observers,
        spares,
        suite,
    } = shape;
    let layout = if dir.join("testnet.json").exists() {
        println!("reusing the testnet in {}", dir.display());
        medledger_testnet::load(dir)?
    } else {
        let layout = medledger_testnet::init_on(
            suite,
            dir,
            validators,
            observers,
            spares,
            chain_id,
            medledger_testnet::TX_VALIDITY_WINDOW_MS,
        )?;
        println!(
            "made a testnet of {validators} validators, {observers} observers and {spares} spare (not yet admitted) institutions on {} in {}",
            suite.name(),
            dir.display()
        );
        layout
    };
    if init_only {
        return Ok(());
    }
    let mut nodes = Consortium::new(std::env::current_exe()?, layout);
    for (i, node) in nodes.layout.nodes.clone().iter().enumerate() {
        nodes.start(i)?;
        println!(
            "{:<22} {:<9} {}  (log: {})",
            node.institution,
            if node.validator {
                "validator"
            } else {
                "observer"
            },
            node.http,
            node.home.join("node.log").display()
        );
    }
    println!("running; press Ctrl-C to stop");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc_flag(stop)?;
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for i in 0..nodes.nodes().len() {
            if let Some(code) = nodes.exited(i) {
                let node = &nodes.nodes()[i];
                eprintln!(
                    "node {} exited ({}); see {}",
                    node.institution,
                    code.map_or("killed by a signal".to_string(), |c| format!(
                        "exit code {c}"
                    )),
                    node.home.join("node.log").display()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(nodes);
    println!("stopped");
    Ok(())
}

/// Sets `flag` on SIGINT or SIGTERM.
fn ctrlc_flag(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    });
    Ok(())
}
