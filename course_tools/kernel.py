"""The kernel every command executes notebooks in: this interpreter, with the environment
the caller gives it.

papermill, nbclient and nbconvert/nbgrader's executors take a ``kernel_manager_class``, from
which they create the manager, start the kernel and shut it down again, closing the client's
channels (a started manager handed to them as ``km=`` they leave running, channels open).
:func:`python_kernel` returns such a class; it only fixes what the kernel runs and sees:

* the ``python3`` kernelspec is ipykernel's own for ``sys.executable``, whatever kernelspecs
  the user or the system installed (one could point at another environment);
* the kernel process gets ``env`` as its whole environment, through jupyter_client's
  ``start_kernel(env=...)``: this process's ``os.environ`` is never changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import IO

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from .notebooks import short

PYTHON_KERNEL = "python3"


def kernel_environment(changes: Mapping[str, str | None] | None = None, *,
                       inherit: bool = True) -> dict[str, str]:
    """The environment for a kernel: this process's (with ``inherit=False``: none of it),
    with ``changes`` applied; a ``None`` value unsets the variable."""
    env = dict(os.environ) if inherit else {}
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiets the debugger's warning
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class ThisInterpreterKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` (the executors' default) whose ``python3`` is this
    interpreter, started with :attr:`kernel_env` and :attr:`kernel_stderr`."""

    kernel_env: Mapping[str, str] | None = None  # None: this process's environment
    kernel_stderr: IO | None = None  # None: this process's stderr

    @default("kernel_spec_manager")
    def _this_interpreter_only(self) -> KernelSpecManager:
        # No kernel directories: "python3" falls back to ipykernel's native spec, whose
        # argv[0] is sys.executable.
        return KernelSpecManager(kernel_dirs=[])

    async def start_kernel(self, **kw):
        if self.kernel_env is not None:
            kw.setdefault("env", dict(self.kernel_env))
        if self.kernel_stderr is not None:
            kw.setdefault("stderr", self.kernel_stderr)
        return await super().start_kernel(**kw)


def python_kernel(env: Mapping[str, str] | None = None,
                  stderr: IO | None = None) -> type[ThisInterpreterKernelManager]:
    """The ``kernel_manager_class`` for an executor: ``python3`` is this interpreter, its
    environment ``env`` (default :func:`kernel_environment`), its stderr ``stderr``.

    Use with ``kernel_name=PYTHON_KERNEL``, e.g.
    ``papermill.execute_notebook(..., kernel_name=PYTHON_KERNEL,
    kernel_manager_class=python_kernel(env))``.
    """
    chosen_env, chosen_stderr = kernel_environment() if env is None else dict(env), stderr

    class PythonKernel(ThisInterpreterKernelManager):
        kernel_env = chosen_env
        kernel_stderr = chosen_stderr

    return PythonKernel


def describe_exception(error: BaseException) -> str:
    """Why an execution stopped, for a one-line report: a timeout, a dead kernel, else the
    exception itself."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(error, CellTimeoutError):
        limit = re.search(r"after (\d+) seconds", str(error))
        return "did not finish within the time limit" + (f" of {limit[1]} s" if limit else "")
    if isinstance(error, DeadKernelError):
        return "killed the kernel (out of memory, or the code exited the interpreter)"
    return f"failed: {type(error).__name__}: {short(error)}"
