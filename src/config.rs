//! Typed configuration, read once from `MODELHUB_*` environment variables (and `.env`).
//! Every setting has a default that works on a fresh machine; a bad value fails start-up with
//! one line naming the variable.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use secrecy::SecretString;
use thiserror::Error;
use url::Url;

use crate::{domain::alias::AliasName, services::rate_limit::Rules};

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

/// How an S3 store is used beyond reading and writing objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// `MODELHUB_S3_MAX_COPY_BYTES`: the largest object moved by one CopyObject (S3 allows
    /// 5 GiB); larger ones are copied in parts of at most this size.
    pub max_single_copy: u64,
    /// `MODELHUB_S3_PRESIGNED_DOWNLOADS`: answer downloads with a redirect to a short-lived
    /// presigned GET, so the bytes go from S3 to the client without passing the hub.
    pub presigned_downloads: bool,
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
    /// How an S3 store is used (ignored for local disk).
    pub s3: S3Options,
    /// `MODELHUB_JWT_SECRET`: the HS256 key; generated once into `{data_dir}/jwt-secret` if unset.
    pub jwt_secret: SecretString,
    /// `MODELHUB_MAX_UPLOAD_BYTES`: the largest model file accepted.
    pub max_upload_bytes: u64,
    /// `MODELHUB_MAX_FILES_PER_VERSION`: the most files one version may have.
    pub max_files_per_version: usize,
    /// `MODELHUB_MAX_VERSION_BYTES`: the largest total size of one version's files.
    pub max_version_bytes: u64,
    /// `MODELHUB_DRAFT_TTL_HOURS`: how long a version draft lives after its last change.
    pub draft_ttl: Duration,
    /// `MODELHUB_PROTECTED_ALIASES`: the aliases (comma separated; `production` by default,
    /// `none` for none) that only administrators and PROMOTE tokens may move.
    pub protected_aliases: Vec<AliasName>,
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
    /// `MODELHUB_REDIS_URL`: where replicas share rate-limit buckets and announce changes to
    /// each other; in memory (one replica) when unset.
    pub redis_url: Option<SecretString>,
    /// `MODELHUB_REDIS_PREFIX`: the prefix of this hub's keys and channel in Redis.
    pub redis_prefix: String,
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
    /// How webhook deliveries are sent and retried.
    pub webhooks: WebhookOptions,
    /// How ONNX models are run.
    pub inference: InferenceOptions,
}

/// How ONNX models are run (`predict`).
#[derive(Debug, Clone)]
pub struct InferenceOptions {
    /// `MODELHUB_INFERENCE_MEMORY_BYTES`: the most bytes of model files kept loaded (1 GiB);
    /// the least recently used go first, and a model larger than this is not run.
    pub memory_bytes: u64,
    /// `MODELHUB_INFERENCE_CONCURRENCY`: how many runs at once (half the cores, at least 1);
    /// the others wait, within their time limit.
    pub concurrency: usize,
    /// `MODELHUB_INFERENCE_TIMEOUT_MS`: how long one call may take, waiting included (10 s).
    pub timeout: Duration,
    /// `MODELHUB_INFERENCE_MAX_BATCH`: the most rows one call may send (1,024).
    pub max_batch: usize,
    /// `MODELHUB_INFERENCE_MAX_VALUES`: the most input values one call may send (1,048,576).
    pub max_values: usize,
}

/// How webhook deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// `MODELHUB_WEBHOOK_TIMEOUT_SECS`: how long a receiver has to answer one try.
    pub timeout: Duration,
    /// `MODELHUB_WEBHOOK_RETRY_BASE_MS`: the wait before the first retry; each next one waits
    /// three times longer, up to an hour.
    pub retry_base: Duration,
    /// `MODELHUB_WEBHOOK_RETRY_WINDOW_SECS`: how long after its event a delivery is retried
    /// (a day); then it fails.
    pub retry_window: Duration,
    /// `MODELHUB_EVENT_RETENTION_DAYS`: how long change events and their delivery log are
    /// kept (30 days; never less than the retry window, nor while a delivery is pending).
    pub event_retention: Duration,
    /// `MODELHUB_WEBHOOK_PRIVATE_TARGETS`: whether receivers may be on loopback, private or
    /// link-local addresses (off: a webhook cannot be pointed at the hub's own network).
    pub private_targets: bool,
}

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const DEFAULT_DATA_DIR: &str = "./data";
/// The longest time cached answers may be reused (a day).
const MAX_CACHE_SECS: u64 = 86_400;

