"""Every citation of the repository's reference (`docs/reference.md §N`) resolves to a section
that exists, and nothing cites a file the repository does not carry."""
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tracked_text_files():
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in out:
        path = REPO / name
        if path.suffix in {".png", ".pdf", ".parquet", ".safetensors"} or not path.is_file():
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue


def test_reference_citations_resolve():
    sections = set(re.findall(r"^## (\d+)\. ", (REPO / "docs/reference.md").read_text(), re.M))
    cited, stale = [], []
    for name, text in _tracked_text_files():
        cited += [(name, n) for n in re.findall(r"docs/reference\.md §(\d+)", text)]
        if re.search(r"(?<!docs/)REFERENCE\.md", text) and name != "tests/test_docs.py":
            stale.append(name)
    assert cited, "no citations found: the pattern is wrong"
    assert [c for c in cited if c[1] not in sections] == []
    assert stale == [], f"citations of a reference outside the repository: {stale}"


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []


def test_the_tables_of_numbers_in_the_docs_are_the_ones_the_committed_results_give():
    import sys

    r = subprocess.run([sys.executable, "workflow/scripts/doc_numbers.py", "--check"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_readme_is_a_front_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for page in re.findall(r"\(docs/([\w-]+\.md)\)", text):
        assert (REPO / "docs" / page).is_file()


def _typed_snakemake_commands():
    """Every `snakemake ...` command the repository tells a user to type (docs, README, config and
    profile comments), up to two spaces of prose after it."""
    command = re.compile(r"(?:^|`|#\s+|\$\s+)snakemake\s([^`#\n]*)", re.M)
    for name, text in _tracked_text_files():
        if name.startswith("tests/") or name.endswith(".py"):
            continue
        for m in command.finditer(text):
            args = re.split(r"\s{2,}", m.group(1).strip())[0].split()
            if args and (args[0].startswith("-") or "/" in args[0] or args[0] == "all"):
                yield name, args


def test_every_typed_snakemake_command_parses_as_snakemake_reads_it():
    """Snakemake's own parser reads `--configfile` greedily: a target typed after it would be read as
    a config file. Every documented command parses, names config files and profiles that exist, and
    asks for `all` or a result path (`...`, a value left to the reader, stands for an existing file)."""
    from snakemake.cli import get_argument_parser

    commands = list(_typed_snakemake_commands())
    assert len(commands) >= 10, "the command pattern is wrong"
    wrong = []
    for name, args in commands:
        try:
            parsed = get_argument_parser().parse_args(["config.yaml" if a == "..." else a for a in args])
        except SystemExit:
            wrong.append((name, args, "does not parse"))
            continue
        for path in [*(parsed.configfile or []), parsed.workflow_profile, *(parsed.profile and [parsed.profile] or [])]:
            if path is not None and not (REPO / str(path)).exists():
                wrong.append((name, args, f"{path} does not exist"))
        for target in parsed.targets:
            if target != "all" and not target.startswith("results/"):
                wrong.append((name, args, f"target {target!r}"))
    assert wrong == []
