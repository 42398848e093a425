use clap::Parser;
use mos_gateway::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run => anyhow::bail!("`run` is not implemented yet"),
        Command::Validate { files } => {
            anyhow::bail!("`validate` is not implemented yet: {files:?}")
        }
    }
}
