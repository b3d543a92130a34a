//! `switchboard serve`.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{Config, ServeArgs};
use crate::telemetry;

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args)?;
    if args.check_config {
        // Token files are checked too (their content is config); TLS and
        // NATS material is only read when serving.
        let mut tokens = config.tokens.clone();
        if let Some(path) = &config.auth_file {
            tokens.extend(crate::auth::read_token_file(path)?);
        }
        if config.auth_enabled() {
            crate::auth::Authenticator::new(&tokens)?;
        }
        println!("configuration OK\n{config:#?}");
        return Ok(ExitCode::SUCCESS);
    }
    telemetry::init_logging(config.log_format, &config.log_level, config.otlp_endpoint.as_deref());
    match crate::alloc::turn_off_huge_pages() {
        Ok(true) => tracing::debug!("transparent huge pages turned off for this process"),
        Ok(false) => tracing::debug!("transparent huge pages as MIMALLOC_ALLOW_THP says"),
        Err(e) => tracing::warn!(error = %e, "cannot turn transparent huge pages off; serving with them"),
    }
    let app = App::build(config.clone()).await?;
    tracing::info!(
        grpc = %app.local_addr(),
        metrics = ?app.metrics_addr(),
        store = ?config.store,
        version = env!("CARGO_PKG_VERSION"),
        "switchboard serving"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_watch(shutdown.clone()));
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub(crate) async fn signal_watch(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}
