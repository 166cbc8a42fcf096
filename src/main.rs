//! The `audience-operator` binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use audience_operator::cli::activity::ActivityArgs;
use audience_operator::cli::{DemoArgs, SandboxArgs, SyncArgs};
use audience_operator::operator::RunArgs;

/// Keeps merchants' customers flowing from Shopify, Lightspeed and RetailCRM into Mailchimp.
#[derive(Debug, Parser)]
#[command(name = "audience-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator (controllers, leader election, metrics and health endpoints).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crd {
        /// Write one file per CRD into this directory instead (what `crds/` holds).
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Run one sync from a manifest, outside Kubernetes.
    Sync(SyncArgs),
    /// Serve the vendor simulators.
    Sandbox(SandboxArgs),
    /// A sandbox and a sync, end to end.
    Demo(DemoArgs),
    /// A sync's recent record changes (its activity log), e.g. for one customer: --email.
    Activity(ActivityArgs),
}

fn write_crds(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in audience_operator::crd::crd_files() {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            // Exit as soon as the operator has shut down: tearing the runtime down would also
            // wait for any blocking task still stuck on the network.
            let code = match audience_operator::operator::run(args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            };
            std::process::exit(code);
        }
        Command::Crd { out_dir: None } => {
            print!("{}", audience_operator::crd::crds_yaml());
            Ok(())
        }
        Command::Crd { out_dir: Some(dir) } => write_crds(&dir),
        Command::Sync(args) => audience_operator::cli::sync::main(args).await,
        Command::Sandbox(args) => audience_operator::cli::sandbox::main(args).await,
        Command::Demo(args) => audience_operator::cli::demo::main(args).await,
        Command::Activity(args) => audience_operator::cli::activity::main(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
