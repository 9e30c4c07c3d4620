"""Resume never loses work: the newest intact checkpoint is used, unreadable ones are set aside
(never deleted or overwritten), and a run is bound to its data and init_from."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from lightformer.cli import main
from lightformer.data.synthetic import write_synthetic
from lightformer.train.run_dir import pointed, update_dirs
from tests.integrity.helpers import refused, tree_hashes

ARGS = ["--recipe", "synthetic", "save_interval_updates=40", "validate_interval_updates=40", "eval_bleu=false",
        "threads=1", "keep_last=50"]


# its fixture is built once: every test on one worker (xdist_group), kept for the session
# (a module fixture is rebuilt whenever the worker runs another module in between)
pytestmark = pytest.mark.xdist_group("resume-integrity")


@pytest.fixture(scope="session")
def base(tmp_path_factory):
    """A finished 120-update run (checkpoints every 40 updates and at each epoch end)."""
    root = tmp_path_factory.mktemp("resume")
    data = write_synthetic(root / "copy", "copy", train=400, valid=40, test=40)
    run = root / "run"
    assert main(["train", *ARGS, f"data={data}", f"save_dir={run}", "max_updates=120"]) == 0
    return data, run


def _copy(base, tmp_path) -> tuple[Path, Path]:
    data, run = base
    shutil.copytree(run, tmp_path / "run")
    return data, tmp_path / "run"


def _resume(data, run, updates=160, *extra):
    return main(["train", *extra, *ARGS, f"data={data}", f"save_dir={run}", f"max_updates={updates}"])


def _summary(run):
    return json.loads((run / "summary.json").read_text())


@pytest.mark.parametrize("damage", ["model_missing", "model_truncated", "model_flipped_byte", "state_truncated",
                                    "state_missing"])
def test_unreadable_newest_checkpoint_is_set_aside_and_the_previous_one_resumed(base, tmp_path, damage):
    data, run = _copy(base, tmp_path)
    oldest, previous, newest = update_dirs(run)[0], update_dirs(run)[-2], update_dirs(run)[-1]
    target = newest / ("model.safetensors" if damage.startswith("model") else "state.pt")
    if damage.endswith("missing"):
        target.unlink()
    elif damage.endswith("flipped_byte"):  # loads fine; only the content digest can tell
        raw = bytearray(target.read_bytes())
        raw[-3] ^= 0x01
        target.write_bytes(bytes(raw))
    else:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    older = tree_hashes(oldest)
    assert _resume(data, run) == 0
    events = (run / "events.log").read_text()
    assert f"resumed from {previous.name} at update {int(previous.name[7:])}" in events
    assert f"skipped newer {newest.name}" in events
    assert newest.with_name(newest.name + ".corrupt").is_dir()  # kept, under another name
    assert _summary(run)["num_updates"] == 160
    assert tree_hashes(oldest) == older  # nothing older pruned or rewritten


def test_update_numbers_that_disagree_make_a_checkpoint_unreadable(base, tmp_path):
    data, run = _copy(base, tmp_path)
    shutil.copy(update_dirs(run)[-2] / "state.pt", update_dirs(run)[-1] / "state.pt")
    assert _resume(data, run) == 0
    assert "disagree on the update" in (run / "events.log").read_text()


def test_all_checkpoints_unreadable_is_refused_and_nothing_is_touched(base, tmp_path):
    data, run = _copy(base, tmp_path)
    for ckpt in (run / "checkpoints").glob("update_*"):
        (ckpt / "state.pt").write_bytes(b"not a state")
    line = refused("train", *ARGS, f"data={data}", f"save_dir={run}", "max_updates=160", watch=(run,),
                   expect="no checkpoint in")
    assert update_dirs(run)[-1].name in line and "--restart" in line


def test_restart_moves_the_old_run_aside(base, tmp_path):
    data, run = _copy(base, tmp_path)
    assert _resume(data, run, 40, "--restart") == 0
    assert _summary(run)["num_updates"] == 40
    old = [p for p in tmp_path.iterdir() if p.name.startswith("run.discarded-")]
    assert len(old) == 1 and (update_dirs(old[0])[-1] / "model.safetensors").is_file()


def test_changed_data_is_refused_naming_it(base, tmp_path):
    data, run = _copy(base, tmp_path)
    other = write_synthetic(tmp_path / "reverse", "reverse", train=400, valid=40, test=40)
    line = refused("train", *ARGS, f"data={other}", f"save_dir={run}", "max_updates=160", watch=(run,),
                   expect="the data under data=")
    assert "meta.json" in line
    assert "--restart" in line and "new save_dir" in line


def test_rebuilt_data_in_the_same_directory_is_refused(base, tmp_path):
    data, run = _copy(base, tmp_path)
    rebuilt = tmp_path / "copy"
    shutil.copytree(data, rebuilt)
    write_synthetic(rebuilt, "copy", train=300, valid=40, test=40, seed=7)  # same path, new contents
    line = refused("train", *ARGS, f"data={rebuilt}", f"save_dir={run}", "max_updates=160", watch=(run,),
                   expect="changed since it started")
    assert "idx" in line


def test_restart_if_changed_starts_over_on_new_data_and_resumes_on_the_same(base, tmp_path):
    data, run = _copy(base, tmp_path)
    assert _resume(data, run, 160, "--restart-if-changed") == 0  # unchanged: resumed
    assert "resumed from update_0000120 at update 120" in (run / "events.log").read_text()
    other = write_synthetic(tmp_path / "reverse", "reverse", train=400, valid=40, test=40)
    assert _resume(other, run, 40, "--restart-if-changed") == 0
    assert _summary(run)["num_updates"] == 40
    assert "changed: the previous run was moved to run.discarded-" in (run / "events.log").read_text()


def test_changed_init_from_is_refused(base, tmp_path):
    data, run = base
    start = tmp_path / "start.safetensors"
    shutil.copy(pointed(run, "last") / "model.safetensors", start)
    ft = tmp_path / "ft"
    assert main(["train", *ARGS, f"data={data}", f"save_dir={ft}", "max_updates=40", f"init_from={start}"]) == 0
    shutil.copy(update_dirs(run)[0] / "model.safetensors", start)  # another model, same path
    refused("train", *ARGS, f"data={data}", f"save_dir={ft}", "max_updates=80", f"init_from={start}", watch=(ft,),
            expect="init_from checkpoint")


def test_a_run_without_checkpoints_starts_fresh(base, tmp_path):
    data, _ = base
    run = tmp_path / "fresh"
    (run / "checkpoints").mkdir(parents=True)
    assert _resume(data, run, 40) == 0
    assert torch.load(pointed(run, "last") / "state.pt", weights_only=True)["bound"]["data"]
