//! `autoresearch.toml`: the schema, loading with file:line errors, and validation. Owns
//! what the tool may assume (nothing about the budget or the metric) and what it must ask.

mod agent;
pub mod detect;
pub mod duration;
mod error;
mod executor;
pub mod init;
mod load;
mod paths;
mod prune;
mod render;
mod repo;
mod sandbox;
mod section;

pub use executor::{ExecutorConfig, SlurmConfig};
pub(crate) use paths::home_path;
pub use prune::{PruneConfig, PruneMode};

pub use error::{ConfigError, Location};
pub use load::{check_tag, load, load_str, parse_direction, parse_scope, repo_root};
pub use render::{config_table, to_toml};
pub use repo::{
    default_command, default_command_with, dependency_files, is_dependency_file, on_path,
};
pub use sandbox::{format_size, parse_size};

use crate::experiment::Direction;
use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

/// The file name looked up in the repository root.
pub const CONFIG_FILE: &str = "autoresearch.toml";

/// Which parts of the training script the proposer may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Architecture,
    Hyperparameters,
    Optimizer,
    #[default]
    All,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Architecture => "architecture",
            Scope::Hyperparameters => "hyperparameters",
            Scope::Optimizer => "optimizer",
            Scope::All => "all",
        }
    }
}

/// How to read the primary metric from a run's log.
#[derive(Debug, Clone)]
pub struct MetricSpec {
    /// e.g. `val_bpb`; also the name of results.tsv's second column.
    pub name: String,
    pub direction: Direction,
    /// Optional regex with one capture group (or a group named `value`) for the number.
    /// Without it the metric is read from `name: value` lines.
    pub regex: Option<Regex>,
    /// The printed key that reports peak memory in MB (default `peak_vram_mb`).
    pub memory_key: String,
}

/// Regexes compare by their source text (`Regex` has no `PartialEq`).
impl PartialEq for MetricSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.direction == other.direction
            && self.regex.as_ref().map(Regex::as_str) == other.regex.as_ref().map(Regex::as_str)
            && self.memory_key == other.memory_key
    }
}

/// Which proposer runs. `Search` is the built-in, no-LLM default.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AgentBackend {
    #[default]
    Search,
    Anthropic,
    OpenAi,
    Command,
}

impl AgentBackend {
    /// The spelling used in `autoresearch.toml`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentBackend::Search => "search",
            AgentBackend::Anthropic => "anthropic",
            AgentBackend::OpenAi => "openai",
            AgentBackend::Command => "command",
        }
    }
}

/// `[agent]`: the proposer's settings. LLM-specific fields are ignored by `search`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub backend: AgentBackend,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// For `command`: the CLI agent's command line (`{prompt_file}` placeholder allowed).
    pub command: Option<String>,
    pub timeout: Option<Duration>,
    /// Answer room per call (None: 8192 for anthropic, 4096 for openai, at most a
    /// quarter of a known context).
    pub max_tokens: Option<u32>,
    /// The model's context in tokens (None: asked of the server at start).
    pub context_tokens: Option<u64>,
    /// Ask for streamed answers (progress on the terminal, a prompt Ctrl-C).
    pub stream: bool,
    /// Ask for the proposal as JSON in a schema the server enforces, or as text.
    pub structured: Structured,
    pub max_cost_usd: Option<f64>,
    /// Failures in a row after which the proposer must change direction.
    pub patience: u32,
    /// Seed for the built-in search's choices.
    pub seed: u64,
    /// Repairs an LLM may attempt for a trivial crash (a typo, a missing import).
    pub repair_attempts: u32,
    /// A folder whose `system.md`, `task.md`, … replace the embedded prompt templates.
    pub templates: Option<PathBuf>,
    /// Research phases, e.g. `"1-10: hyperparameters only"`, `"11-: anything"`
    /// (see `agent::llm::prompt::Phase`). Empty: phases declared in program.md, if any.
    pub phases: Vec<String>,
    /// HTTP attempts per call, retries included (None: 5).
    pub max_attempts: Option<u32>,
    /// First retry delay, doubled per attempt with jitter (None: 2 s).
    pub retry_base: Option<Duration>,
    /// Longest single wait between attempts, `retry-after` included (None: 60 s).
    pub retry_max_wait: Option<Duration>,
    /// Prices for cost estimates (None: the known model family's defaults, else 0).
    pub prices: Option<ModelPrices>,
    /// LLM calls the engine makes at the same time for its proposal queue (None: enough
    /// to feed the workers, see [`AgentConfig::concurrency_for`]).
    pub concurrency: Option<u32>,
    /// Proposals prepared while runs train, beyond one for each free worker (`[agent]
    /// ahead`). `None`: one per worker, so that no worker ever waits for a proposal. `0`:
    /// every proposal is made once every run before it is decided (each one knows every
    /// result, as in the hand-run loop; a worker waits while the proposer thinks).
    pub ahead: Option<u32>,
    /// Beside an LLM backend: the built-in search takes turns on the numeric constants
    /// and stands in while the LLM cannot be used (see `agent::hybrid`). Ignored by
    /// `backend = "search"`, which is the tuner alone.
    pub tuner: Tuner,
}

