"""DQN + Hindsight Experience Replay for discrete actions (bit flip, grids).

Andrychowicz et al., "Hindsight Experience Replay", NeurIPS 2017. A transition
(s, a, s', g) stored in the replay buffer is replayed with a goal g' achieved
later in the same episode (Sec. 3.3, Alg. 1); its reward is recomputed for g'
from the stored features (Sec. 4.5 strategies: final, future with k = 4, i.e.
80% of the batch relabeled, episode). The whole loop, acting in all envs,
inserting, sampling, relabeling and updating, is one jitted `lax.scan` per
chunk, vmapped over seeds.

    python algos/her_dqn.py --env-kwargs n_bits=10
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
from common import buffer as rb  # noqa: E402
from common import parallel  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from harness import cli, training  # noqa: E402


@dataclass(frozen=True)
class Args(training.RunArgs):
    # run-management flags (seed, num_seeds, num_chunks, save_model, resume, track, ...)
    # come from training.RunArgs
    env_id: str = "bitflip"
    """environment id (see envs.ENV_IDS); must have discrete actions"""
    env_kwargs: tuple[str, ...] = ()
    """env parameters as name=value pairs, e.g. `--env-kwargs n_bits=25`"""
    num_envs: int = 16
    """parallel environments per seed"""
    total_timesteps: int = 100_000
    """env steps per seed"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions per seed"""
    batch_size: int = 128
    """transitions per gradient step"""
    gradient_steps: int = 2
    """gradient steps per iteration (one iteration steps every env once)"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    gamma: float = 0.98
    """discount factor"""
    tau: float = 0.05
    """Polyak rate of the target network"""
    hidden_sizes: tuple[int, ...] = (256,)
    """hidden layer widths of the Q-network"""
    relabel: Literal["future", "final", "episode", "none"] = "future"
    """which hindsight goal relabels a replayed step (the strategies of Sec. 4.5); none
    disables relabeling"""
    relabel_prob: float = 0.8
    """fraction of the batch relabeled: k/(k+1) with k = 4 in the paper"""
    reward_convention: Literal["-1/0", "0/1"] = "-1/0"
    """sparse reward on failure/success"""
    clip_target: bool = True
    """clip TD targets to the feasible return range"""
    start_e: float = 1.0
    """initial random-action probability"""
    end_e: float = 0.05
    """final random-action probability"""
    exploration_fraction: float = 0.3
    """fraction of training over which epsilon decays linearly"""
    learning_starts: int = 1_000
    """env steps per seed before learning starts"""

    def __post_init__(self):
        env = cli.check_training_args(
            self,
            start_e="[0, 1]",
            end_e="[0, 1]",
            exploration_fraction="[0, 1]",
            learning_starts=">= 0",
        )
        if not env.discrete:
            raise cli.UsageError(f"{self.env_id} has continuous actions; use algos/her.py")
        if self.relabel != "none" and not envs.has_achieved(env.family):
            raise cli.UsageError(
                f"--relabel {self.relabel} needs goals achieved by states, which the "
                f"{self.env_id} task family does not define; use --relabel none"
            )


def make_env(args: Args) -> envs.Env:
    return cli.make_env(args.env_id, args.env_kwargs)


# ---------------------------------------------------------------- state types
@struct.dataclass
class Transition:
    obs: jax.Array  # (obs_dim,)
    task: jax.Array  # (task_dim,) the commanded goal
    action: jax.Array  # () int32
    next_obs: jax.Array  # (obs_dim,)
    features: jax.Array  # (feature_dim,) of the state reached


@struct.dataclass
class TrainState:
    params: dict
    target_params: dict
    opt_state: optax.OptState
    env_state: envs.EnvState  # (N,)
    buffer: rb.BufferState
    episode_return: jax.Array  # (N,) running return of each env's current episode
    env_steps: jax.Array  # () int32 per seed
    key: jax.Array


# ---------------------------------------------------------------- networks
class QNetwork(nn.Module):
    num_actions: int
    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs, task):
        x = jnp.concatenate([obs, task], axis=-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_actions)(x)


# ---------------------------------------------------------------- relabeling
def hindsight_goal_index(buffer, key, index, strategy):
    """The stored step whose achieved goal relabels each sampled step (Sec. 4.5):
    final, the last stored step of its episode; future, uniform over this step and the
    later ones; episode, uniform over every stored step of its episode. The buffer
    gives the episode's extent (`episode_bounds`) and the index arithmetic (`shift`)."""
    back, ahead = rb.episode_bounds(buffer, index)  # stored steps before / after, (B,)
    u = jax.random.uniform(key, index.row.shape)
    if strategy == "final":
        offset = ahead
    elif strategy == "future":
        offset = jnp.floor(u * (ahead + 1)).astype(jnp.int32)
    elif strategy == "episode":
        offset = jnp.floor(u * (back + ahead + 1)).astype(jnp.int32) - back
    else:
        raise ValueError(f"unknown goal strategy {strategy!r}")
    return rb.shift(buffer, index, jnp.clip(offset, -back, ahead))  # u·n may round to n


