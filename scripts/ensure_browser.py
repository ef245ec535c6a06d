"""Make sure a Chromium the browser tests can drive is installed; print its path (``make browser``).

One-time setup, never part of ``make test``. Uses Debian's ``chromium`` package (never a browser
download, never ``playwright install``): when no chromium is on PATH and this runs as root,
``apt-get install -y chromium`` installs it. Exit status 0 with the path on stdout when a browser is
available, 1 with the reason on stderr otherwise. Standard library only: runs without the venv.

    python scripts/ensure_browser.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CANDIDATES = ("chromium", "chromium-browser")


def find_chromium() -> str | None:
    """Path of an installed Chromium, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """Find Chromium, installing Debian's package when missing and allowed.

    Returns:
        ``(path, "")`` when available, else ``(None, reason)``.
    """
    path = find_chromium()
    if path:
        return path, ""
    if not shutil.which("apt-get"):
        return None, "chromium is not installed and apt-get is not available to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed; install it with `sudo apt-get install -y chromium`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
    path = find_chromium()
    if path:
        return path, ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return None, f"`{' '.join(install)}` failed: {' | '.join(tail)}"


def main() -> int:
    path, reason = ensure_chromium()
    if path:
        print(path)
        return 0
    print(reason, file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
