//! Configuration: the shipped TOML defaults, then a config file, then
//! environment variables, then command-line flags. Everything is validated
//! before the daemon does anything, with errors that name the key.

use crate::api::{Priority, Strategy};
use crate::log::{self, LogFormat};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The shipped defaults (config/gtp5g-operator.toml): the one place they live.
pub const DEFAULTS_TOML: &str = include_str!("../config/gtp5g-operator.toml");
pub const INSTALLED_PATH: &str = "/etc/gtp5g-operator/config.toml";
pub const ENV_PREFIX: &str = "GTP5G_OPERATOR";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub trace: TraceConfig,
    pub targets: TargetConfig,
    pub api: ApiConfig,
    pub strategy: StrategyConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub state: StateConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    #[serde(default)]
    pub pipe: Option<PathBuf>,
    /// The tracing instance read when `pipe` is unset; "" for the global
    /// trace_pipe.
    pub instance: String,
    /// Its ring buffer per CPU, set when it is made.
    pub instance_buffer_kb: u64,
    pub mount_tracefs: bool,
    pub max_line_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub names: Vec<String>,
    /// Executables whose processes may be boosted: absolute paths, or
    /// directories ending in `/`, matched against `/proc/PID/exe`. Empty:
    /// any executable.
    pub exe_paths: Vec<PathBuf>,
    /// Users whose processes may be boosted (real and effective uid both
    /// listed). Empty: any user.
    pub uids: Vec<u32>,
    pub threads: bool,
    pub check_proc: bool,
    /// With `check_proc = false`: seconds an entry lives after the last
    /// trace line that named it.
    pub ttl_s: u64,
    /// Watch tracked processes' exits with pidfds (else the /proc poll).
    pub pidfd: bool,
    pub max_processes: usize,
    pub max_threads: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub endpoint: String,
    pub public_key_path: PathBuf,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub timeout_ms: u64,
    pub token_refresh_ahead_s: u64,
    pub retry_max_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// `true` for the v0.1 API; an integer level 0-20 for the local API in
    /// its `current` schema (a v0.1 server refuses integers).
    pub priority: Priority,
    pub execution_time_ns: u64,
    pub interval_s: u64,
    pub debounce_ms: u64,
    pub on_stop: OnStop,
    #[serde(default, rename = "static")]
    pub static_strategies: Vec<Strategy>,
}

/// What the daemon leaves at the API when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStop {
    /// The boosts stay: a restart restores the tracked set from the state
    /// file, so running targets are never unboosted in between.
    Keep,
    /// Only the static strategies stay (decommissioning).
    Clear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub stats_interval_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    pub max_post_failure_s: u64,
    pub max_source_down_s: u64,
    /// The tracer's heartbeats missing this long: /healthz fails.
    pub max_tracer_silence_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Holds tracked.json (and the local API's key pair).
    pub dir: PathBuf,
}

/// The tracer prints a busy thread again once per `--refresh-ms` (1 s by
/// default): an entry must outlive several missed periods.
pub const MIN_TTL_S: u64 = 5;

/// Bounds on the instance's buffer per CPU: below a few pages a burst is
/// lost at once; above 256 MiB a many-CPU host runs out of memory.
pub const MIN_BUFFER_KB: u64 = 16;
pub const MAX_BUFFER_KB: u64 = 256 * 1024;

/// The longest period or timeout in seconds a key may hold: a week is
/// already no period at all for a list the API keeps in memory, and far
/// below what overflows a clock when added to it.
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

