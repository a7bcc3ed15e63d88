use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clients_gateway::catalog::ProviderId;
use clients_gateway::config::Settings;
use clients_gateway::sandbox::{prefix, Sandbox, SandboxOptions};
use clients_gateway::startup::{Application, StartError};
use clients_gateway::{auth, telemetry};
use rand::Rng;
use secrecy::SecretString;

/// jemalloc: fewer instructions per allocation than glibc's malloc on the request path, and no
/// more memory at the peak (docs/benchmarks/throughput.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One POST /clients that creates a client in several SaaS tools at once, answering 207
/// Multi-Status.
#[derive(Parser)]
#[command(name = "clients-gateway", version)]
struct Cli {
    /// TOML configuration file (every key can also be set as CLIENTS_GATEWAY__SECTION__KEY).
    #[arg(long, env = "CLIENTS_GATEWAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Serve with every provider simulated in-process and a development signing key; prints
    /// the address, the Swagger UI URL and a ready token. Binds 127.0.0.1:8080 (or what
    /// CLIENTS_GATEWAY_SANDBOX_BIND says: the image sets 0.0.0.0:8080) unless server.bind is
    /// configured.
    #[arg(long)]
    sandbox: bool,
    /// With --sandbox (or `providers`): this simulated provider creates the client and then
    /// never answers, to show how an unanswered create is settled.
    #[arg(long, global = true, value_name = "PROVIDER", value_parser = provider_name)]
    unanswered: Option<ProviderId>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve only the simulated providers (the sandbox's), e.g. as the upstream of a
    /// benchmark or for trying a gateway configured by hand.
    Providers {
        #[arg(long, default_value = "127.0.0.1:9090")]
        bind: String,
        /// Added before every answer.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Accept duplicates: no simulated provider enforces its documented uniqueness rule.
        #[arg(long)]
        no_uniqueness: bool,
        /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain...
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// ...and this PEM private key.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Print the gateway's OpenAPI document (what GET /openapi.json serves).
    Openapi,
    /// Print the configuration reference (Markdown): every key with its default, bounds,
    /// description and environment variable.
    ConfigReference {
        /// `json`: the keys as a JSON array (`path`, `default`, `minimum`, `maximum`,
        /// `secret`), for tools that check other copies of the defaults (the chart's).
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
    },
    /// Load the configuration and build everything that needs no network (adapters, caller
    /// authentication), then exit: 0 if the gateway would start with it.
    CheckConfig,
    /// Exit 0 if the gateway answers its liveness probe (for a container HEALTHCHECK): at URL,
    /// else at the configured `server.ops_bind` or `server.bind` (a configuration file that does
    /// not exist is skipped: the image's sandbox).
    Healthcheck {
        #[arg(long)]
        url: Option<String>,
    },
    /// Mint a development token signed with the configured HS256 key (auth.hs256_secret).
    Token {
        /// The caller's name (`sub`).
        #[arg(long)]
        sub: String,
        /// Space-separated scopes.
        #[arg(long, default_value = "clients:write")]
        scope: String,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Token { sub, scope, ttl }) => token(cli.config, &sub, &scope, ttl),
        Some(Command::Healthcheck { url }) => {
            match url.map_or_else(|| health_url(cli.config), Ok) {
                Ok(url) => actix_web::rt::System::new().block_on(healthcheck(&url)),
                Err(e) => Err(e),
            }
        }
        Some(Command::CheckConfig) => check_config(cli.config),
        Some(Command::Providers {
            bind,
            delay_ms,
            workers,
            no_uniqueness,
            tls_cert,
            tls_key,
        }) => match tls_cert
            .zip(tls_key)
            .map(|(cert, key)| clients_gateway::sandbox::tls_server_config(&cert, &key))
        {
            Some(Err(e)) => Err(e.into()),
            tls => actix_web::rt::System::new().block_on(providers(SandboxOptions {
                delay: Duration::from_millis(delay_ms),
                workers: Some(workers),
                bind,
                unique: !no_uniqueness,
                unanswered: cli.unanswered,
                tls: tls.and_then(Result::ok),
            })),
        },
        Some(Command::Openapi) => {
            println!("{}", clients_gateway::openapi::document());
            Ok(())
        }
        Some(Command::ConfigReference { format }) => {
            match format.as_str() {
                "json" => println!("{}", clients_gateway::config::schema::keys_json()),
                _ => print!("{}", clients_gateway::config::schema::reference()),
            }
            Ok(())
        }
        None => run(cli.config, cli.sandbox, cli.unanswered),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clients-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn token(config: Option<PathBuf>, sub: &str, scope: &str, ttl: Duration) -> Result<(), StartError> {
    let settings = Settings::load(config.as_deref())?;
    let secret = settings
        .auth
        .hs256_secret
        .as_ref()
        .ok_or("auth.hs256_secret (or auth.hs256_secret_file) is not configured")?;
    println!("{}", auth::mint(secret, &settings.auth, sub, scope, ttl)?);
    Ok(())
}

/// Serves until stopped. The log writer outlives the actix system, whose threads log their own
/// shutdown.
fn run(
    config: Option<PathBuf>,
    sandbox: bool,
    unanswered: Option<ProviderId>,
) -> Result<(), StartError> {
    let settings = Settings::load(config.as_deref())?;
    let _log_writer = telemetry::init(&settings.telemetry)?;
    let system = actix_web::rt::System::new();
    let sandbox = sandbox.then_some(SandboxOptions {
        unanswered,
        ..SandboxOptions::default()
    });
    let result = system.block_on(serve(settings, config.is_some(), sandbox));
    drop(system);
    result
}

async fn serve(
    mut settings: Settings,
    configured: bool,
    sandbox: Option<SandboxOptions>,
) -> Result<(), StartError> {
    let bind_configured = std::env::var_os("CLIENTS_GATEWAY__SERVER__BIND").is_some();
    let mut banner = None;
    let simulated = sandbox.is_some();
    let _sandbox = if let Some(options) = sandbox {
        let sandbox = Sandbox::start(options)?;
        sandbox.configure(&mut settings);
        if !bind_configured && !configured {
            settings.server.bind = std::env::var("CLIENTS_GATEWAY_SANDBOX_BIND")
                .ok()
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| "127.0.0.1:8080".into());
        }
        let secret = SecretString::from(dev_key());
        settings.auth.disabled = false;
        settings.auth.hs256_secret = Some(secret.clone());
        let token = auth::mint(
            &secret,
            &settings.auth,
            "sandbox",
            &settings.auth.required_scope,
            Duration::from_secs(12 * 3600),
        )?;
        banner = Some((sandbox.port(), token));
        Some(sandbox)
    } else {
        None
    };
    let app = Application::build(&settings)?;
    let port = app.port();
    tracing::info!(bind = %settings.server.bind, port, sandbox = simulated, "listening");
    if let Some((sandbox_port, token)) = banner {
        let host = settings
            .server
            .bind
            .rsplit_once(':')
            .map_or("127.0.0.1", |(h, _)| h);
        let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
        eprintln!(
            "\nclients-gateway sandbox: the providers are simulated on 127.0.0.1:{sandbox_port}\n\
             \n  API         http://{host}:{port}/clients\
             \n  Swagger UI  http://{host}:{port}/swagger-ui/\
             \n  token       (scope {scope}, valid 12 h; Swagger UI: Authorize)\n\n\
             export TOKEN={token}\n",
            scope = settings.auth.required_scope,
        );
    }
    app.run_until_stopped().await?;
    Ok(())
}

async fn providers(options: SandboxOptions) -> Result<(), StartError> {
    let bind = options.bind.clone();
    let sandbox = Sandbox::start(options)?;
    let prefixes: Vec<String> = ProviderId::ALL.iter().map(|p| prefix(*p)).collect();
    eprintln!(
        "the simulated providers listen on {bind} (port {}, {}): {}",
        sandbox.port(),
        sandbox.base_url(ProviderId::Lucca).scheme(),
        prefixes.join(", ")
    );
    tokio::signal::ctrl_c().await?;
    sandbox.stop().await;
    Ok(())
}

/// Loads and checks the configuration and builds what the start builds (the same code), then
/// inspects Redis when it can be reached: exit 0 if the gateway would start with it and Redis
/// is one it can keep its promises on.
fn check_config(config: Option<PathBuf>) -> Result<(), StartError> {
    let settings = Settings::load(config.as_deref())?;
    let prepared = clients_gateway::startup::prepare(&settings)?;
    let available: Vec<&str> = prepared.registry.available().map(|p| p.as_str()).collect();
    let shared = match (&settings.idempotency.redis_url, prepared.link.is_some()) {
        (Some(_), _) => "Redis (fleet-wide records, guards and quotas)",
        (None, true) => "Redis through Sentinel (fleet-wide records, guards and quotas)",
        (None, false) => "in process (one replica)",
    };
    let redis = match &prepared.link {
        Some(link) => format!("; Redis: {}", inspect_redis(link)?),
        None => String::new(),
    };
    let operations = match (settings.operations.enabled, prepared.link.is_some()) {
        (false, _) => "off (Prefer: respond-async ignored)",
        (true, true) => "durable in Redis",
        (true, false) => {
            eprintln!("warning: {}", clients_gateway::operations::NOT_DURABLE);
            "in process (not durable)"
        }
    };
    let webhooks: Vec<&str> = prepared.sealing.1.names().collect();
    let webhooks = match webhooks.is_empty() {
        true => String::new(),
        false => format!(" (webhooks: {})", webhooks.join(", ")),
    };
    println!(
        "configuration ok; providers available: {}; outbound {}; idempotency {shared}{redis}; operations {operations}{webhooks}; {}",
        available.join(", "),
        prepared.egress.describe(),
        prepared.describe_budget(),
    );
    Ok(())
}

/// What the Redis configured is, when it can be reached from here; an error when it is one the
/// gateway cannot keep its promises on (a user refused scripts, a policy that evicts keys).
fn inspect_redis(link: &clients_gateway::fleet::Link) -> Result<String, StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(link.readiness()) {
        Ok(facts) => Ok(facts.describe()),
        Err(e) if e.misconfigured => Err(format!("Redis: {e}").into()),
        Err(e) => Ok(format!("not checked (not reachable from here: {e})")),
    }
}

/// The liveness probe's URL from the configuration: the ops listener if there is one, else the
/// main one; an unspecified address (0.0.0.0, ::) is asked on loopback.
fn health_url(config: Option<PathBuf>) -> Result<String, StartError> {
    let config = config.filter(|path| path.exists());
    let settings = Settings::load(config.as_deref())?;
    // Without a configuration, the gateway is the sandbox, on the sandbox's address.
    let sandbox_bind = std::env::var("CLIENTS_GATEWAY_SANDBOX_BIND")
        .ok()
        .filter(|b| !b.is_empty())
        .filter(|_| {
            config.is_none() && std::env::var_os("CLIENTS_GATEWAY__SERVER__BIND").is_none()
        });
    let bind = match (&settings.server.ops_bind, &sandbox_bind) {
        (Some(ops), _) => ops.as_str(),
        (None, Some(sandbox)) => sandbox.as_str(),
        (None, None) => settings.server.bind.as_str(),
    };
    let mut address = std::net::ToSocketAddrs::to_socket_addrs(bind)
        .map_err(|e| format!("server bind address {bind}: {e}"))?
        .next()
        .ok_or_else(|| format!("server bind address {bind} resolves to nothing"))?;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{address}/healthz"))
}

async fn healthcheck(url: &str) -> Result<(), StartError> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?
        .get(url)
        .send()
        .await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", response.status()).into())
    }
}

fn provider_name(name: &str) -> Result<ProviderId, String> {
    ProviderId::parse(name)
        .ok_or_else(|| format!("unknown provider; known: {}", ProviderId::known()))
}

/// A random 256-bit development signing key, new at every sandbox start.
fn dev_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
