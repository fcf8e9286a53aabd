from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_STDOUT: _ClassVar[Stream]
    STREAM_STDERR: _ClassVar[Stream]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_OK: _ClassVar[Verdict]
    VERDICT_ERROR: _ClassVar[Verdict]
    VERDICT_SYNTAX_ERROR: _ClassVar[Verdict]
    VERDICT_POLICY_DENIED: _ClassVar[Verdict]
    VERDICT_TIMEOUT: _ClassVar[Verdict]
    VERDICT_CPU_LIMIT: _ClassVar[Verdict]
    VERDICT_MEMORY_LIMIT: _ClassVar[Verdict]
    VERDICT_OUTPUT_TRUNCATED: _ClassVar[Verdict]
    VERDICT_SANDBOX_LOST: _ClassVar[Verdict]
    VERDICT_INTERNAL: _ClassVar[Verdict]
    VERDICT_INTERRUPTED: _ClassVar[Verdict]
STREAM_STDOUT: Stream
STREAM_STDERR: Stream
VERDICT_UNSPECIFIED: Verdict
VERDICT_OK: Verdict
VERDICT_ERROR: Verdict
VERDICT_SYNTAX_ERROR: Verdict
VERDICT_POLICY_DENIED: Verdict
VERDICT_TIMEOUT: Verdict
VERDICT_CPU_LIMIT: Verdict
VERDICT_MEMORY_LIMIT: Verdict
VERDICT_OUTPUT_TRUNCATED: Verdict
VERDICT_SANDBOX_LOST: Verdict
VERDICT_INTERNAL: Verdict
VERDICT_INTERRUPTED: Verdict

