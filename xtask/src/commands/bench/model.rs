//! The model of an execution environment: the CPU share Lambda gives a memory size, enforced
//! with a CFS quota in a cgroup of this run's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xtask::Result;

/// The memory size at which a function has one full vCPU: "Lambda allocates CPU power in
/// proportion to the amount of memory configured... At 1,769 MB, a function has the equivalent
/// of one vCPU" (AWS Lambda Developer Guide, "Configure Lambda function memory").
pub(super) const ONE_VCPU_MB: u32 = 1769;

/// The memory sizes measured unless `--memory` names others.
pub(super) const DEFAULT_MEMORY_MB: [u32; 4] = [128, 256, 512, 1024];

/// What the bench models, beside the memory sizes.
#[derive(Clone, Copy)]
pub(super) struct Settings {
    /// The CFS period the quota refills in.
    pub period: Duration,
    /// One round trip to DynamoDB, its service time included.
    pub round_trip: Duration,
    /// The interval between the starts of the paced series' invocations.
    pub pace: Duration,
    /// Whether init runs under the quota too (by default it has the whole CPU).
    pub throttle_init: bool,
}

impl Settings {
    pub(super) const DEFAULT: Self = Self {
        period: Duration::from_millis(20),
        round_trip: Duration::from_millis(2),
        pace: Duration::from_millis(20),
        throttle_init: false,
    };

    /// Whether these are the settings the targets are stated for.
    pub(super) fn are_default(&self) -> bool {
        self.period == Self::DEFAULT.period
            && self.round_trip == Self::DEFAULT.round_trip
            && self.pace == Self::DEFAULT.pace
            && self.throttle_init == Self::DEFAULT.throttle_init
    }
}

/// A memory size, and the share of one vCPU it buys; from [`ONE_VCPU_MB`] on, the whole CPU (the
/// functions run one thread, so more than one vCPU would change nothing here).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Memory(pub u32);

impl Memory {
    pub(super) const FULL_CPU: Self = Self(ONE_VCPU_MB);

    pub(super) fn share(self) -> f64 {
        (f64::from(self.0) / f64::from(ONE_VCPU_MB)).min(1.0)
    }

    pub(super) fn throttled(self) -> bool {
        self.0 < ONE_VCPU_MB
    }

    pub(super) fn gb(self) -> f64 {
        f64::from(self.0) / 1024.0
    }

    pub(super) fn label(self) -> String {
        if self.throttled() {
            format!("{} MB", self.0)
        } else {
            format!("{} MB (full CPU)", self.0)
        }
    }
}

#[derive(Clone, Copy)]
enum Version {
    /// `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    V1,
    /// `cpu.max`.
    V2,
}

/// A cgroup of the cpu controller, made for this run and removed when dropped, with the
/// processes still in it moved back to its parent first.
pub(super) struct CpuCgroup {
    dir: PathBuf,
    version: Version,
}

impl CpuCgroup {
    /// The run's cgroup, under the cgroup v1 cpu hierarchy or a cgroup v2 hierarchy with the cpu
    /// controller; `None` when neither can be written here.
    pub(super) fn create() -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let name = format!("users-bench-{}", std::process::id());
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(mount), Some(kind), Some(options)) =
                (fields.get(1), fields.get(2), fields.get(3))
            else {
                continue;
            };
            let root = Path::new(mount);
            let version = match *kind {
                "cgroup" if options.split(',').any(|o| o == "cpu") => Version::V1,
                "cgroup2" if has_cpu_controller(root) => Version::V2,
                _ => continue,
            };
            let dir = root.join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                return Some(Self { dir, version });
            }
        }
        None
    }

    /// Limits the cgroup to `share` of one CPU in every `period`.
    pub(super) fn limit(&self, period: Duration, share: f64) -> Result<()> {
        let period_us = period.as_micros();
        // The kernel takes no quota under 1 ms.
        let quota_us = ((period_us as f64 * share).round() as u128).max(1000);
        match self.version {
            Version::V1 => {
                self.write("cpu.cfs_quota_us", "-1")?;
                self.write("cpu.cfs_period_us", &period_us.to_string())?;
                self.write("cpu.cfs_quota_us", &quota_us.to_string())
            }
            Version::V2 => self.write("cpu.max", &format!("{quota_us} {period_us}")),
        }
    }

    /// Moves process `pid`, all its threads, into the cgroup.
    pub(super) fn add(&self, pid: u32) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The file a process writes its own id to, to join the cgroup.
    pub(super) fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        std::fs::write(self.dir.join(file), value).map_err(|e| {
            format!(
                "{}: cannot write {value}: {e}",
                self.dir.join(file).display()
            )
            .into()
        })
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let parent = self.dir.parent().map(|p| p.join("cgroup.procs"));
        let procs = std::fs::read_to_string(self.procs_file()).unwrap_or_default();
        if let Some(parent) = parent {
            for pid in procs.lines() {
                let _ = std::fs::write(&parent, pid);
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("WARNING: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// Whether a cgroup v2 hierarchy offers the cpu controller to its children, enabling it if it
/// can.
fn has_cpu_controller(root: &Path) -> bool {
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    controllers.split_whitespace().any(|c| c == "cpu")
        && std::fs::write(root.join("cgroup.subtree_control"), "+cpu").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_size_buys_its_share_of_one_vcpu() {
        assert!((Memory(128).share() - 128.0 / 1769.0).abs() < 1e-12);
        assert!((Memory(1769).share() - 1.0).abs() < 1e-12);
        assert!((Memory(3008).share() - 1.0).abs() < 1e-12);
        assert!(Memory(1024).throttled());
        assert!(!Memory::FULL_CPU.throttled());
    }
}
