"""What `make test` relies on from its own machinery: tests marked with one `xdist_group` run on
one worker, so an expensive module or session fixture (a training run, a kernel check) is built
once. pytest 9.2 silently broke this (pytest-xdist issue 1386): every grouped fixture ran twice."""
import re
import subprocess
import sys


def test_a_module_marked_with_an_xdist_group_runs_on_one_worker(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"test_{name}.py").write_text(
            "import pytest\npytestmark = pytest.mark.xdist_group('shared')\n"
            + "".join(f"def test_{i}():\n    pass\n" for i in range(4)))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]
    workers = re.findall(r"\[(gw\d)\].*PASSED", r.stdout)
    assert len(workers) == 8 and len(set(workers)) == 1, r.stdout[-2000:]
