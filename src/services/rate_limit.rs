//! Rate limits per action, as token buckets in the spirit of crates.io: each key (an IP
//! address, an account, a user) has `burst` tokens that refill at `burst` per `period`. The
//! buckets live in memory, or in Redis when `MODELHUB_REDIS_URL` is set so that every replica
//! draws on one budget.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{Script, aio::ConnectionManager};

use crate::error::{AppError, AppResult};

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Login attempts, per client address (IPv6 by its /64).
    LoginByIp,
    /// Login attempts, per account name and client address.
    LoginByAccount,
    /// Login attempts, per account name from anywhere (ten times the login rule).
    LoginByAccountAnywhere,
    /// Registrations, per client IP.
    Register,
    /// Uploads, per user.
    Upload,
    /// API token creation, per user.
    CreateToken,
    /// Model runs (`predict`), per caller.
    Predict,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::LoginByIp => "login-ip",
            Self::LoginByAccount => "login-account",
            Self::LoginByAccountAnywhere => "login-account-anywhere",
            Self::Register => "register",
            Self::Upload => "upload",
            Self::CreateToken => "api-token",
            Self::Predict => "predict",
        }
    }
}

/// `burst` requests, refilled at `burst` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub burst: u32,
    pub period: Duration,
}

impl std::str::FromStr for Rule {
    type Err = String;

