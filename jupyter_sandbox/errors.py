"""The project's exceptions. Each carries its HTTP status: the one error->HTTP mapping."""

from __future__ import annotations


class SandboxError(Exception):
    """Base class. ``status`` is the HTTP status the server answers with."""

    status = 500
    reason = "Internal Server Error"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        data = {"message": self.message, "reason": self.reason}
        if self.field:
            data["field"] = self.field
        return data


class InvalidInput(SandboxError):
    status, reason = 400, "Bad Request"


class NotADirectory(InvalidInput):
    """A path that should name a directory names something else (GET files then sends the file)."""


class IsADirectory(InvalidInput):
    """A path that should name a file names a directory."""


class Forbidden(SandboxError):
    status, reason = 403, "Forbidden"


class NotFound(SandboxError):
    status, reason = 404, "Not Found"


class Conflict(SandboxError):
    status, reason = 409, "Conflict"


class AlreadyExists(Conflict):
    """What a request would make is there already (a directory)."""


class TooLarge(SandboxError):
    status, reason = 413, "Payload Too Large"


class QuotaExceeded(SandboxError):
    status, reason = 429, "Too Many Requests"


class BackendUnavailable(SandboxError):
    """The container engine cannot be reached (or refused to do what was asked)."""

    status, reason = 503, "Service Unavailable"


class ServiceUnreachable(SandboxError):
    """Hub mode: the sandbox service did not answer this server (it alone holds the engine)."""

    status, reason = 502, "Bad Gateway"


class KernelDied(SandboxError):
    """The kernel process went away (crash, OOM kill, container gone)."""

    status, reason = 500, "Kernel Died"


class ServerUnreachable(SandboxError):
    """Client side: no jupyter-sandbox server answered."""

    status, reason = 503, "Server Unreachable"


class StateDirError(SandboxError):
    """The server's private state directory is unsafe to use (wrong owner, a symlink)."""


class Unauthorized(SandboxError):
    """No credentials, or credentials that belong to nobody (an unknown or revoked API key)."""

    status, reason = 401, "Unauthorized"


class SandboxGone(SandboxError):
    """The sandbox is still listed but its container (or kernel) is gone: nothing answers for it."""

    status, reason = 502, "Bad Gateway"


class SandboxAnswerInvalid(SandboxError):
    """A program inside the sandbox answered something unreadable: code in the sandbox can tamper
    with what the server's programs print there, so this is the sandbox's fault, never a crash."""

    status, reason = 502, "Bad Gateway"


class CommandExitException(SandboxError):
    """A command of ``sandbox.commands`` ended with a non-zero exit code (E2B's name and fields):
    what it wrote is on the exception."""

    def __init__(self, stdout: str, stderr: str, exit_code: int, error: str | None = None):
        super().__init__(f"Command exited with code {exit_code} and error:\n{error or stderr}")
        self.stdout, self.stderr, self.exit_code, self.error = stdout, stderr, exit_code, error


class CommandTimeout(SandboxError):
    """A command did not end within its ``timeout``; it was killed."""

    status, reason = 504, "Gateway Timeout"
