"""The folders a report covers, and whether a path a report or journal names lies inside them.

A report or journal is a file anyone can edit: apply and undo act only on local paths inside
the roots the scan read (recorded in the report, then in the journal), unless the user says
otherwise, and never on a path with a `..` step after a name. The roots are absolute local
folders, the fewest that hold every folder named and the folder of every file found (a
manifest's or a list's files may live anywhere); URLs given as roots are recorded redacted,
for the reader only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from . import storage
from .redact import redacted


def covering_roots(named: Iterable[str], files: Iterable[str]) -> list[str]:
    """The fewest absolute local folders holding each local folder in `named` and the folder
    of each local file in `files` (a container's folder for its members), then the URLs of
    `named`, redacted."""
    folders: set[str] = set()
    urls: list[str] = []
    for path in named:
        if storage.is_url(path):
            urls.append(redacted(path))
        elif os.path.isdir(path):
            folders.add(os.path.abspath(path))
    for path in files:
        if storage.is_url(path):
            continue
        parts = storage.split_member(path) if "#" in path else None
        folders.add(os.path.dirname(os.path.abspath(parts[0] if parts else path)))
    return [*_fewest(folders), *dict.fromkeys(urls)]


def _fewest(folders: Iterable[str]) -> list[str]:
    # In component order a folder's subfolders follow it at once ("/a/b", "/a/b/c", "/a/b c").
    ordered = sorted(folders, key=lambda folder: [p for p in folder.split(os.sep) if p])
    kept: list[str] = []
    for folder in ordered:
        if not kept or not is_inside(folder, [kept[-1]]):
            kept.append(folder)
    return kept


def has_parent_step(path: str) -> bool:
    """True when `path` has a `..` step after a name: the step a symlinked folder turns into
    somewhere else. The leading `..` of a relative path (`scan ../photos` writes them) go up
    from the working folder, whose real path is known, and are allowed."""
    parts = path.replace("\\", "/").split("/")
    while parts and parts[0] in ("..", "."):
        parts.pop(0)
    return ".." in parts


def is_inside(path: str, roots: Sequence[str]) -> bool:
    """Whether the local `path` (made absolute here) is one of the local `roots` or below one,
    compared by name: a root that is a symlink covers what the scan read through it."""
    absolute = os.path.abspath(path)
    for root in roots:
        if storage.is_url(root):
            continue
        root = os.path.abspath(root)
        if absolute == root or absolute.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def outside_reason(
    path: str, roots: Sequence[str] | None, what: str = "it", *, kind: str = "report"
) -> str:
    """Why apply (reading a report) or undo (a journal) must not touch `path`, or ""."""
    if has_parent_step(path):
        return f"{what} has a '..' step inside its path; dedup-gpu never writes one"
    if roots is None:
        return (
            f"the {kind} records no folders to act under (made before dedup-gpu recorded "
            "them): give --allow-outside-roots to act anyway"
        )
    if not is_inside(path, roots):
        under = "that were scanned" if kind == "report" else "its apply acted under"
        return (
            f"{what} lies outside the folders {under} ({_listed(roots)}); give "
            "--allow-outside-roots to act on it anyway"
        )
    return ""


def _listed(roots: Sequence[str]) -> str:
    local = [root for root in roots if not storage.is_url(root)]
    if not local:
        return "none local"
    return ", ".join(local[:3]) + (f" and {len(local) - 3} more" if len(local) > 3 else "")


__all__ = ["covering_roots", "has_parent_step", "is_inside", "outside_reason"]
