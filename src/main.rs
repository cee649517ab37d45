//! gtp5g-operator: wires the library's stages to the command line.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use gtp5g_operator::config::{Config, Purpose, Sources};
use gtp5g_operator::daemon;
use gtp5g_operator::local_api::{self, LocalApiOptions, Schema, DEFAULT_PRIORITY_LEVEL};
use gtp5g_operator::log::{self, LogFormat};
use gtp5g_operator::publish::{self, client::ApiClient};
use gtp5g_operator::ready::{self, ReadyFile};
use gtp5g_operator::replay;
use gtp5g_operator::signal;
use gtp5g_operator::source::{self, instance};
use gtp5g_operator::stats::Stats;
use gtp5g_operator::status;
use gtp5g_operator::systemd::Systemd;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "gtp5g-operator",
    version,
    about = "Boosts UERANSIM nr-gnb / nr-ue threads in the Gthulhu scheduler from gtp5g trace_pipe events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: tail trace_pipe, track targets, keep the API in step.
    Run(RunArgs),
    /// Run a recorded trace through the pipeline and print what would be posted (no root, no /proc).
    Replay(ReplayArgs),
    /// Load and validate the configuration, print it, and exit.
    CheckConfig(ConfigArgs),
    /// Serve a local Gthulhu API: v0.1, or what today's scheduler polls (--schema current).
    LocalApi(LocalApiArgs),
    /// Ask the Gthulhu API, with the daemon's client, token and configuration.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Ask a running daemon what it boosts and how long those threads wait
    /// for a CPU; exits non-zero when it is unreachable or unhealthy.
    Status(StatusArgs),
    /// Make or remove the tracing instance the daemon reads (trace.instance); root, writable tracefs.
    TraceInstance(TraceInstanceArgs),
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The daemon's metrics listener (default: metrics.listen of the configuration).
    #[arg(long, value_name = "http://ADDR")]
    url: Option<String>,
    /// Print the daemon's /status document instead (pretty JSON).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TraceInstanceArgs {
    /// create: make instances/NAME, or reuse it, recording bpf_trace_printk
    /// only, tracing on, trace.instance_buffer_kb per CPU (before every
    /// start of the daemon). remove: delete it (uninstall; the daemon must
    /// be stopped).
    #[arg(value_enum)]
    action: InstanceAction,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InstanceAction {
    Create,
    Remove,
}

#[derive(Subcommand)]
enum ApiCommand {
    /// Print the pids the API holds, sorted, one per line.
    Strategies {
        #[command(flatten)]
        api: ApiArgs,
        /// Print the API's whole answer instead (pretty JSON).
        #[arg(long)]
        json: bool,
    },
    /// Replace the API's list with strategies for these pids, as the daemon
    /// would send them (strategy.* of the configuration). With no --pid:
    /// the static strategies alone, what `strategy.on_stop = clear` sends
    /// (an uninstall's way to clear this node's boosts).
    Post {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long = "pid", value_name = "N")]
        pids: Vec<u32>,
    },
}

/// Where the API is and how to get its token: as for `run`.
#[derive(Args)]
struct ApiArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

#[derive(Args)]
struct EndpointArgs {
    /// Gthulhu API base URL (overrides api.endpoint and API_ENDPOINT).
    #[arg(long, value_name = "URL")]
    api_endpoint: Option<String>,
    /// PEM public key for the token request (overrides api.public_key_path).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
}

