"""This machine's NVIDIA GPUs as ``nvidia-smi`` reports them, and the model name Ray uses
for ``accelerator_type``. The node manager's telemetry samples them; a driver that starts
a node with GPUs asks for the model (``init(num_gpus=...)`` offers
``accelerator_type:<model>``)."""

from __future__ import annotations

import shutil
import subprocess

from .state_schema import GpuState


def read_nvidia_smi() -> list[GpuState] | None:
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
    gpus = read_nvidia_smi()
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