/// Keys whose environment variable is a comma-separated list; items are
/// trimmed, so `nr-gnb, nr-ue` is two names.
const ENV_LISTS: [(&str, &str); 3] = [
    ("GTP5G_OPERATOR__TARGETS__NAMES", "targets.names"),
    ("GTP5G_OPERATOR__TARGETS__EXE_PATHS", "targets.exe_paths"),
    ("GTP5G_OPERATOR__TARGETS__UIDS", "targets.uids"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {error}")]
    File { path: PathBuf, error: Box<config::ConfigError> },
    // Not a #[source]: the text is already in the message, once.
    #[error("configuration: {0}")]
    Load(Box<config::ConfigError>),
    #[error("config key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl From<config::ConfigError> for ConfigError {
    fn from(e: config::ConfigError) -> Self {
        ConfigError::Load(Box::new(e))
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// Where a configuration comes from, besides the shipped defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An explicit file (must exist); else INSTALLED_PATH if present.
    pub file: Option<PathBuf>,
    /// Environment variables, normally `std::env::vars()`.
    pub env: Vec<(String, String)>,
    /// Command-line overrides as (key, value), e.g. ("trace.pipe", "/tmp/p").
    pub overrides: Vec<(&'static str, String)>,
}

impl Sources {
    pub fn from_process_env(file: Option<PathBuf>) -> Self {
        Sources { file, env: std::env::vars().collect(), overrides: Vec::new() }
    }

    /// The configuration file read: the explicit one, else the installed
    /// one if present.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.file.clone().or_else(|| Some(PathBuf::from(INSTALLED_PATH)).filter(|p| p.exists()))
    }
}

/// What the configuration will be used for: only a daemon needs the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Daemon,
    Replay,
    /// `trace-instance create|remove`: only trace.* matters.
    Setup,
}

impl Config {
    pub fn load(sources: &Sources, purpose: Purpose) -> Result<Config, ConfigError> {
        let cfg = Self::merge(sources)?;
        cfg.validate(purpose)?;
        Ok(cfg)
    }

    fn merge(sources: &Sources) -> Result<Config, ConfigError> {
        use config::{Environment, File, FileFormat};
        let mut b =
            config::Config::builder().add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml));
        if let Some(path) = &sources.config_file() {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.clone(),
                error: Box::new(config::ConfigError::Message(e.to_string())),
            })?;
            // Parse the file alone first so that its errors name the file.
            config::Config::builder()
                .add_source(File::from_str(&text, FileFormat::Toml))
                .build()
                .map_err(|error| ConfigError::File { path: path.clone(), error: Box::new(error) })?;
            b = b.add_source(File::from_str(&text, FileFormat::Toml));
        }
        let is_list = |k: &str| ENV_LISTS.iter().any(|(var, _)| *var == k);
        let env: config::Map<String, String> =
            sources.env.iter().filter(|(k, _)| !is_list(k)).cloned().collect();
        b = b.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        for (var, key) in ENV_LISTS {
            if let Some((_, v)) = sources.env.iter().find(|(k, _)| k == var) {
                b = b.set_override(key, env_list(v))?;
            }
        }
        for (var, key) in
            [("API_ENDPOINT", "api.endpoint"), ("PUBLIC_KEY_PATH", "api.public_key_path")]
        {
            if let Some((_, v)) = sources.env.iter().find(|(k, _)| k == var) {
                b = b.set_override(key, v.clone())?;
            }
        }
        for (key, value) in &sources.overrides {
            b = b.set_override(*key, value.clone())?;
        }
        Ok(b.build()?.try_deserialize()?)
    }

    pub fn validate(&self, purpose: Purpose) -> Result<(), ConfigError> {
        self.validate_targets()?;
        self.validate_numbers()?;
        log::filter(&self.log.level).map_err(|e| invalid("log.level", e))?;
        if purpose == Purpose::Daemon {
            self.validate_api()?;
        }
        Ok(())
    }

    fn validate_targets(&self) -> Result<(), ConfigError> {
        for p in &self.targets.exe_paths {
            exe_path_error(p)
                .map_err(|reason| invalid("targets.exe_paths", format!("{p:?}: {reason}")))?;
        }
        if self.targets.names.is_empty() {
            return Err(invalid("targets.names", "at least one task name is needed"));
        }
        for n in &self.targets.names {
            if n.is_empty() || n.len() > 15 {
                return Err(invalid(
                    "targets.names",
                    format!("{n:?}: a task name is 1 to 15 bytes (the kernel's comm)"),
                ));
            }
        }
        Ok(())
    }

    fn validate_numbers(&self) -> Result<(), ConfigError> {
        let positive = [
            ("strategy.interval_s", self.strategy.interval_s),
            ("strategy.execution_time_ns", self.strategy.execution_time_ns),
            ("api.timeout_ms", self.api.timeout_ms),
            ("api.retry_max_s", self.api.retry_max_s),
            ("log.stats_interval_s", self.log.stats_interval_s),
            ("targets.max_processes", self.targets.max_processes as u64),
            ("targets.max_threads", self.targets.max_threads as u64),
            ("metrics.max_post_failure_s", self.metrics.max_post_failure_s),
            ("metrics.max_source_down_s", self.metrics.max_source_down_s),
            ("metrics.max_tracer_silence_s", self.metrics.max_tracer_silence_s),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(key, "must be greater than zero"));
        }
        let seconds = [
            ("strategy.interval_s", self.strategy.interval_s),
            ("api.retry_max_s", self.api.retry_max_s),
            ("api.token_refresh_ahead_s", self.api.token_refresh_ahead_s),
            ("log.stats_interval_s", self.log.stats_interval_s),
            ("targets.ttl_s", self.targets.ttl_s),
            ("metrics.max_post_failure_s", self.metrics.max_post_failure_s),
            ("metrics.max_source_down_s", self.metrics.max_source_down_s),
            ("api.timeout_ms", self.api.timeout_ms / 1000),
            ("strategy.debounce_ms", self.strategy.debounce_ms / 1000),
        ];
        if let Some((key, _)) = seconds.iter().find(|(_, v)| *v > MAX_SECONDS) {
            return Err(invalid(key, format!("must be at most {MAX_SECONDS} s (a week)")));
        }
        if self.targets.ttl_s < MIN_TTL_S {
            return Err(invalid(
                "targets.ttl_s",
                format!(
                    "must be at least {MIN_TTL_S} s: several of the tracer's --refresh-ms periods \
                     (1 s by default), or a quiet but live target is dropped between lines"
                ),
            ));
        }
        if self.trace.max_line_bytes < 256 {
            return Err(invalid("trace.max_line_bytes", "must be at least 256"));
        }
        if let Some(reason) = crate::source::instance::name_error(&self.trace.instance) {
            return Err(invalid("trace.instance", reason));
        }
        if !(MIN_BUFFER_KB..=MAX_BUFFER_KB).contains(&self.trace.instance_buffer_kb) {
            return Err(invalid(
                "trace.instance_buffer_kb",
                format!("must be {MIN_BUFFER_KB} to {MAX_BUFFER_KB} (KiB per CPU)"),
            ));
        }
        if let Some(reason) = self.strategy.priority.level_error() {
            return Err(invalid("strategy.priority", reason));
        }
        if let Some(reason) =
            self.strategy.static_strategies.iter().find_map(|s| s.priority.level_error())
        {
            return Err(invalid("strategy.static", format!("priority {reason}")));
        }
        if self.strategy.static_strategies.iter().any(|s| s.pid == 0 && s.selectors.is_empty()) {
            return Err(invalid(
                "strategy.static",
                "each static strategy needs a pid or selectors",
            ));
        }
        Ok(())
    }

    fn validate_api(&self) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.api.endpoint)
            .map_err(|e| invalid("api.endpoint", format!("{:?}: {e}", self.api.endpoint)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid(
                "api.endpoint",
                format!("{:?}: need an http:// or https:// URL with a host", self.api.endpoint),
            ));
        }
        crate::public_key::read_pem_file(&self.api.public_key_path)
            .map_err(|e| invalid("api.public_key_path", e))?;
        if let Some(ca) = &self.api.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| invalid("api.ca_file", format!("{}: {e}", ca.display())))?;
            reqwest::Certificate::from_pem_bundle(&pem).ok().filter(|c| !c.is_empty()).ok_or_else(
                || invalid("api.ca_file", format!("{}: no PEM certificate in it", ca.display())),
            )?;
        }
        Ok(())
    }
}

