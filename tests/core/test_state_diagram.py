"""The docs' state diagram is the transition table (STYLE.md practice 4)."""

from __future__ import annotations

from pathlib import Path

from rpcbd.core.state import TRANSITIONS, state_diagram

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sans-io.md"


def test_docs_show_the_generated_diagram() -> None:
    assert f"```mermaid\n{state_diagram()}\n```" in DOCS.read_text()


def test_diagram_has_one_edge_per_transition() -> None:
    edges = [line for line in state_diagram().splitlines() if ": " in line]
    assert len(edges) == len(TRANSITIONS)
    for (state, event), target in TRANSITIONS.items():
        assert f"    {state.name} --> {target.name}: {event.value}" in edges
