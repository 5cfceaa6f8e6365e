"""Every optimizer under data parallelism: DDP and FSDP2 on two CPU ranks.

One gloo job of two processes (``distributed_worker.py``) trains a small
model with every configuration of ``optim_cases.CONFIGS`` alone and under
DDP and FSDP2; the tests here read its deviations from the single-process
trajectory and the communication of the optimizer step. The job starts
once for the whole module. The launcher serves the rendezvous store
itself, on a port of 127.0.0.1 that the system picks, so that test runs
in parallel do not collide.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optim_cases import CONFIGS

HERE = Path(__file__).resolve().parent
WORLD_SIZE = 2
MODES = ("ddp", "fsdp2", "fsdp2-reference", "fsdp2-mixed",
         "fsdp2-mixed-reference")
# The configurations whose update divides by a norm (q != p).
NORMED = {"nsgd", "nsgd-momentum", "normpower-0.5",
          "normpower-1.5-momentum", "pq-group", "pq-tensor"}
# Parameters that FSDP2 shards: all four, or only the first layer's two.
SHARDED = {"fsdp2": 4, "fsdp2-mixed": 2}
# float64 throughout; the only differences from the single-process run are
# the order of summation in the gradient average and in the norms.
TOLERANCE = 1e-12


def _skip_reason():
    if not torch.distributed.is_available():
        return "torch.distributed is not available in this build"
    if not torch.distributed.is_gloo_available():
        return "the gloo backend is not available in this build"
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return "torch.distributed.fsdp.fully_shard (FSDP2) is missing"
    return None


def _environment():
    """The environment of the ranks: one thread each, magcore importable,
    and gloo on the loopback interface where it has a known name."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent)] + [p for p in [env.get("PYTHONPATH")] if p])
    loopback = [name for _, name in socket.if_nameindex()
                if name in ("lo", "lo0")]
    if loopback:
        env.setdefault("GLOO_SOCKET_IFNAME", loopback[0])
    return env


@pytest.fixture(scope="module")
def deviations(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    store = torch.distributed.TCPStore(
        "127.0.0.1", 0, WORLD_SIZE + 1, is_master=True,
        wait_for_workers=False)
    out = tmp_path_factory.mktemp("distributed") / "deviations.json"
    env = _environment()
    ranks = [
        subprocess.Popen(
            [sys.executable, str(HERE / "distributed_worker.py"),
             str(rank), str(WORLD_SIZE), str(store.port), str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        for rank in range(WORLD_SIZE)]
    logs = []
    try:
        for proc in ranks:
            logs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in ranks:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    codes = [proc.returncode for proc in ranks]
    assert codes == [0] * WORLD_SIZE, (
        f"ranks exited with {codes}:\n" + "\n".join(logs)[-4000:])
    return json.loads(out.read_text())


def test_job_covers_every_configuration_and_mode(deviations):
    assert deviations["world_size"] == WORLD_SIZE
    assert deviations["steps"] >= 10
    assert sorted(deviations["deviations"]) == sorted(CONFIGS)
    for modes in deviations["deviations"].values():
        assert sorted(modes) == sorted(MODES + ("without-reduction",))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_trajectory_equals_single_process(deviations, name, mode):
    value = deviations["deviations"][name][mode]
    assert value <= TOLERANCE, (
        f"{name} under {mode}: parameters differ from the single-process "
        f"run by up to {value:.3g}")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_check_sees_norms_of_shards(deviations, name):
    """With each rank's norms taken over its own shards only, every update
    that divides by a norm leaves the single-process trajectory; the
    others do not use the norms and stay on it."""
    value = deviations["deviations"][name]["without-reduction"]
    if name in NORMED:
        assert value > 1e-6
    else:
        assert value <= TOLERANCE


def test_shards_are_uneven_and_some_are_empty(deviations):
    shapes = deviations["local_shapes"]
    assert len(shapes) == WORLD_SIZE
    rows = [[shape[0] for shape in rank] for rank in shapes]
    assert rows[0] != rows[1]
    assert any(0 in rank for rank in rows)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_one_all_reduce_per_step_where_a_norm_enters(deviations, name,
                                                     mode):
    """DDP's optimizer step communicates nothing; under FSDP2 a normed
    update costs one all-reduce for its group. The per-tensor reference
    with per-tensor norms reads each sharded tensor's norm on its own."""
    count = deviations["all_reduces_in_last_step"][name][mode]
    if mode == "ddp" or name not in NORMED:
        expected = 0
    elif name == "pq-tensor" and mode.endswith("reference"):
        expected = SHARDED[mode[:-len("-reference")]]
    else:
        expected = 1
    assert count == expected


def test_shipped_example_matches_one_process(deviations):
    """examples/ddp_train.py, run inside the same job, for each of its
    optimizers under DDP and FSDP2."""
    gaps = deviations["example"]
    assert len(gaps) >= 10
    for run, gap in gaps.items():
        assert gap <= TOLERANCE, f"{run}: {gap:.3g}"


def test_full_norms_passes_plain_tensors_through():
    from magcore.optim.base import device_mesh, full_norms
    norms = [torch.tensor(3.0), torch.tensor(0.5, dtype=torch.float64)]
    out = full_norms(iter(norms))
    assert len(out) == 2 and all(a is b for a, b in zip(out, norms))
    assert device_mesh(norms[0]) is None
