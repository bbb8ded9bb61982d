"""Errors a request can end with, in SGLang 0.5.23's two shapes (srt/entrypoints/openai/serving_chat.py,
serving_base.py):

- refused before any output (validation, a too-long prompt, an HTTPException): a JSON ErrorResponse with
  the status, streamed request or not;
- aborted by the scheduler after it took the request (`abort=True`: a failed encoder dispatch, a KV
  transfer that failed or timed out): a streamed request has its 200 and gets an error event, typed by the
  HTTPStatus name, then [DONE]; a plain one gets the JSON ErrorResponse typed by the status number.
"""

from __future__ import annotations

from http import HTTPStatus


class SimRequestError(Exception):
    """A request failed; `status` is the HTTP status, the message says why in SGLang's terms."""

    def __init__(self, message: str, status: int = 400, *, abort: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = int(status)
        self.abort = abort

    @property
    def err_type(self) -> str:
        # serving_base.py: a ValueError is "BadRequestError"; an HTTPException (what an abort becomes
        # for a plain request) is typed by its code.
        return "BadRequestError" if self.status == 400 else str(self.status)

    @property
    def status_name(self) -> str:
        """The type of the in-stream error event: the abort's HTTPStatus name (serving_chat.py)."""
        return HTTPStatus(self.status).name

    def body(self) -> dict:
        """SGLang's ErrorResponse shape."""
        return {
            "object": "error",
            "message": self.message,
            "type": self.err_type,
            "param": None,
            "code": self.status,
        }
