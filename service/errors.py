"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with OpenAI's statuses."""

from __future__ import annotations

from typing import Any

INVALID = "invalid_request_error"


class ApiError(Exception):
    """A request the service refuses or could not serve; `body()` is what the client receives."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unauthorized(message: str = "Incorrect API key provided.") -> ApiError:
    return ApiError(401, message, code="invalid_api_key")


def not_found(message: str, param: str | None = "model") -> ApiError:
    return ApiError(404, message, param=param, code="model_not_found")


def rate_limited(message: str, retry_after: float) -> ApiError:
    return ApiError(429, message, type="requests", code="rate_limit_exceeded", retry_after=retry_after)


def server_error(message: str, code: str | None = None) -> ApiError:
    return ApiError(500, message, type="server_error", code=code)
