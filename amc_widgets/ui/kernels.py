"""The served dashboard's kernels: one per page view, ended once its page is gone (``amc serve``)."""

from __future__ import annotations

from datetime import timedelta

from jupyter_core.utils import ensure_async
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class PageKernelManager(AsyncMappingKernelManager):
    """Voila's kernel manager, culling a kernel once no page has been connected to it, and it has not
    been busy, for ``cull_idle_timeout`` seconds.

    jupyter_server's own culler waits for ``cull_idle_timeout`` seconds without kernel messages, and
    the kernel of a closed page whose job card still updates sends some every few seconds: it would
    live (and poll the backend) until the job ends. ``cull_connected`` and ``cull_busy`` keep their
    meaning: by default a connected page is never culled, nor a kernel still rendering one."""

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._mark_needed(kernel_id)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        self._mark_needed(kernel_id)

    def _mark_needed(self, kernel_id: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is not None:
            kernel.amc_needed_at = utcnow()

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        kernel = self._kernels.get(kernel_id)
        if kernel is None or not hasattr(kernel, "execution_state"):  # gone, or still starting
            return None
        if kernel.execution_state == "dead":
            return await ensure_async(super().cull_kernel_if_idle(kernel_id))  # ended at once, as jupyter_server does
        now = utcnow()
        connected = self._kernel_connections.get(kernel_id, 0) > 0 and not self.cull_connected
        busy = kernel.execution_state == "busy" and not self.cull_busy
        if connected or busy:
            kernel.amc_needed_at = now
            return None
        if not hasattr(kernel, "amc_needed_at"):  # never connected: counted from the first check that finds it idle
            kernel.amc_needed_at = now
        alone = now - kernel.amc_needed_at
        if alone > timedelta(seconds=self.cull_idle_timeout):
            self.log.warning("Culling kernel %s: no page connected for %d s", kernel_id, alone.total_seconds())
            await ensure_async(self.shutdown_kernel(kernel_id))
        return None


def set_xsrf_cookie(handler, notebook, cwd):
    """Voila's prelaunch hook: gives the page the ``_xsrf`` cookie that its unload beacon
    (``POST /voila/api/shutdown/<kernel>``) needs; voila 0.5 never sets it, so closing a page got a 403
    and left its kernel running (voila-dashboards/voila#1458). Returns None: the notebook is unchanged."""
    handler.xsrf_token  # noqa: B018 - tornado sets the cookie when the token is first read
    return None
