"""Facts about the hardware a number was measured on, in one place: what a device is called and
the datasheet peaks MFU is measured against (docs/reference.md §8)."""
from __future__ import annotations

import platform

import torch

# dense tensor-core peaks, FLOP/s, from the vendors' datasheets; matched on
# torch.cuda.get_device_name(). fp32 means TF32 off: CUDA-core peak.
PEAK_FLOPS = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},  # SXM; PCIe: 756 / 51
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
    "L40S": {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12},
}


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (what every measured row records)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_flops(device: torch.device, dtype: str, override_tflops: float | None) -> tuple[float | None, str]:
    """(peak FLOP/s, device name); None when unknown (MFU is then left empty)."""
    name = device_name(device)
    if device.type != "cuda":
        return (override_tflops * 1e12 if override_tflops else None), name
    if override_tflops:
        return override_tflops * 1e12, name
    key = next((k for k in PEAK_FLOPS if k in name), None)
    return (PEAK_FLOPS[key][dtype] if key else None), name
