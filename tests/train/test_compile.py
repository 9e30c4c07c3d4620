"""torch.compile of the training forward: the loss and gradients of eager mode, one graph with no
breaks (no host sync inside the model), and batches of new widths do not compile anew each time."""
import torch
from torch._dynamo.utils import counters

import lightformer as lf
from lightformer.data.batching import collate
from lightformer.models.losses import label_smoothed_nll_loss


def test_compiled_training_step_matches_eager_and_compiles_at_most_twice():
    torch._dynamo.reset()
    counters.clear()
    eager = lf.build_model("transformer_tiny", 60, 50, seed=1, share_decoder_input_output_embed=True, dropout=0.0)
    twin = lf.build_model("transformer_tiny", 60, 50, seed=1, share_decoder_input_output_embed=True, dropout=0.0)
    compiled = torch.compile(twin.train())
    eager.train()
    g = torch.Generator().manual_seed(3)
    for widths in [(5, 9, 3), (7, 11, 4), (12, 21, 6), (2, 3, 4), (30, 1, 17)]:  # 16, 16, 24, 8, 32 padded
        src = [torch.randint(4, 60, (n,), generator=g) for n in widths]
        tgt = [torch.randint(4, 50, (n + 1,), generator=g) for n in widths]
        b = collate(src, tgt, 8)
        losses = []
        for model in (eager, compiled):
            loss, _ = label_smoothed_nll_loss(model(b["src_tokens"], b["prev_output_tokens"]), b["target"], 0.1)
            loss.backward()
            losses.append(float(loss))
        assert abs(losses[0] - losses[1]) <= 1e-4 * abs(losses[0])
        for p, q in zip(eager.parameters(), twin.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6)
            p.grad = q.grad = None
    assert counters["stats"]["unique_graphs"] <= 2  # the first shapes, then one dynamic-shape graph
    assert not counters["graph_break"]
