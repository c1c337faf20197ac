//! The `tandem` command: parses flags, sets up logging, and runs a subcommand.

mod moderation_cli;

use std::net::TcpListener;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tandem_server::config::ServeArgs;
use tracing_subscriber::EnvFilter;

// jemalloc: the least memory per idle connection of the allocators compared, and stable over
// connect/disconnect churn, where the system allocator's footprint grows (docs/performance.md
// has the figures). Its background thread returns freed pages to the OS on its default decay
// (about 10 s), so memory follows the number of users online instead of its peak; a shorter
// decay makes churn re-fault pages and costs throughput.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this C string at start.
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points at a 'static, immutable C string literal.
unsafe impl Sync for MallocConf {}

#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true".as_ptr());

/// tandem: a matchmaking server for random one-on-one text and video chat.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines instead of text (filter with RUST_LOG, e.g. RUST_LOG=tandem=debug).
    #[arg(long, global = true, env = "TANDEM_LOG_JSON")]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: WebSocket at /ws, health at /healthz, metrics at /metrics, a page at /.
    Serve(Box<ServeArgs>),
    /// Entitlements for premium preferences (gender filter, college mode).
    #[command(subcommand)]
    Entitlement(EntitlementCommand),
    /// Drive a node with simulated users and report what they experienced.
    Loadtest(Box<tandem_loadtest::LoadtestArgs>),
    /// Operate a cluster over NATS: see its nodes, drain one.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Moderate through a node's operator API (`--admin-token`): the review queue, bans.
    Moderation(Box<moderation_cli::ModerationArgs>),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the cluster's nodes: shards, users online and waiting, matches per second.
    Status {
        #[command(flatten)]
        nats: tandem_server::cluster::ClusterArgs,
        /// How long to listen to heartbeats (at least two heartbeat intervals).
        #[arg(long, default_value = "1500ms", value_parser = tandem_proto::duration::parse_duration)]
        listen: std::time::Duration,
    },
    /// Drain a node: it stops accepting users, hands the tickets it holds back, tells its
    /// clients to reconnect (close 1012), and exits when empty. Waits until it has left.
    /// Print a fresh cluster key (32 random bytes in base64) for `--cluster-key`.
    Key,
    Drain {
        /// The node's id (`tandem cluster status` lists them).
        node: String,
        #[command(flatten)]
        nats: tandem_server::cluster::ClusterArgs,
        /// Give up waiting for the node to leave after this long.
        #[arg(long, default_value = "60s", value_parser = tandem_proto::duration::parse_duration)]
        wait: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum EntitlementCommand {
    /// Mint a signed entitlement token and print it (give it to the user's client, which
    /// sends it in `join.entitlement`).
    Issue {
        /// The secret the nodes run with (`--entitlement-secret`).
        #[arg(long, env = "TANDEM_ENTITLEMENT_SECRET", hide_env_values = true)]
        secret: String,
        /// Features to grant: gender_filter, college (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        features: Vec<String>,
        /// The verified college domain, for `college`.
        #[arg(long)]
        college: Option<String>,
        /// How long the token is valid.
        #[arg(long, default_value = "30d", value_parser = tandem_proto::duration::parse_duration)]
        ttl: std::time::Duration,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Entitlement(EntitlementCommand::Issue {
            secret,
            features,
            college,
            ttl,
        }) => {
            use tandem_server::entitlement::{unix_now, Claims, EntitlementKey, Feature};
            let features = features
                .iter()
                .map(|f| match f.as_str() {
                    "gender_filter" => Ok(Feature::GenderFilter),
                    "college" => Ok(Feature::College),
                    other => Err(anyhow::anyhow!("unknown feature `{other}`")),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if features.contains(&Feature::College) && college.is_none() {
                anyhow::bail!("--features college needs --college DOMAIN");
            }
            let claims = Claims {
                exp: unix_now() + ttl.as_secs(),
                features,
                college,
            };
            println!("{}", EntitlementKey::new(secret).sign(&claims));
            Ok(())
        }
        Command::Loadtest(args) => loadtest(*args),
        Command::Cluster(command) => cluster(command),
        Command::Moderation(args) => {
            print!("{}", moderation_cli::run(*args)?);
            Ok(())
        }
    }
}

fn cluster(command: ClusterCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match command {
        ClusterCommand::Status { nats, listen } => {
            anyhow::ensure!(nats.enabled(), "--nats URL (or TANDEM_NATS) is required");
            let table = runtime.block_on(tandem_server::cluster::nats::status(&nats, listen))?;
            print!("{table}");
        }
        ClusterCommand::Key => println!("{}", tandem_server::cluster::seal::ClusterKey::generate()),
        ClusterCommand::Drain { node, nats, wait } => {
            anyhow::ensure!(nats.enabled(), "--nats URL (or TANDEM_NATS) is required");
            let node = tandem_ids::NodeId(node);
            runtime.block_on(tandem_server::cluster::nats::drain(
                &nats,
                &node,
                wait,
                |line| eprintln!("{line}"),
            ))?;
        }
    }
    Ok(())
}

fn init_tracing(json: bool) {
    // async-nats logs every (re)connection at info; tandem logs what matters of those itself.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    // Logs go to stderr: stdout is for what a command prints (a report, a table, JSON).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every user is a socket: take every file descriptor the hard limit allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "could not raise the open-file limit"),
    }
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    actix_web::rt::System::new()
        .block_on(async move { tandem_server::serve(&args, listener, shutdown_signal()).await })?;
    Ok(())
}

fn loadtest(args: tandem_loadtest::LoadtestArgs) -> anyhow::Result<()> {
    // Every simulated user is a socket, as on the server side.
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %err, "could not raise the open-file limit");
    }
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")
    };
    let report = if args.inproc {
        tandem_loadtest::run_inproc(&args)?
    } else if args.worker.worker_index.is_some() {
        // A child of `--workers`: its results go to the parent, which prints the report.
        runtime()?.block_on(tandem_loadtest::run_worker(&args))?;
        return Ok(());
    } else if args.worker_processes() > 1 {
        tandem_loadtest::run_workers(&args)?
    } else {
        runtime()?.block_on(tandem_loadtest::run(&args))?
    };
    print!("{report}");
    if !report.passed() {
        anyhow::bail!(
            "the run failed: {} violations, {} failed assertions",
            report.violations,
            report.failed_assertions.len()
        );
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}
