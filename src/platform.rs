//! Platform detection (CUDA, ROCm, Apple MPS, CPU) and the per-platform adjustments passed
//! to the training script as AUTORESEARCH_* environment variables. Detection only reads;
//! it never changes the machine.

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Cuda,
    Rocm,
    Mps,
    Cpu,
}

impl Accelerator {
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Cuda => "cuda",
            Accelerator::Rocm => "rocm",
            Accelerator::Mps => "mps",
            Accelerator::Cpu => "cpu",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub name: String,
    pub memory_mb: Option<u64>,
}

/// What the training script is told to do differently on this platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustments {
    /// torch device string: `cuda`, `mps` (ROCm PyTorch also uses `cuda`), `cpu`.
    pub device: String,
    /// torch.compile on or off.
    pub compile: bool,
    /// `bfloat16` or `float32`.
    pub dtype: String,
    /// Multiply the device batch size by this.
    pub batch_scale: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    pub accelerator: Accelerator,
    pub gpus: Vec<Gpu>,
    pub cpus: usize,
    pub adjustments: Adjustments,
}

impl Platform {
    /// Detects the platform of this machine. `AUTORESEARCH_PLATFORM` (cuda, rocm, mps, cpu)
    /// overrides detection, for tests and for users whose drivers hide from the probes.
    pub fn detect() -> Platform {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let forced = std::env::var("AUTORESEARCH_PLATFORM").ok();
        let (accelerator, gpus) = match forced.as_deref() {
            Some("cuda") => (Accelerator::Cuda, Vec::new()),
            Some("rocm") => (Accelerator::Rocm, Vec::new()),
            Some("mps") => (Accelerator::Mps, Vec::new()),
            Some("cpu") => (Accelerator::Cpu, Vec::new()),
            _ => probe(),
        };
        Platform::with(accelerator, gpus, cpus)
    }

    /// A platform with the standard adjustments for `accelerator`.
    pub fn with(accelerator: Accelerator, gpus: Vec<Gpu>, cpus: usize) -> Platform {
        let adjustments = match accelerator {
            // bf16 and torch.compile are the fast path on recent NVIDIA cards.
            Accelerator::Cuda => Adjustments {
                device: "cuda".into(),
                compile: true,
                dtype: "bfloat16".into(),
                batch_scale: 1.0,
            },
            // ROCm PyTorch exposes the `cuda` device; inductor on ROCm is less mature.
            Accelerator::Rocm => Adjustments {
                device: "cuda".into(),
                compile: false,
                dtype: "bfloat16".into(),
                batch_scale: 1.0,
            },
            // MPS: no torch.compile, fp32 is the safe dtype, unified memory is smaller.
            Accelerator::Mps => Adjustments {
                device: "mps".into(),
                compile: false,
                dtype: "float32".into(),
                batch_scale: 0.25,
            },
            Accelerator::Cpu => Adjustments {
                device: "cpu".into(),
                compile: false,
                dtype: "float32".into(),
                batch_scale: 0.125,
            },
        };
        Platform {
            accelerator,
            gpus,
            cpus,
            adjustments,
        }
    }

    /// Environment for one training run.
    pub fn env(&self, budget: Duration, seed: u64) -> Vec<(String, String)> {
        let a = &self.adjustments;
        vec![
            ("AUTORESEARCH_DEVICE".into(), a.device.clone()),
            (
                "AUTORESEARCH_COMPILE".into(),
                if a.compile { "1" } else { "0" }.into(),
            ),
            ("AUTORESEARCH_DTYPE".into(), a.dtype.clone()),
            (
                "AUTORESEARCH_BATCH_SCALE".into(),
                format!("{}", a.batch_scale),
            ),
            // Whole seconds, so `int(os.environ[...])` works; the exact value beside it.
            (
                "AUTORESEARCH_TIME_BUDGET".into(),
                format!("{}", budget.as_secs_f64().round().max(1.0) as u64),
            ),
            (
                "AUTORESEARCH_TIME_BUDGET_MS".into(),
                budget.as_millis().to_string(),
            ),
            ("AUTORESEARCH_SEED".into(), seed.to_string()),
        ]
    }

