"""Thin handlers for one-shot executions under ``{base_url}sandbox/api/v1/`` (python-executor's wire format).

The logic is in oneshot/; docs/oneshot-api.md describes the routes.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import InvalidInput, TooLarge
from ..oneshot.requests import Job, parse_eval, parse_exec
from ..oneshot.runner import OneShotRunner
from .handlers import SandboxAPIHandler, api_path


class _OneShotHandler(SandboxAPIHandler):
    @property
    def runner(self) -> OneShotRunner:
        runner: OneShotRunner = self.settings["sandbox_executions"]
        return runner

    def _part(self, name: str) -> bytes | None:
        """A multipart part's bytes, sent as a file or as a plain field."""
        files = self.request.files.get(name)
        if files:
            body: bytes = files[0]["body"]
            return body
        values = self.request.body_arguments.get(name)
        return values[0] if values else None

    def check_body_size(self) -> None:
        if len(self.request.body or b"") > self.sandbox_app.max_body_size:
            raise TooLarge(f"request body over {self.sandbox_app.max_body_size} bytes")

    def job_from_multipart(self) -> Job:
        self.check_body_size()
        if not self.request.headers.get("Content-Type", "").startswith("multipart/form-data"):
            raise InvalidInput("send multipart/form-data with a 'tar' part and a 'metadata' part", field="body")
        archive = self._part("tar")
        if archive is None:
            raise InvalidInput("missing the 'tar' part (an uncompressed tar of the files)", field="tar")
        metadata = self._part("metadata")
        if metadata is None:
            raise InvalidInput("missing the 'metadata' part (JSON)", field="metadata")
        return parse_exec(self.runner, archive, metadata)


class ExecSyncHandler(_OneShotHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        record = await self.runner.run(self.owner, self.job_from_multipart())
        self.write_json(record.to_dict())


class ExecAsyncHandler(_OneShotHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        record = await self.runner.submit(self.owner, self.job_from_multipart())
        self.set_header("Location", self.base_url.rstrip("/") + api_path("v1", "executions", record.id))
        self.write_json({"execution_id": record.id}, status=202)


class ExecutionsHandler(_OneShotHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit = self._int_argument("limit", 50, 1, 500)
        offset = self._int_argument("offset", 0, 0, 10**9)
        self.write_json(self.runner.list(self.owner, limit=limit, offset=offset))

    def _int_argument(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.get_query_argument(name, None)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise InvalidInput(f"{name} must be an integer", field=name) from None
        if not lo <= number <= hi:
            raise InvalidInput(f"{name} must be between {lo} and {hi}", field=name)
        return number


class ExecutionHandler(_OneShotHandler):
    @web.authenticated
    @authorized
    async def get(self, execution_id: str) -> None:
        self.write_json(self.runner.get(self.owner, execution_id).to_dict())

    @web.authenticated
    @authorized
    async def delete(self, execution_id: str) -> None:
        record = await self.runner.kill(self.owner, execution_id)
        self.write_json({"status": record.status})


class EvalHandler(_OneShotHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.check_body_size()
        job = parse_eval(self.runner, self.json_body(), self.sandbox_app.max_code_size)
        record = await self.runner.run(self.owner, job)
        self.write_json(record.to_dict())


class HealthHandler(_OneShotHandler):
    """python-executor's ``GET /health``, at ``{base_url}sandbox/health`` (its clients' base URL is
    ``{base_url}sandbox``). Authenticated like every route: a script must send the token."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        backend = self.runner.backend
        self.write_json({"status": "ok", "backend": backend.name, "one_shot": backend.runs_once})


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    ("/sandbox/health", HealthHandler),
    (api_path("v1/exec/sync"), ExecSyncHandler),
    (api_path("v1/exec/async"), ExecAsyncHandler),
    (api_path("v1/executions"), ExecutionsHandler),
    (api_path("v1/executions/{execution_id}"), ExecutionHandler),
    (api_path("v1/eval"), EvalHandler),
]
