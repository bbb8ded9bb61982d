"""Errors a request can end with, carried to the client as an OpenAI-style error body."""

from __future__ import annotations

from http import HTTPStatus


class SimRequestError(Exception):
    """A request failed; `status` is the HTTP status, the message says why in SGLang's terms."""

    def __init__(self, message: str, status: int = 400, err_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type or ("BadRequestError" if status < 500 else "InternalServerError")

    @property
    def status_name(self) -> str:
        """The error type SGLang streams: the HTTPStatus name of the abort (serving_chat.py)."""
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
