"""Loaded by every Python process started with this folder on PYTHONPATH (tests/integrity/test_ddp.py):
wraps torch.distributed's collectives so each call records the device of its tensor, and fails the
call when that is not the device the rank trains on (LIGHTFORMER_PROBE_DEVICE)."""
import os

if os.environ.get("LIGHTFORMER_PROBE_LOG"):
    import torch
    import torch.distributed as dist

    def _wrap(name):
        original = getattr(dist, name)

        def probe(tensor, *args, **kwargs):
            with open(f"{os.environ['LIGHTFORMER_PROBE_LOG']}.{os.environ.get('RANK', '0')}", "a") as f:
                f.write(f"{name} {tensor.device}\n")
            want = torch.device(os.environ.get("LIGHTFORMER_PROBE_DEVICE", "cpu"))
            if tensor.device.type != want.type:
                raise RuntimeError(f"collective {name} got a tensor on {tensor.device}, training device {want}")
            return original(tensor, *args, **kwargs)

        setattr(dist, name, probe)

    for _name in ("all_reduce", "broadcast", "all_gather_into_tensor", "reduce_scatter_tensor"):
        _wrap(_name)
