"""Stopping the processes tests start (workers, ``vtrack`` commands, the web app) by pid."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(
    process: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    timeout: float = 30,
    dump_stacks: bool = False,
) -> int:
    """Send ``sig`` to the process group ``process`` leads (started with
    ``start_new_session``), as an orchestrator stops a service, and wait for it; SIGKILL
    the group if it outlives ``timeout``. Its exit code (negative: the signal that ended it).

    ``dump_stacks``: a Python process that hangs gets SIGABRT first, so that faulthandler
    (``PYTHONFAULTHANDLER=1`` in its environment) writes where each thread is to its log.
    """
    if process.poll() is not None:
        return process.returncode
    os.killpg(process.pid, sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    if dump_stacks:
        os.kill(process.pid, signal.SIGABRT)
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    os.killpg(process.pid, signal.SIGKILL)
    return process.wait()
