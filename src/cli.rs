//! The `mos-gateway` command line.

use clap::{Parser, Subcommand};

/// MOS 2.8.1 device and NMOS controller: puts a newsroom system in charge of an IP studio.
#[derive(Debug, Parser)]
#[command(name = "mos-gateway", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: accept newsroom systems on the MOS lower, upper and query ports.
    ///
    /// Every setting has a default (the documented config/gateway.toml is built in), so
    /// `mos-gateway run` works without a file. Stops cleanly on SIGINT or SIGTERM.
    Run {
        /// Configuration file (TOML); see config/gateway.toml.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Settings that override the file.
        #[command(flatten)]
        overrides: crate::config::Overrides,
        /// Dry run: start the in-process virtual NMOS studio described in FILE (see
        /// config/virtual-studio.toml) and drive it instead of the real studio's registry.
        #[arg(long, value_name = "FILE")]
        virtual_studio: Option<std::path::PathBuf>,
    },
    /// Check MOS message files against the MOS 2.8.1 DTD and the message structure.
    ///
    /// Each file may hold one or many messages, in UTF-16BE, UTF-16LE or UTF-8. For every
    /// message it prints its type and "valid", or each violation with its line. Exits
    /// with status 1 when any message is invalid.
    Validate {
        /// Files holding one or more MOS messages.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Replay captured MOS conversations against a MOS device and compare the replies.
    ///
    /// Inputs are gateway capture files (JSON Lines), plain MOS XML files (one or many
    /// messages; UTF-16BE, UTF-16LE or UTF-8) and directories of them (read in name order).
    /// The NCS's messages are sent in order on the right port; each reply is compared with
    /// the captured one (type, status, content that matters; times and messageIDs ignored).
    /// Prints one row per message and a summary. Exit status: 0 all passed, 1 a difference,
    /// 2 bad input or the device unreachable.
    Replay {
        /// Capture files, MOS XML files or directories.
        #[arg(required = true, value_name = "CAPTURE")]
        inputs: Vec<std::path::PathBuf>,
        /// The device: HOST[:LOWER[,UPPER[,QUERY]]] (ports default to 10540, 10541, 10542).
        #[arg(long, value_name = "HOST[:LOWER[,UPPER[,QUERY]]]")]
        to: String,
        /// Rewrite the envelope's mosID to this.
        #[arg(long = "mos-id", value_name = "ID")]
        mos_id: Option<String>,
        /// Rewrite the envelope's ncsID to this.
        #[arg(long = "ncs-id", value_name = "ID")]
        ncs_id: Option<String>,
        /// Give the messages fresh messageIDs (a retry in the capture keeps its new ID).
        #[arg(long)]
        renumber: bool,
        /// First messageID with --renumber (default: derived from the clock, so that two
        /// runs against the same device do not reuse IDs).
        #[arg(long, value_name = "N", requires = "renumber")]
        first_message_id: Option<u32>,
        /// Seconds to wait for each reply.
        #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
        timeout: f64,
        /// Timing: 1.0 replays with the captured pauses, 2.0 twice as fast; without it,
        /// each message is sent as soon as the previous one is answered.
        #[arg(long, value_name = "FACTOR")]
        speed: Option<f64>,
        /// Accept the device's own connections on HOST:LOWER,UPPER (heartbeats answered,
        /// everything else acknowledged OK) and report what arrived.
        #[arg(long, value_name = "HOST:LOWER,UPPER")]
        listen: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}
