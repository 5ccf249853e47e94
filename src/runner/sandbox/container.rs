//! `mode = "container"`: filling the user's template (`{command}`, `{repo}`, `{gpu}`,
//! `{env}`) with shell-quoted words, and checking that it turns the network off. Never runs
//! the runtime; the runner does, in its own process group like any run.

use super::super::Job;
use super::super::local::RUN_TOKEN_ENV;

/// A template that turns the container's network off in one of the usual spellings.
pub(crate) fn disables_network(template: &str) -> bool {
    let t = template.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        "--network none",
        "--network=none",
        "--net none",
        "--net=none",
    ]
    .iter()
    .any(|s| t.contains(s))
}

/// `{gpu}`: the GPUs this process was given, else all of them.
pub(crate) fn gpu_list() -> String {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => "all".into(),
    }
}

/// Fills the container template. `{command}` becomes `sh -c '<command>'`, so pipes and
/// `&&` in the command run inside the container, not around it.
pub fn expand(template: &str, job: &Job, gpu: &str) -> String {
    let env: Vec<String> = job
        .env
        .iter()
        .map(|(k, _)| k.as_str())
        .chain([RUN_TOKEN_ENV])
        .map(|k| format!("-e {}", quote(k)))
        .collect();
    template
        .replace("{repo}", &quote(&job.cwd.to_string_lossy()))
        .replace("{gpu}", &quote(gpu))
        .replace("{env}", &env.join(" "))
        .replace("{command}", &format!("sh -c {}", quote(&job.command)))
}

/// A shell word: bare when it is plainly safe, else single-quoted.
pub(crate) fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@%+".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