impl AgentConfig {
    /// The LLM calls to run at the same time for `workers` workers: `[agent] concurrency`
    /// when set; else one per worker, at most 4, for an HTTP backend (a server answers
    /// requests side by side; more than 4 mostly meets rate limits), and 1 for a CLI agent
    /// (each call is a whole coding agent on this machine, with a scratch worktree of its
    /// own) and for the built-in search (it answers at once).
    pub fn concurrency_for(&self, workers: usize) -> usize {
        if let Some(n) = self.concurrency {
            return (n as usize).max(1);
        }
        match self.backend {
            AgentBackend::Anthropic | AgentBackend::OpenAi => workers.clamp(1, 4),
            AgentBackend::Command | AgentBackend::Search => 1,
        }
    }

    /// Whether the built-in search works beside an LLM backend (and stands in for it).
    pub fn has_tuner(&self) -> bool {
        self.backend != AgentBackend::Search && self.tuner == Tuner::Search
    }
}

/// `[agent] tuner`: whether the built-in search works beside an LLM backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tuner {
    /// The built-in search (`"search"`, or `"tpe"`, which names the same tuner).
    #[default]
    Search,
    /// The LLM alone: no tuner turns, and no stand-in when the LLM fails.
    Off,
}

impl Tuner {
    /// The spelling used in `autoresearch.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tuner::Search => "search",
            Tuner::Off => "off",
        }
    }
}

/// `[agent] structured`: how a proposal is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Structured {
    /// JSON in a schema on Chat Completions servers (most enforce it; one that refuses is
    /// asked for text from then on); SEARCH/REPLACE text on the Messages API.
    #[default]
    Auto,
    /// Always JSON in the schema.
    Json,
    /// Always SEARCH/REPLACE text.
    Off,
}

impl Structured {
    /// The spelling used in `autoresearch.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Structured::Auto => "auto",
            Structured::Json => "json",
            Structured::Off => "off",
        }
    }
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelPrices {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// Default failures in a row before the proposer changes direction.
pub const DEFAULT_PATIENCE: u32 = 3;

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            backend: AgentBackend::Search,
            model: None,
            base_url: None,
            command: None,
            timeout: None,
            max_tokens: None,
            context_tokens: None,
            stream: true,
            structured: Structured::Auto,
            max_cost_usd: None,
            patience: DEFAULT_PATIENCE,
            seed: 0,
            repair_attempts: 1,
            templates: None,
            phases: Vec::new(),
            max_attempts: None,
            retry_base: None,
            retry_max_wait: None,
            prices: None,
            concurrency: None,
            ahead: None,
            tuner: Tuner::Search,
        }
    }
}

/// `[decision]`: how a candidate is judged against the best.
#[derive(Debug, Clone, PartialEq)]
pub enum DecisionMode {
    /// Karpathy's rule: one run, keep if strictly better.
    Greedy,
    /// Repeat runs with seeds, keep only what beats the noise.
    NoiseAware,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecisionConfig {
    pub mode: DecisionMode,
    /// Runs of the baseline to measure noise.
    pub baseline_runs: u32,
    /// An improvement smaller than this is never a keep.
    pub min_delta: f64,
    /// z in `max(min_delta, z*sigma)`.
    pub z: f64,
    /// Extra seeds a near miss gets.
    pub confirm_runs: u32,
    /// Re-measure the best every N experiments (0 = never).
    pub recheck_every: u32,
    /// When the proposer has nothing new: how many more times one near miss may be
    /// measured (0 = never; the session then ends).
    pub revisits: u32,
}

impl DecisionMode {
    /// The spelling used in `autoresearch.toml`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionMode::Greedy => "greedy",
            DecisionMode::NoiseAware => "noise-aware",
        }
    }
}