class Limits(_message.Message):
    __slots__ = ("wall_time_ms", "cpu_time_ms", "memory_bytes", "pids", "output_bytes", "workspace_bytes", "idle_timeout_s", "lifetime_s", "code_bytes", "cpu_millis", "tool_timeout_ms", "max_checkpoints", "tool_time_budget_ms", "max_artifact_bytes", "max_artifacts")
    WALL_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_S_FIELD_NUMBER: _ClassVar[int]
    CODE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_MILLIS_FIELD_NUMBER: _ClassVar[int]
    TOOL_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    TOOL_TIME_BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_ARTIFACT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    wall_time_ms: int
    cpu_time_ms: int
    memory_bytes: int
    pids: int
    output_bytes: int
    workspace_bytes: int
    idle_timeout_s: int
    lifetime_s: int
    code_bytes: int
    cpu_millis: int
    tool_timeout_ms: int
    max_checkpoints: int
    tool_time_budget_ms: int
    max_artifact_bytes: int
    max_artifacts: int
    def __init__(self, wall_time_ms: _Optional[int] = ..., cpu_time_ms: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ..., output_bytes: _Optional[int] = ..., workspace_bytes: _Optional[int] = ..., idle_timeout_s: _Optional[int] = ..., lifetime_s: _Optional[int] = ..., code_bytes: _Optional[int] = ..., cpu_millis: _Optional[int] = ..., tool_timeout_ms: _Optional[int] = ..., max_checkpoints: _Optional[int] = ..., tool_time_budget_ms: _Optional[int] = ..., max_artifact_bytes: _Optional[int] = ..., max_artifacts: _Optional[int] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "inputs_json", "output_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    inputs_json: str
    output_type: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., inputs_json: _Optional[str] = ..., output_type: _Optional[str] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("authorized_imports", "tools", "variables_json", "limits", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUTHORIZED_IMPORTS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    authorized_imports: _containers.RepeatedScalarFieldContainer[str]
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    variables_json: str
    limits: Limits
    labels: _containers.ScalarMap[str, str]
    def __init__(self, authorized_imports: _Optional[_Iterable[str]] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., variables_json: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "limits", "warnings", "caps")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CAPS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    limits: Limits
    warnings: _containers.RepeatedScalarFieldContainer[str]
    caps: Caps
    def __init__(self, session_id: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., caps: _Optional[_Union[Caps, _Mapping]] = ...) -> None: ...

class ExecuteStart(_message.Message):
    __slots__ = ("session_id", "code")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    code: str
    def __init__(self, session_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("call_id", "ok", "value_json", "error_type", "error_message")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    ok: bool
    value_json: str
    error_type: str
    error_message: str
    def __init__(self, call_id: _Optional[str] = ..., ok: _Optional[bool] = ..., value_json: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("start", "tool_result")
    START_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    start: ExecuteStart
    tool_result: ToolResult
    def __init__(self, start: _Optional[_Union[ExecuteStart, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResult, _Mapping]] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("text", "stream")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    text: str
    stream: Stream
    def __init__(self, text: _Optional[str] = ..., stream: _Optional[_Union[Stream, str]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("name", "mime_type", "data", "width", "height", "metadata_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    mime_type: str
    data: bytes
    width: int
    height: int
    metadata_json: str
    def __init__(self, name: _Optional[str] = ..., mime_type: _Optional[str] = ..., data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class TraceFrame(_message.Message):
    __slots__ = ("snippet", "line", "function", "source_line")
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LINE_FIELD_NUMBER: _ClassVar[int]
    snippet: int
    line: int
    function: str
    source_line: str
    def __init__(self, snippet: _Optional[int] = ..., line: _Optional[int] = ..., function: _Optional[str] = ..., source_line: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("call_id", "name", "args_json", "kwargs_json")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    KWARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    args_json: str
    kwargs_json: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., args_json: _Optional[str] = ..., kwargs_json: _Optional[str] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("type", "repr", "json", "has_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REPR_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    HAS_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    repr: str
    json: str
    has_json: bool
    def __init__(self, type: _Optional[str] = ..., repr: _Optional[str] = ..., json: _Optional[str] = ..., has_json: _Optional[bool] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("type", "message", "line", "source_line", "frames", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LINE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    line: int
    source_line: str
    frames: _containers.RepeatedCompositeFieldContainer[TraceFrame]
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., line: _Optional[int] = ..., source_line: _Optional[str] = ..., frames: _Optional[_Iterable[_Union[TraceFrame, _Mapping]]] = ..., traceback: _Optional[str] = ...) -> None: ...

class Variable(_message.Message):
    __slots__ = ("name", "type", "repr", "json", "has_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REPR_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    HAS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    repr: str
    json: str
    has_json: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., repr: _Optional[str] = ..., json: _Optional[str] = ..., has_json: _Optional[bool] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("wall_ms", "cpu_ms", "peak_memory_bytes", "output_bytes")
    WALL_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_MS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    wall_ms: int
    cpu_ms: int
    peak_memory_bytes: int
    output_bytes: int
    def __init__(self, wall_ms: _Optional[int] = ..., cpu_ms: _Optional[int] = ..., peak_memory_bytes: _Optional[int] = ..., output_bytes: _Optional[int] = ...) -> None: ...

class ExecuteResult(_message.Message):
    __slots__ = ("verdict", "stdout", "value", "is_final_answer", "final_answer", "error", "state", "truncated", "usage", "session_lost", "stderr", "artifacts")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_ANSWER_FIELD_NUMBER: _ClassVar[int]
    FINAL_ANSWER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_LOST_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    stdout: str
    value: Value
    is_final_answer: bool
    final_answer: Value
    error: ErrorInfo
    state: _containers.RepeatedCompositeFieldContainer[Variable]
    truncated: bool
    usage: Usage
    session_lost: bool
    stderr: str
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., stdout: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ..., is_final_answer: _Optional[bool] = ..., final_answer: _Optional[_Union[Value, _Mapping]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., state: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ..., truncated: _Optional[bool] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., session_lost: _Optional[bool] = ..., stderr: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("output", "tool_call", "result", "artifact")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    output: OutputChunk
    tool_call: ToolCall
    result: ExecuteResult
    artifact: Artifact
    def __init__(self, output: _Optional[_Union[OutputChunk, _Mapping]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., result: _Optional[_Union[ExecuteResult, _Mapping]] = ..., artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class SetVariablesRequest(_message.Message):
    __slots__ = ("session_id", "variables_json")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    variables_json: str
    def __init__(self, session_id: _Optional[str] = ..., variables_json: _Optional[str] = ...) -> None: ...

class SetVariablesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetVariablesRequest(_message.Message):
    __slots__ = ("session_id", "names")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class GetVariablesResponse(_message.Message):
    __slots__ = ("variables",)
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    variables: _containers.RepeatedCompositeFieldContainer[Variable]
    def __init__(self, variables: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("session_id", "path", "data")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    data: bytes
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadFileResponse(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class DownloadFileRequest(_message.Message):
    __slots__ = ("session_id", "path")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DownloadFileResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("warm", "in_use", "starting", "max_containers", "sessions", "containers_created", "containers_destroyed", "containers_failed", "snippets_executed", "instance_id", "global_view")
    WARM_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    STARTING_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_CREATED_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_DESTROYED_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FAILED_FIELD_NUMBER: _ClassVar[int]
    SNIPPETS_EXECUTED_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_VIEW_FIELD_NUMBER: _ClassVar[int]
    warm: int
    in_use: int
    starting: int
    max_containers: int
    sessions: int
    containers_created: int
    containers_destroyed: int
    containers_failed: int
    snippets_executed: int
    instance_id: str
    global_view: bool
    def __init__(self, warm: _Optional[int] = ..., in_use: _Optional[int] = ..., starting: _Optional[int] = ..., max_containers: _Optional[int] = ..., sessions: _Optional[int] = ..., containers_created: _Optional[int] = ..., containers_destroyed: _Optional[int] = ..., containers_failed: _Optional[int] = ..., snippets_executed: _Optional[int] = ..., instance_id: _Optional[str] = ..., global_view: _Optional[bool] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("session_id", "path", "data")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    data: bytes
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("session_id", "path")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class FileEntry(_message.Message):
    __slots__ = ("path", "size", "is_dir", "mtime_ms")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    IS_DIR_FIELD_NUMBER: _ClassVar[int]
    MTIME_MS_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    is_dir: bool
    mtime_ms: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., is_dir: _Optional[bool] = ..., mtime_ms: _Optional[int] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[FileEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ...) -> None: ...

class RemoveFileRequest(_message.Message):
    __slots__ = ("session_id", "path")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class RemoveFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MakeDirectoryRequest(_message.Message):
    __slots__ = ("session_id", "path")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class MakeDirectoryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Caps(_message.Message):
    __slots__ = ("code_bytes", "file_bytes", "tool_result_bytes", "variables_bytes", "message_bytes")
    CODE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_BYTES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    code_bytes: int
    file_bytes: int
    tool_result_bytes: int
    variables_bytes: int
    message_bytes: int
    def __init__(self, code_bytes: _Optional[int] = ..., file_bytes: _Optional[int] = ..., tool_result_bytes: _Optional[int] = ..., variables_bytes: _Optional[int] = ..., message_bytes: _Optional[int] = ...) -> None: ...

class InterruptRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class InterruptResponse(_message.Message):
    __slots__ = ("interrupted",)
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    interrupted: bool
    def __init__(self, interrupted: _Optional[bool] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("checkpoint_id", "checkpoints")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    checkpoints: int
    def __init__(self, checkpoint_id: _Optional[str] = ..., checkpoints: _Optional[int] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("session_id", "checkpoint_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    checkpoint_id: str
    def __init__(self, session_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckpointInfo(_message.Message):
    __slots__ = ("checkpoint_id", "created_ms", "history")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    created_ms: int
    history: int
    def __init__(self, checkpoint_id: _Optional[str] = ..., created_ms: _Optional[int] = ..., history: _Optional[int] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointInfo]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[CheckpointInfo, _Mapping]]] = ...) -> None: ...

class DropCheckpointRequest(_message.Message):
    __slots__ = ("session_id", "checkpoint_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    checkpoint_id: str
    def __init__(self, session_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class DropCheckpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplayWarning(_message.Message):
    __slots__ = ("entry", "kind", "message")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    entry: int
    kind: str
    message: str
    def __init__(self, entry: _Optional[int] = ..., kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ForkSessionRequest(_message.Message):
    __slots__ = ("session_id", "checkpoint_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    checkpoint_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ForkSessionResponse(_message.Message):
    __slots__ = ("session_id", "limits", "caps", "replayed", "warnings")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CAPS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    limits: Limits
    caps: Caps
    replayed: int
    warnings: _containers.RepeatedCompositeFieldContainer[ReplayWarning]
    def __init__(self, session_id: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., caps: _Optional[_Union[Caps, _Mapping]] = ..., replayed: _Optional[int] = ..., warnings: _Optional[_Iterable[_Union[ReplayWarning, _Mapping]]] = ...) -> None: ...

class RecoverSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class RecoverSessionResponse(_message.Message):
    __slots__ = ("checkpoint_id", "replayed", "dropped", "warnings")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    replayed: int
    dropped: int
    warnings: _containers.RepeatedCompositeFieldContainer[ReplayWarning]
    def __init__(self, checkpoint_id: _Optional[str] = ..., replayed: _Optional[int] = ..., dropped: _Optional[int] = ..., warnings: _Optional[_Iterable[_Union[ReplayWarning, _Mapping]]] = ...) -> None: ...

class AttachSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AttachSessionResponse(_message.Message):
    __slots__ = ("limits", "caps", "tools", "labels", "running", "checkpoints", "lost")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CAPS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    limits: Limits
    caps: Caps
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    labels: _containers.ScalarMap[str, str]
    running: bool
    checkpoints: int
    lost: bool
    def __init__(self, limits: _Optional[_Union[Limits, _Mapping]] = ..., caps: _Optional[_Union[Caps, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., running: _Optional[bool] = ..., checkpoints: _Optional[int] = ..., lost: _Optional[bool] = ...) -> None: ...
