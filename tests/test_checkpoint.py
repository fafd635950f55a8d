import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

from harness import checkpoint
from harness.checkpoint import CheckpointError

ARGS = {"num_envs": 4, "hidden_sizes": (8, 8), "learning_rate": 1e-3}


@struct.dataclass
class TrainState:
    params: Any
    opt_state: optax.OptState
    key: jax.Array  # typed, one per seed
    env_steps: jax.Array  # int32
    warm: jax.Array  # bool
    num_envs: int = struct.field(pytree_node=False, default=4)


def make_state(hidden: int = 8, seed: int = 0) -> TrainState:
    key = jax.random.key(seed)
    params = {
        "Dense_0": {"kernel": jax.random.normal(key, (3, hidden)), "bias": jnp.zeros(hidden)},
        "Dense_1": {"kernel": jnp.ones((hidden, 2)), "bias": jnp.zeros(2)},
    }
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    opt_state = opt.init(params)
    opt_state = jax.tree.map(lambda x: x + 0.5 if x.dtype == jnp.float32 else x + 7, opt_state)
    return TrainState(
        params=params,
        opt_state=opt_state,
        key=jax.random.split(jax.random.key(seed + 1), 2),
        env_steps=jnp.int32(1234),
        warm=jnp.array([True, False]),
    )


def assert_identical(a: Any, b: Any) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def save(path, state, algo: str = "her", args: dict = ARGS, env_steps: int = 1234) -> None:
    checkpoint.save(str(path), state, {"algo": algo, "args": args, "env_steps": env_steps})


def largest_data_file(path) -> str:
    files = [os.path.join(d, f) for d, _, fs in os.walk(path / "state") for f in fs]
    return max(files, key=os.path.getsize)


def test_round_trip_keeps_struct_optax_state_typed_keys_int_and_bool(tmp_path):
    state = make_state()
    save(tmp_path / "ckpt", state)
    restored, metadata = checkpoint.load(str(tmp_path / "ckpt"), make_state(seed=5), "her", ARGS)
    assert_identical(restored, state)
    assert isinstance(restored, TrainState)
    assert isinstance(restored.opt_state[1][0], optax.ScaleByAdamState)
    assert metadata["algo"] == "her" and metadata["env_steps"] == 1234
    assert metadata["args"]["hidden_sizes"] == [8, 8]


def test_load_into_abstract_target(tmp_path):
    state = make_state()
    save(tmp_path / "ckpt", state)
    restored, _ = checkpoint.load(str(tmp_path / "ckpt"), jax.eval_shape(make_state), "her")
    assert_identical(restored, state)


def test_wrong_algorithm_is_refused(tmp_path):
    save(tmp_path / "ckpt", make_state(), algo="her_dqn")
    with pytest.raises(CheckpointError, match="written by her_dqn, not her"):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(), "her")


def test_differing_shape_args_are_refused_by_name(tmp_path):
    save(tmp_path / "ckpt", make_state())
    expected = {"num_envs": 16, "hidden_sizes": (8, 8)}
    with pytest.raises(CheckpointError, match=r"num_envs=4, but this run has num_envs=16"):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(), "her", expected)


def test_shape_mismatch_names_the_leaf(tmp_path):
    save(tmp_path / "ckpt", make_state(hidden=8))
    leaf = r"\.params\['Dense_0'\]\['bias'\]"
    with pytest.raises(
        CheckpointError, match=leaf + r": saved float32\[8\], expected float32\[16\]"
    ):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(hidden=16), "her")


def test_missing_leaf_is_refused(tmp_path):
    save(tmp_path / "ckpt", {"a": jnp.zeros(2)})
    with pytest.raises(CheckpointError, match=r"has no leaf \['b'\]"):
        checkpoint.load(str(tmp_path / "ckpt"), {"a": jnp.zeros(2), "b": jnp.zeros(2)}, "her")


def test_truncated_data_file_is_refused(tmp_path):
    save(tmp_path / "ckpt", make_state(hidden=2048))
    data = largest_data_file(tmp_path / "ckpt")
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(hidden=2048), "her")


def test_flipped_byte_in_data_is_refused(tmp_path):
    save(tmp_path / "ckpt", make_state(hidden=2048))
    data = largest_data_file(tmp_path / "ckpt")
    with open(data, "r+b") as f:
        f.seek(os.path.getsize(data) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(hidden=2048), "her")


def test_garbage_or_missing_metadata_is_refused(tmp_path):
    save(tmp_path / "ckpt", make_state())
    (tmp_path / "ckpt" / "metadata.json").write_bytes(b"\x00{not json")
    with pytest.raises(CheckpointError, match="unreadable metadata.json"):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(), "her")
    (tmp_path / "ckpt" / "metadata.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        checkpoint.load(str(tmp_path / "ckpt"), make_state(), "her")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(str(tmp_path / "elsewhere"), make_state(), "her")


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path):
    path = tmp_path / "ckpt"
    save(path, make_state(seed=0), env_steps=1)
    (tmp_path / ".ckpt.tmp").mkdir()  # left over by a killed save
    save(path, make_state(seed=1), env_steps=2)
    restored, metadata = checkpoint.load(str(path), make_state(), "her")
    assert_identical(restored, make_state(seed=1))
    assert metadata["env_steps"] == 2
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    save(path, make_state(seed=0), env_steps=1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.json, "dump", killed)  # arrays written, metadata not
    with pytest.raises(KeyboardInterrupt):
        save(path, make_state(seed=1), env_steps=2)
    monkeypatch.undo()
    assert (tmp_path / ".ckpt.tmp" / "state").is_dir()
    restored, metadata = checkpoint.load(str(path), make_state(), "her")
    assert_identical(restored, make_state(seed=0))
    assert metadata["env_steps"] == 1