/// A list from one environment variable: comma-separated, each item
/// trimmed, empty items (a trailing comma) left out.
fn env_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Why `p` can never equal what `/proc/PID/exe` reads, if it cannot: the
/// kernel gives an absolute path without `.`, `..` or empty components.
fn exe_path_error(p: &std::path::Path) -> Result<(), &'static str> {
    let text = p.to_str().ok_or("not UTF-8")?;
    if !text.starts_with('/') {
        return Err("must be an absolute path (a directory ends in `/`)");
    }
    let inner = text.strip_suffix('/').unwrap_or(text);
    if inner.split('/').skip(1).any(|c| matches!(c, "" | "." | "..")) {
        return Err("must be a plain path, without `//`, `.` or `..`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), include_str!("../tests/fixtures/other_public_key.pem")).unwrap();
        f
    }

    fn with(env: &[(&str, &str)], toml: Option<&str>) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = toml.map(|t| {
            let p = dir.path().join("c.toml");
            std::fs::write(&p, t).unwrap();
            p
        });
        let sources = Sources {
            file,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            overrides: vec![],
        };
        Config::load(&sources, Purpose::Daemon)
    }

    fn key_env(k: &tempfile::NamedTempFile) -> (&'static str, String) {
        ("PUBLIC_KEY_PATH", k.path().display().to_string())
    }

    #[test]
    fn shipped_defaults_are_step11_defaults() {
        let cfg = Config::load(&Sources::default(), Purpose::Replay).unwrap();
        assert_eq!(cfg.api.endpoint, "http://localhost:8081");
        assert_eq!(cfg.strategy.interval_s, 10);
        assert_eq!(cfg.strategy.execution_time_ns, 20_000_000);
        assert_eq!(cfg.strategy.priority, Priority::Flag(true));
        assert_eq!(cfg.api.token_refresh_ahead_s, 300);
        assert_eq!(cfg.targets.names, vec!["nr-gnb", "nr-ue"]);
        assert_eq!(cfg.targets.ttl_s, 60);
        assert!(cfg.targets.pidfd);
        assert_eq!(cfg.strategy.on_stop, OnStop::Keep);
        assert_eq!(cfg.state.dir, PathBuf::from("/var/lib/gtp5g-operator"));
    }

    #[test]
    fn state_dir_on_stop_and_ttl_from_the_environment() {
        let k = key_file();
        let (kv, kp) = key_env(&k);
        let cfg = with(
            &[
                (kv, &kp),
                ("GTP5G_OPERATOR__STATE__DIR", "/tmp/op-state"),
                ("GTP5G_OPERATOR__STRATEGY__ON_STOP", "clear"),
                ("GTP5G_OPERATOR__TARGETS__TTL_S", "30"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(cfg.state.dir, PathBuf::from("/tmp/op-state"));
        assert_eq!(cfg.strategy.on_stop, OnStop::Clear);
        assert_eq!(cfg.targets.ttl_s, 30);
        assert!(error_of(&[], Some("[targets]\nttl_s = 2\n")).contains("targets.ttl_s"));
        assert!(error_of(&[], Some("[strategy]\non_stop = \"wipe\"\n")).contains("wipe"));
    }

    #[test]
    fn env_layers_and_step11_variables() {
        let k = key_file();
        let (kv, kp) = key_env(&k);
        let cfg = with(
            &[
                (kv, &kp),
                ("API_ENDPOINT", "http://gthulhu-api:80"),
                ("GTP5G_OPERATOR__STRATEGY__INTERVAL_S", "3"),
                ("GTP5G_OPERATOR__TARGETS__NAMES", "a,b"),
            ],
            Some("[strategy]\ninterval_s = 7\ndebounce_ms = 1\n"),
        )
        .unwrap();
        assert_eq!(cfg.api.endpoint, "http://gthulhu-api:80");
        assert_eq!(cfg.strategy.interval_s, 3, "env beats file");
        assert_eq!(cfg.strategy.debounce_ms, 1, "file beats defaults");
        assert_eq!(cfg.targets.names, vec!["a", "b"]);
    }

    /// `with`, a valid key file added unless `env` names one.
    fn with_key(env: &[(&str, &str)], toml: Option<&str>) -> Result<Config, ConfigError> {
        let k = key_file();
        let (kv, kp) = key_env(&k);
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "PUBLIC_KEY_PATH") {
            env.push((kv, &kp));
        }
        with(&env, toml)
    }

    fn error_of(env: &[(&str, &str)], toml: Option<&str>) -> String {
        with_key(env, toml).unwrap_err().to_string()
    }

    #[test]
    fn invalid_values_name_the_key() {
        assert!(error_of(&[("API_ENDPOINT", "not a url")], None).contains("api.endpoint"));
        assert!(error_of(&[("API_ENDPOINT", "ftp://x")], None).contains("api.endpoint"));
        assert!(error_of(&[("PUBLIC_KEY_PATH", "/nonexistent.pem")], None)
            .contains("api.public_key_path"));
        assert!(error_of(&[], Some("[strategy]\ninterval_s = 0\n")).contains("strategy.interval_s"));
        let neg = error_of(&[], Some("[strategy]\ninterval_s = -5\n"));
        assert!(neg.contains("interval_s"), "{neg}");
        let unknown = error_of(&[], Some("[api]\nendpont = \"http://x\"\n"));
        assert!(unknown.contains("endpont"), "{unknown}");
        let unknown_section = error_of(&[], Some("[apii]\nx = 1\n"));
        assert!(unknown_section.contains("apii"), "{unknown_section}");
        assert!(error_of(&[], Some("[targets]\nnames = [\"a-very-long-name-x\"]\n"))
            .contains("targets.names"));
        assert!(error_of(&[], Some("[log]\nformat = \"xml\"\n")).contains("xml"));
        assert!(error_of(&[], Some("[log]\nlevel = \"x=bogus\"\n")).contains("log.level"));
        assert!(error_of(&[], Some("not toml [")).contains("c.toml"));
    }

    #[test]
    fn the_trace_instance_is_named_and_bounded() {
        let cfg = Config::load(&Sources::default(), Purpose::Setup).unwrap();
        assert_eq!(
            (cfg.trace.instance.as_str(), cfg.trace.instance_buffer_kb),
            ("gtp5g-operator", 1024)
        );
        let k = key_file();
        let (kv, kp) = key_env(&k);
        let global = with(&[(kv, &kp), ("GTP5G_OPERATOR__TRACE__INSTANCE", "")], None).unwrap();
        assert_eq!(global.trace.instance, "", "\"\" is the global trace_pipe");
        for bad in ["[trace]\ninstance = \"../up\"\n", "[trace]\ninstance = \".x\"\n"] {
            assert!(error_of(&[], Some(bad)).contains("trace.instance"), "{bad}");
        }
        for kb in [0, 8, 262_145] {
            let err = error_of(&[], Some(&format!("[trace]\ninstance_buffer_kb = {kb}\n")));
            assert!(err.contains("trace.instance_buffer_kb"), "{kb}: {err}");
        }
    }

    #[test]
    fn priority_is_a_boolean_or_a_level_0_to_20() {
        let k = key_file();
        let (kv, kp) = key_env(&k);
        let priority = |toml: &str| with(&[(kv, &kp)], Some(toml)).map(|c| c.strategy.priority);
        assert_eq!(priority("[strategy]\npriority = false\n").unwrap(), Priority::Flag(false));
        assert_eq!(priority("[strategy]\npriority = 0\n").unwrap(), Priority::Level(0));
        assert_eq!(priority("[strategy]\npriority = 20\n").unwrap(), Priority::Level(20));
        let env = with(&[(kv, &kp), ("GTP5G_OPERATOR__STRATEGY__PRIORITY", "12")], None);
        assert_eq!(env.unwrap().strategy.priority, Priority::Level(12));
        for bad in ["21", "-1", "\"high\"", "1.5"] {
            let err = error_of(&[], Some(&format!("[strategy]\npriority = {bad}\n")));
            assert!(err.contains("strategy.priority"), "{bad}: {err}");
        }
        let static_level = "[[strategy.static]]\npriority = 99\nexecution_time = 5\npid = 7\n";
        assert!(error_of(&[], Some(static_level)).contains("strategy.static"));
    }

    #[test]
    fn a_public_key_file_that_does_not_parse_is_refused_before_start() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
            .unwrap();
        let path = f.path().display().to_string();
        let err = error_of(&[("PUBLIC_KEY_PATH", &path)], None);
        assert!(err.contains("api.public_key_path") && err.contains(&path), "{err}");
    }

    #[test]
    fn static_strategies_from_the_file() {
        let k = key_file();
        let (kv, kp) = key_env(&k);
        let cfg = with(
            &[(kv, &kp)],
            Some("[[strategy.static]]\npriority = true\nexecution_time = 5\nselectors = [{ key = \"app\", value = \"ueransim\" }]\ncommand_regex = \"nr-gnb|nr-ue\"\n"),
        )
        .unwrap();
        assert_eq!(cfg.strategy.static_strategies.len(), 1);
        assert_eq!(cfg.strategy.static_strategies[0].selectors[0].value, "ueransim");
    }

    #[test]
    fn list_variables_are_trimmed_and_take_exe_paths_and_uids() {
        let cfg = with_key(
            &[
                ("GTP5G_OPERATOR__TARGETS__NAMES", "nr-gnb, nr-ue ,"),
                ("GTP5G_OPERATOR__TARGETS__EXE_PATHS", "/opt/UERANSIM/build/, /ueransim/nr-ue"),
                ("GTP5G_OPERATOR__TARGETS__UIDS", "0"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(cfg.targets.names, vec!["nr-gnb", "nr-ue"]);
        let paths = [PathBuf::from("/opt/UERANSIM/build/"), PathBuf::from("/ueransim/nr-ue")];
        assert_eq!(cfg.targets.exe_paths, paths);
        assert_eq!(cfg.targets.uids, vec![0]);
        let two = with_key(&[("GTP5G_OPERATOR__TARGETS__UIDS", "0, 1000")], None);
        assert_eq!(two.unwrap().targets.uids, vec![0, 1000]);
        let shipped = Config::load(&Sources::default(), Purpose::Replay).unwrap();
        assert!(shipped.targets.exe_paths.is_empty() && shipped.targets.uids.is_empty());
        let uid = error_of(&[("GTP5G_OPERATOR__TARGETS__UIDS", "root")], None);
        assert!(uid.contains("uids"), "{uid}");
    }

    #[test]
    fn exe_paths_that_proc_can_never_show_are_refused() {
        for bad in ["nr-gnb", "build/", "/opt//nr-gnb", "/opt/../nr-gnb", "/opt/./x/"] {
            let err = error_of(&[("GTP5G_OPERATOR__TARGETS__EXE_PATHS", bad)], None);
            assert!(err.contains("targets.exe_paths") && err.contains(bad), "{bad}: {err}");
        }
        let ok = "[targets]\nexe_paths = [\"/opt/UERANSIM/build/\", \"/usr/local/bin/nr-gnb\"]\n";
        assert_eq!(with_key(&[], Some(ok)).unwrap().targets.exe_paths.len(), 2);
    }

    #[test]
    fn periods_past_a_week_are_refused_before_they_can_overflow_a_clock() {
        let max = u64::MAX.to_string();
        for (var, key) in [
            ("GTP5G_OPERATOR__STRATEGY__INTERVAL_S", "strategy.interval_s"),
            ("GTP5G_OPERATOR__LOG__STATS_INTERVAL_S", "log.stats_interval_s"),
            ("GTP5G_OPERATOR__API__RETRY_MAX_S", "api.retry_max_s"),
            ("GTP5G_OPERATOR__TARGETS__TTL_S", "targets.ttl_s"),
            ("GTP5G_OPERATOR__STRATEGY__DEBOUNCE_MS", "strategy.debounce_ms"),
        ] {
            let err = error_of(&[(var, "18446744073709551")], None);
            assert!(err.contains(key) && err.contains("at most"), "{var}: {err}");
            assert!(error_of(&[(var, &max)], None).contains(key.rsplit('.').next().unwrap()));
        }
        let week = MAX_SECONDS.to_string();
        let cfg = with_key(&[("GTP5G_OPERATOR__STRATEGY__INTERVAL_S", &week)], None);
        assert_eq!(cfg.unwrap().strategy.interval_s, MAX_SECONDS);
    }
}
