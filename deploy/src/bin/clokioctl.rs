//! clokioctl: the operator's CLI. It talks to the services over NATS with the same `CLOKIO_*`
//! configuration they use (`CLOKIO_NATS_URL`, `CLOKIO_SUBJECT_PREFIX`), for what the public API
//! deliberately cannot do: create organizations, set plans, mint the first API key.
//!
//! Human output by default; with `--json`, exactly one JSON object on stdout.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clokio_bus::ids::{ApiKeyId, OrgId};
use clokio_bus::ops::{
    Empty, KeyCreate, KeyCreateOp, KeyRevoke, KeyRevokeOp, OrgCreate, OrgCreateOp, OrgListOp,
};
use clokio_bus::types::{Plan, Timezone};
use clokio_bus::{Bus, BusError};
use clokio_runtime::config::BusConfig;
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "clokioctl",
    version,
    about = "Operate a Clokio installation over NATS"
)]
struct Cli {
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization.
    Create {
        #[arg(long)]
        name: String,
        /// basic | pro | enterprise
        #[arg(long, value_parser = parse_plan)]
        plan: Plan,
        /// Requests per minute (enterprise only).
        #[arg(long)]
        rate_limit: Option<u32>,
        /// IANA time zone, e.g. Europe/Berlin.
        #[arg(long, value_parser = parse_timezone)]
        timezone: Timezone,
    },
    /// List every organization.
    List,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key for an organization; the key is printed once.
    Create {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long)]
        name: String,
    },
    /// Revoke an API key.
    Revoke {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long, value_parser = parse_key_id)]
        id: ApiKeyId,
    },
}

fn parse_plan(s: &str) -> Result<Plan, String> {
    s.parse()
}
fn parse_timezone(s: &str) -> Result<Timezone, String> {
    Timezone::parse(s)
}
fn parse_org(s: &str) -> Result<OrgId, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an organization id (a UUID)"))
}
fn parse_key_id(s: &str) -> Result<ApiKeyId, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an API key id (a UUID)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("clokioctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = BusConfig::from_env().map_err(|e| e.to_string())?;
    let client = async_nats::ConnectOptions::new()
        .name("clokioctl")
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(&config.nats_url)
        .await
        .map_err(|e| format!("cannot connect to NATS at {}: {e}", config.nats_url))?;
    let bus = Bus::new(client, config.subjects, config.request_timeout);
    let failed = |e: BusError| format!("{} ({})", e.message, e.code.status());
    match cli.command {
        Command::Org(OrgCommand::Create {
            name,
            plan,
            rate_limit,
            timezone,
        }) => {
            let org = bus
                .call::<OrgCreateOp>(&OrgCreate {
                    name,
                    plan,
                    rate_limit_per_minute: rate_limit,
                    timezone,
                })
                .await
                .map_err(failed)?;
            print(cli.json, &org, || {
                format!(
                    "Created organization {:?}\n  id:        {}\n  plan:      {}{}\n  timezone:  {}",
                    org.name,
                    org.id,
                    org.plan.as_str(),
                    org.rate_limit_per_minute
                        .map(|n| format!(" ({n} requests/minute)"))
                        .unwrap_or_default(),
                    org.timezone
                )
            })
        }
        Command::Org(OrgCommand::List) => {
            let orgs = bus.call::<OrgListOp>(&Empty {}).await.map_err(failed)?;
            #[derive(Serialize)]
            struct List<'a> {
                organizations: &'a [clokio_bus::ops::Organization],
            }
            print(
                cli.json,
                &List {
                    organizations: &orgs,
                },
                || {
                    let mut out = format!("{:<36}  {:<10}  {:<20}  NAME", "ID", "PLAN", "TIMEZONE");
                    for o in &orgs {
                        out.push_str(&format!(
                            "\n{:<36}  {:<10}  {:<20}  {}",
                            o.id.to_string(),
                            o.plan.as_str(),
                            o.timezone.to_string(),
                            o.name
                        ));
                    }
                    out
                },
            )
        }
        Command::Key(KeyCommand::Create { org, name }) => {
            let key = bus
                .call::<KeyCreateOp>(&KeyCreate { org_id: org, name })
                .await
                .map_err(failed)?;
            print(cli.json, &key, || {
                format!(
                    "Created API key {:?}\n  id:   {}\n  key:  {}\nStore the key now: it is shown only once.",
                    key.name, key.id, key.key
                )
            })
        }
        Command::Key(KeyCommand::Revoke { org, id }) => {
            let key = bus
                .call::<KeyRevokeOp>(&KeyRevoke {
                    org_id: org,
                    key_id: id,
                })
                .await
                .map_err(failed)?;
            print(cli.json, &key, || {
                format!("Revoked API key {:?} ({})", key.name, key.hint)
            })
        }
    }
}

fn print<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<(), String> {
    if json {
        let s = serde_json::to_string(value).map_err(|e| e.to_string())?;
        println!("{s}");
    } else {
        println!("{}", human());
    }
    Ok(())
}
