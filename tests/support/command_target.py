"""A deploy target the ``command`` deployer drives: a version file, and a history of changes.

Usage (as the deployer's argument lists):
``python command_target.py deploy <dir> <target> <version>`` records the change
(one ``O_APPEND`` line in ``<dir>/history.jsonl``) and sets ``<dir>/<target>``;
``python command_target.py version <dir> <target>`` prints what the target runs.
The history is the target's own account of every change made to it.
"""

import json
import os
import sys
from pathlib import Path


def main() -> None:
    action, directory, target, *rest = sys.argv[1:]
    root = Path(directory)
    if action == "version":
        current = root / target
        print(current.read_text().strip() if current.exists() else "")
        return
    version = rest[0]
    line = json.dumps({"target": target, "version": version, "action": action}) + "\n"
    fd = os.open(root / "history.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    staging = root / f".{target}.tmp"
    staging.write_text(version)
    staging.replace(root / target)


if __name__ == "__main__":
    main()
