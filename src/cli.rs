//! The `mos-gateway` command line.

use clap::{Parser, Subcommand};

/// MOS 2.8.1 device and NMOS controller: puts a newsroom system in charge of an IP studio.
#[derive(Debug, Parser)]
#[command(name = "mos-gateway", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: listen for newsroom systems on the MOS ports.
    Run,
    /// Check MOS message files against the MOS 2.8.1 DTD and the message structure.
    Validate {
        /// Files holding one or more MOS messages (UTF-16BE, UTF-16LE or UTF-8).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}
