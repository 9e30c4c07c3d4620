"""Nothing the user owns is destroyed: an output never replaces the working directory, an input or
a directory of someone else's files; --force replaces only what this project wrote; one writer per
run or data directory; an interrupted prepare leaves the old prepared directory whole."""
import os
import shutil
import subprocess
import sys

import pytest

import lightformer as lf
from lightformer.data import indexed
from lightformer.datasets import pipeline
from lightformer.data.indexed import ParallelData
from lightformer.data.synthetic import write_synthetic
from lightformer.errors import LightformerError
from lightformer.io import OUTPUT_MARK, atomic_dir, check_output_dir, lock_path, one_writer
from tests.integrity.helpers import lightformer, refused, tree_hashes


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("owned")
    data = write_synthetic(root / "data", "copy", train=200, valid=20, test=20)
    vocab = len(ParallelData(data).src_dict)
    lf.save_checkpoint(lf.build_model("transformer_tiny", vocab, vocab, seed=1), root / "m.safetensors")
    return root, data


def _user_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.tex").write_text("months of work\n")
    return path


def test_export_never_replaces_the_working_directory_an_input_or_foreign_files(work, tmp_path):
    root, _ = work
    shutil.copy(root / "m.safetensors", tmp_path / "m.safetensors")
    _user_dir(tmp_path)
    refused("export", "ct2", "m.safetensors", "--out", ".", "--force", cwd=tmp_path, watch=(tmp_path,),
            expect="working directory")
    refused("export", "ct2", tmp_path / "m.safetensors", "--out", tmp_path.parent, "--force", cwd=tmp_path,
            watch=(tmp_path,), expect="working directory")
    refused("export", "ct2", tmp_path / "m.safetensors", "--out", tmp_path, "--force", watch=(tmp_path,),
            expect="overlaps the input")
    mine = _user_dir(tmp_path / "mine")
    refused("export", "ct2", tmp_path / "m.safetensors", "--out", mine, "--force", watch=(tmp_path,),
            expect="did not write")
    refused("export", "ct2", tmp_path / "m.safetensors", "--out", mine, watch=(tmp_path,), expect="--force")


def test_force_replaces_an_export_this_project_wrote(work, tmp_path):
    root, _ = work
    out = tmp_path / "ct2"
    assert lightformer("export", "ct2", root / "m.safetensors", "--out", out).returncode == 0
    assert (out / OUTPUT_MARK).read_text().strip() == "CTranslate2 export"
    r = lightformer("export", "ct2", root / "m.safetensors", "--out", out, "--force")
    assert r.returncode == 0, r.stderr.decode()
    assert (out / "model.bin").is_file() and not list(tmp_path.glob(".ct2.*"))


def test_glue_outputs_refuse_their_inputs_and_foreign_directories(tmp_path):
    data = _user_dir(tmp_path / "prepared")
    refused("glue", "train", "--checkpoint", tmp_path / "ckpt", "--data", data, "--out", data, watch=(tmp_path,),
            expect="overlaps the input")
    refused("glue", "init", "--task", "sst2", "--data", data, "--out", data, watch=(tmp_path,),
            expect="overlaps the input")
    other = _user_dir(tmp_path / "other")
    refused("glue", "init", "--task", "sst2", "--data", data, "--out", other, watch=(tmp_path,), expect="--force")


def test_bench_and_plan_cost_never_overwrite_their_inputs(work, tmp_path):
    root, _ = work
    ckpt = shutil.copy(root / "m.safetensors", tmp_path / "m.safetensors")
    refused("bench", "train", ckpt, "--out", ckpt, "--steps", "1", watch=(tmp_path,), expect="overwrite the input")
    config = tmp_path / "c.yaml"
    config.write_text("tasks: {}\n")
    bench = tmp_path / "b.csv"
    bench.write_text("arch,engine,kind,target_tokens,steps,max_tokens,tokens_per_s\n")
    refused("plan-cost", config, "--bench", bench, "--out", config, watch=(tmp_path,), expect="overwrite the input")
    refused("plan-cost", config, "--bench", bench, "--out", bench, watch=(tmp_path,), expect="overwrite the input")


