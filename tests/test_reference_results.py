"""Committed results name the machine and the command, never a path of the machine that made them."""
import csv
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[1] / "results/reference"


def test_reference_results_record_no_machine_paths():
    csvs = sorted(REFERENCE.glob("*.csv"))
    assert csvs
    for path in csvs:
        for row in csv.DictReader(open(path)):
            for column in ("command", "checkpoint"):
                value = row.get(column) or ""
                assert not any(p in value for p in ("/tmp/", "/work/", "/root/", "/home/")), (path.name, value)
            assert row["device_name"] and row["command"].startswith("lightformer ")


def test_recorded_commands_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    from lightformer.io import command_line

    monkeypatch.chdir(tmp_path)
    line = command_line([str(tmp_path / ".venv/bin/lightformer"), "speed", str(tmp_path / "ck/a.safetensors"),
                         f"data={tmp_path / 'd'}", "--out", "/elsewhere/s.csv"])
    assert line == "lightformer speed ck/a.safetensors data=d --out /elsewhere/s.csv"
