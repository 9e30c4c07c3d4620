"""Dense cross-layer sharing (the sharing-only light-weight baselines): the patterns as their papers
define them, one Parameter per shared weight (counted, stored and trained once), LayerNorms shared
only when asked, and a checkpoint that rebuilds the tie."""
import pytest
import torch

import lightformer as lf
from lightformer.compress.count import count_parameters
from lightformer.models.layer_sharing import layer_owners


@pytest.mark.parametrize("n,pattern,unique,owners", [
    (6, "all", 0, [0, 0, 0, 0, 0, 0]),
    (6, "sandwich", 0, [0, 1, 1, 1, 1, 5]),
    (6, "cycle_rev", 0, [0, 1, 2, 2, 1, 0]),  # Takase & Kiyono: 1 2 3 3 2 1
    (6, "cycle_rev", 2, [0, 1, 0, 1, 1, 0]),
    (2, "sandwich", 0, [0, 1]),
    (6, "none", 0, [0, 1, 2, 3, 4, 5]),
])
def test_patterns(n, pattern, unique, owners):
    assert layer_owners(n, pattern, unique) == owners


def _model(pattern, norms=False):
    return lf.build_model("transformer_tiny6", 40, 40, seed=1, layer_sharing=pattern, share_layer_norms=norms)


def test_shared_weights_are_one_parameter_and_norms_only_when_asked():
    dense, shared = _model("none"), _model("all")
    enc = shared.encoder.layers
    assert enc[0].fc1.weight is enc[5].fc1.weight and enc[0].self_attn is enc[3].self_attn
    assert enc[0].final_layer_norm is not enc[5].final_layer_norm
    tied = _model("all", norms=True)
    assert tied.encoder.layers[0].final_layer_norm is tied.encoder.layers[5].final_layer_norm
    body = lambda m: count_parameters(m)["body"]  # noqa: E731
    assert body(shared) < body(dense) / 4
    assert body(_model("all", norms=True)) < body(shared)
    assert len(list(shared.parameters())) < len(list(dense.parameters()))


@pytest.mark.parametrize("pattern", ["all", "sandwich", "cycle_rev"])
def test_checkpoint_roundtrip_keeps_the_tie_and_the_function(tmp_path, pattern):
    model = _model(pattern).eval()
    lf.save_checkpoint(model, tmp_path / "m.safetensors")
    back = lf.load_checkpoint(tmp_path / "m.safetensors").eval()
    assert back.decoder.layers[1].fc2.weight is back.decoder.layers[4 if pattern != "cycle_rev" else 1].fc2.weight
    src = torch.randint(4, 40, (3, 7))
    prev = torch.randint(4, 40, (3, 5))
    torch.testing.assert_close(back(src, prev), model(src, prev))
    assert count_parameters(back) == count_parameters(model)


def test_a_shared_weight_gets_the_sum_of_every_positions_gradient():
    """The shared model is the dense model with equal weights at every position, and its gradient is
    the sum of those positions' gradients."""
    shared, dense = _model("all").train(), _model("none").train()
    state = {k: v for k, v in shared.state_dict().items()}
    for side in ("encoder", "decoder"):  # every dense position gets the owner's weights
        for i in range(6):
            for k, v in shared.state_dict().items():
                if k.startswith(f"{side}.layers.0."):
                    state[k.replace(".layers.0.", f".layers.{i}.")] = v
    dense.load_state_dict(state)
    src, prev = torch.randint(4, 40, (2, 6)), torch.randint(4, 40, (2, 5))
    torch.manual_seed(0)
    shared.eval()(src, prev).sum().backward()
    dense.eval()(src, prev).sum().backward()
    total = sum(dense.encoder.layers[i].fc1.weight.grad for i in range(6))
    torch.testing.assert_close(shared.encoder.layers[0].fc1.weight.grad, total, rtol=1e-4, atol=1e-5)
