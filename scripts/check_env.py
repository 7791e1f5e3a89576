"""Refuse an environment where an install pulled a torch other than the pinned CPU build."""

import importlib.metadata as md
import sys

want = next(
    line.split("==", 1)[1].strip()
    for line in open("constraints.txt", encoding="utf-8")
    if line.startswith("torch==")
)
try:
    have = md.version("torch")
except md.PackageNotFoundError:
    sys.exit(0)
if not have.startswith(want):
    sys.exit(
        f"torch {have} is installed but constraints.txt pins torch=={want}: reinstall with -c constraints.txt"
    )
for forbidden in ("torchvision",):
    try:
        md.version(forbidden)
    except md.PackageNotFoundError:
        continue
    sys.exit(f"{forbidden} is installed; it does not import beside the pinned torch — uninstall it")
