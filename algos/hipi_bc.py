"""HIPI-BC: relabel demonstrations with inverse RL, then task-conditioned behaviour cloning.

Eysenbach, Geng, Levine, Salakhutdinov, "Rewriting History with Inverse RL:
Hindsight Inference for Policy Improvement", NeurIPS 2020, Algorithm 3.
The dataset holds trajectories without task labels. Each trajectory τ_i is
labelled with a task drawn from the MaxEnt inverse-RL posterior (Eq. 7), drawn
anew for every minibatch as Alg. 3 does (`--redraw epoch`: once per epoch)

    q(ψ | τ) ∝ exp(R_ψ(τ) − log Z(ψ)),   R_ψ(τ) = Σ_t r_ψ(s_{t+1}, a_t),

where the returns of every candidate task are recomputed from the stored
features and log Z(ψ) is estimated over a batch of trajectories. A policy
π(a | s, ψ) is then fit to the relabelled data by behaviour cloning (App. C.2).
Baselines on the same code path: task-agnostic BC (`--relabel none`), a task
from the prior (`random`), the true labels (`oracle`, an upper bound), the
ablation without log Z (`--no-partition`) and Fig. 8's bias on the first
candidate task (`--reward-bias`). Seeds are vmapped; one jitted call per epoch.

    python experiments/collect_demos.py --env-kwargs num_goals=4 --out data/goals4.npz
    python algos/hipi_bc.py --dataset data/goals4.npz
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Literal

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
from common import dataset as ds  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from harness import cli, training  # noqa: E402


@dataclass(frozen=True)
class Args(training.RunFlags):
    # run-management flags (seed, num_seeds, eval_episodes, save_model, resume, track, ...)
    # come from training.RunFlags; a chunk of training is one epoch (--max-epochs), on
    # one device
    dataset: str = "data/demos.npz"
    """dataset file written by experiments/collect_demos.py; the env comes from its header"""
    relabel: Literal["inverse_rl", "none", "random", "oracle"] = "inverse_rl"
    """inverse_rl: Eq. 7; none: task-agnostic BC (no task input); random: a task from the
    prior; oracle: the tasks the data was collected for (evaluation labels, an upper bound)"""
    partition: bool = True
    """subtract the partition function log Z(ψ) (Eq. 7); --no-partition is the ablation"""
    posterior: Literal["sample", "weights"] = "sample"
    """inverse_rl: one task per trajectory drawn from q(ψ|τ), or every candidate weighted by
    q(ψ|τ) in the BC loss (costs one network call per candidate)"""
    redraw: Literal["minibatch", "epoch"] = "minibatch"
    """inverse_rl, random: draw ψ̃ anew for every minibatch (Alg. 3; log Z over the
    minibatch's steps), or once per trajectory per epoch (log Z over batches of
    --relabel-batch-size trajectories)"""
    relabel_batch_size: int = 256
    """trajectories per relabeling batch of the dataset-wide draw (every epoch: the
    validation loss's labels, and the updates' with --redraw epoch): log Z(ψ) is
    estimated over this batch"""
    num_candidates: int = 64
    """tasks drawn from the prior per relabeling batch (families without a finite task set;
    finite families use their whole set)"""
    achieved_candidates: bool = True
    """goal families: the goals the batch's trajectories reach at their last step are
    candidates too"""
    reward_bias: float = 0.0
    """Fig. 8: a constant added to the per-step reward of the first candidate task"""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """hidden layer widths of the policy (App. C.2)"""
    learning_rate: float = 3e-4
    """Adam learning rate (App. C.2)"""
    batch_size: int = 256
    """steps per gradient step"""
    max_epochs: int = 100
    """epochs at most; training stops earlier when validation loss rises `patience` times
    in a row"""
    patience: int = 3
    """consecutive epochs of rising validation loss that stop training (App. C.2)"""
    validation_fraction: float = 0.1
    """fraction of the trajectories held out for the validation loss"""
    normalize_obs: bool = True
    """normalise observations, tasks and actions by their dataset (tasks: prior) statistics"""
    eval_every: int = 5
    """evaluate the current policy every this many epochs (and the best one at the end)"""
    eval_episodes: int = 200
    """evaluation episodes per seed, fresh tasks from the prior"""

    def __post_init__(self):
        positive = (
            "num_seeds",
            "relabel_batch_size",
            "batch_size",
            "max_epochs",
            "patience",
            "eval_every",
            "eval_episodes",
            "checkpoint_every",
            "hidden_sizes",
            "learning_rate",
        )
        cli.check_numbers(
            self,
            **dict.fromkeys(positive, "> 0"),
            num_candidates=">= 0",
            validation_fraction="(0, 1)",
        )
        cli.check_numbers(self, seed=f"[0, {2**31 - self.num_seeds}]")
        if not self.hidden_sizes:
            raise cli.UsageError("--hidden-sizes needs at least one layer width")
        cli.check_output_dir("--run-dir", self.run_dir)
        cli.check_run_flags(self)
        try:
            data = ds.load(self.dataset)
        except ds.DatasetError as err:
            raise cli.UsageError(str(err)) from None
        env = make_env(data)
        if env.discrete:
            raise cli.UsageError(
                f"{data.env_id} has discrete actions; hipi_bc.py clones continuous ones"
            )
        first = jax.eval_shape(lambda: env.reset(jax.random.key(0)))  # shapes only
        dims = {"observations": first.obs, "features": first.features, "task_labels": first.task}
        dims = {name: x.shape[-1] for name, x in dims.items()} | {"actions": env.action_size}
        for name, dim in dims.items():
            array = getattr(data, name)
            if array is not None and array.shape[-1] != dim:
                raise cli.UsageError(
                    f"{self.dataset} holds {name} of {array.shape[-1]} dims, but {data.env_id} "
                    f"with {data.env_kwargs} has {dim}"
                )
        if self.relabel == "oracle" and data.task_labels is None:
            raise cli.UsageError(f"--relabel oracle needs task labels, which {self.dataset} lacks")
        n_val = math.ceil(self.validation_fraction * data.num_trajectories)
        if n_val >= data.num_trajectories:
            raise cli.UsageError(
                f"{self.dataset} holds {data.num_trajectories} trajectories, too few to hold "
                f"out {self.validation_fraction:.0%} for validation"
            )
        achieved = self.achieved_candidates and envs.has_achieved(env.family)
        finite = env.family.tasks is not None
        if self.relabel == "inverse_rl" and not (finite or achieved or self.num_candidates):
            raise cli.UsageError(
                f"--relabel inverse_rl has no candidate tasks for {data.env_id}: "
                "use --num-candidates > 0"
            )


def make_env(data: ds.Dataset) -> envs.Env:
    try:
        return envs.make(data.env_id, **data.env_kwargs)
    except (ValueError, TypeError) as err:
        raise cli.UsageError(f"the dataset's env cannot be built: {err}") from None


# ---------------------------------------------------------------- state types
@struct.dataclass
class Data:
    """The dataset as device arrays, plus the per-trajectory BC targets of one seed."""

    observations: jax.Array  # (N, T, obs_dim)
    actions: jax.Array  # (N, T, action_dim)
    features: jax.Array  # (N, T, feature_dim)
    mask: jax.Array  # (N, T) bool, valid steps
    task_labels: jax.Array  # (N, task_dim) evaluation only (zeros when the file has none)


@struct.dataclass
class Labels:
    """What BC trains each trajectory with: K' tasks and their weights (K' = 1 when sampled)."""

    tasks: jax.Array  # (N, K', task_dim)
    weights: jax.Array  # (N, K')


@struct.dataclass
class Stats:
    obs_mean: jax.Array
    obs_std: jax.Array
    task_mean: jax.Array
    task_std: jax.Array
    action_mean: jax.Array
    action_std: jax.Array


@struct.dataclass
class TrainState:
    params: dict
    opt_state: optax.OptState
    best_params: dict
    best_val_loss: jax.Array  # ()
    last_val_loss: jax.Array  # ()
    rises: jax.Array  # () int32, consecutive epochs the validation loss rose
    stopped: jax.Array  # () bool
    epochs: jax.Array  # () int32, epochs trained before stopping
    is_val: jax.Array  # (N,) bool, held-out trajectories
    labels: Labels
    relabel_info: dict  # diagnostics of the relabeling (scalars)
    key: jax.Array


# ---------------------------------------------------------------- network
class Policy(nn.Module):
    """Deterministic π(s, ψ) -> normalised action; without a task input when `use_task` is off."""

    action_dim: int
    hidden_sizes: tuple[int, ...]
    use_task: bool = True

    @nn.compact
    def __call__(self, obs, task):
        x = jnp.concatenate([obs, task], axis=-1) if self.use_task else obs
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.action_dim)(x)


# ---------------------------------------------------------------- relabeling
def trajectory_return(family, features, actions, mask, task, bias=0.0):
    """R_ψ(τ) = Σ_t mask_t (r_ψ(features_t, a_t) + bias) for ONE trajectory and task.
    features (T, F), actions (T, A), mask (T,), task (D,) -> ()"""
    chex.assert_rank([features, actions, mask, task], [2, 2, 1, 1])
    rewards = jax.vmap(family.reward, (0, 0, None))(features, actions, task)
    return jnp.sum(jnp.where(mask, rewards + bias, 0.0))


def return_matrix(family, features, actions, mask, tasks, first_task_bias=0.0):
    """R[i, j] = R_ψj(τ_i), with `first_task_bias` added to every step's reward of
    ψ_0 (Fig. 8). (B, T, ·) trajectories, tasks (K, D) -> (B, K)"""
    chex.assert_rank([features, actions, mask, tasks], [3, 3, 2, 2])
    bias = jnp.zeros((tasks.shape[0],)).at[0].set(first_task_bias)
    per_task = jax.vmap(trajectory_return, (None, None, None, None, 0, 0))
    per_pair = jax.vmap(per_task, (None, 0, 0, 0, None, None))
    return per_pair(family, features, actions, mask, tasks, bias)


def log_partition(returns, valid=None):
    """log Z(ψ_j) = logsumexp_i R[i, j] − log B over the batch's valid rows (Alg. 1);
    `valid` (B,) leaves out padding rows. (B, K) -> (K,)"""
    chex.assert_rank(returns, 2)
    if valid is None:
        valid = jnp.ones(returns.shape[:1], bool)
    masked = jnp.where(valid[:, None], returns, -jnp.inf)
    log_z = jax.nn.logsumexp(masked, axis=0) - jnp.log(jnp.maximum(valid.sum(), 1))
    return jnp.where(valid.any(), log_z, 0.0)  # no valid row (a minibatch of padding): 0


def relabel_log_posterior(returns, use_partition, valid=None):
    """log q(ψ_j | τ_i) = log softmax_j(R[i, j] − log Z(ψ_j)) (Eq. 7). (B, K) -> (B, K)"""
    chex.assert_rank(returns, 2)
    if use_partition:
        returns = returns - log_partition(returns, valid)[None, :]
    return jax.nn.log_softmax(returns, axis=1)


def relabel_inverse_rl(key, returns, use_partition=True, valid=None):
    """Sample ψ̃_i ~ q(ψ | τ_i) for every trajectory: indices (B,) and log q (B, K)."""
    log_q = relabel_log_posterior(returns, use_partition, valid)
    return jax.random.categorical(key, log_q, axis=1), log_q


def entropy_of(log_q):
    return -jnp.sum(jnp.exp(log_q) * log_q, axis=-1)


def make_relabel(args: Args, family, num_trajectories: int, has_labels: bool):
    """`relabel`: (key, data) -> (Labels, diagnostics) for the whole dataset, in batches
    of B; `relabel_rows`: Alg. 1 on the trajectories of one minibatch."""
    batch = min(args.relabel_batch_size, num_trajectories)
    num_batches = math.ceil(num_trajectories / batch)
    finite = family.tasks is not None
    achieved = args.achieved_candidates and envs.has_achieved(family) and not finite

    def candidates_of(key, features, mask):
        if finite:
            return family.tasks  # (K, D): the whole set is the exact uniform prior
        parts = [family.sample(key, (args.num_candidates,))]
        if achieved:  # the goal reached at each trajectory's last valid step
            last = jnp.sum(mask, axis=1) - 1
            rows = jnp.arange(features.shape[0])
            parts.append(jax.vmap(family.achieved)(features[rows, last]))
        return jnp.concatenate(parts)

    def relabel_rows(key, data: Data, index, valid):
        """Alg. 1 on the trajectories `index` (B,), some of them possibly the same: a task
        for each row, log Z over the rows where `valid` (B,). -> tasks (B, K', D),
        weights (B, K') and what the diagnostics need"""
        candidate_key, sample_key = jax.random.split(key)
        features, actions, mask = data.features[index], data.actions[index], data.mask[index]
        candidates = candidates_of(candidate_key, features, mask)  # (K, D)
        returns = return_matrix(family, features, actions, mask, candidates, args.reward_bias)
        chosen, log_q = relabel_inverse_rl(sample_key, returns, args.partition, valid)  # Eq. 7
        rows = index.shape[0]
        if args.posterior == "weights":
            tasks = jnp.broadcast_to(candidates[None], (rows, *candidates.shape))
            weights = jnp.exp(log_q)
        else:
            tasks, weights = candidates[chosen][:, None], jnp.ones((rows, 1))
        return tasks, weights, (candidates, returns, chosen, log_q)

    def relabel_batch(data: Data, carry, inputs):
        index, valid, key = inputs  # index (B,), valid (B,): False on the padding rows
        tasks, weights, (candidates, returns, chosen, log_q) = relabel_rows(key, data, index, valid)

        def mean(x):  # over the valid rows
            return jnp.sum(jnp.where(valid, x, 0.0)) / valid.sum()

        info = {
            "relabel/posterior_entropy": mean(entropy_of(log_q)),
            "relabel/log_partition_std": jnp.std(log_partition(returns, valid)),
            "relabel/first_task_fraction": mean(chosen == 0),
            "relabel/return_chosen": mean(returns[jnp.arange(batch), chosen]),
        }
        if has_labels:  # evaluation only: how far the inferred tasks are from the true ones
            error = jnp.linalg.norm(candidates[chosen] - data.task_labels[index], axis=-1)
            info["relabel/task_error"] = mean(error)
            if finite:
                info["relabel/label_accuracy"] = mean(error < 1e-6)
        return carry, (jnp.where(valid, index, num_trajectories), tasks, weights, info)

    def relabel(key, data: Data):
        """A new draw for every trajectory: a new split into batches (log Z), new
        candidates, new samples. The trajectories are dealt round the batches, so that
        each holds N / num_batches of them, ±1, and a small last batch does not
        estimate log Z from a handful; the free slots are filled with padding rows,
        which stay out of log Z and whose draws are dropped."""
        order_key, batch_key = jax.random.split(key)
        order = jax.random.permutation(order_key, num_trajectories)
        pad = num_batches * batch - num_trajectories
        slots = jnp.arange(batch)[None, :] * num_batches + jnp.arange(num_batches)[:, None]
        order = jnp.concatenate([order, order[:pad]])[slots]  # (num_batches, B)
        valid = slots < num_trajectories
        keys = jax.random.split(batch_key, num_batches)
        _, (index, tasks, weights, info) = jax.lax.scan(
            lambda c, x: relabel_batch(data, c, x), None, (order, valid, keys)
        )
        index = index.reshape(-1)  # padding rows point past the end and are dropped
        tasks = tasks.reshape(-1, *tasks.shape[2:])
        weights = weights.reshape(-1, weights.shape[-1])
        labels = Labels(
            tasks=jnp.zeros((num_trajectories, *tasks.shape[1:])).at[index].set(tasks, mode="drop"),
            weights=jnp.zeros((num_trajectories, weights.shape[-1]))
            .at[index]
            .set(weights, mode="drop"),
        )
        # batches weigh their diagnostics by their valid rows
        share = valid.sum(axis=1) / num_trajectories
        return labels, jax.tree.map(lambda x: jnp.sum(share * x), info)

    return relabel, relabel_rows


# ---------------------------------------------------------------- loss
def make_loss(policy: Policy):
    def bc_loss(params, obs, tasks, weights, actions, step_weights):
        """Weighted mean over steps of Σ_k w_k ||π(s, ψ_k) − a||² (a Gaussian
        log-likelihood with fixed variance, up to constants).
        obs (M, O), tasks (M, K', D), weights (M, K'), actions (M, A), step_weights (M,)"""
        chex.assert_rank([obs, tasks, weights, actions, step_weights], [2, 3, 2, 2, 1])
        pairs = jnp.broadcast_to(obs[:, None], (*tasks.shape[:2], obs.shape[-1]))
        predicted = policy.apply(params, pairs, tasks)  # (M, K', A)
        error = jnp.sum((predicted - actions[:, None]) ** 2, axis=-1)  # (M, K')
        per_step = jnp.sum(weights * error, axis=-1)
        loss = jnp.sum(step_weights * per_step) / jnp.maximum(step_weights.sum(), 1.0)
        return loss, {"bc_loss": loss}

    return bc_loss


# ---------------------------------------------------------------- training
def normalizer_stats(args: Args, data: ds.Dataset, family) -> Stats:
    mask = data.mask()
    obs, actions = data.observations[mask], data.actions[mask]
    tasks = np.asarray(family.sample(jax.random.key(0), (10_000,)))

    def moments(x):
        if not args.normalize_obs:
            return np.zeros(x.shape[-1], np.float32), np.ones(x.shape[-1], np.float32)
        return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)

    (om, os_), (tm, ts), (am, as_) = moments(obs), moments(tasks), moments(actions)
    return Stats(om, os_, tm, ts, am, as_)


def make_train(args: Args, data: ds.Dataset | None = None) -> training.Train:
    """The pure functions of ONE seed: `init(key, data)`, `train_chunk(state, data)` (one
    epoch), `evaluate(state, key)`; `shared` holds `data`, the dataset on the device.
    `data` is read from `args.dataset` unless given."""
    data = ds.load(args.dataset) if data is None else data
    env = make_env(data)
    family = env.family
    use_task = args.relabel != "none"
    policy = Policy(action_dim=env.action_size, hidden_sizes=args.hidden_sizes, use_task=use_task)
    optimizer = optax.adam(args.learning_rate)
    bc_loss = make_loss(policy)
    stats = normalizer_stats(args, data, family)
    n, horizon = data.num_trajectories, data.max_length
    n_val = math.ceil(args.validation_fraction * n)
    steps_per_epoch = (n * horizon) // args.batch_size
    relabel_ir, relabel_rows = make_relabel(args, family, n, data.task_labels is not None)
    labels = data.task_labels
    device_data = Data(
        observations=jnp.asarray(data.observations),
        actions=jnp.asarray(data.actions),
        features=jnp.asarray(data.features),
        mask=jnp.asarray(data.mask()),
        task_labels=jnp.asarray(
            labels if labels is not None else np.zeros((n, family.task_dim), np.float32)
        ),
    )

    def norm_obs(obs):
        return (obs - stats.obs_mean) / stats.obs_std

    def norm_task(task):
        return (task - stats.task_mean) / stats.task_std

    def relabel(key, data: Data):
        if args.relabel == "inverse_rl":
            return relabel_ir(key, data)
        if args.relabel == "random":
            tasks = family.sample(key, (n,))
        elif args.relabel == "oracle":
            tasks = data.task_labels
        else:  # none: the network ignores the task
            tasks = jnp.zeros((n, family.task_dim))
        return Labels(tasks=tasks[:, None], weights=jnp.ones((n, 1))), {}

    redraw = args.relabel in ("inverse_rl", "random")  # labels drawn from a distribution

    def init(key, data: Data):
        param_key, split_key, relabel_key, state_key = jax.random.split(key, 4)
        params = policy.init(
            param_key, jnp.zeros((env.observation_size,)), jnp.zeros((family.task_dim,))
        )
        is_val = jnp.zeros((n,), bool).at[jax.random.permutation(split_key, n)[:n_val]].set(True)
        labels, info = relabel(relabel_key, data)
        return TrainState(
            params=params,
            opt_state=optimizer.init(params),
            best_params=params,
            best_val_loss=jnp.full((), jnp.inf, jnp.float32),
            last_val_loss=jnp.full((), jnp.inf, jnp.float32),
            rises=jnp.zeros((), jnp.int32),
            stopped=jnp.zeros((), bool),
            epochs=jnp.zeros((), jnp.int32),
            is_val=is_val,
            labels=labels,
            relabel_info=info,
            key=state_key,
        )

    def steps_of(state: TrainState, data: Data, flat_index, labels=None):
        """BC inputs of the steps `flat_index` (M,) into the (N·T) flattened dataset, under
        `labels` (tasks (M, K', D), weights (M, K')), else their trajectories' labels."""
        traj, t = flat_index // horizon, flat_index % horizon
        obs = norm_obs(data.observations[traj, t])
        action = (data.actions[traj, t] - stats.action_mean) / stats.action_std
        tasks, weights = (
            (state.labels.tasks[traj], state.labels.weights[traj]) if labels is None else labels
        )
        return obs, norm_task(tasks), weights, action, traj, data.mask[traj, t]

    def minibatch_labels(key, state: TrainState, data: Data, flat_index):
        """Alg. 3: ψ̃ drawn anew for the steps of this minibatch, each row by itself, with
        log Z over its training steps (Alg. 1 over the sampled batch)."""
        traj, t = flat_index // horizon, flat_index % horizon
        if args.relabel == "random":
            tasks = family.sample(key, traj.shape)
            return tasks[:, None], jnp.ones((traj.shape[0], 1))
        valid = data.mask[traj, t] & ~state.is_val[traj]
        tasks, weights, _ = relabel_rows(key, data, traj, valid)
        return tasks, weights

    def train_loss(params, state, data, flat_index, labels):
        obs, tasks, weights, action, traj, valid = steps_of(state, data, flat_index, labels)
        step_weights = (valid & ~state.is_val[traj]).astype(jnp.float32)
        return bc_loss(params, obs, tasks, weights, action, step_weights)

    def validation_loss(params, state, data):
        """BC loss on the held-out trajectories, in chunks of steps to bound memory."""
        chunk = 8 * args.batch_size
        num_chunks = -(-(n * horizon) // chunk)
        index = jnp.arange(num_chunks * chunk).reshape(num_chunks, chunk)

        def one(flat_index):
            inside = flat_index < n * horizon
            flat_index = jnp.minimum(flat_index, n * horizon - 1)
            obs, tasks, weights, action, traj, valid = steps_of(state, data, flat_index)
            step_weights = (valid & inside & state.is_val[traj]).astype(jnp.float32)
            loss, _ = bc_loss(params, obs, tasks, weights, action, step_weights)
            return loss * step_weights.sum(), step_weights.sum()

        total, count = jax.lax.map(one, index)
        return total.sum() / jnp.maximum(count.sum(), 1.0)

    def train_epoch(state: TrainState, data: Data):
        key, perm_key, relabel_key, minibatch_key = jax.random.split(state.key, 4)
        # Alg. 3 draws ψ̃ anew as it trains. Every epoch after the first draws new labels
        # for every trajectory (what the validation loss and, with --redraw epoch, the
        # updates use); with --redraw minibatch each update draws its own
        if redraw:
            labels, info = relabel(relabel_key, data)
            fresh = state.replace(labels=labels, relabel_info=info)
            state = jax.tree.map(lambda a, b: jnp.where(state.epochs > 0, a, b), fresh, state)
        order = jax.random.permutation(perm_key, n * horizon)
        minibatches = order[: steps_per_epoch * args.batch_size].reshape(steps_per_epoch, -1)
        minibatch_keys = jax.random.split(minibatch_key, steps_per_epoch)

        def update(carry, inputs):
            params, opt_state = carry
            flat_index, label_key = inputs
            labels = None  # the epoch's labels
            if redraw and args.redraw == "minibatch":
                labels = minibatch_labels(label_key, state, data, flat_index)
            (_, info), grads = jax.value_and_grad(train_loss, has_aux=True)(
                params, state, data, flat_index, labels
            )
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), info["bc_loss"]

        (params, opt_state), train_losses = jax.lax.scan(
            update, (state.params, state.opt_state), (minibatches, minibatch_keys)
        )
        val_loss = validation_loss(params, state, data)
        rose = val_loss > state.last_val_loss
        rises = jnp.where(rose, state.rises + 1, 0)
        better = val_loss < state.best_val_loss
        trained = state.replace(
            params=params,
            opt_state=opt_state,
            best_params=jax.tree.map(
                lambda new, old: jnp.where(better, new, old), params, state.best_params
            ),
            best_val_loss=jnp.minimum(val_loss, state.best_val_loss),
            last_val_loss=val_loss,
            rises=rises,
            stopped=rises >= args.patience,
            epochs=state.epochs + 1,
            key=key,
        )
        # a stopped seed keeps its state while the others train on
        state = jax.tree.map(lambda old, new: jnp.where(state.stopped, old, new), state, trained)
        metrics = {
            "losses/train_loss": jnp.mean(train_losses),
            "losses/val_loss": val_loss,
            "losses/best_val_loss": state.best_val_loss,
            "charts/stopped": state.stopped,
            "charts/epochs": state.epochs,
            **state.relabel_info,
        }
        return state, metrics

    def greedy_policy(state: TrainState):
        def act(obs, task, key):
            del key
            action = policy.apply(state.params, norm_obs(obs), norm_task(task))
            return jnp.clip(action * stats.action_std + stats.action_mean, -1.0, 1.0)

        return act

    def evaluate_state(state: TrainState, key):
        metrics = evaluate(env, greedy_policy(state), key, args.eval_episodes)
        return {f"eval/{k}": v for k, v in metrics.items()}

    return training.Train(
        init=init,
        train_chunk=train_epoch,
        evaluate=evaluate_state,
        steps_per_chunk=1,  # a chunk is an epoch; the logs count epochs
        buffer_bytes=lambda state: 0,
        policy=greedy_policy,
        env=env,
        shared=(device_data,),
        reported=lambda state: state.replace(params=state.best_params),
    )


def main(args: Args) -> dict:
    dataset = ds.load(args.dataset)  # trajectories without task labels; names the env
    train = make_train(args, dataset)  # pure functions of one seed
    (data,) = train.shared  # the dataset on the device
    with training.start(
        "hipi_bc",
        args,
        train.init,  # first labels for the dataset (Eq. 7), splits off the validation set
        shared=train.shared,
        env_id=dataset.env_id,
        steps_per_chunk=1,
        num_chunks=args.max_epochs,
        unit="epochs",
    ) as run:  # run dir, logs, resume: exit 2 on bad flags
        train_epoch = run.compile(train.train_chunk, data)  # every seed in one program
        evaluate = run.compile_evaluate(train.evaluate)
        state, epoch = run.state, run.first_chunk
        for epoch in run.chunks():
            state, metrics = train_epoch(state, data)
            if epoch % args.eval_every == 0:
                metrics |= evaluate(state, run.eval_keys(epoch))
            metrics = run.log(epoch, metrics)
            stopped = bool(np.all(metrics["charts/stopped"]))  # early stopping (App. C.2)
            run.checkpoint(epoch, state, last=stopped)
            if stopped:
                break
        # the reported policy: each seed's best-validation parameters, on keys no
        # evaluation during training used (those of chunk 0)
        best = train.reported(state)
        final = {f"{k}_best": v for k, v in evaluate(best, run.eval_keys(0)).items()}
        final = run.log(epoch, final)
        success = final["eval/success_rate_best"]
        return run.finish(
            final,
            summary=f"({args.relabel}{'' if args.partition else ', no partition'}) eval "
            f"success of the best-validation policy {success.mean():.3f} (per seed "
            f"{[round(float(x), 3) for x in success]}) after {epoch} epochs",
            video=(train.env, train.policy, best),
        )


if __name__ == "__main__":
    main(cli.parse(Args))
