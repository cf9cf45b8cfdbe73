"""The example notebooks in notebooks/: committed without outputs, and each runs without error.

Each notebook is executed with nbclient in its own kernel process (which starts its own local
SparkSession: the tests' shared session is not involved), with the repository root as cwd.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = {
    "01_quickstart_transcription.ipynb",
    "02_evaluation.ipynb",
    "03_long_audio_timestamps.ipynb",
    "04_bring_your_own_model.ipynb",
    "05_finetune.ipynb",
}


def test_notebooks_present():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def _kernel_name() -> str:
    """The 'python3' kernelspec, installed into this environment if it is missing, so that the
    kernel runs this interpreter (the venv's python, with sparkasr and pyspark)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
            check=True,
            capture_output=True,
        )
    return "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=_kernel_name(),
        timeout=600 if path.name.startswith("05_") else 300,  # 05 trains: its fit cell runs a few minutes
        startup_timeout=120,
        resources={"metadata": {"path": str(REPO)}},
    )
    t0 = time.time()
    client.execute()  # raises CellExecutionError (with the cell and traceback) if a cell fails
    wall = time.time() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    print(f"\n[notebooks] {path.name}: {wall:.1f} s")
    if path.name.startswith("02_"):
        images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
        assert images, "the evaluation notebook shows its plot"
    if path.name.startswith("03_"):
        srt = (REPO / "out" / "notebooks" / "long.srt").read_text()
        assert srt.startswith("1\n00:00:00,") and " --> " in srt
