"""The code that trains a run: package version, a hash of the source, and the git commit when there is one.

A run folder records ``code_version()`` for every start or resume (``runtime.json``) and at its end
(``done.json``), so that a run made by other code is never reused without saying so
(``theorybench.runstore``). The hash, not the commit, decides: it also sees uncommitted edits.

``source`` is the sha256 (first 16 hex digits) of the sorted relative paths and contents of every
``.py`` file of the packages in ``CODE_PACKAGES``. It is computed once per process (a few ms) and
kept, so that runs trained and reused by one process agree even if files change under it.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

CODE_PACKAGES = ("theory", "toy_models", "probes", "theorybench")
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def source_hash(root: Path = SOURCE_ROOT, packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """sha256 over (relative path, bytes) of every ``.py`` file under ``root/<package>``, sorted."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((Path(root) / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, str | None]:
    """``{"package": version, "source": source_hash(), "git": commit or None}``, once per process."""
    try:
        version = metadata.version("theorybench")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"package": version, "source": source_hash(), "git": _git_commit(SOURCE_ROOT)}


def _git_commit(root: Path) -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout (an installed package)."""
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe(code: dict | None) -> str:
    """One line for messages: ``theorybench 0.1.0, source 1a2b…, git abc1234``."""
    if not code:
        return "code not recorded"
    git = f", git {code['git'][:10]}" if code.get("git") else ""
    return f"theorybench {code.get('package')}, source {code.get('source')}{git}"


__all__ = ["CODE_PACKAGES", "code_version", "describe", "source_hash"]
