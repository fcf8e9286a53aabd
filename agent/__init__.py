"""Corral's agent client: what an agent builder imports.

    from agent import Client, tool, CodeAgent, OpenAICompatibleModel

- `Client` / `AsyncClient`: sessions on a Corral daemon (`s.run(code) -> Result`).
- `Tool` / `@tool`: client-side tools, reachable from sandboxed snippets.
- `CodeAgent`, `ToolCallingAgent`: agent loops over a Corral session.
- `OpenAICompatibleModel`, `ScriptedModel`: models for the agents.
- `agent.integrations.smolagents.CorralExecutor`: run smolagents' CodeAgent in Corral.

Design notes (approaches considered and rejected):
- Tools copied into the sandbox as source (what some executors do) would give
  snippets the tools' secrets and network; tools stay here and the sandbox
  gets stubs whose calls come back over the Execute stream.
- A pickle fallback for values that are not JSON-safe: refused across the
  trust boundary; such values cross as type + repr.
"""

from agent.agents import CodeAgent, MultiStepAgent, ToolCallingAgent
from agent.aio import AsyncClient, AsyncSession
from agent.client import Client, Session
from agent.errors import (
    AgentError,
    Cancelled,
    ClientClosed,
    CorralError,
    CorralWarning,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    ModelError,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ResourceExhausted,
    SessionClosed,
    ToolError,
    Unauthenticated,
    Unavailable,
)
from agent.memory import ActionStep, AgentMemory
from agent.models import ChatMessage, Model, OpenAICompatibleModel, ScriptedModel, TokenUsage
from agent.results import (
    Artifact,
    ErrorInfo,
    FileInfo,
    Result,
    Stderr,
    TraceFrame,
    Usage,
    Value,
    Variable,
    Verdict,
)
from agent.tools import Tool, tool

__all__ = [
    "ActionStep",
    "AgentError",
    "AgentMemory",
    "Artifact",
    "AsyncClient",
    "AsyncSession",
    "Cancelled",
    "ChatMessage",
    "Client",
    "ClientClosed",
    "CodeAgent",
    "CorralError",
    "CorralWarning",
    "DeadlineExceeded",
    "ErrorInfo",
    "FailedPrecondition",
    "FileInfo",
    "Internal",
    "InvalidArgument",
    "Model",
    "ModelError",
    "MultiStepAgent",
    "NotFound",
    "OpenAICompatibleModel",
    "PermissionDenied",
    "ProtocolError",
    "ResourceExhausted",
    "Result",
    "ScriptedModel",
    "Session",
    "SessionClosed",
    "Stderr",
    "TokenUsage",
    "Tool",
    "ToolCallingAgent",
    "ToolError",
    "TraceFrame",
    "Unauthenticated",
    "Unavailable",
    "Usage",
    "Value",
    "Variable",
    "Verdict",
    "tool",
]