@pytest.mark.parametrize("rate", ["-100", "nan", "inf", "0", "fast"])
def test_plan_cost_refuses_a_rate_that_is_not_a_positive_number(tmp_path, rate):
    config = tmp_path / "c.yaml"
    config.write_text("tasks: {}\n")
    bench = tmp_path / "b.csv"
    bench.write_text("arch,engine,kind,target_tokens,steps,max_tokens,tokens_per_s\n"
                     f"transformer_tiny,lightformer,dense,4096,4,1024,{rate}\n")
    line = refused("plan-cost", config, "--bench", bench, watch=(tmp_path,), expect="tokens_per_s")
    assert "b.csv:2" in line


@pytest.mark.parametrize("config", ["[1, 2]", "tasks: {a: {grid: {ratio: [2]}}}", "tasks: {a: {train: 3}}"])
def test_plan_cost_refuses_a_malformed_config_in_one_line(tmp_path, config):
    path = tmp_path / "c.yaml"
    path.write_text(config + "\n")
    bench = tmp_path / "b.csv"
    bench.write_text("arch,engine,kind,target_tokens,steps,max_tokens,tokens_per_s\n")
    refused("plan-cost", path, "--bench", bench, watch=(tmp_path,))


@pytest.mark.parametrize("args,expect", [(["--steps", "0"], "--steps"), (["--peak-tflops", "-5"], "--peak-tflops")])
def test_bench_train_refuses_nonsense_numbers(work, args, expect):
    root, _ = work
    refused("bench", "train", root / "m.safetensors", *args, expect=expect)


def test_a_second_train_on_the_same_run_directory_is_refused(work, tmp_path):
    _, data = work
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom lightformer.io import one_writer\n"
        f"with one_writer({str(run)!r}, 'train'):\n    print('held', flush=True)\n    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = refused("train", "--recipe", "synthetic", f"data={data}", f"save_dir={run}", "max_updates=1",
                       expect="in use by lightformer train")
        assert f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    r = lightformer("train", "--recipe", "synthetic", f"data={data}", f"save_dir={run}", "max_updates=1",
                    "arch=transformer_tiny")
    assert r.returncode == 0, r.stderr.decode()[-2000:]  # a killed holder leaves no lock behind
    assert not lock_path(run).exists()


def test_the_lock_names_its_holder_and_is_gone_after(tmp_path):
    with one_writer(tmp_path, "data prepare"):
        with pytest.raises(LightformerError, match=rf"in use by lightformer data prepare \(pid {os.getpid()}"):
            with one_writer(tmp_path, "data fetch"):
                pass
    assert not lock_path(tmp_path).exists()
    with one_writer(tmp_path, "data fetch"):
        pass


def test_an_interrupted_prepare_leaves_the_old_prepared_directory_whole(tmp_path, monkeypatch):
    assert lightformer("data", "fixtures", "--out", tmp_path / "m").returncode == 0
    opts = pipeline.DataOptions(root=str(tmp_path / "d"), mirror=str(tmp_path / "m"), embedded=True,
                                bpe_merges=200)
    pipeline.fetch("iwslt14", opts)
    pipeline.prepare("iwslt14", opts)
    prepared = tmp_path / "d/iwslt14/prepared"
    before = tree_hashes(prepared)

    def crash(out, *args, **kwargs):  # as if killed after the dictionaries, before the token arrays
        (out / "dict.de.txt").write_text("new symbols\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(indexed, "write_parallel", crash)
    import lightformer.datasets.iwslt14 as iwslt14

    monkeypatch.setattr(iwslt14, "write_parallel", crash, raising=False)
    with pytest.raises(KeyboardInterrupt):
        pipeline.prepare("iwslt14", pipeline.DataOptions(root=str(tmp_path / "d"), bpe_merges=300))
    assert tree_hashes(prepared) == before
    assert sorted(p.name for p in prepared.parent.iterdir()) == ["prepared", "raw"]
    assert not lock_path(prepared.parent).exists()


def test_atomic_dir_refuses_to_replace_unmarked_files(tmp_path):
    target = _user_dir(tmp_path / "t")
    with pytest.raises(LightformerError, match="did not write"):
        with atomic_dir(target, "prepared data", force=True):
            pass
    assert (target / "thesis.tex").is_file()
    check_output_dir(tmp_path / "new", "x")  # a new or empty directory is always fine
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "x")


