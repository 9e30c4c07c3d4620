"""Progress where no terminal shows a bar (Snakemake and SLURM logs): plain lines with count,
rate and time left, from the data preparation steps that take minutes at scale."""
import subprocess
import sys

import yaml

from lightformer.datasets.fixtures import custom_corpus_files
from lightformer.progress import plain_lines, track


def test_plain_lines_report_count_rate_and_eta(capsys):
    assert list(plain_lines(range(5), "tokenize de", 5, "line", interval=0)) == list(range(5))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("tokenize de: 1/5 lines, ") and "line/s, ETA 0:00:" in lines[0]
    assert len(lines) == 5 and lines[-1].startswith("tokenize de: 5/5 lines")
    assert list(track([1, 2], "x", enabled=False)) == [1, 2]


def test_prepare_writes_progress_lines_into_a_log(tmp_path):
    (tmp_path / "c").mkdir()
    for name, data in custom_corpus_files().items():
        (tmp_path / "c" / name).write_bytes(data)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "c", "pair": "de-en", "dir": "c"}))
    cli = [sys.executable, "-m", "lightformer", "data"]
    env = {"LIGHTFORMER_PROGRESS_S": "0", "PATH": "/usr/bin:/bin"}
    for verb in ("fetch", "prepare"):
        r = subprocess.run(cli + [verb, "text", "--corpus", "c.yaml", "--root", "data", "--bpe-merges", "50"][
                           : None if verb == "prepare" else -2], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
    assert "tokenize de (" in r.stderr and "learn BPE: 50 merges on 600 training pairs" in r.stderr
    assert "apply BPE to train: 600/600 pairs" in r.stderr and "\r" not in r.stderr.replace("\r\n", "")
