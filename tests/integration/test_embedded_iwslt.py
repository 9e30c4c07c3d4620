"""The whole method on the embedded IWSLT'14 data, through the real code paths: mirror -> fetch
-> verify -> prepare (fairseq recipe) -> train baseline -> SVD transfer -> fine-tune -> generate."""
import json
from pathlib import Path

from lightformer.cli import main
from lightformer.train.run_dir import pointed


def test_embedded_iwslt_end_to_end(tmp_path):
    root, mirror = tmp_path / "data", tmp_path / "mirror"
    assert main(["data", "fixtures", "--out", str(mirror)]) == 0
    assert main(["data", "fetch", "iwslt14", "--root", str(root), "--mirror", str(mirror)]) == 0
    assert main(["data", "prepare", "iwslt14", "--root", str(root), "--bpe-merges", "300", "--no-expected"]) == 0
    data = root / "iwslt14/prepared"
    base = tmp_path / "base"
    assert main(["train", "--recipe", "synthetic", f"data={data}", f"save_dir={base}", "eval_remove_bpe=@@ ",
                 "max_updates=500"]) == 0
    assert json.loads((base / "summary.json").read_text())["best"] > 50
    best = pointed(base, "best") / "model.safetensors"
    light = tmp_path / "light.safetensors"
    assert main(["compress", str(best), "--ratio", "2", "--share-layers", "2", "--out", str(light)]) == 0
    ft = tmp_path / "ft"
    assert main(["train", "--recipe", "synthetic", f"data={data}", f"save_dir={ft}", f"init_from={light}",
                 "eval_remove_bpe=@@ ", "max_updates=100", "lr=1e-3", "warmup_updates=20"]) == 0
    hyps = tmp_path / "hyps.txt"
    assert main(["generate", str(pointed(ft, "best") / "model.safetensors"), "--data", str(data),
                 "--remove-bpe", "--beam", "5", "--out", str(hyps)]) == 0
    result = json.loads(Path(f"{hyps}.json").read_text())
    assert result["sentences"] == 100 and result["bleu"]["score"] > 30
    curve = (ft / "curve.csv").read_text().splitlines()
    assert len(curve) >= 2 and "valid_bleu" in curve[0]