def relabel_her(key, buffer, index, batch, family, strategy, relabel_prob):
    """Replace the goal of a `relabel_prob` fraction of the batch by one achieved
    later in the same episode (HER Alg. 1, line "sample additional goals")."""
    chex.assert_rank(batch.task, 2)
    goal_key, coin_key = jax.random.split(key)
    goal_at = hindsight_goal_index(buffer, goal_key, index, strategy)
    achieved = jax.vmap(family.achieved)(buffer.data.features[goal_at.row, goal_at.env])  # (B, D)
    relabel = jax.random.uniform(coin_key, (batch.task.shape[0],)) < relabel_prob
    return jnp.where(relabel[:, None], achieved, batch.task), relabel


def goal_reward(family, features, action, task, convention, terminate_on_success):
    """r_g(s', a) recomputed from stored features for any goal; termination too."""
    reward = jax.vmap(family.reward)(features, action, task)  # (B,) in {-1, 0}
    success = jax.vmap(family.success)(features, task)
    if convention == "0/1":
        reward = reward + 1.0
    return reward, success & terminate_on_success


# ---------------------------------------------------------------- loss
def make_loss(q_net, args: Args):
    low, high = (
        (-1.0 / (1.0 - args.gamma), 0.0)
        if args.reward_convention == "-1/0"
        else (0.0, 1.0 / (1.0 - args.gamma))
    )

    def loss_fn(params, target_params, batch, task, reward, terminated):
        chex.assert_equal_shape([reward, terminated])
        q_next = q_net.apply(target_params, batch.next_obs, task).max(axis=-1)  # (B,)
        target = reward + args.gamma * (1.0 - terminated) * q_next
        if args.clip_target:
            target = jnp.clip(target, low, high)
        q = q_net.apply(params, batch.obs, task)  # (B, A)
        q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
        loss = jnp.mean((q_taken - jax.lax.stop_gradient(target)) ** 2)
        return loss, {"q_loss": loss, "q_values": q_taken.mean()}

    return loss_fn


