"""Machine telemetry for node records: CPU, memory and, when present, GPUs.

Sampled periodically by the node manager; every call here returns at once. GPU figures
come from NVML (``pynvml``) when it imports and finds devices, else from ``nvidia-smi``
run on an executor thread; on machines with neither, ``gpus`` stays None, without error.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

import psutil

from .state_schema import GpuState


@dataclass(slots=True)
class MachineSample:
    cpu_percent: float = 0.0
    memory_used: int = 0
    memory_total: int = 0
    gpus: list[GpuState] | None = None


@dataclass(slots=True)
class Telemetry:
    sample: MachineSample = field(default_factory=MachineSample)
    _nvml: object | None = None
    _nvml_tried: bool = False

    def __post_init__(self) -> None:
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self.refresh_cpu_memory()

    def refresh_cpu_memory(self) -> None:
        """Cheap, non-blocking: safe to call on the event loop."""
        vm = psutil.virtual_memory()
        self.sample.cpu_percent = psutil.cpu_percent(interval=None)
        self.sample.memory_used = int(vm.total - vm.available)
        self.sample.memory_total = int(vm.total)

    def read_gpus(self) -> list[GpuState] | None:
        """May block for a moment (nvidia-smi): call it on an executor thread."""
        gpus = self._read_nvml()
        if gpus is None:
            gpus = _read_nvidia_smi()
        self.sample.gpus = gpus
        return gpus

    def _read_nvml(self) -> list[GpuState] | None:
        if not self._nvml_tried:
            self._nvml_tried = True
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception:
                self._nvml = None
        nvml = self._nvml
        if nvml is None:
            return None
        try:
            out = []
            for i in range(nvml.nvmlDeviceGetCount()):  # type: ignore[attr-defined]
                h = nvml.nvmlDeviceGetHandleByIndex(i)  # type: ignore[attr-defined]
                mem = nvml.nvmlDeviceGetMemoryInfo(h)  # type: ignore[attr-defined]
                util = nvml.nvmlDeviceGetUtilizationRates(h)  # type: ignore[attr-defined]
                name = nvml.nvmlDeviceGetName(h)  # type: ignore[attr-defined]
                if isinstance(name, bytes):
                    name = name.decode()
                out.append(GpuState(i, str(name), float(util.gpu), int(mem.used), int(mem.total)))
            return out
        except Exception:
            return None


def _read_nvidia_smi() -> list[GpuState] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    query = "index,name,utilization.gpu,memory.used,memory.total"
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(out)


def accelerator_type(gpu_name: str) -> str | None:
    """The short model name Ray uses for ``accelerator_type`` ("H100", "A100", "V100",
    "T4", "L4"...), from a device name such as "NVIDIA H100 80GB HBM3"."""
    words = [w for w in gpu_name.replace("-", " ").split() if w]
    while words and words[0] in ("NVIDIA", "Tesla", "GeForce", "Quadro"):
        words = words[1:]
    return words[0] if words else None


def detect_accelerator_type() -> str | None:
    """The model of this machine's first GPU, as ``accelerator_type`` (None: no GPU)."""
    gpus = _read_nvidia_smi()
    return accelerator_type(gpus[0].name) if gpus else None


def parse_nvidia_smi(text: str) -> list[GpuState] | None:
    """Parse ``nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        try:
            gpus.append(
                GpuState(
                    int(parts[0]),
                    parts[1],
                    float(parts[2]),
                    int(float(parts[3])) << 20,
                    int(float(parts[4])) << 20,
                )
            )
        except ValueError:
            continue
    return gpus or None
