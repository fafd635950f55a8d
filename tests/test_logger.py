import dataclasses
import glob
import json
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from harness.logger import RunLogger, read_metrics, run_name


@dataclasses.dataclass(frozen=True)
class Args:
    env_id: str = "BitFlip-v0"
    seed: int = 1
    hidden_sizes: tuple[int, ...] = (64, 64)
    learning_rate: float = 1e-3


def _tensorboard_events(run_dir: str) -> dict[str, list[tuple[int, float | None]]]:
    """{tag: [(step, scalar or None for text)]} from the run's TFRecord event files."""
    events: dict[str, list[tuple[int, float | None]]] = {}
    for path in glob.glob(os.path.join(run_dir, "events.out.tfevents.*")):
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalar = value.simple_value if value.HasField("simple_value") else None
                events.setdefault(value.tag, []).append((event.step, scalar))
    return events


def test_run_name_follows_cleanrl():
    env_id, algo, seed, stamp = run_name("BitFlip-v0", "her_dqn", 3).split("__")
    assert (env_id, algo, seed) == ("BitFlip-v0", "her_dqn", "3") and stamp.isdigit()


def test_log_writes_seed_rows_and_mean_to_tensorboard(tmp_path):
    run_dir = str(tmp_path / "run")
    with RunLogger(run_dir, Args(), total_steps=200, num_seeds=3, quiet=True) as logger:
        logger.log(100, {"charts/success_rate": np.array([0.0, 0.5, 1.0]), "losses/q_loss": 2.0})
        logger.progress(100, success=0.5)
        logger.log(
            200,
            {
                "charts/success_rate": jnp.array([1.0, 1.0, 0.25]),
                "losses/q_loss": jnp.float32(1.5),
                "eval/success_rate": np.array([0.9, 1.0, 0.8]),
            },
        )
        logger.progress(200, success=0.75)

    with open(os.path.join(run_dir, "args.json")) as f:
        assert json.load(f)["hidden_sizes"] == [64, 64]

    columns = read_metrics(run_dir)
    assert list(columns) == [
        "step",
        "seed",
        "charts/success_rate",
        "losses/q_loss",
        "eval/success_rate",
    ]
    np.testing.assert_array_equal(columns["step"], [100, 100, 100, 200, 200, 200])
    np.testing.assert_array_equal(columns["seed"], [0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(columns["charts/success_rate"], [0, 0.5, 1, 1, 1, 0.25])
    np.testing.assert_allclose(columns["losses/q_loss"], [2, 2, 2, 1.5, 1.5, 1.5])
    np.testing.assert_allclose(columns["eval/success_rate"], [np.nan] * 3 + [0.9, 1.0, 0.8])

    scalars = _tensorboard_events(run_dir)
    assert any(tag.startswith("hyperparameters") for tag in scalars)
    assert scalars["charts/success_rate"] == [(100, 0.5), (200, 0.75)]
    assert scalars["losses/q_loss"] == [(100, 2.0), (200, 1.5)]
    assert [step for step, _ in scalars["eval/success_rate"]] == [200]
    np.testing.assert_allclose(scalars["eval/success_rate"][0][1], 0.9, rtol=1e-6)


def test_rows_survive_without_close(tmp_path):
    logger = RunLogger(str(tmp_path), Args(), total_steps=10, num_seeds=2, quiet=True)
    logger.log(5, {"charts/return": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(read_metrics(str(tmp_path))["charts/return"], [1.0, 2.0])
    logger.close()


def test_log_refuses_metric_with_wrong_seed_count(tmp_path):
    with RunLogger(str(tmp_path), Args(), total_steps=10, num_seeds=2, quiet=True) as logger:
        with pytest.raises(ValueError, match="charts/return"):
            logger.log(5, {"charts/return": np.zeros(3)})


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path):
    with RunLogger(str(tmp_path), Args(), total_steps=300, num_seeds=1, quiet=True) as logger:
        for step in (100, 200, 300):
            logger.log(step, {"charts/return": float(step)})
    with RunLogger(
        str(tmp_path), Args(), total_steps=300, num_seeds=1, quiet=True, initial_step=100
    ) as logger:
        logger.log(200, {"charts/return": -1.0})
    columns = read_metrics(str(tmp_path))
    np.testing.assert_array_equal(columns["step"], [100, 200])
    np.testing.assert_array_equal(columns["charts/return"], [100.0, -1.0])