def test_a_write_failure_is_one_line_and_leaves_nothing_half_written(tmp_path):
    """A file-size limit (as a full disk or quota would): EFBIG mid-write, one line, no traceback, no
    partial checkpoint under its name or beside it."""
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    r = subprocess.run([sys.executable, "-m", "lightformer", "init", "--arch", "transformer_iwslt_de_en",
                        "--src-vocab", "100", "--tgt-vocab", "100", "--out", str(tmp_path / "m.safetensors")],
                       capture_output=True, text=True, preexec_fn=limit, timeout=300)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "File too large" in lines[0] and "nothing was left" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_atomic_writes_keep_the_users_umask_not_the_temp_files_0600(tmp_path):
    """A group-shared umask (002), as the process starts with it: results come out group-writable
    (mkstemp/mkdtemp alone would give 0600/0700 and hide them from the group)."""
    code = ("import sys; from pathlib import Path; from lightformer.io import atomic_dir, write_text_atomic; "
            "d = Path(sys.argv[1]); write_text_atomic(d / 'a.csv', 'x'); "
            "exec('with atomic_dir(d / \\'o\\', \\'x\\'):\\n    pass')")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], preexec_fn=lambda: os.umask(0o002),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o775

def test_a_cut_result_file_is_refused_in_one_line_naming_it(tmp_path):
    """A truncated generate JSON given to `report tables`: file, line and column, no traceback."""
    evals = tmp_path / "evaluate/baseline/seed1/hyps.txt.json"
    evals.parent.mkdir(parents=True)
    evals.write_text('{"bleu": {"score": 3')
    params = tmp_path / "baseline.json"
    params.write_text('{"total": 1}')
    line = refused("report", "tables", "--tasks", "t", "--evals", evals, "--params", params, "--out", tmp_path / "t",
                   watch=(tmp_path,), expect="not valid JSON")
    assert "hyps.txt.json:1:" in line


def test_the_new_commands_refuse_nonsense_in_one_line(work, tmp_path):
    _, data = work
    refused("control", "init", "--control", "share_all", "--ratio", "2", "--recipe", "synthetic", "--data", data,
            "--out", tmp_path / "c.safetensors", watch=(tmp_path,), expect="takes no ratio")
    refused("control", "init", "--control", "dense_small", "--ratio", "0.5", "--recipe", "synthetic", "--data", data,
            "--out", tmp_path / "c.safetensors", watch=(tmp_path,), expect="ratio")
    refused("diagnose-init", "--recipe", "synthetic", "--data", data, "--updates", "0", "--out", tmp_path / "d.csv",
            watch=(tmp_path,), expect="--updates")
    curve = tmp_path / "baseline/seed1/curve.csv"
    curve.parent.mkdir(parents=True)
    curve.write_text("update,valid_loss\n100,4.0\n200,3.")
    refused("report", "convergence", "--curves", curve, "--out", curve, watch=(tmp_path,), expect="overwrite the input")
    curve.write_text('update,valid_loss\n"100,4.0\n')
    refused("report", "convergence", "--curves", curve, "--out", tmp_path / "c.csv", watch=(tmp_path,),
            expect="cannot be read")