#[derive(Args)]
struct ConfigArgs {
    /// Config file (default: /etc/gtp5g-operator/config.toml if present, else the shipped defaults).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Read this file or FIFO instead of the kernel's trace_pipe.
    #[arg(long, value_name = "PATH")]
    trace_pipe: Option<PathBuf>,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// Serve /metrics and /healthz here (overrides metrics.listen).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Log format: human or json (overrides log.format).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log level or filter (overrides log.level).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Once the trace source is open and the first POST answered (when
    /// systemd gets READY=1), write {"pid":N,"source":"<path>"} here
    /// atomically; removed on exit.
    #[arg(long, value_name = "PATH", env = ready::ENV)]
    ready_file: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    /// A recorded trace_pipe file.
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
    /// Print one JSON document; its `strategies` member is exactly the POST body's.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LocalApiArgs {
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    listen: SocketAddr,
    /// Where the key pair lives (generated on first start).
    #[arg(long, default_value = "/var/lib/gtp5g-operator", value_name = "DIR")]
    state_dir: PathBuf,
    /// Lifetime of issued tokens, in hours (1 to a year's 8760).
    #[arg(long, default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=local_api::MAX_TOKEN_HOURS))]
    token_hours: u64,
    /// Which Gthulhu to answer as: v0 is the v0.1 API the daemon targets
    /// (boolean priorities, `null` for no strategies); current is what
    /// today's scheduler (>= v0.6) polls (token in `data`, integer
    /// priorities, `[]` for none). The daemon POSTs the same way to both.
    #[arg(long, value_enum, default_value_t = SchemaArg::V0)]
    schema: SchemaArg,
    /// With --schema current: the integer served for a posted `true`
    /// (default 1). Kernel mode (the Helm chart's default): 0-9 preempt,
    /// 10-20 reduce virtual time, lower is stronger, above 20 is rejected.
    /// User mode: any level above 0 boosts the task, 0 does not.
    #[arg(long, value_name = "0-20", value_parser = clap::value_parser!(u8).range(0..=20))]
    priority_level: Option<u8>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaArg {
    V0,
    Current,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Replay(args) => replay(args),
        Command::CheckConfig(args) => check_config(args),
        Command::LocalApi(args) => local_api(args),
        Command::TraceInstance(args) => trace_instance(args),
        Command::Api(command) => api(command),
        Command::Status(args) => status(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gtp5g-operator: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn endpoint_overrides(args: &EndpointArgs) -> Vec<(&'static str, String)> {
    let mut o = Vec::new();
    if let Some(u) = &args.api_endpoint {
        o.push(("api.endpoint", u.clone()));
    }
    if let Some(k) = &args.public_key {
        o.push(("api.public_key_path", path(k)));
    }
    o
}

fn run_overrides(args: &RunArgs) -> Vec<(&'static str, String)> {
    let mut o = endpoint_overrides(&args.endpoint);
    if let Some(p) = &args.trace_pipe {
        o.push(("trace.pipe", path(p)));
    }
    if let Some(a) = &args.metrics_listen {
        o.push(("metrics.listen", a.to_string()));
    }
    if let Some(f) = &args.log_format {
        o.push(("log.format", f.clone()));
    }
    if let Some(l) = &args.log_level {
        o.push(("log.level", l.clone()));
    }
    o
}

fn run(args: RunArgs) -> Result<()> {
    let mut sources = Sources::from_process_env(args.config.config.clone());
    sources.overrides = run_overrides(&args);
    let cfg = Config::load(&sources, Purpose::Daemon)?;
    let ready_file = args.ready_file.map(ReadyFile::create).transpose()?;
    log::init(cfg.log.format, &cfg.log.level);
    let control = signal::listen().context("installing signal handlers")?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let stats = Arc::new(Stats::default());
    stats.status.lock().unwrap_or_else(|e| e.into_inner()).config_file = sources.config_file();
    let reload = move || Config::load(&sources, Purpose::Daemon);
    runtime.block_on(daemon::run(
        cfg,
        stats,
        reload,
        control,
        // The file first: whoever sees READY=1 finds it there.
        (ready_file, Systemd::default()),
    ))?;
    Ok(())
}

fn replay(args: ReplayArgs) -> Result<()> {
    let cfg = Config::load(&Sources::from_process_env(args.config.config), Purpose::Replay)?;
    let report = replay::replay(&args.file, &cfg)?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        report.text(&args.file, &cfg.targets.names)?
    };
    print_out(&text)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn check_config(args: ConfigArgs) -> Result<()> {
    let cfg = Config::load(&Sources::from_process_env(args.config), Purpose::Daemon)?;
    eprintln!("configuration is valid");
    print_out(&format!("{}\n", serde_json::to_string_pretty(&cfg)?))
}

fn api(command: ApiCommand) -> Result<()> {
    let args = match &command {
        ApiCommand::Strategies { api, .. } | ApiCommand::Post { api, .. } => api,
    };
    let mut sources = Sources::from_process_env(args.config.config.clone());
    sources.overrides = endpoint_overrides(&args.endpoint);
    let cfg = Config::load(&sources, Purpose::Daemon)?;
    // The client's own notes (token obtained) are the daemon's, not the answer.
    log::init(LogFormat::Human, "warn");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut client = ApiClient::new(&cfg.api)?;
    match command {
        ApiCommand::Strategies { json, .. } => {
            let held = runtime.block_on(client.strategies_in_force())?;
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&held.answer)?)
            } else {
                held.pids().iter().map(|p| format!("{p}\n")).collect()
            };
            print_out(&text)
        }
        ApiCommand::Post { pids, .. } => {
            let list = publish::strategies(&pids, &cfg.strategy);
            runtime.block_on(client.post_strategies(&list))?;
            Ok(())
        }
    }
}

