"""The fused, chunked loss (output layer + label-smoothed CE) is the dense loss: same value, same
gradient on every parameter, for each kind of output layer, with padding, in fp32 and under bf16
autocast; and a training run with it follows the dense run's curve."""
import pytest
import torch

import lightformer as lf
from lightformer.config import PAD
from lightformer.models.losses import (
    fused_label_smoothed_nll_loss,
    label_smoothed_nll_loss,
    seq2seq_loss,
    vocab_projection,
)


def tiny(**kw):
    return lf.build_model("transformer_tiny", 60, 50, seed=1, share_decoder_input_output_embed=True, **kw)


def batch():
    g = torch.Generator().manual_seed(3)
    src, prev, target = (torch.randint(4, 50, (3, n), generator=g) for n in (7, 6, 6))
    target[0, 4:] = PAD  # a shorter sentence
    prev[0, 5:] = PAD
    return src, prev, target


def grads(model, fused, chunk=None):
    model.zero_grad(set_to_none=True)
    src, prev, target = batch()
    if chunk is None:
        loss, nll = seq2seq_loss(model, model, src, prev, target, 0.1, fused)
    else:
        h, w = vocab_projection(model.decoder, model(src, prev, features_only=True))
        loss, nll = fused_label_smoothed_nll_loss(h, w, target, 0.1, chunk=chunk)
    loss.backward()
    return loss.item(), nll.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("make", [
    lambda: tiny(),  # tied output layer
    lambda: lf.build_model("transformer_tiny", 60, 50, seed=1),  # own output projection
    lambda: lf.compress(tiny(), ratio=2.0, roles=["body", "embeddings"], init="random"),  # factorised, tied
    lambda: lf.compress(lf.build_model("transformer_tiny", 60, 50, seed=1), ratio=2.0,
                        roles=["body", "embeddings", "out_proj"], init="random"),  # factorised projection
])
@pytest.mark.parametrize("chunk", [None, 1, 5])  # automatic, one row at a time, a chunk that splits the batch
def test_fused_loss_and_gradients_equal_the_dense_ones(make, chunk):
    model = make().train()
    torch.manual_seed(0)
    dense = grads(model, fused=False)
    torch.manual_seed(0)  # the same dropout masks
    fused = grads(model, fused=True, chunk=chunk)
    assert fused[0] == pytest.approx(dense[0], rel=1e-5) and fused[1] == pytest.approx(dense[1], rel=1e-5)
    assert fused[2].keys() == dense[2].keys()
    for name, g in dense[2].items():
        torch.testing.assert_close(fused[2][name], g, rtol=1e-4, atol=1e-5, msg=name)


def test_under_bf16_autocast_the_fused_loss_matches_the_dense_one_at_bf16_precision():
    model = tiny().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(0)
        dense = grads(model, fused=False)
        torch.manual_seed(0)
        fused = grads(model, fused=True)
    assert fused[0] == pytest.approx(dense[0], rel=2e-2)
    w = "decoder.embed_tokens.weight"
    assert torch.nn.functional.cosine_similarity(fused[2][w].flatten(), dense[2][w].flatten(), dim=0) > 0.99


def test_an_output_layer_with_bias_is_refused():
    model = lf.build_model("transformer_tiny", 60, 50, seed=1)
    model.decoder.output_projection = torch.nn.Linear(32, 50)
    with pytest.raises(ValueError, match="without bias"):
        vocab_projection(model.decoder, torch.zeros(1, 1, 32))


def test_a_batch_of_padding_only_gives_zero_loss_and_zero_gradients():
    h, w = torch.randn(4, 8, requires_grad=True), torch.randn(9, 8, requires_grad=True)
    target = torch.full((4,), PAD)
    loss, nll = fused_label_smoothed_nll_loss(h, w, target, 0.1)
    loss.backward()
    assert loss.item() == 0 and nll.item() == 0 and h.grad.abs().sum() == 0 and w.grad.abs().sum() == 0
    dense, _ = label_smoothed_nll_loss(h @ w.t(), target, 0.1)
    assert dense.item() == 0


def test_a_run_with_the_fused_loss_follows_the_dense_run(tmp_path):
    from lightformer.data.synthetic import write_synthetic
    from lightformer.train.loop import train
    from lightformer.train.recipes import load_train_config

    data = write_synthetic(tmp_path / "syn", "copy", train=400, valid=40, test=40)
    summaries = {loss: train(load_train_config("synthetic", overrides=[
        f"data={data}", f"save_dir={tmp_path / loss}", "max_updates=15", "eval_bleu=false", f"fused_loss={loss}"]),
        progress=False) for loss in ("off", "on")}
    curves = {loss: (tmp_path / loss / "curve.csv").read_text().splitlines() for loss in summaries}
    (head, *off), (_, *on) = curves["off"], curves["on"]
    cols = head.split(",")
    for a, b in zip(off, on, strict=True):
        ra, rb = dict(zip(cols, a.split(","))), dict(zip(cols, b.split(",")))
        for key in ("train_loss", "valid_loss", "valid_nll"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-4), key


def test_the_dense_loss_masks_padding_instead_of_indexing_it():
    """A boolean index (``nll[mask]``) makes the GPU wait for the host once per batch; masking does not."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        seen: list = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    _, _, target = batch()
    with Ops() as ops:
        label_smoothed_nll_loss(torch.randn(*target.shape, 50), target, 0.1)
    assert ops.seen and not [op for op in ops.seen if "index" in op or "nonzero" in op]
