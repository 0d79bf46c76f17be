//! clokioctl: the operator's CLI. It talks to the services over NATS with the same `CLOKIO_*`
//! configuration they use (`CLOKIO_NATS_URL`, `CLOKIO_SUBJECT_PREFIX`), for what the public API
//! deliberately cannot do: create organizations, set plans, mint the first API key, make the
//! first admin of the admin console.
//!
//! Human output by default; with `--json`, exactly one JSON object on stdout.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use clokio_bus::ids::{ApiKeyId, OrgId};
use clokio_bus::ops::{
    AdminCreate, AdminCreateOp, AdminListOp, AdminResetPassword, AdminResetPasswordOp, Empty,
    KeyCreate, KeyCreateOp, KeyRevoke, KeyRevokeOp, LocationCreate, LocationCreateOp, OrgCreate,
    OrgCreateOp, OrgListOp, OrgRef,
};
use clokio_bus::scope::{Preset, Scope, Scopes};
use clokio_bus::types::{Email, Plan, Timezone};
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
    /// Admins: the people who sign in to the admin console.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Work locations.
    #[command(subcommand)]
    Location(LocationCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make someone an admin of an organization: the employee with this email, else a new
    /// employee (at the organization's first location). Without --password a one-time password
    /// is generated and printed once; it must be changed at the first sign-in.
    Create {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long, value_parser = parse_email)]
        email: Email,
        #[arg(long)]
        name: String,
        /// At least 12 characters (or set CLOKIO_ADMIN_PASSWORD, which keeps it out of `ps`).
        #[arg(long, env = "CLOKIO_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// The location of a new employee (default: the organization's first).
        #[arg(long)]
        location: Option<String>,
    },
    /// A new password for an admin who lost theirs (a one-time password, printed once, unless
    /// --password is given); their sessions end.
    ResetPassword {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long, value_parser = parse_email)]
        email: Email,
        /// At least 12 characters (or set CLOKIO_ADMIN_PASSWORD).
        #[arg(long, env = "CLOKIO_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List an organization's admins.
    List {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
    },
}