fn status(args: StatusArgs) -> Result<()> {
    let base = match args.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let cfg =
                Config::load(&Sources::from_process_env(args.config.config), Purpose::Replay)?;
            let Some(addr) = cfg.metrics.listen else {
                bail!("metrics.listen is not set in the configuration: pass --url http://ADDR");
            };
            format!("http://{addr}")
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(status::fetch(&base))?;
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        status::table(&report)
    };
    print_out(&text)?;
    if let Some(why) = &report.unhealthy {
        bail!("daemon at {base} is unhealthy: {why}");
    }
    Ok(())
}

fn local_api(args: LocalApiArgs) -> Result<()> {
    log::init(LogFormat::Human, "info");
    let control = signal::listen().context("installing signal handlers")?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let schema = match (args.schema, args.priority_level) {
        (SchemaArg::V0, Some(_)) => bail!("--priority-level needs --schema current"),
        (SchemaArg::V0, None) => Schema::V0,
        (SchemaArg::Current, level) => {
            Schema::Current { priority_level: level.unwrap_or(DEFAULT_PRIORITY_LEVEL) }
        }
    };
    let opts = LocalApiOptions {
        listen: args.listen,
        state_dir: args.state_dir,
        token_duration: Duration::from_secs(args.token_hours * 3600),
        schema,
    };
    runtime.block_on(local_api::run(opts, control.stop.cancelled_owned()))?;
    Ok(())
}

fn trace_instance(args: TraceInstanceArgs) -> Result<()> {
    let cfg = Config::load(&Sources::from_process_env(args.config.config), Purpose::Setup)?;
    let t = &cfg.trace;
    if t.instance.is_empty() {
        eprintln!("trace.instance is \"\": the daemon reads the global trace_pipe; nothing to do");
        return Ok(());
    }
    let tracefs = source::tracefs_dir(t.mount_tracefs)?;
    match args.action {
        InstanceAction::Create if t.pipe.is_some() => {
            eprintln!("trace.pipe is set: the daemon reads it, not an instance; nothing to do")
        }
        InstanceAction::Create => {
            match instance::create(&tracefs, &t.instance, t.instance_buffer_kb) {
                Ok(p) => eprintln!(
                    "{} {}: bpf_trace_printk only, {} KiB per CPU",
                    if p.created { "created" } else { "reused" },
                    p.dir.display(),
                    t.instance_buffer_kb
                ),
                // The daemon reads the global trace_pipe then: no reason to fail its start.
                Err(e @ instance::InstanceError::NoEvent) => {
                    eprintln!(
                        "gtp5g-operator: warning: {e}; the daemon will read the global trace_pipe"
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
        InstanceAction::Remove => match instance::remove(&tracefs, &t.instance)? {
            true => eprintln!("removed {}", tracefs.join("instances").join(&t.instance).display()),
            false => eprintln!(
                "no instance {:?} in {}: nothing to remove",
                t.instance,
                tracefs.display()
            ),
        },
    }
    Ok(())
}
