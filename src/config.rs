//! Typed configuration, read once from `MODELHUB_*` environment variables (and `.env`).
//! Every setting has a default that works on a fresh machine; a bad value fails start-up with
//! one line naming the variable.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use secrecy::SecretString;
use thiserror::Error;
use url::Url;

use crate::services::rate_limit::Rules;

/// A configuration value that could not be used.
#[derive(Debug, Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Where model files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// A directory on local disk (`file://DIR`).
    Local(PathBuf),
    /// An S3-compatible bucket (`s3://BUCKET/PREFIX`), configured by the usual `AWS_*` variables.
    S3 { bucket: String, prefix: String },
}

impl FromStr for StorageUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(dir) = s.strip_prefix("file://") {
            if dir.is_empty() {
                return Err("file:// needs a directory".into());
            }
            return Ok(Self::Local(PathBuf::from(dir)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket name".into());
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        Err(format!(
            "`{s}` is neither file://DIR nor s3://BUCKET/PREFIX"
        ))
    }
}

/// What happens to an upload whose inspection finds code that runs on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeUploads {
    /// Refuse the upload.
    Reject,
    /// Keep it, but downloads need `?acceptRisk=true` (the default).
    Quarantine,
    /// Keep it and serve it like any other file.
    Allow,
}

impl FromStr for UnsafeUploads {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "reject" => Ok(Self::Reject),
            "quarantine" => Ok(Self::Quarantine),
            "allow" => Ok(Self::Allow),
            other => Err(format!("`{other}` is not reject, quarantine or allow")),
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `MODELHUB_BIND`: the listen address.
    pub bind: SocketAddr,
    /// `MODELHUB_DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: SecretString,
    /// `MODELHUB_STORAGE_URL`: where blobs go.
    pub storage: StorageUrl,
    /// `MODELHUB_JWT_SECRET`: the HS256 key; generated once into `{data_dir}/jwt-secret` if unset.
    pub jwt_secret: SecretString,
    /// `MODELHUB_MAX_UPLOAD_BYTES`: the largest model file accepted.
    pub max_upload_bytes: u64,
    /// `MODELHUB_PUBLIC_URL`: the base of the download links the API hands out.
    pub public_url: Url,
    /// `MODELHUB_DATA_DIR`: where the embedded defaults keep their files.
    pub data_dir: PathBuf,
    /// `MODELHUB_CORS_ORIGINS`: comma-separated browser origins allowed to call the API, or `*`.
    pub cors_origins: Vec<String>,
    /// `MODELHUB_ACCESS_TOKEN_TTL_SECS`: how long a login's access token lasts.
    pub access_token_ttl: Duration,
    /// `MODELHUB_DOWNLOAD_URL_TTL_SECS`: how long a signed download link lasts.
    pub download_url_ttl: Duration,
    /// `MODELHUB_MAX_REQUEST_BYTES`: the largest non-upload request body.
    pub max_request_bytes: usize,
    /// `MODELHUB_UNSAFE_UPLOADS`: `reject`, `quarantine` or `allow` uploads found UNSAFE.
    pub unsafe_uploads: UnsafeUploads,
    /// `MODELHUB_INSPECTION_TIMEOUT_SECS`: the longest one file's inspection may take.
    pub inspection_timeout: Duration,
    /// `MODELHUB_INSPECTION_THREADS`: how many files are inspected at once (one thread each;
    /// the rest wait). Defaults to the number of cores.
    pub inspection_threads: usize,
    /// `MODELHUB_INSPECTION_MEMORY_BYTES`: the memory one inspection may use for what it
    /// rebuilds (past it the file is held as ERROR).
    pub inspection_memory: u64,
    /// `MODELHUB_PICKLE_ALLOW`: this deployment's own globals that pickles may import
    /// (`pkg.module.Name` or `pkg.module.*`, comma separated), beside the built-in allowlist.
    pub pickle_rules: modelhub_inspect::Rules,
    /// `MODELHUB_REDIS_URL`: where rate-limit buckets are shared between replicas; in memory
    /// when unset.
    pub redis_url: Option<SecretString>,
    /// `MODELHUB_LIMIT_LOGIN`, `MODELHUB_LIMIT_REGISTER`, `MODELHUB_LIMIT_UPLOAD`,
    /// `MODELHUB_LIMIT_API_TOKEN`: `COUNT/SECONDS` for each rate limit.
    pub rate_limits: Rules,
    /// `MODELHUB_TRUSTED_PROXIES`: reverse proxies (addresses or CIDR networks, comma
    /// separated) whose `X-Forwarded-For` names the client; none by default.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `MODELHUB_RESPONSE_CACHE_SECS`: how long answers to catalog reads may be reused (0
    /// switches the cache off); also how soon other replicas' writes show in them.
    pub response_cache_ttl: Duration,
    /// `MODELHUB_SHUTDOWN_GRACE_SECS`: how long in-flight requests may run on after SIGTERM or
    /// Ctrl-C.
    pub shutdown_grace: Duration,
}

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "./data";
/// The longest time cached answers may be reused (a day).
const MAX_CACHE_SECS: u64 = 86_400;

fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_var<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
            var: name,
            message: format!("cannot parse `{raw}`: {e}"),
        }),
    }
}

