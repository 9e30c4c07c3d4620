"""A real one-node SLURM cluster on 127.0.0.1, started and stopped by the SLURM tests.

Needs root and Debian's `slurmctld slurmd slurm-client munge` (`.ci/run` installs them).
Configuration follows docs/reference.md §7: slurm.conf at the default path (the plugin's job step
strips SLURM_CONF), no accounting (the plugin polls `squeue`, so MinJobAge is long), two fake
GPUs declared through gres so `gpu=1` jobs are really scheduled. Daemons are stopped by the PIDs
they were started with; the munge daemon is left alone if it was already running.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).parent
CONF_DIR = Path("/etc/slurm")
MARKER = "lightformer-test-cluster"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
PACKAGES = "slurmctld slurmd slurm-client munge"


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    if os.geteuid() != 0:
        return "the SLURM tests start slurmctld/slurmd and must run as root"
    for exe in ("slurmctld", "slurmd", "sbatch", "squeue", "munged"):
        if shutil.which(exe) is None:
            return f"{exe} not found: apt-get install {PACKAGES}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


class LocalSlurm:
    def __init__(self, state: Path):
        self.state = Path(state)
        self.host = socket.gethostname().split(".")[0]
        self.pids: list[int] = []

    # -- configuration ----------------------------------------------------------------------
    def write_config(self) -> None:
        conf = CONF_DIR / "slurm.conf"
        for path in (conf, CONF_DIR / "gres.conf"):
            if path.exists() and MARKER not in path.read_text():
                raise RuntimeError(f"{path} exists and is not ours; refusing to overwrite a real cluster's config")
        for sub in ("ctld", "d"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            (self.state / f"fakegpu{i}").touch()
        mem_mb = min(8000, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 1024)
        values = dict(host=self.host, state=self.state, cpus=os.cpu_count(), mem_mb=mem_mb,
                      ctld_port=_free_port(), d_port=_free_port())
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        conf.write_text((HERE / "slurm.conf.in").read_text().format(**values))
        (CONF_DIR / "gres.conf").write_text((HERE / "gres.conf.in").read_text().format(**values))

    # -- daemons ----------------------------------------------------------------------------
    def _munge_ok(self) -> bool:
        return subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0

    def _start(self, argv: list[str], pidfile: Path) -> None:
        pidfile.unlink(missing_ok=True)
        subprocess.run(argv, check=True, capture_output=True, text=True)
        _wait(lambda: pidfile.exists() and pidfile.read_text().strip(), 20, f"{argv[0]} pid file")
        self.pids.append(int(pidfile.read_text()))

    def start(self) -> "LocalSlurm":
        self.write_config()
        if not self._munge_ok():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            pidfile = self.state / "munged.pid"
            self._start(["munged", "--force", f"--pid-file={pidfile}", f"--log-file={self.state}/munged.log",
                         f"--seed-file={self.state}/munged.seed"], pidfile)
            _wait(self._munge_ok, 20, "munge", self.state / "munged.log")
        # -c: start clean (no jobs from an earlier run); -i: ignore unreadable state.
        self._start(["slurmctld", "-c", "-i"], self.state / "slurmctld.pid")
        self._start(["slurmd"], self.state / "slurmd.pid")
        _wait(self.node_idle, 60, "the node to become idle", self.state / "slurmd.log")
        return self

    def node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mix")

    def stop(self) -> None:
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for pid in self.pids:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()
        self.remove_config()

    def remove_config(self) -> None:
        """Leave the machine as found: a slurm.conf naming a stopped controller makes every later
        `scontrol` wait ~9 s for it, and the SLURM executor plugin runs `scontrol show config`
        whenever Snakemake loads its plugins, i.e. at the start of every snakemake command."""
        for conf in (CONF_DIR / "slurm.conf", CONF_DIR / "gres.conf"):
            if conf.exists() and MARKER in conf.read_text():
                conf.unlink()

    # -- helpers for tests ------------------------------------------------------------------
    def jobs(self) -> list[dict]:
        """Every job slurmctld remembers (MinJobAge keeps finished ones): id, name, state, gres."""
        out = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True, check=True)
        rows = []
        for line in out.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "JobId" in fields:
                rows.append(fields)
        return rows


if __name__ == "__main__":  # manual use: python tests/slurm/cluster.py /tmp/slurm-state
    import sys

    cluster = LocalSlurm(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lightformer-slurm")).start()
    print("pids", cluster.pids)
    subprocess.run(["sinfo"])
