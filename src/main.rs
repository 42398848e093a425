use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use mos_gateway::cli::{Cli, Command};
use mos_gateway::config::{Config, Overrides};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// mimalloc: parsing a large running order allocates a string per field; with it the
/// 2,000 × 10 roCreate decodes and parses ≈ 12 % faster than with glibc's malloc
/// (README, "Benchmarks").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            overrides,
            virtual_studio,
        } => run(config, overrides, virtual_studio),
        Command::Replay {
            inputs,
            to,
            mos_id,
            ncs_id,
            renumber,
            first_message_id,
            timeout,
            speed,
            listen,
            json,
        } => {
            let args = ReplayArgs {
                to,
                mos_id,
                ncs_id,
                renumber,
                first_message_id,
                timeout,
                speed,
                listen,
            };
            replay(&inputs, args, json)
        }
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

struct ReplayArgs {
    to: String,
    mos_id: Option<String>,
    ncs_id: Option<String>,
    renumber: bool,
    first_message_id: Option<u32>,
    timeout: f64,
    speed: Option<f64>,
    listen: Option<String>,
}

/// `replay`: exit 0 when every reply matched, 1 on a difference, 2 on bad input or an
/// unreachable device.
fn replay(inputs: &[std::path::PathBuf], a: ReplayArgs, json: bool) -> ExitCode {
    use mos_gateway::replay::{ListenAt, ReplayOptions, Target};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let setup = || -> anyhow::Result<(ReplayOptions, Option<ListenAt>)> {
        let target: Target = a.to.parse().context("--to")?;
        let listen = a
            .listen
            .as_deref()
            .map(str::parse::<ListenAt>)
            .transpose()
            .context("--listen")?;
        if !(a.timeout.is_finite() && a.timeout > 0.0) {
            anyhow::bail!("--timeout must be a positive number of seconds");
        }
        if a.speed.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            anyhow::bail!("--speed must be a positive factor (1.0 = captured timing)");
        }
        let mut opts = ReplayOptions::new(target);
        opts.mos_id = a.mos_id;
        opts.ncs_id = a.ncs_id;
        opts.timeout = std::time::Duration::from_secs_f64(a.timeout);
        opts.speed = a.speed;
        if a.renumber {
            opts.renumber_from = Some(a.first_message_id.unwrap_or_else(clock_message_id));
        }
        Ok((opts, listen))
    };
    let (opts, listen) = match setup() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(mos_gateway::replay::replay(inputs, opts, listen)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.render());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A first messageID from the clock: (seconds since the epoch mod 2,000,000) × 1,000 + 1,
/// below 2^31 and different from one run to the next.
fn clock_message_id() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from((secs % 2_000_000) * 1_000 + 1).unwrap_or(1)
}

fn run(
    path: Option<std::path::PathBuf>,
    overrides: Overrides,
    virtual_studio: Option<std::path::PathBuf>,
) -> ExitCode {
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
        let signals = stop_signals();
        for line in config.summary().lines() {
            info!("{line}");
        }
        let nmos_config = config.clone();
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
        let _nmos = match start_nmos(
            &gateway,
            nmos_config,
            virtual_studio,
            path,
            overrides,
            &shutdown,
        )
        .await
        {
            Ok(s) => s,
            Err(code) => return code,
        };
        let signal = shutdown.clone();
        tokio::spawn(async move {
            signals.await;
            info!("signal received");
            signal.cancel();
        });
        gateway.run(shutdown).await;
        ExitCode::SUCCESS
    })
}

/// Starts the NMOS side (and the virtual studio in a dry run); SIGHUP reloads the mapping.
/// A failure to start the NMOS side is logged and the MOS side runs on; a virtual studio
/// that cannot start stops the gateway.
async fn start_nmos(
    gateway: &mos_gateway::server::Gateway,
    mut config: Config,
    virtual_studio: Option<std::path::PathBuf>,
    path: Option<std::path::PathBuf>,
    overrides: Overrides,
    shutdown: &CancellationToken,
) -> Result<NmosParts, ExitCode> {
    let studio = match virtual_studio {
        None => None,
        Some(file) => match start_studio(&file).await {
            Ok(handle) => {
                info!(
                    "virtual studio from {} on {}: the gateway drives it, not the real studio",
                    file.display(),
                    handle.query_url()
                );
                config.nmos.registry = mos_gateway::config::Registry::Url(handle.query_url());
                config.nmos.allow_http = true;
                Some(handle)
            }
            Err(e) => {
                error!("virtual studio {}: {e}", file.display());
                return Err(ExitCode::FAILURE);
            }
        },
    };
    let registry = config.nmos.registry.clone();
    let service =
        match mos_gateway::nmos::service::NmosService::start(gateway, &config, shutdown.clone()) {
            Ok(s) => std::sync::Arc::new(std::sync::Mutex::new(s)),
            Err(e) => {
                error!("NMOS bridge not started, MOS side running without it: {e}");
                return Ok((studio, None));
            }
        };
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        let stop = shutdown.clone();
        let service = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    got = hup.recv() => if got.is_none() { return },
                }
                match Config::load_with(path.as_deref(), &overrides) {
                    Ok(mut fresh) => {
                        fresh.nmos.registry = registry.clone();
                        info!("SIGHUP: configuration re-read");
                        if let Ok(mut s) = service.lock() {
                            s.reload(&fresh);
                        }
                    }
                    Err(e) => {
                        error!("SIGHUP: configuration not reloaded (the running one stays): {e}")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (path, overrides, registry);
    Ok((studio, Some(service)))
}

/// What stays alive while the gateway runs: the virtual studio and the NMOS service.
type NmosParts = (
    Option<mos_gateway::nmos::studio::StudioHandle>,
    Option<std::sync::Arc<std::sync::Mutex<mos_gateway::nmos::service::NmosService>>>,
);

async fn start_studio(
    file: &std::path::Path,
) -> Result<mos_gateway::nmos::studio::StudioHandle, String> {
    let spec = mos_gateway::nmos::studio::StudioSpec::load(file).map_err(|e| e.to_string())?;
    let schemas =
        mos_gateway::nmos::schemas::SchemaSet::load_default().map_err(|e| e.to_string())?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    mos_gateway::nmos::studio::VirtualStudio::start(spec, addr, std::sync::Arc::new(schemas))
        .await
        .map_err(|e| e.to_string())
}

/// Registers SIGINT and SIGTERM at once (before anything starts, so an early signal is not
/// lost to the default action) and returns the wait for either.
fn stop_signals() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
