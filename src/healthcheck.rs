//! `clouddevice_exporter healthcheck`: asks a running exporter's `/-/healthy`, for container
//! images that have no curl (the Dockerfile's and the compose file's `HEALTHCHECK`). Exits 0 when
//! it answers 200, 1 with one line saying why otherwise.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::flags::parse_positive_duration;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The exporter's health endpoint.
    #[arg(
        long = "url",
        default_value = "http://127.0.0.1:10123/-/healthy",
        value_name = "URL"
    )]
    pub url: String,

    /// How long to wait for the answer.
    #[arg(long = "timeout", default_value = "5s", value_name = "DURATION",
          value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// CA certificate (PEM) to trust for an https URL, beside the system's.
    #[arg(long = "tls.ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Why the exporter is not healthy, or could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot read --tls.ca-file {path:?}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("{url}: {reason}")]
    Request { url: String, reason: String },
    #[error("{url} answered HTTP {status}, not 200")]
    Unhealthy { url: String, status: u16 },
}

/// Asks the health endpoint once.
pub async fn run(args: HealthcheckArgs) -> Result<(), HealthError> {
    let mut client = reqwest::Client::builder()
        .timeout(args.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &args.ca_file {
        let ca_error = |reason: String| HealthError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = crate::files::read_bounded(path, crate::files::MAX_CONFIG_BYTES)
            .map_err(|e| ca_error(e.to_string()))?;
        let certificate =
            reqwest::Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
        client = client.add_root_certificate(certificate);
    }
    let request_error = |e: reqwest::Error| HealthError::Request {
        url: args.url.clone(),
        reason: crate::upstream::http::error_chain(&e),
    };
    let client = client.build().map_err(request_error)?;
    let response = client.get(&args.url).send().await.map_err(request_error)?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(HealthError::Unhealthy {
            url: args.url,
            status,
        }),
    }
}
