//! Reading the `[sandbox]` table (network, mode, writable paths, container template,
//! memory and open-file limits) and the byte sizes it uses. Reads and validates only; what
//! the machine can actually do is probed by `runner::sandbox` when a session starts.

use super::error::{ConfigError, Location, invalid_at};
use super::section::Section;
use super::{Network, SandboxConfig, SandboxMode};

pub(super) const KEYS: &[&str] = &[
    "network",
    "mode",
    "writable",
    "container",
    "memory",
    "open_files",
];

pub(super) fn read(top: &Section) -> Result<SandboxConfig, ConfigError> {
    let mut s = SandboxConfig::default();
    let Some(t) = top.table("sandbox", KEYS)? else {
        return Ok(s);
    };
    let network = match t.string("network")? {
        Some((n, at)) => Some((
            match n.trim().to_ascii_lowercase().as_str() {
                "deny" | "none" | "off" => Network::Deny,
                "allow" | "on" => Network::Allow,
                _ => {
                    return Err(invalid_at(
                        at,
                        "sandbox.network",
                        format!("is `{n}`"),
                        "use \"deny\" (no network for training runs) or \"allow\"",
                    ));
                }
            },
            at,
        )),
        None => None,
    };
    if let Some((m, at)) = t.string("mode")? {
        s.mode = parse_mode(&m).ok_or_else(|| {
            invalid_at(
                at,
                "sandbox.mode",
                format!("is `{m}`"),
                "use one of auto, unshare, bwrap, container, none",
            )
        })?;
    }
    s.network = match (s.mode, network) {
        (SandboxMode::None, Some((Network::Deny, at))) => {
            return Err(invalid_at(
                at,
                "sandbox.network",
                "is \"deny\" but mode = \"none\" isolates nothing".to_string(),
                "set network = \"allow\" with mode = \"none\", or pick another mode",
            ));
        }
        // `mode = "none"` alone says what it means: no isolation.
        (SandboxMode::None, None) => Network::Allow,
        (_, Some((n, _))) => n,
        (_, None) => Network::Deny,
    };
    if let Some(list) = t.string_list("writable")? {
        for (w, at) in list {
            if w.trim().is_empty() {
                return Err(invalid_at(
                    at,
                    "sandbox.writable",
                    "has an empty path".to_string(),
                    "name a folder, e.g. writable = [\".cache\", \"~/.cache/torch\"]",
                ));
            }
            if !s.writable.contains(&w) {
                s.writable.push(w);
            }
        }
    }
    if let Some((c, at)) = t.string("container")? {
        if !c.contains("{command}") {
            return Err(invalid_at(
                at,
                "sandbox.container",
                "has no `{command}`".to_string(),
                "put {command} where the image's command goes, e.g. \"docker run --rm --init --network none -v {repo}:{repo} -w {repo} IMAGE {command}\"",
            ));
        }
        s.container = Some(c);
    }
    if s.mode == SandboxMode::Container && s.container.is_none() {
        return Err(ConfigError::Missing {
            at: t.here(),
            key: "sandbox.container",
            help: "mode = \"container\" needs a command template, e.g. container = \"docker run --rm --init --network none {env} -v {repo}:{repo} -w {repo} IMAGE {command}\"",
        });
    }
    s.memory = read_size(&t)?;
    if let Some((n, at)) = t.int("open_files")? {
        if n < 1 {
            return Err(invalid_at(
                at,
                "sandbox.open_files",
                format!("is {n}"),
                "use a positive number, e.g. open_files = 4096",
            ));
        }
        s.open_files = Some(n as u64);
    }
    Ok(s)
}

fn read_size(t: &Section) -> Result<Option<u64>, ConfigError> {
    let Some((item, at)) = t.get("memory") else {
        return Ok(None);
    };
    let bad = |at: Location, shown: String| {
        invalid_at(
            at,
            "sandbox.memory",
            format!("is {shown}"),
            "use a size like \"16G\" or \"512M\" (bytes per process, RLIMIT_AS)",
        )
    };
    match (item.as_str(), item.as_integer()) {
        (Some(s), _) => parse_size(s)
            .map(Some)
            .ok_or_else(|| bad(at, format!("`{s}`"))),
        (None, Some(n)) if n > 0 => Ok(Some(n as u64)),
        (None, Some(n)) => Err(bad(at, n.to_string())),
        _ => Err(bad(at, item.type_name().to_string())),
    }
}

pub(super) fn parse_mode(s: &str) -> Option<SandboxMode> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Some(SandboxMode::Auto),
        "unshare" => Some(SandboxMode::Unshare),
        "bwrap" | "bubblewrap" => Some(SandboxMode::Bwrap),
        "container" | "docker" | "podman" => Some(SandboxMode::Container),
        "none" | "off" => Some(SandboxMode::None),
        _ => None,
    }
}

/// `"16G"`, `"512M"`, `"16GiB"`, `"1048576"`: binary units, bytes. None for anything else,
/// including zero and overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    let bytes = n.checked_mul(1u64 << shift)?;
    (bytes > 0).then_some(bytes)
}

/// The shortest exact spelling `parse_size` reads back: `"16G"`, `"1536M"`, `"1000"`.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes % (1u64 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units_and_round_trip() {
        assert_eq!(parse_size("16G"), Some(16 << 30));
        assert_eq!(parse_size("16GiB"), Some(16 << 30));
        assert_eq!(parse_size("512 mb"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in ["", "0", "G", "1.5G", "-1G", "16X", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        for n in [1000, 1536 << 20, 16 << 30, 3 << 40, 4096] {
            assert_eq!(parse_size(&format_size(n)), Some(n));
        }
        assert_eq!(format_size(16 << 30), "16G");
    }
}
