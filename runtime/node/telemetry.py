"""Machine telemetry for node records: CPU, memory and, when present, GPUs.

Sampled periodically by the node manager; every call here returns at once. GPU figures
come from NVML (``pynvml``) when it imports and finds devices, else from ``nvidia-smi``
run on an executor thread; on machines with neither, ``gpus`` stays None, without error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil

from ..common.gpus import read_nvidia_smi
from ..common.state_schema import GpuState


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
            gpus = read_nvidia_smi()
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
