"""Hindsight policy gradients (HPG) for goal-conditioned RL.

Rauber, Ummadisingu, Mutz & Schmidhuber, "Hindsight Policy Gradients", ICLR 2019:
the baseline of Hindsight EM (Tang & Kucukelbir, Fig. 3 and App. C.4). A
likelihood-ratio policy gradient that also learns, by importance sampling, about
goals other than the one each episode pursued:

- collect N episodes of exactly T steps on-policy, one commanded goal g⁽ⁱ⁾ each;
  an episode runs on past its goal, so that the dynamics do not depend on the goal
  (the method's assumption);
- active goals: the distinct goals the batch's states achieved, at most
  `--max-goals` of them drawn uniformly (the paper's goal subsampling);
- for each active goal g, the weighted per-decision estimator

      Σ_i Σ_t ∇log π(a_t⁽ⁱ⁾ | s_t⁽ⁱ⁾, g) Σ_{j ≥ t} w̄_j⁽ⁱ⁾(g) r_j⁽ⁱ⁾(g),
      w̄_j⁽ⁱ⁾(g) = W_j⁽ⁱ⁾(g) / Σ_k W_j⁽ᵏ⁾(g),
      W_j⁽ⁱ⁾(g) = Π_{k ≤ j} π(a_k⁽ⁱ⁾ | s_k⁽ⁱ⁾, g) / π(a_k⁽ⁱ⁾ | s_k⁽ⁱ⁾, g⁽ⁱ⁾),

  averaged over the active goals, one Adam step per batch. In an env whose
  episodes end at the goal, r_j(g) = 1 the first time the state reached by step j
  achieves g, else 0: the return is 1 when the goal is reached within T steps,
  the success the papers report. In one whose episodes run their T steps
  (pointnav), r_j(g) = 1 at every step that ends at g: the return is the time at
  the goal, the env's own −1/0 reward shifted by one.

The policy is categorical for discrete actions and a Gaussian with a learned
state-independent standard deviation for continuous ones (as in hindsight_em.py).
No baseline (the paper's "+B" variants add a learned value baseline). The whole
loop is one jitted `lax.scan` per chunk, vmapped over seeds.

    python algos/hpg.py --env-id bitflip --env-kwargs n_bits=10
    python algos/hpg.py --env-id four_rooms
    python algos/hpg.py --env-id pointnav --env-kwargs dim=2
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import chex
import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
from common import normalize as norm  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from harness import cli, training  # noqa: E402


@dataclass(frozen=True)
class Args(training.RunArgs):
    # run-management flags (seed, num_seeds, num_chunks, save_model, resume, track, ...)
    # come from training.RunArgs
    env_id: str = "bitflip"
    """environment id (see envs.ENV_IDS); discrete or continuous actions"""
    env_kwargs: tuple[str, ...] = ()
    """env parameters as name=value pairs, e.g. `--env-kwargs n_bits=25`"""
    num_envs: int = 16
    """episodes per batch (per gradient step), one per parallel env"""
    total_timesteps: int = 100_000
    """env steps per seed"""
    max_goals: int = 16
    """active goals per batch: at most this many of the distinct goals the batch achieved,
    drawn uniformly without replacement"""
    hindsight: bool = True
    """learn about the active goals; `--no-hindsight` is plain REINFORCE on the commanded
    goals, Σ_i Σ_t ∇log π(a_t | s_t, g⁽ⁱ⁾) R⁽ⁱ⁾_{≥t} / N (the ablation)"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """hidden layer widths of the policy"""
    init_std: float = 0.5
    """continuous: initial value of the policy's learned standard deviation"""
    min_std: float = 0.05
    """continuous: floor of the policy's learned standard deviation"""
    clip_obs: float = 5.0
    """normalised observations and goals are clipped to ±clip_obs"""

    def __post_init__(self):
        positive = ("num_seeds", "num_envs", "total_timesteps", "max_goals", "num_chunks")
        cli.check_numbers(
            self,
            **dict.fromkeys(positive, "> 0"),
            **dict.fromkeys(("eval_episodes", "checkpoint_every", "hidden_sizes"), "> 0"),
            learning_rate="> 0",
            clip_obs="> 0",
            num_devices="> 0",
            num_processes="> 0",
        )
        cli.check_numbers(
            self, seed=f"[0, {2**31 - self.num_seeds}]", process_id=f"[0, {self.num_processes - 1}]"
        )
        if not self.hidden_sizes:
            raise cli.UsageError("--hidden-sizes needs at least one layer width")
        if self.min_std <= 0 or self.init_std < self.min_std:
            raise cli.UsageError(
                f"--min-std must be positive and --init-std at least --min-std, got "
                f"{self.min_std} and {self.init_std}"
            )
        cli.check_run_flags(self)
        env = cli.make_env(self.env_id, self.env_kwargs)
        if not envs.has_achieved(env.family):
            raise cli.UsageError(
                f"hindsight policy gradients need goals achieved by states, which the "
                f"{self.env_id} task family does not define"
            )
        per_iter = self.num_envs * env.episode_length
        if self.total_timesteps < per_iter * self.num_chunks:
            raise cli.UsageError(
                f"--total-timesteps {self.total_timesteps} is less than one batch "
                f"({self.num_envs} episodes of {env.episode_length} steps) per chunk "
                f"({self.num_chunks} chunks)"
            )