#[derive(Subcommand)]
enum LocationCommand {
    /// Create a work location with a geofence.
    Create {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long)]
        name: String,
        #[arg(long, allow_hyphen_values = true)]
        latitude: f64,
        #[arg(long, allow_hyphen_values = true)]
        longitude: f64,
        /// Metres.
        #[arg(long, default_value_t = 200.0)]
        radius: f64,
    },
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
    /// Create an API key for an organization; the key is printed once. Without --scope or
    /// --preset it holds every scope.
    Create {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long)]
        name: String,
        /// A scope the key holds (repeat for more), e.g. attendance:write.
        #[arg(long = "scope", value_parser = parse_scope, conflicts_with = "preset")]
        scopes: Vec<Scope>,
        /// full, kiosk (attendance:write) or read-only (every :read scope).
        #[arg(long, value_parser = parse_preset)]
        preset: Option<Preset>,
        /// When the key stops working, RFC 3339 (e.g. 2027-01-31T23:59:59Z).
        #[arg(long, value_parser = parse_instant)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Revoke an API key.
    Revoke {
        #[arg(long, value_parser = parse_org)]
        org: OrgId,
        #[arg(long, value_parser = parse_key_id)]
        id: ApiKeyId,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not a scope; scopes are {}",
            Scopes::FULL.names().join(", ")
        )
    })
}
fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s).ok_or_else(|| format!("{s:?} is not a preset: full, kiosk or read-only"))
}
fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{s:?} is not an RFC 3339 time (e.g. 2027-01-31T23:59:59Z)"))
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
fn parse_email(s: &str) -> Result<Email, String> {
    Email::parse(s)
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
        .connect(config.servers())
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
        Command::Key(KeyCommand::Create {
            org,
            name,
            scopes,
            preset,
            expires_at,
        }) => {
            let scopes = match preset {
                Some(preset) => preset.scopes(),
                None if scopes.is_empty() => Scopes::FULL,
                None => Scopes::of(&scopes),
            };
            let key = bus
                .call::<KeyCreateOp>(&KeyCreate {
                    org_id: org,
                    name,
                    scopes,
                    expires_at,
                })
                .await
                .map_err(failed)?;
            print(cli.json, &key, || {
                let expires = key
                    .expires_at
                    .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339());
                format!(
                    "Created API key {:?}\n  id:      {}\n  key:     {}\n  scopes:  {}\n  expires: {expires}\nStore the key now: it is shown only once.",
                    key.name,
                    key.id,
                    key.key,
                    key.scopes.names().join(" ")
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
        Command::Admin(AdminCommand::Create {
            org,
            email,
            name,
            password,
            location,
        }) => {
            // Hashing a password takes a while on a busy service.
            let admin = bus
                .with_timeout(
                    config
                        .request_timeout
                        .max(std::time::Duration::from_secs(15)),
                )
                .call::<AdminCreateOp>(&AdminCreate {
                    org_id: org,
                    email,
                    name,
                    password,
                    location,
                })
                .await
                .map_err(failed)?;
            print(cli.json, &admin, || {
                let mut out = format!(
                    "{} admin {:?} <{}>\n  employee id:  {}\n  code:         {}",
                    if admin.promoted {
                        "Promoted to"
                    } else {
                        "Created"
                    },
                    admin.admin.name,
                    admin.admin.email,
                    admin.admin.employee_id,
                    admin.admin.employee_code
                );
                if let Some(pw) = &admin.password {
                    out.push_str(&format!(
                        "\n  password:     {pw}\nA one-time password, shown only now: it must be changed at the first sign-in."
                    ));
                }
                out
            })
        }
        Command::Admin(AdminCommand::ResetPassword {
            org,
            email,
            password,
        }) => {
            let admin = bus
                .with_timeout(
                    config
                        .request_timeout
                        .max(std::time::Duration::from_secs(15)),
                )
                .call::<AdminResetPasswordOp>(&AdminResetPassword {
                    org_id: org,
                    email,
                    password,
                })
                .await
                .map_err(failed)?;
            print(cli.json, &admin, || {
                let mut out = format!(
                    "New password for admin {:?} <{}>; their sessions have ended.",
                    admin.admin.name, admin.admin.email
                );
                if let Some(pw) = &admin.password {
                    out.push_str(&format!(
                        "\n  password:     {pw}\nA one-time password, shown only now: it must be changed at the first sign-in."
                    ));
                }
                out
            })
        }
        Command::Admin(AdminCommand::List { org }) => {
            let admins = bus
                .call::<AdminListOp>(&OrgRef { org_id: org })
                .await
                .map_err(failed)?;
            #[derive(Serialize)]
            struct List<'a> {
                admins: &'a [clokio_bus::ops::Admin],
            }
            print(cli.json, &List { admins: &admins }, || {
                let mut out = format!(
                    "{:<12}  {:<8}  {:<32}  NAME",
                    "EMPLOYEE ID", "STATUS", "EMAIL"
                );
                for a in &admins {
                    out.push_str(&format!(
                        "\n{:<12}  {:<8}  {:<32}  {}",
                        a.employee_id.to_string(),
                        a.status.as_str(),
                        a.email.to_string(),
                        a.name
                    ));
                }
                out
            })
        }
        Command::Location(LocationCommand::Create {
            org,
            name,
            latitude,
            longitude,
            radius,
        }) => {
            let location = bus
                .call::<LocationCreateOp>(&LocationCreate {
                    org_id: org,
                    name,
                    latitude,
                    longitude,
                    radius_meters: radius,
                })
                .await
                .map_err(failed)?;
            print(cli.json, &location, || {
                format!(
                    "Created location {:?} ({}, {}; {} m)\n  id:  {}",
                    location.name,
                    location.latitude,
                    location.longitude,
                    location.radius_meters,
                    location.id
                )
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
