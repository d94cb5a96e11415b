//! `--device auto | cpu | cuda | cuda:N`: which backend trains.
//!
//! `auto` uses GPU 0 when the CUDA driver, a device and the CUDA libraries are there, and
//! otherwise falls back to the CPU, telling the caller why (the CLI says so in one line).
//! `cuda[:N]` without a usable device is an error, never a panic: the driver is probed before
//! any call into it (see [`super::cuda::driver`]).

use std::fmt;
use std::str::FromStr;

use super::cuda::driver::CudaDriver;
use super::cuda::{CudaBackend, CudaError};

/// What `--device` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU if one is usable, else the CPU (with a message).
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// CUDA device N (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected auto, cpu, cuda or cuda:N (N = device number)");
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => {
                let n = s.strip_prefix("cuda:").ok_or_else(bad)?;
                // Digits only: `usize::from_str` would also take a leading `+`.
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                n.parse().map(DeviceChoice::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The backend chosen.
pub enum Selected {
    /// The CPU backend.
    Cpu,
    /// A GPU.
    Cuda(Box<CudaBackend<CudaDriver>>),
}

impl Selected {
    /// For the "training … on X" line.
    pub fn describe(&self) -> String {
        match self {
            Selected::Cpu => "the CPU".into(),
            Selected::Cuda(be) => {
                use super::cuda::Device;
                be.device().describe()
            }
        }
    }
}

fn open_cuda(ordinal: usize) -> Result<CudaBackend<CudaDriver>, CudaError> {
    CudaBackend::new(CudaDriver::open(ordinal)?)
}

/// A GPU that was asked for and cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--device {choice}: {source}")]
pub struct DeviceError {
    /// What was asked for.
    pub choice: DeviceChoice,
    /// Why the GPU cannot be used.
    pub source: CudaError,
}

/// Resolves `choice`; when `auto` falls back to the CPU, `on_fallback` hears why.
pub fn select(
    choice: DeviceChoice,
    on_fallback: impl FnOnce(&CudaError),
) -> Result<Selected, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(Selected::Cpu),
        DeviceChoice::Auto => match open_cuda(0) {
            Ok(be) => Ok(Selected::Cuda(Box::new(be))),
            Err(e) => {
                on_fallback(&e);
                Ok(Selected::Cpu)
            }
        },
        DeviceChoice::Cuda(n) => open_cuda(n)
            .map(|be| Selected::Cuda(Box::new(be)))
            .map_err(|source| DeviceError { choice, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:0".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:13".parse(), Ok(DeviceChoice::Cuda(13)));
        assert_eq!(DeviceChoice::default(), DeviceChoice::Auto);
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "gpu",
            "CUDA",
            "cuda:",
            "cuda:-1",
            "cuda:+1",
            "cuda:x",
            "cuda:1:2",
            " cuda",
            "cuda:99999999999999999999999",
        ] {
            let e = bad.parse::<DeviceChoice>().unwrap_err();
            assert!(
                e.contains("expected auto, cpu, cuda or cuda:N"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for c in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(3)] {
            assert_eq!(c.to_string().parse(), Ok(c));
        }
    }
}
