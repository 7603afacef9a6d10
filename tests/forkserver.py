"""A warm process that runs lrrun's entry points in forked children, for the test suite.

Each CLI test would otherwise pay Python start-up plus importing torch and Hydra (3-5 s on
a 2-core CI machine). Here they are imported once; every command runs in a fresh fork with
its own argv, cwd, environment, stdin=/dev/null and stdout/stderr files, through the same
``main()`` the console scripts call, and exits with the code the real CLI would. An
uncaught exception prints its traceback and exits 1, as Python would.

Protocol: one JSON request per stdin line -> one JSON line {"code": N} on stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

import hydra  # noqa: F401  (imported before forking: that is the point)
import scipy.stats  # noqa: F401  (sweep verdicts)
import torch
import torch._dynamo  # noqa: F401  (creating any torch optimizer imports it: 2-3 s)

import lrrun.cli
import lrrun.logs.plots
import lrrun.sweep.report
import lrrun.tools.preview

lrrun.logs.plots.pyplot()  # matplotlib with its Agg backend (curves.png, sweep pictures)


def child(req: dict) -> int:
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    module, func = req["entry"].split(":")
    sys.argv = [req["prog"], *req["args"]]
    try:
        getattr(importlib.import_module(module), func)()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def main() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(child(req))
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
