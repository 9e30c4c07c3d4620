"""fairseq's label_smoothed_cross_entropy (docs/reference.md §4), dense and fused with the
vocabulary projection (docs/reference.md §8)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightformer.config import PAD


def label_smoothed_nll_loss(logits: torch.Tensor, target: torch.Tensor, epsilon: float, ignore_index: int = PAD):
    """Summed loss and summed NLL over non-pad target tokens.

    loss = (1 - ε - ε_i)·nll + ε_i·Σ_v(−log p_v) with ε_i = ε/(V−1): the true class keeps 1−ε of
    the mass and every other class gets ε/(V−1), as fairseq writes it.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1).view(-1, logits.size(-1))  # (N, V)
    target = target.reshape(-1)
    pad = target.eq(ignore_index)  # masked, not indexed: a boolean index is a host sync on GPU
    nll = -lprobs.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1).masked_fill(pad, 0.0)
    smooth = -lprobs.sum(dim=-1).masked_fill(pad, 0.0)
    eps_i = epsilon / (lprobs.size(-1) - 1)
    loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    return loss.sum(), nll.sum()


def vocab_projection(decoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, W) with the decoder's logits = h Wᵀ: x and the (tied or own) output weight, or, for a
    factorised output layer A(Bx), the rank-r code Bx and A. Gradients reach the parameters
    through h and W as they would through the logits."""
    out = decoder.output_projection if decoder.output_projection is not None else decoder.embed_tokens
    if getattr(out, "bias", None) is not None:
        raise ValueError("the fused loss needs an output layer without bias")
    if hasattr(out, "A"):  # LowRankLinear / FactorizedEmbedding
        return F.linear(x, out.B), out.A
    return x, out.weight


class _LinearLabelSmoothedCE(torch.autograd.Function):
    """Loss and its gradient computed together, ``chunk`` rows at a time: the (N, V) logits exist
    only chunk by chunk (in fp32), and backward just scales the gradients kept from forward."""

    @staticmethod
    def forward(ctx, h, weight, target, epsilon, ignore_index, chunk):
        vocab = weight.size(0)
        eps_i = epsilon / (vocab - 1)
        grad_h = torch.zeros_like(h) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] else None
        loss = torch.zeros((), dtype=torch.float32, device=h.device)
        nll = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            for s in range(0, h.size(0), chunk):
                hc, tc = h[s: s + chunk], target[s: s + chunk]
                keep, idx = tc.ne(ignore_index).unsqueeze(1), tc.clamp(min=0).unsqueeze(1)
                logits = (hc @ weight.t()).float()
                lse = logits.logsumexp(dim=-1, keepdim=True)
                true = logits.gather(1, idx)
                nll_c = (lse - true).masked_fill(~keep, 0.0)
                smooth_c = (vocab * lse - logits.sum(dim=-1, keepdim=True)).masked_fill(~keep, 0.0)
                loss += ((1.0 - epsilon - eps_i) * nll_c + eps_i * smooth_c).sum()
                nll += nll_c.sum()
                # d loss / d logits = softmax - ε_i - (1 - ε - ε_i)·onehot (the softmax's weight is 1)
                g = (logits - lse).exp_().sub_(eps_i)
                g.scatter_add_(1, idx, torch.full_like(true, -(1.0 - epsilon - eps_i)))
                g = g.masked_fill_(~keep, 0.0).to(h.dtype)
                if grad_h is not None:
                    grad_h[s: s + chunk] = g @ weight
                if grad_w is not None:
                    grad_w += (g.t() @ hc).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.mark_non_differentiable(nll)
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss, grad_nll):
        grad_h, grad_w = ctx.saved_tensors
        dh = None if grad_h is None else grad_h * grad_loss.to(grad_h.dtype)
        dw = None if grad_w is None else grad_w * grad_loss
        return dh, dw, None, None, None, None


def fused_label_smoothed_nll_loss(h: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, epsilon: float,
                                  ignore_index: int = PAD, chunk: int = 0):
    """``label_smoothed_nll_loss`` of the logits h Wᵀ without holding them: h (..., k), W (V, k).

    Under autocast the matmuls run in its dtype (bf16) and the softmax in fp32, as the dense path
    does. ``chunk`` rows per step, 0 = as many as make one chunk's logits about the size of h
    (Liger-Kernel's rule), so memory stays O(N·k), not O(N·V).
    """
    dev = h.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
    h = h.reshape(-1, h.size(-1)).to(dtype)
    weight = weight.to(dtype)
    if chunk <= 0:
        chunk = 1 << max(0, (h.size(0) * h.size(1) // weight.size(0)) - 1).bit_length()
    return _LinearLabelSmoothedCE.apply(h, weight, target.reshape(-1), float(epsilon), ignore_index, chunk)


def seq2seq_loss(forward, model: nn.Module, src: torch.Tensor, prev: torch.Tensor, target: torch.Tensor,
                 epsilon: float, fused: bool):
    """(summed loss, summed NLL) of one teacher-forced batch. ``forward`` is the model or its
    DDP/compiled wrapper; ``model`` the bare model, whose output layer the fused loss applies."""
    if fused:
        h, weight = vocab_projection(model.decoder, forward(src, prev, features_only=True))
        return fused_label_smoothed_nll_loss(h, weight, target, epsilon)
    return label_smoothed_nll_loss(forward(src, prev), target, epsilon)
