"""The server interceptor: authentication, request decoding and error mapping.

Every call to the `corral.v1.Executor` service passes here before its handler
runs (health and reflection pass through untouched):

- Authentication happens on the call's metadata, before any of its body is
  read: an unauthenticated call gets a handler that aborts at once without
  asking for a single message, so a flood of large unauthenticated requests
  costs the daemon no more than gRPC's per-stream flow-control window.
- Requests are decoded here, not by gRPC: a body that is not valid protobuf
  is INVALID_ARGUMENT naming the method (gRPC itself would answer UNKNOWN).
- Handlers raise `DaemonError`s; they become the status of `errors.grpc_status`
  (the one mapping) with the error's message, for unary and streaming methods
  alike. Any other exception is logged and becomes INTERNAL without details.

The authenticated caller is bound to a context variable
(`auth.current_caller()`); each RPC runs in its own task, with its own context.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from executor.daemon.auth import Authenticator, bind_caller
from executor.daemon.errors import DaemonError, InvalidArgument, Unauthenticated, grpc_status

log = logging.getLogger("corral.daemon.rpc")

SERVICE_PREFIX = "/corral.v1.Executor/"


class Gate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticate, decode and map errors for every Executor method."""

    def __init__(self, auth: Authenticator, prefix: str = SERVICE_PREFIX) -> None:
        self.auth = auth
        self.prefix = prefix

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(self.prefix):
            return handler
        try:
            caller = self.auth.identify(details.invocation_metadata)
        except Unauthenticated as exc:
            return _refusal(grpc_status(exc), str(exc))
        return _wrap(handler, caller, method.removeprefix(self.prefix))


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler that fails the call without reading any of its messages.

    Declared request-streaming whatever the method is, so the server does not
    wait for (and buffer) a unary request before running it.
    """

    async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises; this makes the function a generator

    return grpc.stream_stream_rpc_method_handler(refuse)


async def _fail(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, DaemonError):
        await context.abort(grpc_status(exc), str(exc))
    log.exception("unexpected error in a handler", extra={"method": method})
    await context.abort(grpc.StatusCode.INTERNAL, f"daemon error in {method}; see the daemon log")


def _decoder(deserialize: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except (DecodeError, ValueError, TypeError, RecursionError) as exc:
            raise InvalidArgument(
                f"the {method} request is not a valid protobuf message ({exc}); "
                "send messages built from proto/executor.proto"
            ) from None

    return decode


_HANDLER_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _wrap(handler: grpc.RpcMethodHandler, caller: str, method: str) -> grpc.RpcMethodHandler:
    """The same kind of handler, decoding its requests and mapping its errors."""
    decode = _decoder(handler.request_deserializer, method)
    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    behavior = {
        (False, False): handler.unary_unary,
        (False, True): handler.unary_stream,
        (True, False): handler.stream_unary,
        (True, True): handler.stream_stream,
    }[(streaming_in, streaming_out)]

    async def decoded(requests: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        async for raw in requests:
            yield decode(raw)

    def requests(arg: Any) -> Any:
        return decoded(arg) if streaming_in else decode(arg)

    async def unary(arg: Any, context: grpc.aio.ServicerContext) -> Any:
        bind_caller(caller)
        try:
            return await behavior(requests(arg), context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(context, exc, method)

    async def streaming(arg: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        bind_caller(caller)
        try:
            async for response in behavior(requests(arg), context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _fail(context, exc, method)

    factory = _HANDLER_FACTORIES[(streaming_in, streaming_out)]
    return factory(streaming if streaming_out else unary, None, handler.response_serializer)
