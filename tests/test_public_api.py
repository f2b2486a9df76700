"""The public namespaces: each exports exactly its curated names, and every one is documented.

The lists below are the API. Adding or removing a public name means editing
the namespace's ``__all__`` and this file together, on purpose.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

PUBLIC: dict[str, list[str]] = {
    "linkstate": [
        "GRPC",
        "LIFECYCLE",
        "OPENCLAW",
        "PRESETS",
        "ArgumentError",
        "Budget",
        "Channel",
        "ChannelError",
        "CloseEvent",
        "CloseTable",
        "Decision",
        "Definition",
        "DefinitionError",
        "Edge",
        "Initiator",
        "Jitter",
        "LifecycleError",
        "Link",
        "LinkMachine",
        "LinkstateError",
        "Phase",
        "PolicyError",
        "ReconnectPolicy",
        "Rule",
        "State",
        "StopReason",
        "TableError",
        "TransitionRecord",
        "Trigger",
        "Verdict",
        "available_channels",
        "load_channel",
        "normalise",
    ],
    "linkstate.plugin": [
        "ENTRY_POINT_GROUP",
        "Facts",
        "Reader",
        "Shapes",
        "TrustedFlag",
        "extract_with",
        "facts",
        "first_class",
        "get",
        "header",
        "is_a",
        "json_text",
        "read_first",
        "retry_after_header",
        "retry_after_seconds",
        "seconds",
        "text",
    ],
    "linkstate.runtime": [
        "BACKOFF_BUCKETS",
        "METRICS",
        "Close",
        "ConnectFailed",
        "Connection",
        "Fleet",
        "FleetError",
        "FleetMetrics",
        "Hang",
        "LeaseKeeper",
        "LeasePolicy",
        "LeasedLink",
        "LinkStatus",
        "MetricSpec",
        "MetricsError",
        "Outcome",
        "Reject",
        "RestartPolicy",
        "ScriptedTransport",
        "Silent",
        "Step",
        "Supervisor",
        "SupervisorError",
        "Transport",
        "freeze_survivors",
        "mass_start",
        "open_fleet",
        "open_leased_fleet",
        "transport_factory",
    ],
    "linkstate.store": [
        "Claim",
        "Entry",
        "Journal",
        "JournalStatistics",
        "Lease",
        "LeaseInfo",
        "LeaseLostError",
        "LeaseStore",
        "LinkRow",
        "PostgresStore",
        "Receipt",
        "SQLiteStore",
        "StateStore",
        "StoreConflictError",
        "StoreError",
        "StoreOwnedElsewhereError",
        "StoreRequestError",
        "StoreRowError",
        "StoredTransition",
        "Writer",
        "new_owner",
        "open_journal",
        "operator_reset",
    ],
    "linkstate.check": [
        "Cover",
        "Finding",
        "Kind",
        "Path",
        "Report",
        "Step",
        "check",
        "check_definition",
        "check_rows",
        "coverage",
        "edge_cover",
        "promised_route",
        "realised_cover",
        "shortest_paths",
    ],
    "linkstate.testing": [
        "AsyncioLoop",
        "BotAPIServer",
        "CloseError",
        "ConformanceMachine",
        "ControlledConnection",
        "ControlledTransport",
        "Expectation",
        "KitSetupError",
        "KitTimeoutError",
        "MachineFactory",
        "MatrixHomeserver",
        "ReferenceLink",
        "RuntimeMachine",
        "TrioLoop",
        "VirtualTimeLoop",
        "assert_check_clean",
        "assert_conformance",
        "assert_expected",
        "assert_junk_safe",
        "assert_rows_classify",
        "assert_terminal_rows_stop",
        "broken",
        "close_events",
        "close_forms",
        "delay_bound",
        "hostile",
        "junk",
        "kit_settings",
        "machine_settings",
        "real_machine",
        "row_event",
        "row_forms",
    ],
    "linkstate.adapters": ["LibraryMissingError"],
    "linkstate.adapters.ptb": ["DEFAULT_POLL_TIMEOUT", "PTBTransport"],
    "linkstate.adapters.aiogram": ["AiogramTransport"],
    "linkstate.adapters.nio": ["DEFAULT_SYNC_TIMEOUT", "NioTransport"],
    "linkstate.adapters.neonize": ["CLOSE_EVENTS", "DEFAULT_STOP_TIMEOUT", "NeonizeTransport"],
    "linkstate.adapters.discord": ["DiscordTransport", "GatewaySession", "LoopbackDiscord"],
    "linkstate.adapters.slack": ["LoopbackSlack", "SlackSocketModeTransport", "SocketSession"],
    "linkstate.diagrams": [
        "EXTENSIONS",
        "GENERIC_NAME",
        "REGENERATE",
        "DiagramError",
        "Format",
        "Picture",
        "RenderError",
        "Renderer",
        "RendererNotFoundError",
        "diagram_names",
        "find_renderer",
        "format_for_path",
        "lifecycle_picture",
        "live_picture",
        "picture_for",
        "produce",
        "render",
        "to_dot",
        "to_mermaid",
        "trace_picture",
        "write_all",
        "write_diagram",
        "write_trace",
    ],
}

EXPORTS = [(namespace, name) for namespace, names in PUBLIC.items() for name in names]


def source_of(module_name: str) -> ast.Module:
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin is not None, module_name
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))


def attribute_docstring(module_name: str, name: str) -> str | None:
    """The string literal right after the top-level assignment of ``name``, found through
    the ``from ... import`` chain that re-exports it; None when there is none."""
    body = source_of(module_name).body
    for index, node in enumerate(body):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            original = next((a.name for a in node.names if (a.asname or a.name) == name), None)
            if original is not None:
                return attribute_docstring(node.module, original)
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            after = body[index + 1] if index + 1 < len(body) else None
            if (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                return after.value.value
            return None
    return None


def docstring(namespace: ModuleType, name: str) -> str | None:
    obj = getattr(namespace, name)
    if inspect.isclass(obj):
        own = vars(obj).get("__doc__")
        # A dataclass without a docstring gets its signature as one.
        return None if own is None or own.startswith(f"{obj.__name__}(") else own
    if inspect.isfunction(obj):
        return obj.__doc__
    return attribute_docstring(namespace.__name__, name)


@pytest.mark.parametrize("namespace", sorted(PUBLIC))
def test_each_namespace_exports_exactly_its_curated_names(namespace: str) -> None:
    module = importlib.import_module(namespace)
    assert list(module.__all__) == PUBLIC[namespace]
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{namespace}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize(("namespace", "name"), EXPORTS, ids=[".".join(e) for e in EXPORTS])
def test_every_exported_name_has_a_docstring(namespace: str, name: str) -> None:
    doc = docstring(importlib.import_module(namespace), name)
    assert doc and doc.strip(), f"{namespace}.{name} has no docstring"


@pytest.mark.parametrize("namespace", sorted(PUBLIC))
def test_no_namespace_exports_an_implementation_module_or_a_private_name(namespace: str) -> None:
    module = importlib.import_module(namespace)
    private = [name for name in module.__all__ if name.startswith("_")]
    modules = [name for name in module.__all__ if inspect.ismodule(getattr(module, name))]
    assert not private and not modules
    assert module.__doc__ and module.__doc__.strip()


def test_the_names_the_issue_promises_import_from_the_root() -> None:
    scope: dict[str, object] = {}
    exec("from linkstate import Channel, CloseTable, Rule, Verdict, load_channel", scope)
    assert {"Channel", "CloseTable", "Rule", "Verdict", "load_channel"} <= scope.keys()
