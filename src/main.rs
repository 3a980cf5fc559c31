//! Loads settings, starts logging and serves until stopped.

use std::process::ExitCode;

use gatehouse::config::Settings;
use gatehouse::startup::Application;

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("gatehouse: configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    gatehouse::telemetry::init(&settings.rust_log);
    if let Some(file) = &settings.generated_secret_file {
        tracing::warn!(
            file = %file.display(),
            "JWT_SECRET is unset: generated a development signing secret and kept it in this file; \
             set JWT_SECRET in production"
        );
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("gatehouse: start-up failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %app.public_url(), port = app.port(), "listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped with an error");
            ExitCode::FAILURE
        }
    }
}
