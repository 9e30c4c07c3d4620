"""Reading the raw archives the recipes start from: text members of a .tgz and <seg> lines."""
from __future__ import annotations

import re
import tarfile
from pathlib import Path

from lightformer.errors import LightformerError

_SEG = re.compile(r'<seg id="?\d+"?>\s*(.*?)\s*</seg>')


def read_tar_text(tgz: Path, wanted: list[str], by_basename: bool = False) -> dict[str, list[str]]:
    """Lines of the wanted members (full member paths, or base names with ``by_basename``); a clear
    error for a truncated or foreign archive and for any member that is missing."""
    out = {}
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for m in tar.getmembers():
                key = m.name.rsplit("/", 1)[-1] if by_basename else m.name
                if m.isfile() and key in wanted:
                    out[key] = tar.extractfile(m).read().decode("utf-8").splitlines()
    except (tarfile.ReadError, EOFError, OSError) as e:
        raise LightformerError(f"{tgz} is not a readable .tgz ({e}); the archive is truncated or damaged: "
                               f"delete it and fetch again") from None
    missing = [w for w in wanted if w not in out]
    if missing:
        raise LightformerError(f"{tgz} has the wrong layout: missing {', '.join(missing[:3])}"
                               f"{' ...' if len(missing) > 3 else ''}")
    return out


def seg_lines(lines: list[str]) -> list[str]:
    """Text of <seg id=...> lines (IWSLT XML, WMT sgm), with ’ -> ' as fairseq's scripts do."""
    return [m.group(1).replace("\u2019", "'") for line in lines if "<seg id" in line for m in [_SEG.search(line)] if m]
