use std::process::ExitCode;

use clap::Parser;
use mos_gateway::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run => {
            eprintln!("error: `run` is not implemented yet");
            ExitCode::from(2)
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