impl Config {
    /// Reads the configuration from the environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is worth a line but not a failure.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            eprintln!("warning: .env ignored: {e}");
        }
        let data_dir = PathBuf::from(var("MODELHUB_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR.into()));
        let bind: SocketAddr = parse_var("MODELHUB_BIND", DEFAULT_BIND.parse().expect_default())?;
        let database_url = var("MODELHUB_DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/modelhub.db?mode=rwc", data_dir.display()));
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(ConfigError {
                var: "MODELHUB_DATABASE_URL",
                message: "expected sqlite://… or postgres://…".into(),
            });
        }
        let storage = match var("MODELHUB_STORAGE_URL") {
            None => StorageUrl::Local(data_dir.join("blobs")),
            Some(raw) => raw.parse().map_err(|message| ConfigError {
                var: "MODELHUB_STORAGE_URL",
                message,
            })?,
        };
        let public_url = match var("MODELHUB_PUBLIC_URL") {
            None => Url::parse(&format!("http://{bind}")),
            Some(raw) => Url::parse(&raw),
        }
        .map_err(|e| ConfigError {
            var: "MODELHUB_PUBLIC_URL",
            message: e.to_string(),
        })?;
        let jwt_secret = match var("MODELHUB_JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError {
                    var: "MODELHUB_JWT_SECRET",
                    message: "must be at least 32 characters".into(),
                });
            }
            Some(secret) => secret,
            None => load_or_create_secret(&data_dir).map_err(|e| ConfigError {
                var: "MODELHUB_JWT_SECRET",
                message: format!(
                    "unset, and {}/jwt-secret could not be read or created: {e}",
                    data_dir.display()
                ),
            })?,
        };
        let cors_origins = var("MODELHUB_CORS_ORIGINS")
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        let trusted_proxies = var("MODELHUB_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError {
                        var: "MODELHUB_TRUSTED_PROXIES",
                        message: format!("`{entry}` is not an IP address or CIDR network"),
                    })
            })
            .collect::<Result<_, _>>()?;
        let response_cache_ttl = match parse_var("MODELHUB_RESPONSE_CACHE_SECS", 2u64)? {
            secs if secs <= MAX_CACHE_SECS => Duration::from_secs(secs),
            _ => {
                return Err(ConfigError {
                    var: "MODELHUB_RESPONSE_CACHE_SECS",
                    message: format!("at most {MAX_CACHE_SECS} seconds"),
                });
            }
        };
        Ok(Self {
            bind,
            trusted_proxies,
            response_cache_ttl,
            shutdown_grace: Duration::from_secs(parse_var("MODELHUB_SHUTDOWN_GRACE_SECS", 30)?),
            database_url: database_url.into(),
            storage,
            jwt_secret: jwt_secret.into(),
            max_upload_bytes: parse_var("MODELHUB_MAX_UPLOAD_BYTES", 20 * 1024 * 1024 * 1024)?,
            public_url,
            data_dir,
            cors_origins,
            access_token_ttl: Duration::from_secs(parse_var(
                "MODELHUB_ACCESS_TOKEN_TTL_SECS",
                24 * 3600,
            )?),
            download_url_ttl: Duration::from_secs(parse_var(
                "MODELHUB_DOWNLOAD_URL_TTL_SECS",
                3600,
            )?),
            max_request_bytes: parse_var("MODELHUB_MAX_REQUEST_BYTES", 2 * 1024 * 1024)?,
            unsafe_uploads: parse_var("MODELHUB_UNSAFE_UPLOADS", UnsafeUploads::Quarantine)?,
            inspection_timeout: Duration::from_secs(parse_var(
                "MODELHUB_INSPECTION_TIMEOUT_SECS",
                60,
            )?),
            inspection_threads: match parse_var("MODELHUB_INSPECTION_THREADS", 0usize)? {
                0 => std::thread::available_parallelism().map_or(2, usize::from),
                n => n,
            },
            inspection_memory: parse_var(
                "MODELHUB_INSPECTION_MEMORY_BYTES",
                modelhub_inspect::DEFAULT_MEMORY,
            )?,
            pickle_rules: modelhub_inspect::Rules::new(
                &var("MODELHUB_PICKLE_ALLOW")
                    .unwrap_or_default()
                    .split(',')
                    .collect::<Vec<_>>(),
            )
            .map_err(|message| ConfigError {
                var: "MODELHUB_PICKLE_ALLOW",
                message,
            })?,
            redis_url: var("MODELHUB_REDIS_URL").map(Into::into),
            rate_limits: {
                let defaults = Rules::default();
                Rules {
                    login: parse_var("MODELHUB_LIMIT_LOGIN", defaults.login)?,
                    register: parse_var("MODELHUB_LIMIT_REGISTER", defaults.register)?,
                    upload: parse_var("MODELHUB_LIMIT_UPLOAD", defaults.upload)?,
                    create_token: parse_var("MODELHUB_LIMIT_API_TOKEN", defaults.create_token)?,
                }
            },
        })
    }
}

trait ExpectDefault<T> {
    fn expect_default(self) -> T;
}

impl<T, E: std::fmt::Debug> ExpectDefault<T> for Result<T, E> {
    /// Unwraps a compile-time default that is known to parse.
    #[expect(clippy::expect_used, reason = "constant defaults are checked by tests")]
    fn expect_default(self) -> T {
        self.expect("built-in default parses")
    }
}

/// Reads `{data_dir}/jwt-secret`, creating it with 64 random bytes (hex) the first time.
fn load_or_create_secret(data_dir: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::other(
                "the file exists but is shorter than 32 characters",
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)?;
    let secret: String = (0..64)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(secret)
}