    /// Parses `COUNT/SECONDS`, e.g. `10/60`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, secs) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not COUNT/SECONDS"))?;
        let burst: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` is not a count"))?;
        let secs: u64 = secs
            .trim()
            .parse()
            .map_err(|_| format!("`{secs}` is not a number of seconds"))?;
        if burst == 0 || secs == 0 {
            return Err("both numbers must be positive".into());
        }
        Ok(Self {
            burst,
            period: Duration::from_secs(secs),
        })
    }
}

/// The rules for every action.
#[derive(Debug, Clone)]
pub struct Rules {
    pub login: Rule,
    pub register: Rule,
    pub upload: Rule,
    pub create_token: Rule,
    pub predict: Rule,
}

impl Default for Rules {
    fn default() -> Self {
        let rule = |burst, secs| Rule {
            burst,
            period: Duration::from_secs(secs),
        };
        Self {
            login: rule(10, 60),
            register: rule(5, 3600),
            upload: rule(120, 3600),
            create_token: rule(20, 3600),
            predict: rule(600, 60),
        }
    }
}

impl Rules {
    fn rule(&self, action: Action) -> Rule {
        match action {
            Action::LoginByIp | Action::LoginByAccount => self.login,
            Action::LoginByAccountAnywhere => Rule {
                burst: self.login.burst.saturating_mul(10),
                ..self.login
            },
            Action::Register => self.register,
            Action::Upload => self.upload,
            Action::CreateToken => self.create_token,
            Action::Predict => self.predict,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

enum Store {
    Memory(Mutex<HashMap<String, Bucket>>),
    Redis {
        connection: ConnectionManager,
        prefix: String,
    },
}

/// The limiter shared by all requests.
pub struct RateLimiter {
    rules: Rules,
    store: Store,
}

/// Most in-memory buckets kept: past it, full ones are forgotten, then the fullest (whose
/// loss gives the least away) until a tenth is free.
const MAX_BUCKETS: usize = 100_000;

/// The rate-limit key of a client address: IPv4 whole, IPv6 by its /64 (one subscriber's
/// Who a caller is, for counting and limiting: their account, or else their client address.
pub fn caller_key(user: Option<uuid::Uuid>, client: Option<IpAddr>) -> String {
    match (user, client) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(ip)) => format!("ip:{}", address_key(ip)),
        (None, None) => "ip:unknown".to_owned(),
    }
}

/// network, which hands out addresses by the billion).
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => v4.to_string(),
    }
}

/// Takes ARGV[3] tokens at once from the bucket at KEYS[1] (ARGV: burst, period in ms,
/// cost); returns 0 when allowed, else the milliseconds until enough are back (a cost over the
/// burst never is: one period). Uses the server's clock, so replicas agree.
const REDIS_BUCKET: &str = r"
local burst = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * burst / period)
local wait = 0
if cost > burst then
  wait = period
elseif tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) * period / burst)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], period)
return wait
";

impl RateLimiter {
    /// A limiter keeping its buckets in this process.
    pub fn in_memory(rules: Rules) -> Self {
        Self {
            rules,
            store: Store::Memory(Mutex::new(HashMap::new())),
        }
    }

    /// A limiter keeping its buckets in Redis under `prefix`.
    pub async fn redis(rules: Rules, url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let mut connection = ConnectionManager::new(client).await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(Self {
            rules,
            store: Store::Redis {
                connection,
                prefix: prefix.to_owned(),
            },
        })
    }

    /// Takes a token for `action` by `key`; `RATE_LIMITED` with the wait when there is none.
    pub async fn check(&self, action: Action, key: &str) -> AppResult<()> {
        self.check_many(action, key, 1).await
    }

    /// Takes `cost` tokens at once, or none: `RATE_LIMITED` with the wait when there are not
    /// enough (a cost over the burst is never allowed).
    pub async fn check_many(&self, action: Action, key: &str, cost: u32) -> AppResult<()> {
        let rule = self.rules.rule(action);
        let wait = match &self.store {
            Store::Memory(buckets) => {
                take_in_memory(buckets, rule, &format!("{}:{key}", action.name()), cost)
            }
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let redis_key = format!("{prefix}:{}:{key}", action.name());
                let wait_ms: u64 = Script::new(REDIS_BUCKET)
                    .key(redis_key)
                    .arg(rule.burst)
                    .arg(rule.period.as_millis() as u64)
                    .arg(cost)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(AppError::internal)?;
                Duration::from_millis(wait_ms)
            }
        };
        if wait.is_zero() {
            return Ok(());
        }
        tracing::warn!(action = action.name(), "rate limited");
        metrics::counter!("modelhub_rate_limited_total", "action" => action.name()).increment(1);
        Err(AppError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        })
    }

    /// Whether the limiter is backed by Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis { .. })
    }
}

fn take_in_memory(
    buckets: &Mutex<HashMap<String, Bucket>>,
    rule: Rule,
    key: &str,
    cost: u32,
) -> Duration {
    let now = Instant::now();
    // A thread that panicked while holding the lock left the buckets as they were: keep
    // limiting with them rather than stop limiting.
    let mut buckets = buckets.lock().unwrap_or_else(|poisoned| {
        tracing::error!("the rate-limit buckets' lock was poisoned; limiting goes on");
        poisoned.into_inner()
    });
    let burst = f64::from(rule.burst);
    let cost = f64::from(cost);
    if cost > burst {
        return rule.period;
    }
    let per_token = rule.period.as_secs_f64() / burst;
    if buckets.len() >= MAX_BUCKETS {
        let level = |b: &Bucket| b.tokens + now.duration_since(b.at).as_secs_f64() / per_token;
        buckets.retain(|_, b| level(b) < burst);
        if buckets.len() >= MAX_BUCKETS {
            let mut levels: Vec<f64> = buckets.values().map(level).collect();
            let keep = MAX_BUCKETS * 9 / 10;
            levels.select_nth_unstable_by(keep, |a, b| a.total_cmp(b));
            let cut = levels[keep];
            buckets.retain(|_, b| level(b) < cut);
        }
    }
    let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    bucket.tokens =
        (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() / per_token).min(burst);
    bucket.at = now;
    if bucket.tokens >= cost {
        bucket.tokens -= cost;
        Duration::ZERO
    } else {
        Duration::from_secs_f64((cost - bucket.tokens) * per_token)
    }
}
