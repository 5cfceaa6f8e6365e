"""The benchmark script runs end to end on tiny sizes (its numbers are not
checked here: timings are not tests), writes every optimizer's row, and
its GPU variant exits cleanly where there is no CUDA."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "optim_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("optim_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_tiny_cpu_run_writes_every_row(bench, tmp_path, keep_threads):
    out = tmp_path / "tiny.json"
    bench.main(["--numel", "3000", "500", "--warmup", "1", "--repeats", "3",
                "--out", str(out), "--clock", "wall"])
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["machine"]["threads"] == 1
    assert record["clock"] == "wall" and record["date"]
    assert [s["numel"] for s in record["sizes"]] == [3000, 500]
    for size in record["sizes"]:
        assert sum(size["tensor_sizes"]) == size["numel"]
        assert [r["name"] for r in size["rows"]] == list(bench.ROWS)
        for row in size["rows"]:
            assert row["ms"] > 0 and row["baseline_ms"] > 0
            assert row["ratio"] == pytest.approx(
                row["ms"] / row["baseline_ms"])
            assert row["roofline_fraction"] > 0
            assert row["met"] == (row["ratio"] <= row["accepted"])
        assert {b["name"] for b in size["baselines"]} == set(
            bench.BASELINE_BYTES)
        assert [e["name"] for e in size["without_compile"]] == list(
            bench.EAGER)


def test_every_row_has_a_factory_and_a_baseline(bench):
    build = bench.factories()
    for name, (nbytes, _, base, target, accepted) in bench.ROWS.items():
        assert name in build and base in build
        assert nbytes in (20, 24, 28) and target <= accepted
    assert {r.split()[0] for r in bench.ROWS} == {
        "Adam", "SGD", "SignSGD", "Lion", "NSGD", "SignPowerSGD",
        "NormPowerSGD", "PQSGD"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_gpu_variant_skips_without_cuda(bench, capsys, tmp_path):
    out = tmp_path / "gpu.json"
    assert bench.main(["--device", "cuda", "--out", str(out)]) is None
    assert "CUDA is not available" in capsys.readouterr().out
    assert not out.exists()


def test_the_timed_loop_on_the_gpu_code_path_with_cpu_tensors(bench):
    # the loop the GPU run uses, on CPU tensors: every case steps and
    # its optimizer keeps the state it should.
    medians, first = bench.time_steps(
        200, torch.device("cpu"), list(bench.factories()), 1, 2)
    assert set(medians) == set(first) == set(bench.factories())
    assert all(t > 0 for t in medians.values())
