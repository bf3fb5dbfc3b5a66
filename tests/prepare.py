"""Prepare a machine for the test suite (part of the README's test command).

Installs Debian's ``chromium`` and ``chromium-driver`` for the browser tests when they are missing
(as root, through apt-get; no tool downloads a browser of its own), then checks that PostgreSQL
and Redis answer on loopback. Exits non-zero with a clear message when something is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

PACKAGES = ("chromium", "chromium-driver")


def _have_browser() -> bool:
    return bool(shutil.which("chromium") or os.path.exists("/usr/bin/chromium")) and bool(
        shutil.which("chromedriver") or os.path.exists("/usr/bin/chromedriver")
    )


def _install_browser() -> None:
    if _have_browser():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("tests need Debian's chromium and chromium-driver: run `sudo apt-get install chromium "
                 "chromium-driver` and try again")
    print("installing chromium and chromium-driver with apt-get …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def main() -> int:
    _install_browser()
    missing = [name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _reachable("127.0.0.1", port)]
    if missing:
        print(f"error: {' and '.join(missing)} not reachable on 127.0.0.1; the tests use the real servers "
              "(see README, 'Running the tests')", file=sys.stderr)
        return 1
    print("test prerequisites ready: chromium, chromedriver, PostgreSQL, Redis")
    return 0


if __name__ == "__main__":
    sys.exit(main())