# ---------------------------------------------------------------- training
def make_train(args: Args):
    env = make_env(args)
    family = env.family
    q_net = QNetwork(num_actions=env.num_actions, hidden_sizes=args.hidden_sizes)
    optimizer = optax.adam(args.learning_rate)
    loss_fn = make_loss(q_net, args)
    num_iters = args.total_timesteps // args.num_envs
    iters_per_chunk = -(-num_iters // args.num_chunks)
    learning_starts_iter = args.learning_starts // args.num_envs
    decay_iters = max(1, int(args.exploration_fraction * num_iters))

    def init(key):
        net_key, env_key, state_key = jax.random.split(key, 3)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, args.num_envs))
        params = q_net.init(net_key, env_state.obs[0], env_state.task[0])
        example = Transition(
            obs=env_state.obs[0],
            task=env_state.task[0],
            action=jnp.zeros((), jnp.int32),
            next_obs=env_state.obs[0],
            features=env_state.features[0],
        )
        return TrainState(
            params=params,
            target_params=params,
            opt_state=optimizer.init(params),
            env_state=env_state,
            buffer=rb.init(example, args.num_envs, args.buffer_size, env.episode_length),
            episode_return=jnp.zeros((args.num_envs,)),
            env_steps=jnp.zeros((), jnp.int32),
            key=state_key,
        )

    def update(state: TrainState, key):
        sample_key, relabel_key = jax.random.split(key)
        index = rb.sample_index(state.buffer, sample_key, args.batch_size)
        # on several devices each holds a slice of the batch rows (data parallel)
        batch = parallel.split_batch(rb.gather(state.buffer, index))
        if args.relabel == "none":
            task, relabeled = batch.task, jnp.zeros((args.batch_size,), bool)
        else:
            task, relabeled = relabel_her(
                relabel_key, state.buffer, index, batch, family, args.relabel, args.relabel_prob
            )
        reward, terminated = goal_reward(
            family,
            batch.features,
            batch.action,
            task,
            args.reward_convention,
            env.terminate_on_success,
        )
        (_, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target_params, batch, task, reward, terminated
        )
        updates, opt_state = optimizer.update(grads, state.opt_state)
        params = optax.apply_updates(state.params, updates)
        target_params = optax.incremental_update(params, state.target_params, args.tau)
        info = {f"losses/{k}": v for k, v in info.items()}
        info["relabel/relabeled_fraction"] = relabeled.mean()
        info["relabel/reward"] = reward.mean()
        return state.replace(params=params, target_params=target_params, opt_state=opt_state), info

    def iteration(state: TrainState, _):
        key, act_key, eps_key, update_key = jax.random.split(state.key, 4)
        it = state.env_steps // args.num_envs
        epsilon = args.start_e + (args.end_e - args.start_e) * jnp.minimum(it / decay_iters, 1.0)
        es = state.env_state
        greedy = q_net.apply(state.params, es.obs, es.task).argmax(axis=-1)
        random_action = jax.random.randint(act_key, greedy.shape, 0, env.num_actions)
        explore = jax.random.uniform(eps_key, greedy.shape) < epsilon
        action = jnp.where(explore, random_action, greedy).astype(jnp.int32)
        nxt = env.step_batch(es, action)  # jax.vmap(env.step), resets only when needed
        transition = Transition(
            obs=es.obs, task=es.task, action=action, next_obs=nxt.next_obs, features=nxt.features
        )
        buffer = rb.insert(state.buffer, transition, es.t)
        done = nxt.terminated | nxt.truncated
        ret = state.episode_return + nxt.reward
        state = state.replace(
            env_state=nxt,
            buffer=buffer,
            key=key,
            episode_return=jnp.where(done, 0.0, ret),
            env_steps=state.env_steps + args.num_envs,
        )

        def learn(state):
            return jax.lax.scan(update, state, jax.random.split(update_key, args.gradient_steps))

        def skip(state):
            shapes = jax.eval_shape(learn, state)[1]
            return state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

        state, info = jax.lax.cond(it >= learning_starts_iter, learn, skip, state)
        info = jax.tree.map(jnp.mean, info)
        stats = {
            "learned": it >= learning_starts_iter,
            "episodes": done.sum(),
            "successes": (done & nxt.success).sum(),
            "return_sum": jnp.where(done, ret, 0.0).sum(),
            "epsilon": epsilon,
        }
        return state, (info, stats)

    def train_chunk(state: TrainState):
        state, (info, stats) = jax.lax.scan(iteration, state, None, iters_per_chunk)
        episodes = jnp.maximum(stats["episodes"].sum(), 1)
        learned = stats["learned"]  # losses average over iterations that updated
        metrics = {k: jnp.sum(v * learned) / jnp.maximum(learned.sum(), 1) for k, v in info.items()}
        metrics["charts/success_rate"] = stats["successes"].sum() / episodes
        metrics["charts/episode_return"] = stats["return_sum"].sum() / episodes
        metrics["charts/epsilon"] = stats["epsilon"][-1]
        return state, metrics

    def greedy_policy(params):
        return lambda obs, task, key: q_net.apply(params, obs, task).argmax(axis=-1)

    def evaluate_state(state: TrainState, key):
        metrics = evaluate(env, greedy_policy(state.params), key, args.eval_episodes)
        return {f"eval/{k}": v for k, v in metrics.items()}

    return training.Train(
        init=init,
        train_chunk=train_chunk,
        evaluate=evaluate_state,
        steps_per_chunk=iters_per_chunk * args.num_envs,
        buffer_bytes=lambda state: rb.nbytes(state.buffer),
        policy=lambda state: greedy_policy(state.params),
        env=env,
    )


def main(args: Args) -> dict:
    train = make_train(args)  # pure functions of one seed
    with training.start(
        "her_dqn",
        args,
        train.init,
        steps_per_chunk=train.steps_per_chunk,
        buffer_bytes=train.buffer_bytes,
    ) as run:  # run dir, logs, devices, memory check, resume: exit 2 on bad flags
        train_chunk = run.compile(train.train_chunk)  # every seed, split over the devices
        evaluate = run.compile_evaluate(train.evaluate)
        state, metrics = run.state, {}
        for chunk in run.chunks():
            state, metrics = train_chunk(state)
            metrics |= evaluate(state, run.eval_keys(chunk))
            metrics = run.log(chunk, metrics)  # to the host: CSV, TensorBoard, progress
            run.checkpoint(chunk, state)  # with --save-model, every --checkpoint-every
        return run.finish(metrics, video=(train.env, train.policy, state))


if __name__ == "__main__":
    main(cli.parse(Args))
