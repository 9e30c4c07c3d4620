"""Checkpoints rebuild their model exactly from the file alone, and refuse foreign files."""
import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import lightformer as lf
from tests.conftest import batch, tiny


def test_dense_round_trip(tmp_path):
    m = tiny(normalize_before=True, dropout=0.2)
    path = lf.save_checkpoint(m, tmp_path / "m.safetensors", provenance={"seed": 1})
    back = lf.load_checkpoint(path).eval()
    assert back.cfg == m.cfg and back.compression is None
    assert back.provenance["seed"] == 1 and back.provenance["torch_version"] == torch.__version__
    src, prev = batch()
    assert torch.equal(back(src, prev), m(src, prev))


def test_compressed_round_trip_restores_ties_and_stores_them_once(tmp_path):
    m = tiny("transformer_tiny6", src=41, tgt=41, share_all_embeddings=True)
    c = lf.compress(m, rank=6, share_layers=3, share_qkv=True).eval()
    path = lf.save_checkpoint(c, tmp_path / "c.safetensors")
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        meta = json.loads(f.metadata()["lightformer"])
    assert "encoder.layers.0.self_attn.q_proj.B" in keys
    assert "encoder.layers.0.self_attn.k_proj.B" not in keys  # shared with q: stored once
    assert "encoder.layers.1.self_attn.q_proj.B" not in keys  # shared across layers: stored once
    assert "decoder.embed_tokens.A" not in keys  # tied to the encoder's
    assert meta["compression"]["spec"]["share_layers"] == 3
    back = lf.load_checkpoint(path).eval()
    qb = lambda x, i: x.encoder.layers[i].self_attn.q_proj.B  # noqa: E731
    assert qb(back, 0) is qb(back, 2) is back.encoder.layers[1].self_attn.v_proj.B
    assert back.encoder.embed_tokens is back.decoder.embed_tokens
    assert lf.count_parameters(back) == lf.count_parameters(c)
    src, prev = batch(41, 41)
    assert torch.equal(back(src, prev), c(src, prev))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    lf.save_checkpoint(tiny(), tmp_path / "a.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


@pytest.mark.parametrize("make,msg", [
    (lambda p: torch.save({"model": {}}, p), "PyTorch pickle/zip file"),
    (lambda p: p.write_bytes(b"\x00" * 64), "not a safetensors file"),
    (lambda p: save_file({"w": torch.zeros(2)}, str(p)), "not a lightformer checkpoint"),
    (lambda p: None, "does not exist"),
], ids=["torch-pickle", "garbage", "foreign-safetensors", "missing"])
def test_foreign_files_are_refused(tmp_path, make, msg):
    p = tmp_path / "x.pt"
    make(p)
    with pytest.raises(lf.LightformerError, match=msg):
        lf.load_checkpoint(p)


def test_tensor_set_must_match_the_architecture(tmp_path):
    path = lf.save_checkpoint(tiny(), tmp_path / "m.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del tensors["encoder.layers.0.fc1.weight"]
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(lf.LightformerError, match="does not match its own architecture"):
        lf.load_checkpoint(path)


def test_atomic_dir_replaces_on_success_and_leaves_nothing_on_a_crash(tmp_path):
    from lightformer.errors import LightformerError
    from lightformer.io import OUTPUT_MARK, atomic_dir

    out = tmp_path / "ckpt"
    with atomic_dir(out, "x") as d:
        (d / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, "x", force=True) as d:
            (d / "a").write_text("half")
            raise RuntimeError("killed")
    assert (out / "a").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(LightformerError, match="pass --force"):  # never replaced unasked
        with atomic_dir(out, "x"):
            pass
    with atomic_dir(out, "x", force=True) as d:
        (d / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARK, "b"]  # replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # the old one moved aside, then removed


def test_loading_checks_shapes_without_the_compiler_stack(tmp_path):
    """The header's shape check builds the model on the meta device; it must not run the random
    fills or factories whose meta kernels import TorchDynamo (0.8 s of every job that loads a
    checkpoint: generate, compress, params). The loaded model still has its positions table."""
    import subprocess
    import sys

    path = tmp_path / "m.safetensors"
    lf.save_checkpoint(lf.compress(tiny(), rank=4, share_qkv=True), path)
    probe = (f"import sys, lightformer as lf; m = lf.load_checkpoint({str(path)!r}); "
             f"print('torch._dynamo' in sys.modules, m.encoder.embed_positions.table.device, "
             f"float(m.encoder.embed_positions.table.abs().sum()) > 0)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "cpu", "True"]


def test_shapes_only_builds_every_tensor_on_meta_with_the_real_shapes():
    from lightformer.models.build import shapes_only

    with shapes_only():
        meta = lf.build_model("transformer_tiny", 20, 20)
    tensors = {**dict(meta.named_parameters()), **dict(meta.named_buffers())}
    assert all(v.is_meta for v in tensors.values())  # the positions table too (computed on the CPU, moved)
    cpu = lf.build_model("transformer_tiny", 20, 20)
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in cpu.state_dict().items()}
