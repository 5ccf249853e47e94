//! The engine: many runs in flight and proposals prepared ahead, so that no accelerator
//! waits. The coordinator ([`coordinator`]) is the only writer of the journal and the only
//! mover of the research branch; each worker ([`worker`]) trains in its own detached
//! worktree on its own device; proposers run on threads of their own ([`proposals`]);
//! a trial ([`trial`]) is one experiment's measurements on its way to a decision.
//!
//! Why threads and channels rather than async: every wait here is a child process or a
//! blocking HTTP call, there are at most a few dozen of them, and the coordinator must stay
//! a plain sequential program that a chaos test can kill at exact points.

mod adopt;
mod coordinator;
mod decide;
mod filler;
mod intake;
mod limits;
mod proposals;
mod trial;
mod worker;

pub(crate) use coordinator::run;

use crate::platform::{Accelerator, Platform};

/// One worker: the device it trains on and the variables that pin a run to it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSpec {
    /// 1-based.
    pub index: usize,
    /// The device's name, as recorded for each run (`NVIDIA H100 80GB HBM3 #0`, `cpu`).
    pub device: String,
    /// `CUDA_VISIBLE_DEVICES=0` and the like; empty for CPU workers (they share the machine).
    pub env: Vec<(String, String)>,
}

/// The workers a session gets: `gpus` (device ids) one each, else `workers` of them spread
/// round-robin over the visible GPUs, else one per visible GPU (one on a machine without).
pub fn plan_workers(
    platform: &Platform,
    workers: Option<usize>,
    gpus: Option<&[String]>,
) -> Result<Vec<WorkerSpec>, String> {
    let var = match platform.accelerator {
        Accelerator::Cuda => Some("CUDA_VISIBLE_DEVICES"),
        Accelerator::Rocm => Some("HIP_VISIBLE_DEVICES"),
        Accelerator::Mps | Accelerator::Cpu => None,
    };
    let name_of = |id: &str| {
        let i: Option<usize> = id.parse().ok();
        let name = i.and_then(|i| platform.gpus.get(i)).map_or_else(
            || platform.accelerator.as_str().to_string(),
            |g| g.name.clone(),
        );
        format!("{name} #{id}")
    };
    let pinned = |index: usize, id: &str| WorkerSpec {
        index,
        device: name_of(id),
        env: var
            .map(|v| vec![(v.to_string(), id.to_string())])
            .unwrap_or_default(),
    };
    if let Some(ids) = gpus {
        if var.is_none() {
            return Err(format!(
                "--gpus needs CUDA or ROCm, and this machine runs on {}; use --workers N instead",
                platform.accelerator.as_str()
            ));
        }
        if ids.is_empty() || ids.iter().any(|i| i.trim().is_empty()) {
            return Err(
                "--gpus needs a comma-separated list of device ids, e.g. --gpus 0,1".into(),
            );
        }
        return Ok(ids
            .iter()
            .enumerate()
            .map(|(i, id)| pinned(i + 1, id.trim()))
            .collect());
    }
    let visible = if var.is_some() {
        platform.gpus.len()
    } else {
        0
    };
    let n = workers.unwrap_or(visible.max(1));
    if n == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok((1..=n)
        .map(|index| {
            if visible > 0 {
                pinned(index, &((index - 1) % visible).to_string())
            } else {
                WorkerSpec {
                    index,
                    device: platform.accelerator.as_str().to_string(),
                    env: Vec::new(),
                }
            }
        })
        .collect())
}

/// One line for the Research Config: how many workers on what, how proposals are prepared
/// (`[agent] ahead`) and how many LLM calls are made at the same time to keep them fed.
pub fn describe_workers(workers: &[WorkerSpec], concurrency: usize, ahead: Option<u32>) -> String {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for w in workers {
        let kind = w.device.split(" #").next().unwrap_or(&w.device).to_string();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let what: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    let pairing = if kinds.len() > 1 {
        "; mixed device kinds: runs are compared across kinds, not paired by kind (not yet): for exact decisions give --gpus the devices of one kind"
    } else {
        ""
    };
    let calls = match concurrency {
        1 => String::new(),
        n => format!(" ({n} at a time)"),
    };
    let queue = match ahead {
        Some(0) => "each proposal waits for every result (ahead = 0)".to_string(),
        Some(n) => format!("proposals prepared ahead: one per free worker + {n}"),
        None => "proposals prepared ahead".to_string(),
    };
    format!(
        "{} worker(s): {}; {queue}{calls}{pairing}",
        workers.len(),
        what.join(", ")
    )
}

/// This machine's name, for the journal.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Gpu;

    fn gpus(n: usize) -> Platform {
        let g = (0..n)
            .map(|i| Gpu {
                name: format!("NVIDIA H100 {i}"),
                memory_mb: None,
            })
            .collect();
        Platform::with(Accelerator::Cuda, g, 16)
    }

    #[test]
    fn one_worker_per_visible_gpu_and_each_pinned_to_its_own() {
        let w = plan_workers(&gpus(4), None, None).unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(w[2].env, vec![("CUDA_VISIBLE_DEVICES".into(), "2".into())]);
        assert_eq!(w[2].device, "NVIDIA H100 2 #2");
        let cpu = Platform::with(Accelerator::Cpu, Vec::new(), 2);
        let w = plan_workers(&cpu, None, None).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].env.is_empty());
        assert_eq!(plan_workers(&cpu, Some(3), None).unwrap().len(), 3);
    }

    #[test]
    fn explicit_gpus_and_more_workers_than_gpus() {
        let ids = vec!["1".to_string(), "3".to_string()];
        let w = plan_workers(&gpus(4), None, Some(&ids)).unwrap();
        assert_eq!(
            w.iter().map(|w| w.env[0].1.as_str()).collect::<Vec<_>>(),
            ["1", "3"]
        );
        let w = plan_workers(&gpus(2), Some(3), None).unwrap();
        assert_eq!(
            w.iter().map(|w| w.env[0].1.as_str()).collect::<Vec<_>>(),
            ["0", "1", "0"]
        );
        let rocm = Platform::with(Accelerator::Rocm, Vec::new(), 2);
        let w = plan_workers(&rocm, None, Some(&ids)).unwrap();
        assert_eq!(w[0].env[0].0, "HIP_VISIBLE_DEVICES");
        let cpu = Platform::with(Accelerator::Cpu, Vec::new(), 2);
        assert!(
            plan_workers(&cpu, None, Some(&ids))
                .unwrap_err()
                .contains("--workers")
        );
        assert!(plan_workers(&cpu, Some(0), None).is_err());
        let two = plan_workers(&gpus(2), None, None).unwrap();
        assert!(describe_workers(&two, 2, None).contains("×1"));
        assert!(describe_workers(&two, 2, None).contains("proposals prepared ahead (2 at a time)"));
        assert!(
            describe_workers(&two, 1, Some(0)).contains("each proposal waits for every result")
        );
        // Two kinds of device (the names differ): the line says the runs are not paired.
        assert!(describe_workers(&two, 2, None).contains("not paired by kind"));
        let same = Platform::with(
            Accelerator::Cuda,
            vec![
                Gpu {
                    name: "NVIDIA A100".into(),
                    memory_mb: None,
                };
                2
            ],
            16,
        );
        let line = describe_workers(&plan_workers(&same, None, None).unwrap(), 2, None);
        assert!(
            line.contains("NVIDIA A100 ×2") && !line.contains("paired"),
            "{line}"
        );
    }
}
