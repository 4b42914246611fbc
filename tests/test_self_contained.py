"""The repository is self-contained: nothing it runs, tests or documents points outside it.

A clone on its own must pass its tests, so no path may reach for the reference folder that
sits beside the working copy where the project is developed.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Built from parts so that this file does not match its own search.
OUTSIDE = ("../" + "shared", '/ "' + 'shared"')


SKIP = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def repository_files() -> list[Path]:
    return [
        p
        for p in REPO.rglob("*")
        if p.is_file() and not SKIP.intersection(p.relative_to(REPO).parts) and "egg-info" not in str(p)
    ]


def test_no_path_points_outside_the_repository() -> None:
    files = [p for p in repository_files() if p.suffix in {".py", ".md", ".toml", ".cfg", ".ini", ".sh", ""}]
    assert len(files) > 50, "found too few files to be this repository"
    offenders = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in OUTSIDE:
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []


def test_readme_names_only_files_in_the_repository() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "DESIGN.md" not in readme
    # Every relative markdown link in the README resolves to a file of the repository.
    for target in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (REPO / target).exists(), target
