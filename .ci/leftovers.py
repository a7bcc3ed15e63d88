#!/usr/bin/env python3
"""Fails when a process started by the test run is still running after it.

Every process the tests start carries `CLIENTS_GATEWAY_TEST_RUN=<mark>` in its environment
(`.ci/test` sets the mark; the tests' `Spawned` passes it on, and children inherit it). Any such
process alive now is printed, killed, and makes the script exit 1.

Usage: python3 .ci/leftovers.py MARK
"""
import os
import signal
import sys


def main():
    mark = sys.argv[1].encode()
    needle = b"CLIENTS_GATEWAY_TEST_RUN=" + mark
    me = os.getpid()
    left = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, os.getppid()):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if needle in environ:
            left.append((int(entry), cmdline))
    for pid, cmdline in left:
        print(f"left running by the tests: pid {pid}: {cmdline}", file=sys.stderr)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if left:
        sys.exit(1)
    print("no process of the test run is left running")


if __name__ == "__main__":
    main()
