use std::process::ExitCode;

use clap::Parser;
use mos_gateway::cli::{Cli, Command};
use mos_gateway::config::{Config, Overrides};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, overrides } => run(config, overrides),
        Command::Validate { files } => {
            let mut all_valid = true;
            for file in &files {
                let report = mos_gateway::validate::validate_file(file);
                print!("{}", mos_gateway::validate::render(file, &report));
                all_valid &= report.is_valid();
            }
            if all_valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(path: Option<std::path::PathBuf>, overrides: Overrides) -> ExitCode {
    let config = match Config::load_with(path.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    for w in config.warnings() {
        warn!("{w}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        for line in config.summary().lines() {
            info!("{line}");
        }
        let gateway = match mos_gateway::server::Gateway::bind(config).await {
            Ok(g) => g,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        for (role, addr) in gateway.local_addrs() {
            info!("listening on {addr} ({} port)", role.name());
        }
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received");
            signal.cancel();
        });
        gateway.run(shutdown).await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
