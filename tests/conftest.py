import os

import pytest
import torch
import torch.nn.functional as F

import lightformer as lf
from lightformer.data.batching import collate

SLOW = ("tests/workflow/", "tests/slurm/", "tests/integration/")


def pytest_configure(config):
    """One intra-op thread per xdist worker: two workers on two cores, each with two threads that
    spin-wait on tiny tensors, spent minutes of CPU doing nothing (a 400-step fixture took 111 s)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


# the whole-DAG run (~5 min) first: xdist hands tests out in collection order, and collected last it
# kept one worker busy ~100 s after the other had finished. Only it: the other long suites moved up
# with it ran at the same time as it and the SLURM tests, and every one of them slowed down
LONGEST_FIRST = ("tests/workflow/test_dag.py",)


def pytest_collection_modifyitems(items):
    """The end-to-end suites are `slow`: `make test-fast` leaves them out, `make test` (CI) runs all.
    Modules named in LONGEST_FIRST are collected first (whole modules, so module fixtures are
    still built once)."""
    for item in items:
        if any(part in item.nodeid for part in SLOW):
            item.add_marker(pytest.mark.slow)
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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


def reverse_batch(g, V, n=32):
    """(source, previous output, target) of sequences to reverse: a task a tiny model learns in
    seconds, so tests can decode a trained model (peaked distributions, not a random one's ties)."""
    rows = [torch.randint(4, V, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g) for _ in range(n)]
    src = collate([torch.cat([r, torch.tensor([2])]) for r in rows])["src_tokens"]
    tgt = [torch.cat([r.flip(0), torch.tensor([2])]) for r in rows]
    T = max(len(t) for t in tgt)
    out, prev = torch.full((n, T), 1), torch.full((n, T), 1)
    for i, t in enumerate(tgt):
        out[i, :len(t)] = t
        prev[i, 0] = 2
        prev[i, 1:len(t)] = t[:-1]
    return src, prev, out


def reverse_model(V: int, steps: int = 400) -> torch.nn.Module:
    """A two-layer model taught to reverse sequences (about 10 s on 2 CPU cores)."""
    torch.manual_seed(0)
    m = lf.build_model("transformer_tiny", V, V, seed=3, dropout=0.0, share_decoder_input_output_embed=True)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(steps):
        src, prev, out = reverse_batch(g, V)
        loss = F.cross_entropy(m(src, prev).reshape(-1, V), out.reshape(-1), ignore_index=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5, loss.item()  # it learned the task: peaked distributions
    return m.eval()
