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
}
