"""Summarization on the embedded CNN/DailyMail-shaped parquet, through the real code paths:
mirror -> fetch (Hub listing) -> prepare (truncation, <q> separators, joint BPE) -> train a
baseline -> SVD transfer + sharing -> fine-tune -> generate with the CNN/DM search -> ROUGE."""
import json
from pathlib import Path

from rouge_score import rouge_scorer

from lightformer.cli import main
from lightformer.train.run_dir import pointed


def test_embedded_cnndm_learns_and_scores_rouge(tmp_path):
    root, mirror = tmp_path / "data", tmp_path / "mirror"
    assert main(["data", "fixtures", "--out", str(mirror)]) == 0
    assert main(["data", "fetch", "cnndm", "--root", str(root), "--mirror", str(mirror), "--embedded"]) == 0
    assert main(["data", "prepare", "cnndm", "--root", str(root), "--bpe-merges", "300", "--no-expected"]) == 0
    data = root / "cnndm/prepared"
    base = tmp_path / "base"
    assert main(["train", "--recipe", "synthetic", f"data={data}", f"save_dir={base}", "eval_bleu=false",
                 "model.share_all_embeddings=true", "max_updates=300"]) == 0
    light = tmp_path / "light.safetensors"
    assert main(["compress", str(pointed(base, "best") / "model.safetensors"), "--ratio", "2", "--share-layers", "2",
                 "--out", str(light)]) == 0
    ft = tmp_path / "ft"
    assert main(["train", "--recipe", "synthetic", f"data={data}", f"save_dir={ft}", f"init_from={light}",
                 "eval_bleu=false", "max_updates=60", "lr=1e-3", "warmup_updates=10"]) == 0
    hyps = tmp_path / "hyps.txt"
    assert main(["generate", str(pointed(ft, "best") / "model.safetensors"), "--data", str(data), "--remove-bpe",
                 "--detok", "en", "--beam", "4", "--lenpen", "2.0", "--min-len", "10", "--max-len-b", "60",
                 "--no-repeat-ngram-size", "3", "--metric", "rouge", "--out", str(hyps)]) == 0
    result = json.loads(Path(f"{hyps}.json").read_text())
    scores = result["rouge"]["scores"]
    assert result["sentences"] == 100 and scores["rouge2"] > 40  # lead-2 copying, far above chance
    # the reported numbers are rouge-score's own, on the untouched references, one sentence per line
    refs = [json.loads(x) for x in open(data / "test.ref.jsonl")]
    lines = hyps.read_text().splitlines()
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    lsum = 100 * sum(scorer.score(r, h.replace(" <q> ", "\n"))["rougeLsum"].fmeasure
                     for r, h in zip(refs, lines)) / len(refs)
    assert abs(lsum - scores["rougeLsum"]) < 1e-9
    assert "\n" in refs[0] and " <q> " in lines[0]


def test_prepared_directories_hold_their_bpe_text(tmp_path):
    """CNN/DM leaves its BPE'd text beside the token arrays, like IWSLT and WMT (one writer)."""
    from lightformer.cli import main
    from lightformer.data.indexed import ParallelData

    assert main(["data", "fixtures", "--out", str(tmp_path / "mirror")]) in (0, None)
    args = ["--root", str(tmp_path / "data")]
    assert main(["data", "fetch", "cnndm", *args, "--mirror", str(tmp_path / "mirror"), "--embedded"]) in (0, None)
    assert main(["data", "prepare", "cnndm", *args, "--bpe-merges", "200", "--no-expected"]) in (0, None)
    prepared = tmp_path / "data/cnndm/prepared"
    data = ParallelData(prepared)
    for split in ("train", "valid", "test"):
        src, tgt = data.split(split)
        lines = (prepared / f"{split}.{data.tgt}").read_text().splitlines()
        assert len(lines) == len(tgt) and len((prepared / f"{split}.{data.src}").read_text().splitlines()) == len(src)
        assert data.tgt_dict.encode(lines[0]).tolist() == tgt[0].tolist()  # the text is what was encoded