# ---------------------------------------------------------------- state types
@struct.dataclass
class Batch:
    """N episodes of T steps: (N, T, ...) except the commanded goals (N, D)."""

    obs: jax.Array  # (N, T, obs_dim) the state each action was taken in
    task: jax.Array  # (N, D) the episode's commanded goal
    action: jax.Array  # (N, T) int32 or (N, T, action_dim), as sampled (unclipped)
    features: jax.Array  # (N, T, F) of the state each action reached


@struct.dataclass
class Normalizers:
    obs: norm.RunningStats
    task: norm.RunningStats


@struct.dataclass
class TrainState:
    params: dict
    opt_state: optax.OptState
    normalizers: Normalizers
    env_state: envs.EnvState  # (N,) first states of the next batch's episodes
    env_steps: jax.Array  # () int32 per seed
    key: jax.Array


# ---------------------------------------------------------------- policy
class Policy(nn.Module):
    """π(a | s, g): logits (..., A) for discrete actions; for continuous ones the
    mean (..., action_dim) in [-1, 1] and a global log-std (action_dim,)."""

    num_actions: int | None
    action_dim: int
    hidden_sizes: tuple[int, ...]
    init_std: float = 0.5

    @nn.compact
    def __call__(self, obs, task):
        x = jnp.concatenate([obs, task], axis=-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        if self.num_actions is not None:
            return nn.Dense(self.num_actions)(x)
        mean = jnp.tanh(nn.Dense(self.action_dim)(x))
        log_std = self.param(
            "log_std", nn.initializers.constant(math.log(self.init_std)), (self.action_dim,)
        )
        return mean, log_std


def policy_distribution(out, discrete: bool, min_std: float):
    """Categorical over the logits, or a Gaussian with its std floored at `min_std`."""
    if discrete:
        return distrax.Categorical(logits=out)
    mean, log_std = out
    return distrax.MultivariateNormalDiag(mean, jnp.exp(jnp.maximum(log_std, math.log(min_std))))


# ---------------------------------------------------------------- hindsight
def active_goals(key, achieved, max_goals: int):
    """The distinct goals of `achieved` (M, D), at most `max_goals` of them drawn
    uniformly without replacement: goals (max_goals, D) and which are real
    (max_goals,) bool, when fewer than `max_goals` are distinct."""
    m = achieved.shape[0]
    same = jnp.all(achieved[:, None, :] == achieved[None, :, :], axis=-1)  # (M, M)
    earlier = jnp.tril(same, k=-1).any(axis=1)  # an equal goal appears before it
    score = jnp.where(earlier, -jnp.inf, jax.random.uniform(key, (m,)))
    top, index = jax.lax.top_k(score, min(max_goals, m))
    goals, valid = achieved[index], top > -jnp.inf
    if max_goals > m:  # more goals asked for than states: pad with invalid ones
        pad = max_goals - m
        goals = jnp.concatenate([goals, jnp.zeros((pad, achieved.shape[1]), goals.dtype)])
        valid = jnp.concatenate([valid, jnp.zeros((pad,), bool)])
    return goals, valid


def goal_rewards(reached, first_only: bool):
    """r_j from whether the state reached by step j achieves the goal, (..., T) bool:
    with `first_only` 1 at the first such step only (the episode would end there),
    else 1 at every such step."""
    if not first_only:
        return reached.astype(jnp.float32)
    before = jnp.cumsum(reached.astype(jnp.int32), axis=-1) - reached.astype(jnp.int32)
    return (reached & (before == 0)).astype(jnp.float32)


def hpg_weights(logp_goal, logp_commanded, reward):
    """The weighted per-decision estimator's coefficient of ∇log π(a_t | s_t, g).

    logp_goal (G, N, T): log π(a_t⁽ⁱ⁾ | s_t⁽ⁱ⁾, g) of every active goal g; logp_commanded
    (N, T): the same under the episode's own goal; reward (G, N, T): r_j⁽ⁱ⁾(g).
    Returns C (G, N, T), C_t⁽ⁱ⁾(g) = Σ_{j ≥ t} w̄_j⁽ⁱ⁾(g) r_j⁽ⁱ⁾(g), and the effective sample
    size 1 / Σ_i w̄_j⁽ⁱ⁾(g)² of each (g, j) (G, T).
    """
    chex.assert_equal_shape([logp_goal, reward])
    log_w = jnp.cumsum(logp_goal - logp_commanded[None], axis=-1)  # log W_j⁽ⁱ⁾(g), k ≤ j
    w = jax.nn.softmax(log_w, axis=1)  # normalised over the batch's episodes
    weighted = w * reward
    coef = jnp.flip(jnp.cumsum(jnp.flip(weighted, -1), axis=-1), -1)  # Σ_{j ≥ t}
    return coef, 1.0 / jnp.sum(w**2, axis=1)


def hpg_surrogate(logp_goal, logp_commanded, reward, valid):
    """A loss whose gradient is minus the weighted per-decision estimator, averaged over
    the real active goals: -Σ_g Σ_i Σ_t log π(a_t⁽ⁱ⁾ | s_t⁽ⁱ⁾, g) C_t⁽ⁱ⁾(g) / #goals, with the
    coefficients C held constant (they are values, not functions of θ). Shapes as
    `hpg_weights`, `valid` (G,). Returns the loss and the effective sample sizes."""
    coef, ess = hpg_weights(
        jax.lax.stop_gradient(logp_goal), jax.lax.stop_gradient(logp_commanded), reward
    )
    per_goal = jnp.sum(logp_goal * coef, axis=(1, 2))  # (G,)
    loss = -jnp.sum(jnp.where(valid, per_goal, 0.0)) / jnp.maximum(valid.sum(), 1)
    return loss, ess


# ---------------------------------------------------------------- training
def make_train(args: Args):
    env = cli.make_env(args.env_id, args.env_kwargs)
    family = env.family
    discrete = env.discrete
    horizon = env.episode_length
    policy = Policy(
        num_actions=env.num_actions,
        action_dim=env.action_size,
        hidden_sizes=args.hidden_sizes,
        init_std=args.init_std,
    )
    optimizer = optax.adam(args.learning_rate)
    batch_steps = args.num_envs * horizon
    num_iters = args.total_timesteps // batch_steps
    iters_per_chunk = -(-num_iters // args.num_chunks)

    def init(key):
        net_key, env_key, state_key = jax.random.split(key, 3)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, args.num_envs))
        obs, task = env_state.obs[0], env_state.task[0]
        params = policy.init(net_key, obs[None], task[None])
        return TrainState(
            params=params,
            opt_state=optimizer.init(params),
            normalizers=Normalizers(obs=norm.init(obs.shape[-1]), task=norm.init(task.shape[-1])),
            env_state=env_state,
            env_steps=jnp.zeros((), jnp.int32),
            key=state_key,
        )

    def normalized(normalizers, obs, task):
        obs = norm.normalize(normalizers.obs, obs, args.clip_obs)
        return obs, norm.normalize(normalizers.task, task, args.clip_obs)

    def log_prob(params, normalizers, obs, task, action):
        out = policy.apply(params, *normalized(normalizers, obs, task))
        return policy_distribution(out, discrete, args.min_std).log_prob(action)

    def collect(state: TrainState, key):
        """N episodes of exactly T steps from `state.env_state`, past any goal reached."""

        def step(env_state, step_key):
            out = policy.apply(
                state.params, *normalized(state.normalizers, env_state.obs, env_state.task)
            )
            action = policy_distribution(out, discrete, args.min_std).sample(seed=step_key)
            act = action.astype(jnp.int32) if discrete else jnp.clip(action, -1.0, 1.0)
            nxt = jax.vmap(env.transition)(env_state, act)
            return nxt, (env_state.obs, action, nxt.features)

        _, (obs, action, features) = jax.lax.scan(
            step, state.env_state, jax.random.split(key, horizon)
        )
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  (T, N, ...) -> (N, T, ...)
        return Batch(
            obs=swap(obs), task=state.env_state.task, action=swap(action), features=swap(features)
        )

    def hpg_loss(params, normalizers, batch: Batch, goals, valid):
        """-(the weighted per-decision estimator's surrogate), mean over active goals."""
        n, t = batch.action.shape[:2]
        tasks = jnp.broadcast_to(batch.task[:, None], (n, t, batch.task.shape[-1]))
        logp_cmd = log_prob(params, normalizers, batch.obs, tasks, batch.action)  # (N, T)
        if not args.hindsight:  # REINFORCE: each episode's return-to-go for its own goal
            reached = jax.vmap(jax.vmap(family.success, (0, None)))(batch.features, batch.task)
            rewards = goal_rewards(reached, env.terminate_on_success)
            to_go = jnp.flip(jnp.cumsum(jnp.flip(rewards, -1), -1), -1)
            loss = -jnp.sum(logp_cmd * to_go) / n
            return loss, {"policy_loss": loss}

        def under(goal):
            goal_b = jnp.broadcast_to(goal, tasks.shape)
            logp = log_prob(params, normalizers, batch.obs, goal_b, batch.action)
            reached = jax.vmap(jax.vmap(family.success, (0, None)), (0, None))(batch.features, goal)
            return logp, goal_rewards(reached, env.terminate_on_success)

        logp, reward = jax.vmap(under)(goals)  # (G, N, T) each
        loss, ess = hpg_surrogate(logp, logp_cmd, reward, valid)
        has_reward = valid & (reward.sum(axis=(1, 2)) > 0)
        info = {
            "policy_loss": loss,
            "active_goals": valid.sum(),
            "effective_sample_size": jnp.sum(jnp.where(has_reward[:, None], ess, 0.0))
            / jnp.maximum(has_reward.sum() * t, 1),
        }
        return loss, info

    def iteration(state: TrainState, _):
        key, rollout_key, goal_key, reset_key = jax.random.split(state.key, 4)
        batch = collect(state, rollout_key)
        achieved = jax.vmap(jax.vmap(family.achieved))(batch.features)  # (N, T, D)
        goals, valid = active_goals(
            goal_key, achieved.reshape(-1, achieved.shape[-1]), args.max_goals
        )
        (_, info), grads = jax.value_and_grad(hpg_loss, has_aux=True)(
            state.params, state.normalizers, batch, goals, valid
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # the statistics move after the step: the step used the ones the batch was sampled with
        normalizers = Normalizers(
            obs=norm.update(state.normalizers.obs, batch.obs.reshape(-1, batch.obs.shape[-1])),
            task=norm.update(
                state.normalizers.task,
                jnp.concatenate([batch.task, achieved.reshape(-1, achieved.shape[-1])]),
            ),
        )
        reached = jax.vmap(jax.vmap(family.success, (0, None)))(batch.features, batch.task)
        state = state.replace(
            params=params,
            opt_state=opt_state,
            normalizers=normalizers,
            env_state=jax.vmap(env.reset)(jax.random.split(reset_key, args.num_envs)),
            env_steps=state.env_steps + batch_steps,
            key=key,
        )
        info = {f"losses/{k}": v for k, v in info.items()}
        if not discrete:
            log_std = jnp.maximum(params["params"]["log_std"], math.log(args.min_std))
            info["losses/policy_std"] = jnp.exp(log_std).mean()
        # success as the env counts it: the goal reached (episodes that end there), or
        # the last state at the goal (episodes that run their T steps)
        success = reached.any(axis=1) if env.terminate_on_success else reached[:, -1]
        return state, (info, success.mean())

    def train_chunk(state: TrainState):
        state, (info, success) = jax.lax.scan(iteration, state, None, iters_per_chunk)
        metrics = {k: v.mean() for k, v in info.items()}
        metrics["charts/success_rate"] = success.mean()
        return state, metrics

    def deterministic_policy(state: TrainState):
        """state -> policy(obs (N, obs_dim), task (N, D), key) -> the mode of π."""

        def act(obs, task, key):
            del key
            out = policy.apply(state.params, *normalized(state.normalizers, obs, task))
            return out.argmax(axis=-1).astype(jnp.int32) if discrete else out[0]

        return act

    def evaluate_state(state: TrainState, key):
        metrics = evaluate(env, deterministic_policy(state), key, args.eval_episodes)
        return {f"eval/{k}": v for k, v in metrics.items()}

    return training.Train(
        init=init,
        train_chunk=train_chunk,
        evaluate=evaluate_state,
        steps_per_chunk=iters_per_chunk * batch_steps,
        buffer_bytes=lambda state: 0,
        policy=deterministic_policy,
        env=env,
    )


def main(args: Args) -> dict:
    train = make_train(args)  # pure functions of one seed
    with training.start(
        "hpg",
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
