import os

import pytest
import torch

import lightformer as lf


SLOW = ("tests/workflow/", "tests/slurm/", "tests/integration/")


def pytest_configure(config):
    """One intra-op thread per xdist worker: two workers on two cores, each with two threads that
    spin-wait on tiny tensors, spent minutes of CPU doing nothing (a 400-step fixture took 111 s)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The end-to-end suites are `slow`: `make test-fast` leaves them out, `make test` (CI) runs all."""
    for item in items:
        if any(part in item.nodeid for part in SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so biases and LayerNorms are non-trivial and no matrix is
    exactly low rank: a stand-in for a trained model in exactness tests."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if hasattr(m, "padding_idx") and isinstance(getattr(m, "weight", None), torch.nn.Parameter):
                m.weight[m.padding_idx] = 0
    return model


def tiny(arch="transformer_tiny", src=43, tgt=37, **kw):
    return trained_like(lf.build_model(arch, src, tgt, seed=1, **kw)).eval()


def batch(src_vocab=43, tgt_vocab=37, B=3, S=7, T=6, pad_rows=True):
    g = torch.Generator().manual_seed(123)
    src = torch.randint(4, src_vocab, (B, S), generator=g)
    prev = torch.randint(4, tgt_vocab, (B, T), generator=g)
    src[:, -1] = 2  # </s>
    prev[:, 0] = 2  # fairseq starts decoding from </s>
    if pad_rows:
        src[0, :2] = 1  # left padding, as fairseq's left_pad_source
        prev[1, -2:] = 1  # right padding of targets
    return src, prev
