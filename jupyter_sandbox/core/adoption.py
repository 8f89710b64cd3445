"""Adoption after a restart: what this server's earlier run left behind. Its sandboxes are taken
back, kernels and variables included, where their records (core/state.py) say how; a kernel that
is gone or silent is replaced by a fresh one (and its sandbox says so); everything else is removed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from ..backends.base import LABEL_PREFIX, SandboxBackend, labelled_id
from ..backends.kernel_client import KernelClient
from ..errors import SandboxError
from ..models import ContextModel, SandboxModel
from .kernels import KernelPlumbing
from .registry import SandboxRegistry
from .sandbox import Context, Sandbox

# what a record that cannot be read raises
_BAD_RECORD = (KeyError, TypeError, ValueError, SandboxError)


class Adoption:
    """Takes back the sandboxes a server's earlier run left (``reap``)."""

    def __init__(
        self,
        backend: SandboxBackend,
        registry: SandboxRegistry,
        kernels: KernelPlumbing,
        log: logging.Logger,
    ) -> None:
        self.backend, self.registry, self.kernels, self.log = backend, registry, kernels, log
        self.adopt, self.timeout, self.e2b_prefix = True, 20.0, ""

    async def reap(self, server_id: str, adopt: bool, timeout: float, e2b_prefix: str) -> None:
        """What the earlier run of server ``server_id`` left: its sandboxes are taken back when
        their records say how (``adopt``; each context's kernel within ``timeout`` seconds, their
        e2b_url rebuilt from ``e2b_prefix``); everything else (one-shot runs, pooled sandboxes) is
        removed."""
        self.adopt, self.timeout, self.e2b_prefix = adopt, timeout, e2b_prefix
        try:
            leftovers = await self.backend.list_existing({f"{LABEL_PREFIX}.server": server_id})
        except SandboxError as e:  # engine down at start: creation will say so clearly later
            self.log.warning("jupyter-sandbox: could not list leftover sandboxes: %s", e.message)
            return
        # all at once: a sandbox whose kernels do not answer must not hold up the others
        results = await asyncio.gather(*(self._take_back(found) for found in leftovers), return_exceptions=True)
        for found, result in zip(leftovers, results, strict=True):
            if isinstance(result, BaseException):
                self.log.error("jupyter-sandbox: leftover %s: %r", labelled_id(found), result)

    async def _take_back(self, found: dict[str, str]) -> None:
        """One leftover: taken back if its record says how, else removed."""
        leftover = labelled_id(found)
        if not leftover or leftover in self.registry:
            return
        records = self.registry.records
        record = records.load(leftover) if records and self.adopt else None
        if record is not None and await self._adopt(leftover, record):
            return
        self.log.info("jupyter-sandbox: removing leftover %s of %s", leftover, found.get(f"{LABEL_PREFIX}.owner"))
        await self.backend.remove(leftover)
        self.registry.forget(leftover)

    async def _adopt_context(self, sandbox: Sandbox, saved: dict[str, Any]) -> Context:
        """Reattach one context's kernel from its record, or start a fresh one (the sandbox says so)."""
        context_model = ContextModel.from_dict(saved["model"])
        try:
            kernel_id, hmac_key = saved["kernel_id"], saved["key"]
            info = await self.backend.attach_kernel(sandbox.model.id, kernel_id, hmac_key, timeout=self.timeout)
            client = await self.kernels.connect(sandbox, kernel_id, info, timeout=self.timeout)
            return Context(model=context_model, kernel_id=kernel_id, client=client, hmac_key=hmac_key)
        except SandboxError as e:  # gone, or silent (then stopped): a fresh one, and the sandbox says so
            self.log.warning(
                "jupyter-sandbox: kernel of context %s in %s is gone (%s); restarting it",
                context_model.id,
                sandbox.model.id,
                e,
            )
            context = await self.kernels.start_context(sandbox, context_model)
            sandbox.model.status_reason = "restarted after a server restart: some contexts lost their variables"
            return context

    def _adopt_paused(self, sandbox: Sandbox, record: dict[str, Any]) -> bool:
        """A paused sandbox, taken back as it is: its contexts without a client (closed), each
        reattached or restarted when it resumes."""
        try:
            contexts = [
                Context(
                    model=ContextModel.from_dict(saved["model"]),
                    kernel_id=saved["kernel_id"],
                    client=cast(KernelClient, None),  # never used while closed: the resume gives it one
                    hmac_key=saved["key"],
                    closed=True,
                )
                for saved in record.get("contexts", [])
            ]
        except _BAD_RECORD as e:
            self.log.warning("jupyter-sandbox: cannot take back paused sandbox %s: %s", sandbox.model.id, e)
            return False
        sandbox.contexts = {c.model.id: c for c in contexts}
        sandbox.model.contexts, sandbox.model.status = [c.model for c in contexts], "paused"
        if self.e2b_prefix and sandbox.e2b_secret:
            sandbox.model.e2b_url = f"{self.e2b_prefix}{sandbox.model.id}/{sandbox.e2b_secret}"
        self.registry.add(sandbox)
        self.registry.save(sandbox)
        self.registry.emit("created", sandbox)
        self.log.info("jupyter-sandbox: took back paused sandbox %s of %s", sandbox.model.id, sandbox.model.owner)
        return True

    async def _adopt(self, sandbox_id: str, record: dict[str, Any]) -> bool:
        """Take back a sandbox of this server's earlier run, with its kernels where they still run."""
        try:
            model = SandboxModel.from_dict(record["model"])
            if model.kind == "kernel":
                # a notebook kernel's: its server kept no kernel to give it back to (removed instead)
                return False
            await self.backend.adopt(sandbox_id, model.spec, paused=model.paused)
        except _BAD_RECORD as e:
            self.log.warning("jupyter-sandbox: cannot take back sandbox %s: %s", sandbox_id, e)
            return False
        sandbox = Sandbox(
            model=model, e2b_secret=record.get("e2b_secret", ""), default_context=record.get("default_context")
        )
        if model.paused:  # its kernels come back at its resume (core/pausing.py), not now
            return self._adopt_paused(sandbox, record)
        model.contexts, model.status, model.status_reason = [], "running", None
        # each context in its own time (bounded by adopt_timeout), kept in the record's order
        try:
            saved_contexts = list(record.get("contexts", []))
        except TypeError as e:
            self.log.warning("jupyter-sandbox: cannot take back sandbox %s: %s", sandbox_id, e)
            return False
        results = await asyncio.gather(
            *(self._adopt_context(sandbox, saved) for saved in saved_contexts), return_exceptions=True
        )
        contexts = [r for r in results if isinstance(r, Context)]
        errors = [r for r in results if not isinstance(r, Context)]
        if errors:  # removed instead, as any leftover
            self.log.warning("jupyter-sandbox: cannot take back sandbox %s: %s", sandbox_id, errors[0])
            for context in contexts:
                context.close()
            if not isinstance(errors[0], _BAD_RECORD):
                raise errors[0]
            return False
        sandbox.contexts = {c.model.id: c for c in contexts}
        model.contexts = [c.model for c in contexts]
        if self.e2b_prefix and sandbox.e2b_secret:
            model.e2b_url = f"{self.e2b_prefix}{sandbox_id}/{sandbox.e2b_secret}"
        self.registry.add(sandbox)
        self.registry.save(sandbox)
        self.registry.emit("created", sandbox)
        self.log.info(
            "jupyter-sandbox: took back sandbox %s (%s) of %s with %d context(s)",
            sandbox_id,
            model.name,
            model.owner,
            len(sandbox.contexts),
        )
        return True
