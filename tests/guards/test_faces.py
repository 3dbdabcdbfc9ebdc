"""The guards' layout holds: each package's face pins what it exports and resolves it lazily, and
a running flow reaches the guards through ``guards/flow_run.py`` and nothing else."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import spojit_engine

FACES = {
    "spojit_engine.guards": [
        "BudgetExceeded", "Guard", "GuardPort", "OutOfCredits", "PrefectUnavailable", "QueueFull",
        "UnknownHook", "deployments", "flow_run", "runs",
    ],
    "spojit_engine.guards.runs": [
        "IncompleteRun", "Reserved", "ReservingWorkflow", "ResumableWorkflow", "ResumeStarted",
        "Resumer", "RunFacts", "RunStatus", "admit", "check_policy", "record_refusal",
        "run_source",
    ],
    "spojit_engine.guards.deployments": [
        "DeployRequest", "Deployed", "DeploymentStatus", "Receipt", "Reconciler", "Webhooks",
        "deploy_workflow", "deployment_statuses",
    ],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(FACES))
def test_a_face_exports_what_it_pins(package: str) -> None:
    face = importlib.import_module(package)
    assert face.__all__ == FACES[package]
    assert face.__all__ == sorted(face.__all__, key=lambda n: (n[0].islower(), n))
    for name in face.__all__:
        assert getattr(face, name) is not None


def test_importing_the_faces_loads_neither_prefect_nor_fastapi() -> None:
    code = (
        "import sys, spojit_engine.guards, spojit_engine.guards.runs, "
        "spojit_engine.guards.deployments; "
        "print(sorted(m for m in ('prefect', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_nodes_reach_the_guards_through_flow_run_only() -> None:
    nodes = Path(spojit_engine.__file__).parent / "nodes"
    reached = set()
    for path in sorted(nodes.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "spojit_engine.guards"
            ):
                reached |= {
                    f"{node.module}.{a.name}" if node.module == "spojit_engine.guards" else
                    str(node.module)
                    for a in node.names
                }  # fmt: skip
            elif isinstance(node, ast.Import):
                reached |= {a.name for a in node.names if a.name.startswith("spojit_engine.guards")}
    assert reached == {"spojit_engine.guards.flow_run"}