/// The decision mode used when `[decision] mode` is not set: the one place to change it.
pub const DEFAULT_DECISION_MODE: DecisionMode = DecisionMode::NoiseAware;

impl Default for DecisionMode {
    fn default() -> Self {
        DEFAULT_DECISION_MODE
    }
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            mode: DEFAULT_DECISION_MODE,
            baseline_runs: 3,
            min_delta: 0.0,
            z: 2.0,
            confirm_runs: 2,
            recheck_every: 10,
            revisits: 6,
        }
    }
}

/// `[sandbox] network`: may the training command reach the network?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A fresh network namespace with only loopback; refuse to run where none can be made.
    #[default]
    Deny,
    /// The network as the machine has it.
    Allow,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Deny => "deny",
            Network::Allow => "allow",
        }
    }
}

/// `[sandbox] mode`: how the training command is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// `unshare` where it works, else bubblewrap (only needed when the network is denied).
    #[default]
    Auto,
    /// `unshare --net` (root) or `unshare --net --map-root-user`.
    Unshare,
    /// bubblewrap: also mounts the repository read-only.
    Bwrap,
    /// The user's container command template.
    Container,
    /// No isolation at all (requires `network = "allow"`).
    None,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Unshare => "unshare",
            SandboxMode::Bwrap => "bwrap",
            SandboxMode::Container => "container",
            SandboxMode::None => "none",
        }
    }
}

/// `[sandbox]`: isolation and resource limits for training runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SandboxConfig {
    pub network: Network,
    pub mode: SandboxMode,
    /// Extra paths writable under bubblewrap (caches, checkpoints): relative to the repo,
    /// absolute, or `~/…`.
    pub writable: Vec<String>,
    /// For `mode = "container"`: a shell command line with `{command}` and optionally
    /// `{repo}`, `{gpu}`, `{env}`.
    pub container: Option<String>,
    /// Address-space limit per process (RLIMIT_AS), bytes.
    pub memory: Option<u64>,
    /// Open-file limit per process (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
}

/// The whole research configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config was read from (for error messages), or None when built in code.
    pub source: Option<PathBuf>,
    /// Files the proposer may change, relative to the repo root.
    pub editable: Vec<PathBuf>,
    /// Files that must stay byte-identical (dependency files are always added).
    pub read_only: Vec<PathBuf>,
    /// The training command, run through `sh -c` in the repo root.
    pub command: String,
    pub budget: Duration,
    /// Hard limit per run; default 2 x budget + 60 s.
    pub timeout: Duration,
    pub metric: MetricSpec,
    pub max_iterations: Option<u64>,
    pub scope: Scope,
    /// Branch `autoresearch/<tag>`.
    pub tag: String,
    pub results: PathBuf,
    pub program: PathBuf,
    /// Print a progress report every N experiments.
    pub report_every: u32,
    pub agent: AgentConfig,
    pub decision: DecisionConfig,
    pub sandbox: SandboxConfig,
    /// `[executor]`: local processes or Slurm jobs.
    pub executor: ExecutorConfig,
    /// `[prune]`: stopping runs whose training curve is already hopeless.
    pub prune: PruneConfig,
}

impl Config {
    /// The research branch name.
    pub fn branch(&self) -> String {
        format!("autoresearch/{}", self.tag)
    }
}

/// Default hard timeout for a budget: 2 x budget + 60 s.
pub fn default_timeout(budget: Duration) -> Duration {
    budget * 2 + Duration::from_secs(60)
}

/// Default branch tag: the date, e.g. `nov23`.
pub fn default_tag(today: chrono::NaiveDate) -> String {
    today.format("%b%d").to_string().to_lowercase()
}

/// Files that pin the Python environment; always read-only.
pub const DEPENDENCY_FILES: &[&str] = &[
    "pyproject.toml",
    "uv.lock",
    "requirements.txt",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "environment.yml",
];
