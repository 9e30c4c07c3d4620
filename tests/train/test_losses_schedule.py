import math

import pytest
import torch

from lightformer.config import PAD
from lightformer.models.losses import label_smoothed_nll_loss
from lightformer.train.schedule import inverse_sqrt_lr


def test_label_smoothing_equals_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7)
    target = torch.tensor([[4, 2, PAD], [5, 6, 3]])
    eps = 0.1
    loss, nll = label_smoothed_nll_loss(logits, target, eps)
    lp = torch.log_softmax(logits, -1)
    want_loss = want_nll = 0.0
    for b in range(2):
        for t in range(3):
            y = int(target[b, t])
            if y == PAD:
                continue
            # the true class gets 1 - eps, each of the other V-1 classes eps/(V-1)
            q = torch.full((7,), eps / 6)
            q[y] = 1 - eps
            want_loss += float(-(q * lp[b, t]).sum())
            want_nll += float(-lp[b, t, y])
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    assert nll.item() == pytest.approx(want_nll, rel=1e-5)


def test_no_smoothing_is_cross_entropy():
    logits, target = torch.randn(4, 9), torch.tensor([1, 3, 8, 2])
    loss, _ = label_smoothed_nll_loss(logits, target, 0.0)
    ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=PAD, reduction="sum")
    assert loss.item() == pytest.approx(ce.item(), rel=1e-6)


def test_inverse_sqrt_schedule():
    assert inverse_sqrt_lr(0, 5e-4, 4000) == pytest.approx(1e-7)
    assert inverse_sqrt_lr(2000, 5e-4, 4000) == pytest.approx(1e-7 + 2000 * (5e-4 - 1e-7) / 4000)
    assert inverse_sqrt_lr(4000, 5e-4, 4000) == pytest.approx(5e-4)
    assert inverse_sqrt_lr(16000, 5e-4, 4000) == pytest.approx(5e-4 * math.sqrt(4000 / 16000))


def test_string_overrides_are_taken_as_typed():
    from lightformer.train.recipes import load_train_config

    cfg = load_train_config("synthetic", overrides=["eval_remove_bpe=@@ ", "init_from=a b.safetensors"])
    assert cfg.eval_remove_bpe == "@@ " and cfg.init_from == "a b.safetensors"
    assert load_train_config("iwslt_de_en", overrides=["eval_remove_bpe=none"]).eval_remove_bpe is None
