//! Per-process resource limits (RLIMIT_AS, RLIMIT_NOFILE) set in the child before exec, so
//! everything the run starts inherits them. Never raises a limit above the hard one.

use std::process::Command;

use super::Limits;

/// Sets the limits in the child before exec; a limit above the current hard limit is
/// lowered to it (raising it needs privileges, and a lower cap is what was asked for).
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "pre_exec is unsafe; the hook only calls setrlimit, which is async-signal-safe"
)]
pub(crate) fn apply_limits(cmd: &mut Command, limits: Limits) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::os::unix::process::CommandExt;
    let mut wanted = Vec::new();
    for (res, value) in [
        (Resource::RLIMIT_AS, limits.address_space),
        (Resource::RLIMIT_NOFILE, limits.open_files),
    ] {
        let Some(v) = value else { continue };
        // Computed here, in the parent, so the hook does no more than one system call each.
        let v = match getrlimit(res) {
            Ok((_, hard)) => v.min(hard),
            Err(_) => v,
        };
        wanted.push((res, v));
    }
    if wanted.is_empty() {
        return;
    }
    // SAFETY: the hook runs in the forked child before exec; setrlimit is a plain system
    // call and the captured Vec is only read, never allocated or freed, there.
    unsafe {
        cmd.pre_exec(move || {
            for &(res, v) in &wanted {
                setrlimit(res, v, v)?;
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn apply_limits(_cmd: &mut Command, _limits: Limits) {}
