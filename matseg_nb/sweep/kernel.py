"""A Jupyter kernel manager that launches the kernel with extra environment variables.

papermill starts kernels without an ``env`` argument, so per-job variables
(``OMP_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES``) are injected here instead of mutating
``os.environ`` of the (possibly multi-threaded) sweep process.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_client.manager import AsyncKernelManager


class _EnvKernelManager(AsyncKernelManager):
    """``AsyncKernelManager`` whose kernels see ``os.environ`` updated with ``extra_env``."""

    extra_env: dict[str, str] = {}

    async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
        env = dict(kw.pop("env", None) or os.environ)
        env.update(self.extra_env)
        await super().start_kernel(env=env, **kw)


def kernel_manager_class(extra_env: dict[str, str]) -> type[AsyncKernelManager]:
    """A kernel manager class (for nbclient's ``kernel_manager_class``) adding ``extra_env``."""
    return type("EnvKernelManager", (_EnvKernelManager,), {"extra_env": dict(extra_env)})
