"""Every notebook in notebooks/ runs headless at quick scale, so a notebook that breaks fails CI.

Notebooks are jupytext percent-format scripts (`notebooks/*.py`). Each is converted with jupytext
and executed by nbclient in a kernel that runs this test's own interpreter (a temporary kernelspec
pointing at ``sys.executable``), with THEORYBENCH_SCALE=quick and runs written to a temporary folder.
A notebook whose header contains the line ``# notebook-test: slow`` is marked slow (`make test-slow`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "theorybench-test"
CELL_TIMEOUT_S = 300  # one cell; generous for a quick-scale training cell on a loaded 2-core machine
SLOW_MARK = "# notebook-test: slow"


def _notebook_params():
    for path in sorted(NOTEBOOKS.glob("*.py")):
        slow = SLOW_MARK in path.read_text().split("# %%", 1)[0]
        yield pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if slow else [])


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernelspec for this interpreter, found through JUPYTER_PATH; the kernel's env is set in it."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "theorybench tests", "language": "python",
        "env": {"THEORYBENCH_SCALE": "quick", "THEORYBENCH_RUNS": str(tmp_path / "runs")},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    work = tmp_path / "work"
    work.mkdir()
    return work


def _execute(nb, cwd: Path):
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}})
    return client.execute()


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def test_the_kernel_runs_this_interpreter_with_quick_scale(kernel_env):
    """The harness itself: the notebooks below really run in this venv, at quick scale."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys; print(sys.executable); print(os.environ['THEORYBENCH_SCALE']); print(os.getcwd())")])
    lines = _stdout(_execute(nb, kernel_env).cells[0]).splitlines()
    assert lines == [sys.executable, "quick", str(kernel_env)]


def test_a_failing_cell_fails_the_run(kernel_env):
    import nbformat
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'broken notebook'")])
    with pytest.raises(CellExecutionError, match="broken notebook"):
        _execute(nb, kernel_env)


@pytest.mark.parametrize("path", list(_notebook_params()))
def test_notebook_runs_headless(path, kernel_env):
    import jupytext

    nb = jupytext.read(path)
    assert any(c.cell_type == "markdown" for c in nb.cells), f"{path.name}: a notebook explains itself in markdown"
    executed = _execute(nb, kernel_env)  # raises CellExecutionError, naming the cell, if any cell fails
    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    assert code_cells and all(c.execution_count for c in code_cells)  # every code cell ran
