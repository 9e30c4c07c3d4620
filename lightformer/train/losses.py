"""fairseq's label_smoothed_cross_entropy (docs/reference.md §4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lightformer.config import PAD


def label_smoothed_nll_loss(logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = PAD):
    """Summed loss and summed NLL over non-pad target tokens.

    loss = (1 - ε - ε_i)·nll + ε_i·Σ_v(−log p_v) with ε_i = ε/(V−1): the true class keeps 1−ε of
    the mass and every other class gets ε/(V−1), as fairseq writes it.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1).view(-1, logits.size(-1))  # (N, V)
    target = target.reshape(-1)
    mask = target.ne(ignore_index)
    nll = -lprobs.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
    smooth = -lprobs.sum(dim=-1)
    nll, smooth = nll[mask], smooth[mask]
    eps_i = epsilon / (lprobs.size(-1) - 1)
    loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    return loss.sum(), nll.sum()