    /// One line for the terminal and the journal.
    pub fn describe(&self) -> String {
        let gpus = if self.gpus.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self
                .gpus
                .iter()
                .map(|g| match g.memory_mb {
                    Some(mb) => format!("{} ({:.0} GB)", g.name, mb as f64 / 1024.0),
                    None => g.name.clone(),
                })
                .collect();
            format!(" [{}]", names.join(", "))
        };
        let a = &self.adjustments;
        format!(
            "{}{} {} cpus; device={} compile={} dtype={} batch_scale={}",
            self.accelerator.as_str(),
            gpus,
            self.cpus,
            a.device,
            if a.compile { "on" } else { "off" },
            a.dtype,
            a.batch_scale
        )
    }
}

fn probe() -> (Accelerator, Vec<Gpu>) {
    if let Some(gpus) = nvidia_smi() {
        return (Accelerator::Cuda, gpus);
    }
    if let Some(gpus) = rocm_smi() {
        return (Accelerator::Rocm, gpus);
    }
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        return (
            Accelerator::Mps,
            vec![Gpu {
                name: "Apple Silicon".into(),
                memory_mb: None,
            }],
        );
    }
    (Accelerator::Cpu, Vec::new())
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`
fn nvidia_smi() -> Option<Vec<Gpu>> {
    let text = output_of(
        "nvidia-smi",
        &[
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ],
    )?;
    let gpus = parse_nvidia_csv(&text);
    (!gpus.is_empty()).then_some(gpus)
}

pub(crate) fn parse_nvidia_csv(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.rsplitn(2, ',');
            let mem = parts.next().unwrap_or("").trim();
            match (parts.next(), mem.parse::<u64>()) {
                (Some(name), Ok(mb)) => Gpu {
                    name: name.trim().to_string(),
                    memory_mb: Some(mb),
                },
                _ => Gpu {
                    name: line.trim().to_string(),
                    memory_mb: None,
                },
            }
        })
        .collect()
}

/// `rocm-smi --showproductname` prints `Card series:` lines per GPU.
fn rocm_smi() -> Option<Vec<Gpu>> {
    let text = output_of("rocm-smi", &["--showproductname"])?;
    let gpus: Vec<Gpu> = text
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("Card series:")?;
            Some(Gpu {
                name: rest.trim().to_string(),
                memory_mb: None,
            })
        })
        .collect();
    (!gpus.is_empty()).then_some(gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpus = parse_nvidia_csv("NVIDIA H100 80GB HBM3, 81559\nNVIDIA A10G, 23028\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].memory_mb, Some(81559));
        assert_eq!(gpus[1].memory_mb, Some(23028));
    }

    #[test]
    fn cpu_env_names_every_variable() {
        let p = Platform::with(Accelerator::Cpu, vec![], 2);
        let env = p.env(Duration::from_secs(20), 7);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "AUTORESEARCH_DEVICE",
                "AUTORESEARCH_COMPILE",
                "AUTORESEARCH_DTYPE",
                "AUTORESEARCH_BATCH_SCALE",
                "AUTORESEARCH_TIME_BUDGET",
                "AUTORESEARCH_TIME_BUDGET_MS",
                "AUTORESEARCH_SEED"
            ]
        );
        assert!(env.contains(&("AUTORESEARCH_COMPILE".into(), "0".into())));
        assert!(env.contains(&("AUTORESEARCH_TIME_BUDGET".into(), "20".into())));
        // Whole seconds for `int()`, the exact budget beside them.
        let env = p.env(Duration::from_millis(1500), 7);
        assert!(env.contains(&("AUTORESEARCH_TIME_BUDGET".into(), "2".into())));
        assert!(env.contains(&("AUTORESEARCH_TIME_BUDGET_MS".into(), "1500".into())));
    }
}
