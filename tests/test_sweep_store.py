"""The result store: keys, resuming an interrupted sweep, atomic writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from magcore.problems.toy import LinearRegression
from magcore.sweeps import (ResultStore, RunSpec, code_version, grid,
                            read_entries, run_sweep)
from magcore.sweeps import store as store_module

ROOT = Path(__file__).resolve().parents[1]


class Interrupting(LinearRegression):
    """Raises KeyboardInterrupt on the ``fail_at``-th batch drawn."""

    fail_at = None
    drawn = 0

    def sample(self, generator, batch_size):
        Interrupting.drawn += 1
        if Interrupting.fail_at is not None \
                and Interrupting.drawn >= Interrupting.fail_at:
            raise KeyboardInterrupt
        return super().sample(generator, batch_size)


def specs_for(problem):
    return grid(problem, "pqsgd", steps=10, batch_size=4, checkpoints=2,
                lr=[0.01, 0.1], p=[0.0, 0.5, 1.0], seeds=[0, 1])


def test_an_interrupted_sweep_resumes_without_recomputing(tmp_path):
    store = ResultStore(tmp_path)
    problem = Interrupting(n_train=32, dim=3)
    specs = specs_for(problem)
    Interrupting.drawn, Interrupting.fail_at = 0, 25
    # max_batch=4: three batches of four runs, 10 steps x 2 seeds each;
    # the 25th draw falls in the second batch.
    with pytest.raises(KeyboardInterrupt):
        run_sweep(specs, store, "cpu", max_batch=4, progress=False)
    assert len(store) == 4
    Interrupting.fail_at = None
    again = run_sweep(specs, store, "cpu", max_batch=4, progress=False)
    assert (again.n_trained, again.n_cached) == (8, 4)
    assert len(store) == 12
    third = run_sweep(specs, store, "cpu", max_batch=4, progress=False)
    assert (third.n_trained, third.n_cached) == (0, 12)
    fresh = run_sweep(specs, None, "cpu", progress=False)
    for a, b in zip(third.results, fresh.results):
        assert a.to_dict()["metrics"] == b.to_dict()["metrics"]
        assert a.to_dict()["batch_loss"] == b.to_dict()["batch_loss"]


def test_entries_are_plain_json_keyed_by_spec_and_code(tmp_path):
    store = ResultStore(tmp_path)
    spec = RunSpec(LinearRegression(n_train=16, dim=2), "adam",
                   {"lr": 1e3}, steps=6, batch_size=4)
    result = run_sweep([spec], store, "cpu", progress=False).results[0]
    [path] = list(tmp_path.glob("*.json"))
    entry = json.loads(path.read_text())
    assert entry["schema"] == 1
    assert entry["key"]["spec"] == spec.describe()
    assert entry["key"]["code"] == code_version(spec.problem)
    assert entry["key"]["code"].startswith("0.") and "+" in entry["key"][
        "code"]
    assert len(entry["result"]["batch_loss"]) == 6
    assert entry["result"]["diverged"] == result.diverged
    assert store.get(spec.replace(seed=3)) is None
    assert store.get(spec).to_dict() == result.to_dict()


def test_a_new_code_version_hides_old_entries(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    spec = RunSpec(LinearRegression(n_train=16, dim=2), "sgd",
                   {"lr": 0.1}, steps=3)
    run_sweep([spec], store, "cpu", progress=False)
    assert spec in store
    monkeypatch.setattr(store_module, "code_version",
                        lambda problem: "0.0.0+changed")
    assert spec not in store
    assert run_sweep([spec], store, "cpu", progress=False).n_trained == 1


def test_stray_temp_and_corrupt_files_are_ignored(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    spec = RunSpec(LinearRegression(n_train=16, dim=2), "sgd",
                   {"lr": 0.1}, steps=3)
    # a crash between the temporary write and the rename
    def crash(src, dst):
        raise OSError("simulated crash before os.replace")
    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        run_sweep([spec], store, "cpu", progress=False)
    monkeypatch.undo()
    assert len(store) == 0 and spec not in store
    (tmp_path / f".{store.path(spec).name}.abc.tmp").write_text('{"sch')
    store.path(spec).write_text('{"schema": 1, "key": ')  # torn file
    assert len(store) == 0 and spec not in store
    assert run_sweep([spec], store, "cpu", progress=False).n_trained == 1
    assert len(store) == 1 and spec in store


WRITER = """
import sys
from magcore.problems.toy import LinearRegression
from magcore.sweeps import ResultStore, RunResult, RunSpec
store = ResultStore(sys.argv[1])
spec = RunSpec(LinearRegression(n_train=16, dim=2), "sgd", {"lr": 0.1},
               steps=50000, checkpoints=1)
result = RunResult(spec, [0, 50000], {"loss": [1.0, 0.5]},
                   [0.1 + k * 1e-9 for k in range(50000)], False, None,
                   0.0, "cpu")
print("ready", flush=True)
for seed in range(10 ** 6):
    result.spec = spec.replace(seed=seed)
    store.put(result)
"""


def test_the_store_survives_a_kill_mid_write(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("*.json"))) < 3 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    files = [p for p in tmp_path.glob("*.json")
             if not p.name.startswith(".")]
    assert len(files) >= 3
    for path in files:   # every visible entry is whole
        entry = json.loads(path.read_text())
        assert len(entry["result"]["batch_loss"]) == 50000
    assert len(read_entries(tmp_path)) == len(files)