/// The variables a configuration is read from: a value that is blank counts as unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn var(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn parse_var<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.var(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
                var: name,
                message: format!("cannot parse `{raw}`: {e}"),
            }),
        }
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
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `lookup`, which gives a variable's value by its name
    /// (`from_env` passes the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let data_dir = PathBuf::from(
            vars.var("MODELHUB_DATA_DIR")
                .unwrap_or(DEFAULT_DATA_DIR.into()),
        );
        let bind: SocketAddr =
            vars.parse_var("MODELHUB_BIND", DEFAULT_BIND.parse().expect_default())?;
        let database_url = vars
            .var("MODELHUB_DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/modelhub.db?mode=rwc", data_dir.display()));
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(ConfigError {
                var: "MODELHUB_DATABASE_URL",
                message: "expected sqlite://… or postgres://…".into(),
            });
        }
        let storage = match vars.var("MODELHUB_STORAGE_URL") {
            None => StorageUrl::Local(data_dir.join("blobs")),
            Some(raw) => raw.parse().map_err(|message| ConfigError {
                var: "MODELHUB_STORAGE_URL",
                message,
            })?,
        };
        let public_url = match vars.var("MODELHUB_PUBLIC_URL") {
            None => Url::parse(&format!("http://{bind}")),
            Some(raw) => Url::parse(&raw),
        }
        .map_err(|e| ConfigError {
            var: "MODELHUB_PUBLIC_URL",
            message: e.to_string(),
        })?;
        let jwt_secret = match vars.var("MODELHUB_JWT_SECRET") {
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
        let cors_origins = vars
            .var("MODELHUB_CORS_ORIGINS")
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        let trusted_proxies = vars
            .var("MODELHUB_TRUSTED_PROXIES")
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
        let protected_aliases = match vars.var("MODELHUB_PROTECTED_ALIASES") {
            Some(list) if list.trim() == "none" => Vec::new(),
            list => list
                .as_deref()
                .unwrap_or("production")
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| {
                    AliasName::parse("alias", name).map_err(|e| ConfigError {
                        var: "MODELHUB_PROTECTED_ALIASES",
                        message: e.message(),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let response_cache_ttl = match vars.parse_var("MODELHUB_RESPONSE_CACHE_SECS", 2u64)? {
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
            shutdown_grace: Duration::from_secs(
                vars.parse_var("MODELHUB_SHUTDOWN_GRACE_SECS", 30)?,
            ),
            webhooks: WebhookOptions {
                timeout: Duration::from_secs(vars.parse_var("MODELHUB_WEBHOOK_TIMEOUT_SECS", 10)?),
                retry_base: Duration::from_millis(
                    vars.parse_var("MODELHUB_WEBHOOK_RETRY_BASE_MS", 10_000)?,
                ),
                retry_window: Duration::from_secs(
                    vars.parse_var("MODELHUB_WEBHOOK_RETRY_WINDOW_SECS", 86_400)?,
                ),
                event_retention: Duration::from_secs(
                    vars.parse_var::<u64>("MODELHUB_EVENT_RETENTION_DAYS", 30)?
                        .saturating_mul(86_400),
                ),
                private_targets: vars.parse_var("MODELHUB_WEBHOOK_PRIVATE_TARGETS", false)?,
            },
            inference: InferenceOptions {
                memory_bytes: vars.parse_var("MODELHUB_INFERENCE_MEMORY_BYTES", 1 << 30)?,
                concurrency: vars
                    .parse_var("MODELHUB_INFERENCE_CONCURRENCY", default_concurrency())?
                    .max(1),
                timeout: Duration::from_millis(
                    vars.parse_var("MODELHUB_INFERENCE_TIMEOUT_MS", 10_000)?,
                ),
                max_batch: vars.parse_var("MODELHUB_INFERENCE_MAX_BATCH", 1024)?,
                max_values: vars.parse_var("MODELHUB_INFERENCE_MAX_VALUES", 1 << 20)?,
            },
            database_url: database_url.into(),
            storage,
            s3: S3Options {
                max_single_copy: match vars
                    .parse_var("MODELHUB_S3_MAX_COPY_BYTES", 5 * 1024 * 1024 * 1024)?
                {
                    bytes if bytes >= 5 * 1024 * 1024 => bytes,
                    _ => {
                        return Err(ConfigError {
                            var: "MODELHUB_S3_MAX_COPY_BYTES",
                            message: "at least 5 MiB (S3's smallest part)".into(),
                        });
                    }
                },
                presigned_downloads: vars.parse_var("MODELHUB_S3_PRESIGNED_DOWNLOADS", false)?,
            },
            jwt_secret: jwt_secret.into(),
            max_upload_bytes: vars
                .parse_var("MODELHUB_MAX_UPLOAD_BYTES", 20 * 1024 * 1024 * 1024)?,
            max_files_per_version: vars.parse_var("MODELHUB_MAX_FILES_PER_VERSION", 10_000)?,
            max_version_bytes: vars
                .parse_var("MODELHUB_MAX_VERSION_BYTES", 1024 * 1024 * 1024 * 1024)?,
            draft_ttl: Duration::from_secs(
                3600 * vars.parse_var::<u64>("MODELHUB_DRAFT_TTL_HOURS", 24)?,
            ),
            protected_aliases,
            public_url,
            data_dir,
            cors_origins,
            access_token_ttl: Duration::from_secs(
                vars.parse_var("MODELHUB_ACCESS_TOKEN_TTL_SECS", 24 * 3600)?,
            ),
            download_url_ttl: Duration::from_secs(
                vars.parse_var("MODELHUB_DOWNLOAD_URL_TTL_SECS", 3600)?,
            ),
            max_request_bytes: vars.parse_var("MODELHUB_MAX_REQUEST_BYTES", 2 * 1024 * 1024)?,
            unsafe_uploads: vars.parse_var("MODELHUB_UNSAFE_UPLOADS", UnsafeUploads::Quarantine)?,
            inspection_timeout: Duration::from_secs(
                vars.parse_var("MODELHUB_INSPECTION_TIMEOUT_SECS", 60)?,
            ),
            inspection_threads: match vars.parse_var("MODELHUB_INSPECTION_THREADS", 0usize)? {
                0 => std::thread::available_parallelism().map_or(2, usize::from),
                n => n,
            },
            inspection_memory: vars.parse_var(
                "MODELHUB_INSPECTION_MEMORY_BYTES",
                modelhub_inspect::DEFAULT_MEMORY,
            )?,
            pickle_rules: modelhub_inspect::Rules::new(
                &vars
                    .var("MODELHUB_PICKLE_ALLOW")
                    .unwrap_or_default()
                    .split(',')
                    .collect::<Vec<_>>(),
            )
            .map_err(|message| ConfigError {
                var: "MODELHUB_PICKLE_ALLOW",
                message,
            })?,
            redis_url: vars.var("MODELHUB_REDIS_URL").map(Into::into),
            redis_prefix: vars
                .var("MODELHUB_REDIS_PREFIX")
                .unwrap_or_else(|| "modelhub".into()),
            rate_limits: {
                let defaults = Rules::default();
                Rules {
                    login: vars.parse_var("MODELHUB_LIMIT_LOGIN", defaults.login)?,
                    register: vars.parse_var("MODELHUB_LIMIT_REGISTER", defaults.register)?,
                    upload: vars.parse_var("MODELHUB_LIMIT_UPLOAD", defaults.upload)?,
                    create_token: vars
                        .parse_var("MODELHUB_LIMIT_API_TOKEN", defaults.create_token)?,
                    predict: vars.parse_var("MODELHUB_LIMIT_PREDICT", defaults.predict)?,
                }
            },
        })
    }
}

/// Half the cores, at least one: inference leaves the other half to the API.
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
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

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, time::Duration};

    use crate::domain::alias::AliasName;

    use secrecy::ExposeSecret;

    use super::{Config, ConfigError, StorageUrl, UnsafeUploads};
    use crate::services::rate_limit::{Rule, Rules};

    /// A secret long enough to be accepted.
    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    fn refused(vars: &[(&str, &str)]) -> ConfigError {
        match from(vars) {
            Ok(config) => panic!("{vars:?} was accepted: {config:?}"),
            Err(e) => e,
        }
    }

    /// Every default, with nothing set but the JWT secret (without it the secret file would be
    /// made in `./data`; `the_jwt_secret_is_generated_once_into_the_data_dir` covers that).
    #[test]
    fn an_empty_environment_gets_every_default() {
        let config = from(&[("MODELHUB_JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            config.database_url.expose_secret(),
            "sqlite://./data/modelhub.db?mode=rwc"
        );
        assert_eq!(config.storage, StorageUrl::Local("./data/blobs".into()));
        assert_eq!(config.jwt_secret.expose_secret(), SECRET);
        assert_eq!(config.max_upload_bytes, 20 * 1024 * 1024 * 1024);
        assert_eq!(config.max_files_per_version, 10_000);
        assert_eq!(config.max_version_bytes, 1024 * 1024 * 1024 * 1024);
        assert_eq!(config.draft_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(
            config.protected_aliases,
            [AliasName::parse("a", "production").unwrap()]
        );
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.data_dir, std::path::PathBuf::from("./data"));
        assert_eq!(config.cors_origins, vec!["*".to_owned()]);
        assert_eq!(config.access_token_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(config.download_url_ttl, Duration::from_secs(3600));
        assert_eq!(config.max_request_bytes, 2 * 1024 * 1024);
        assert_eq!(config.unsafe_uploads, UnsafeUploads::Quarantine);
        assert_eq!(config.inspection_timeout, Duration::from_secs(60));
        assert_eq!(
            config.inspection_threads,
            std::thread::available_parallelism().map_or(2, usize::from)
        );
        assert_eq!(config.inspection_memory, modelhub_inspect::DEFAULT_MEMORY);
        assert_eq!(config.pickle_rules, modelhub_inspect::Rules::default());
        assert!(config.redis_url.is_none());
        let rule = |burst, secs| Rule {
            burst,
            period: Duration::from_secs(secs),
        };
        let Rules {
            login,
            register,
            upload,
            create_token,
            predict,
        } = config.rate_limits;
        assert_eq!(login, rule(10, 60));
        assert_eq!(register, rule(5, 3600));
        assert_eq!(upload, rule(120, 3600));
        assert_eq!(create_token, rule(20, 3600));
        assert_eq!(predict, rule(600, 60));
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.response_cache_ttl, Duration::from_secs(2));
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.webhooks.timeout, Duration::from_secs(10));
        assert_eq!(config.webhooks.retry_base, Duration::from_secs(10));
        assert_eq!(config.webhooks.retry_window, Duration::from_secs(86_400));
        assert_eq!(config.inference.memory_bytes, 1 << 30);
        assert!(config.inference.concurrency >= 1);
        assert_eq!(config.inference.timeout, Duration::from_secs(10));
        assert_eq!(config.inference.max_batch, 1024);
        assert!(!config.webhooks.private_targets);
    }

    /// A blank value counts as unset; a value is trimmed before it is parsed.
    #[test]
    fn blank_values_are_unset_and_values_are_trimmed() {
        let config = from(&[
            ("MODELHUB_JWT_SECRET", SECRET),
            ("MODELHUB_BIND", "   "),
            ("MODELHUB_MAX_UPLOAD_BYTES", " 1024 "),
            ("MODELHUB_UNSAFE_UPLOADS", "REJECT"),
            ("MODELHUB_DATA_DIR", "/srv/hub"),
            (
                "MODELHUB_CORS_ORIGINS",
                " https://a.example , ,https://b.example",
            ),
            ("MODELHUB_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
            ("MODELHUB_LIMIT_UPLOAD", "3/60"),
            ("MODELHUB_INSPECTION_THREADS", "3"),
            ("MODELHUB_PROTECTED_ALIASES", " production, champion ,"),
        ])
        .unwrap();
        assert_eq!(
            config.protected_aliases,
            [
                AliasName::parse("a", "production").unwrap(),
                AliasName::parse("a", "champion").unwrap()
            ]
        );
        let none = from(&[
            ("MODELHUB_JWT_SECRET", SECRET),
            ("MODELHUB_PROTECTED_ALIASES", "none"),
        ])
        .unwrap();
        assert!(none.protected_aliases.is_empty());
        assert_eq!(config.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.max_upload_bytes, 1024);
        assert_eq!(config.unsafe_uploads, UnsafeUploads::Reject);
        assert_eq!(
            config.database_url.expose_secret(),
            "sqlite:///srv/hub/modelhub.db?mode=rwc"
        );
        assert_eq!(config.storage, StorageUrl::Local("/srv/hub/blobs".into()));
        assert_eq!(
            config.cors_origins,
            vec![
                "https://a.example".to_owned(),
                "https://b.example".to_owned()
            ]
        );
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.1/32".parse().unwrap()
            ]
        );
        assert_eq!(
            config.rate_limits.upload,
            Rule {
                burst: 3,
                period: Duration::from_secs(60)
            }
        );
        assert_eq!(config.inspection_threads, 3);
    }

    #[test]
    fn bad_values_are_refused_naming_their_variable() {
        let cases = [
            ("MODELHUB_BIND", "localhost"),
            ("MODELHUB_DATABASE_URL", "mysql://db/hub"),
            ("MODELHUB_STORAGE_URL", "ftp://files/hub"),
            ("MODELHUB_STORAGE_URL", "file://"),
            ("MODELHUB_STORAGE_URL", "s3:///prefix"),
            ("MODELHUB_S3_MAX_COPY_BYTES", "1048576"),
            ("MODELHUB_S3_PRESIGNED_DOWNLOADS", "yes"),
            ("MODELHUB_PUBLIC_URL", "not a url"),
            ("MODELHUB_PROTECTED_ALIASES", "production,Main"),
            ("MODELHUB_JWT_SECRET", "too-short"),
            ("MODELHUB_MAX_UPLOAD_BYTES", "20GB"),
            ("MODELHUB_MAX_UPLOAD_BYTES", "-1"),
            ("MODELHUB_ACCESS_TOKEN_TTL_SECS", "1h"),
            ("MODELHUB_DOWNLOAD_URL_TTL_SECS", "soon"),
            ("MODELHUB_MAX_REQUEST_BYTES", "2MiB"),
            ("MODELHUB_UNSAFE_UPLOADS", "sometimes"),
            ("MODELHUB_INSPECTION_TIMEOUT_SECS", "1.5"),
            ("MODELHUB_INSPECTION_THREADS", "many"),
            ("MODELHUB_INSPECTION_MEMORY_BYTES", "lots"),
            ("MODELHUB_PICKLE_ALLOW", "os.system"),
            ("MODELHUB_PICKLE_ALLOW", "not a pattern"),
            ("MODELHUB_LIMIT_LOGIN", "10"),
            ("MODELHUB_LIMIT_REGISTER", "0/60"),
            ("MODELHUB_LIMIT_UPLOAD", "5/0"),
            ("MODELHUB_LIMIT_API_TOKEN", "x/60"),
            ("MODELHUB_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("MODELHUB_RESPONSE_CACHE_SECS", "86401"),
            ("MODELHUB_RESPONSE_CACHE_SECS", "two"),
            ("MODELHUB_SHUTDOWN_GRACE_SECS", "forever"),
        ];
        for (var, value) in cases {
            let mut vars = vec![(var, value)];
            if var != "MODELHUB_JWT_SECRET" {
                vars.push(("MODELHUB_JWT_SECRET", SECRET));
            }
            let error = refused(&vars);
            assert_eq!(error.var, var, "{var}={value}: {error}");
            assert!(
                error.to_string().starts_with(&format!("{var}: ")),
                "{var}={value}: {error}"
            );
        }
        // The largest cache time is allowed.
        let config = from(&[
            ("MODELHUB_JWT_SECRET", SECRET),
            ("MODELHUB_RESPONSE_CACHE_SECS", "86400"),
        ])
        .unwrap();
        assert_eq!(config.response_cache_ttl, Duration::from_secs(86_400));
    }

    #[cfg(unix)]
    #[test]
    fn the_jwt_secret_is_generated_once_into_the_data_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A data directory that does not exist yet is made.
        let data_dir = dir.path().join("state");
        let data = data_dir.to_str().unwrap().to_owned();
        let vars = [("MODELHUB_DATA_DIR", data.as_str())];
        let first = from(&vars).unwrap();
        let path = data_dir.join("jwt-secret");
        let stored = std::fs::read_to_string(&path).unwrap();
        let secret = first.jwt_secret.expose_secret();
        assert_eq!(stored, secret, "the secret in use is the one written");
        assert_eq!(secret.len(), 128, "64 random bytes in hex: {secret}");
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner may read it: {mode:o}");

        // The next start reuses it, and leaves the file alone.
        let second = from(&vars).unwrap();
        assert_eq!(second.jwt_secret.expose_secret(), secret);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), stored);

        // Another data directory gets a secret of its own.
        let other_dir = dir.path().join("other");
        let other = from(&[("MODELHUB_DATA_DIR", other_dir.to_str().unwrap())]).unwrap();
        assert_ne!(other.jwt_secret.expose_secret(), secret);

        // A secret written by hand is used trimmed.
        let hand = format!("  {SECRET}\n");
        std::fs::write(&path, &hand).unwrap();
        assert_eq!(from(&vars).unwrap().jwt_secret.expose_secret(), SECRET);

        // A file too short to be a secret fails start-up (it is not replaced).
        std::fs::write(&path, "short\n").unwrap();
        let error = refused(&vars);
        assert_eq!(error.var, "MODELHUB_JWT_SECRET");
        assert!(error.message.contains("jwt-secret"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n");

        // MODELHUB_JWT_SECRET wins over the file, and nothing is written.
        let fresh_dir = dir.path().join("fresh");
        let fresh = fresh_dir.to_str().unwrap().to_owned();
        let given = from(&[
            ("MODELHUB_DATA_DIR", fresh.as_str()),
            ("MODELHUB_JWT_SECRET", SECRET),
        ])
        .unwrap();
        assert_eq!(given.jwt_secret.expose_secret(), SECRET);
        assert!(!fresh_dir.join("jwt-secret").exists());
    }

    #[cfg(unix)]
    #[test]
    fn an_unusable_data_dir_fails_naming_the_jwt_secret() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the data directory should be: the secret cannot be created in it.
        let blocked = dir.path().join("a-file");
        std::fs::write(&blocked, "not a directory").unwrap();
        let error = refused(&[("MODELHUB_DATA_DIR", blocked.to_str().unwrap())]);
        assert_eq!(error.var, "MODELHUB_JWT_SECRET");
        assert!(
            error.message.contains("could not be read or created"),
            "{error}"
        );
    }
}
