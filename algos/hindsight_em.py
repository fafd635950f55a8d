"""Hindsight Expectation Maximization for goal-conditioned RL.

Tang & Kucukelbir, "Hindsight Expectation Maximization for Goal-conditioned
Reinforcement Learning", AISTATS 2021. Goal reaching is inference: maximise the
probability p(R = 1 | θ) that the policy reaches its goal through the evidence
lower bound and alternate (Sec. 3.1):

- collect trajectories with the current policy π_θ(a | s, g);
- E-step: the posterior q(τ, g) ∝ p(g) p(τ | θ, g) p(R = 1 | τ, g) is
  approximated by importance sampling with the hindsight proposal: a stored step
  (s_t, a_t) is paired with a goal g achieved later in its own episode, for which
  p(R = 1 | τ, g) = 1 (the `future` strategy of HER);
- M-step: supervised maximum likelihood, max_θ E_q[log π_θ(a_t | s_t, g)],
  a few Adam steps on the replayed (s_t, a_t, g).

No critic. The policy is categorical for discrete actions and a state-goal
conditioned Gaussian with a learned state-independent standard deviation for
continuous ones. `--image-obs` observes a picture of the state (envs/image.py)
through a conv encoder; `--her-critic` adds HER's DDPG critic and minimises
λ·(EM loss) + (HER actor loss), the hybrid of Sec. 4.4. The whole loop is one
jitted `lax.scan` per chunk, vmapped over seeds.

    python algos/hindsight_em.py --env-id bitflip --env-kwargs n_bits=10
    python algos/hindsight_em.py --env-id pointnav --env-kwargs dim=2
    python algos/hindsight_em.py --env-id four_rooms --image-obs --buffer-size 200000
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Literal

import chex
import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envs  # noqa: E402
from common import buffer as rb  # noqa: E402
from common import normalize as norm  # noqa: E402
from common import parallel  # noqa: E402
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
    """parallel environments per seed"""
    total_timesteps: int = 100_000
    """env steps per seed"""
    trajectories_per_iter: int = 16
    """episodes' worth of env steps collected before each M-step: every iteration
    steps each env ceil(trajectories_per_iter * episode_length / num_envs) times"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions per seed"""
    batch_size: int = 256
    """(transition, hindsight goal) pairs per gradient step"""
    gradient_steps: int = 32
    """M-step gradient steps per iteration"""
    learning_rate: float = 3e-4
    """Adam learning rate (of the critic too, with --her-critic)"""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """hidden layer widths of the policy"""
    relabel: Literal["future", "final"] = "future"
    """where in the episode hindsight goals come from (E-step proposal). Only goals reached
    at or after a step: the M-step imitates a_t for its goal, and a goal reached before t
    is no evidence that a_t leads to it (HER's `episode` suits Q-learning, not this)"""
    relabel_prob: float = 1.0
    """fraction of the batch given a hindsight goal; the other rows keep their commanded
    goal, weighted by whether the step drawn by --relabel reached it"""
    random_eps: float = 0.1
    """probability of a uniformly random action while collecting"""
    exploration_noise: float = 0.0
    """continuous: std of Gaussian noise added to the policy's own sample (actions in [-1, 1])"""
    init_std: float = 1.0
    """continuous: initial value of the policy's learned standard deviation"""
    min_std: float = 0.05
    """continuous: floor of the policy's learned standard deviation"""
    clip_obs: float = 5.0
    """normalised observations and goals are clipped to ±clip_obs"""
    her_critic: bool = False
    """hybrid EM + HER (Sec. 4.4, continuous actions): also train a DDPG critic on the
    relabeled batch and minimise em_coef * (EM loss) + (HER actor loss)"""
    em_coef: float = 1.0
    """λ, the weight of the EM loss in the hybrid policy loss (with --her-critic)"""
    gamma: float = 0.98
    """discount factor of the HER critic"""
    tau: float = 0.05
    """Polyak rate of the HER critic's and policy's target networks"""
    action_l2: float = 1.0
    """weight of the squared-action penalty in the HER actor loss (mean over batch and dims)"""
    image_obs: bool = False
    """observe a 32x32 grayscale image of the state (envs/image.py; pointnav dim=2 and
    four_rooms) through a conv encoder; goals stay low-dimensional"""

    def __post_init__(self):
        env = cli.check_training_args(
            self,
            trajectories_per_iter="> 0",
            random_eps="[0, 1]",
            clip_obs="> 0",
            em_coef=">= 0",
            action_l2=">= 0",
        )
        if not envs.has_achieved(env.family):
            raise cli.UsageError(
                f"hindsight EM needs goals achieved by states, which the {self.env_id} "
                f"task family does not define"
            )
        if self.exploration_noise < 0 or self.min_std <= 0 or self.init_std < self.min_std:
            raise cli.UsageError(
                f"--exploration-noise must be non-negative, --min-std positive and --init-std "
                f"at least --min-std, got {self.exploration_noise}, {self.min_std} and "
                f"{self.init_std}"
            )
        env = make_env(self)
        if self.her_critic and env.discrete:
            raise cli.UsageError("--her-critic (a DDPG critic) needs continuous actions")
        per_iter = steps_per_env(self, env) * self.num_envs
        if self.total_timesteps < per_iter * self.num_chunks:
            raise cli.UsageError(
                f"--total-timesteps {self.total_timesteps} is less than one iteration "
                f"({per_iter} env steps) per chunk ({self.num_chunks} chunks)"
            )


def make_env(args: Args) -> envs.Env:
    env = cli.make_env(args.env_id, args.env_kwargs)
    if args.image_obs:
        from envs.image import ImageObs

        try:
            env = ImageObs(env)
        except ValueError as err:
            raise cli.UsageError(f"--image-obs: {err}") from None
    return env


def steps_per_env(args: Args, env: envs.Env) -> int:
    """Steps of every env per iteration: `trajectories_per_iter` episodes' worth."""
    return -(-args.trajectories_per_iter * env.episode_length // args.num_envs)


# ---------------------------------------------------------------- state types
@struct.dataclass
class Transition:
    obs: jax.Array  # (obs_dim,)
    task: jax.Array  # (task_dim,) the commanded goal
    action: jax.Array  # () int32 or (action_dim,)
    features: jax.Array  # (feature_dim,) of the state reached
    next_obs: jax.Array | None = None  # (obs_dim,) kept only for the HER critic


@struct.dataclass
class Normalizers:
    obs: norm.RunningStats
    task: norm.RunningStats


@struct.dataclass
class CriticState:
    """The HER critic of the hybrid objective (Sec. 4.4) and the target networks."""

    params: dict
    target_params: dict
    policy_target: dict
    opt_state: optax.OptState


@struct.dataclass
class TrainState:
    params: dict
    opt_state: optax.OptState
    critic: CriticState | None  # None for pure EM
    normalizers: Normalizers
    env_state: envs.EnvState  # (N,)
    buffer: rb.BufferState
    episode_return: jax.Array  # (N,) running return of each env's current episode
    env_steps: jax.Array  # () int32 per seed
    key: jax.Array


# ---------------------------------------------------------------- networks
class ConvEncoder(nn.Module):
    """Two strided 3x3 convolutions and a dense layer: (..., H*W*C) -> (..., features)."""

    image_shape: tuple[int, int, int]
    features: int = 64

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(-1, *self.image_shape)
        x = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2))(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2))(x))
        x = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
        return x.reshape(*obs.shape[:-1], self.features)


class Policy(nn.Module):
    """π(a | s, g): logits (..., A) for discrete actions; for continuous ones the
    mean (..., action_dim) in [-1, 1] and a global log-std (action_dim,)."""

    num_actions: int | None
    action_dim: int
    hidden_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int] | None = None
    init_std: float = 1.0

    @nn.compact
    def __call__(self, obs, task):
        if self.image_shape is not None:
            obs = ConvEncoder(self.image_shape)(obs)
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


class Critic(nn.Module):
    """Q(s, g, a) of the hybrid objective (HER's DDPG critic)."""

    hidden_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int] | None = None

    @nn.compact
    def __call__(self, obs, task, action):
        if self.image_shape is not None:
            obs = ConvEncoder(self.image_shape)(obs)
        x = jnp.concatenate([obs, task, action], axis=-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


def policy_distribution(out, discrete: bool, min_std: float):
    """π(a | s, g) from the policy's output: categorical over the logits, or a Gaussian
    with the state-independent std floored at `min_std` (unsquashed: the mean is
    already in [-1, 1], collected actions are clipped)."""
    if discrete:
        return distrax.Categorical(logits=out)
    mean, log_std = out
    return distrax.MultivariateNormalDiag(mean, jnp.exp(jnp.maximum(log_std, math.log(min_std))))


def log_prob(out, action, discrete: bool, min_std: float):
    """log π(a | s, g) of a batch (B,) from the policy's output."""
    return policy_distribution(out, discrete, min_std).log_prob(action)


# ---------------------------------------------------------------- E-step
def hindsight_goal_index(buffer, key, index, strategy):
    """The stored step whose achieved goal relabels each sampled step (Sec. 4.5):
    final, the last stored step of its episode; future, uniform over this step and the
    later ones. The buffer gives the episode's extent (`episode_bounds`) and the index
    arithmetic (`shift`)."""
    back, ahead = rb.episode_bounds(buffer, index)  # stored steps before / after, (B,)
    u = jax.random.uniform(key, index.row.shape)
    if strategy == "final":
        offset = ahead
    elif strategy == "future":
        offset = jnp.floor(u * (ahead + 1)).astype(jnp.int32)
    else:
        raise ValueError(f"unknown goal strategy {strategy!r}")
    return rb.shift(buffer, index, jnp.clip(offset, -back, ahead))  # u·n may round to n


def hindsight_goals(key, buffer, index, task, family, strategy, relabel_prob):
    """E-step: pair each sampled step with a goal achieved in its own
    episode (by `strategy`, HER's future by default), the hindsight proposal.

    Returns goals (B, D), their importance weights p(R = 1 | τ, g) in {0, 1} (B,),
    and which rows were relabeled (B,). A hindsight goal is reached at the drawn
    step by construction (weight 1); a kept commanded goal counts only if the drawn
    step reached it.
    """
    chex.assert_rank(task, 2)
    goal_key, coin_key = jax.random.split(key)
    goal_at = hindsight_goal_index(buffer, goal_key, index, strategy)
    reached = buffer.data.features[goal_at.row, goal_at.env]  # (B, F)
    relabel = jax.random.uniform(coin_key, (task.shape[0],)) < relabel_prob
    goal = jnp.where(relabel[:, None], jax.vmap(family.achieved)(reached), task)
    weight = jax.vmap(family.success)(reached, goal).astype(jnp.float32)
    return goal, weight, relabel


# ---------------------------------------------------------------- M-step loss
def make_em_loss(policy, discrete: bool, min_std: float):
    def em_loss(params, obs, goal, action, weight):
        """Weighted negative log-likelihood of the replayed actions."""
        chex.assert_rank(goal, 2)
        chex.assert_equal_shape([weight, goal[:, 0]])
        logp = log_prob(policy.apply(params, obs, goal), action, discrete, min_std)  # (B,)
        loss = -jnp.sum(weight * logp) / jnp.maximum(jnp.sum(weight), 1.0)
        return loss, {"em_loss": loss}

    return em_loss


def make_her_losses(policy, critic, args: Args):
    """DDPG + HER losses on the relabeled batch (Andrychowicz et al. 2017), for the hybrid
    policy loss λ·(EM loss) + (HER actor loss) of Sec. 4.4."""
    low, high = -1.0 / (1.0 - args.gamma), 0.0  # feasible returns of -1/0 rewards

    def critic_loss(
        params, target_params, policy_target, obs, next_obs, goal, action, reward, terminated
    ):
        chex.assert_equal_shape([reward, terminated])
        next_action = policy.apply(policy_target, next_obs, goal)[0]  # the mean of π
        q_next = critic.apply(target_params, next_obs, goal, next_action)  # (B,)
        target = jnp.clip(reward + args.gamma * (1.0 - terminated) * q_next, low, high)
        q = critic.apply(params, obs, goal, action)
        loss = jnp.mean((q - jax.lax.stop_gradient(target)) ** 2)
        return loss, {"critic_loss": loss, "q_values": q.mean()}

    def her_actor_loss(policy_params, critic_params, obs, goal):
        mean = policy.apply(policy_params, obs, goal)[0]
        loss = -critic.apply(critic_params, obs, goal, mean).mean() + args.action_l2 * jnp.mean(
            mean**2
        )
        return loss, {"her_actor_loss": loss}

    return critic_loss, her_actor_loss


# ---------------------------------------------------------------- training
def make_train(args: Args):
    env = make_env(args)
    family = env.family
    discrete = env.discrete
    image_shape = getattr(env, "image_shape", None)
    policy = Policy(
        num_actions=env.num_actions,
        action_dim=env.action_size,
        hidden_sizes=args.hidden_sizes,
        image_shape=image_shape,
        init_std=args.init_std,
    )
    optimizer = optax.adam(args.learning_rate)
    em_loss = make_em_loss(policy, discrete, args.min_std)
    critic = Critic(hidden_sizes=args.hidden_sizes, image_shape=image_shape)
    critic_loss, her_actor_loss = make_her_losses(policy, critic, args)

    def policy_loss(params, critic_params, obs, goal, action, weight):
        """Pure EM, or the hybrid λ·(EM loss) + (HER actor loss) of Sec. 4.4."""
        loss, info = em_loss(params, obs, goal, action, weight)
        if not args.her_critic:
            return loss, info
        her_loss, her_info = her_actor_loss(params, critic_params, obs, goal)
        total = args.em_coef * loss + her_loss
        return total, {**info, **her_info, "policy_loss": total}

    collect_steps = steps_per_env(args, env)
    num_iters = args.total_timesteps // (collect_steps * args.num_envs)
    iters_per_chunk = -(-num_iters // args.num_chunks)

    def stored(obs):  # images are kept as uint8 in the buffer: a quarter of the memory
        return obs if image_shape is None else jnp.round(obs * 255).astype(jnp.uint8)

    def unstored(obs):
        return obs if image_shape is None else obs.astype(jnp.float32) / 255

    def init(key):
        net_key, critic_key, env_key, state_key = jax.random.split(key, 4)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, args.num_envs))
        obs, task = env_state.obs[0], env_state.task[0]
        action = jnp.zeros((), jnp.int32) if discrete else jnp.zeros((env.action_size,))
        params = policy.init(net_key, obs[None], task[None])
        example = Transition(
            obs=stored(obs),
            task=task,
            action=action,
            features=env_state.features[0],
            next_obs=stored(obs) if args.her_critic else None,
        )
        critic_state = None
        if args.her_critic:
            critic_params = critic.init(critic_key, obs[None], task[None], action[None])
            critic_state = CriticState(
                params=critic_params,
                target_params=critic_params,
                policy_target=params,
                opt_state=optimizer.init(critic_params),
            )
        return TrainState(
            params=params,
            opt_state=optimizer.init(params),
            critic=critic_state,
            normalizers=Normalizers(obs=norm.init(obs.shape[-1]), task=norm.init(task.shape[-1])),
            env_state=env_state,
            buffer=rb.init(example, args.num_envs, args.buffer_size, env.episode_length),
            episode_return=jnp.zeros((args.num_envs,)),
            env_steps=jnp.zeros((), jnp.int32),
            key=state_key,
        )

    def normalized(normalizers, obs, task):
        if image_shape is None:  # pixels are already in [0, 1]
            obs = norm.normalize(normalizers.obs, obs, args.clip_obs)
        return obs, norm.normalize(normalizers.task, task, args.clip_obs)

    def sample_action(state: TrainState, obs, task, key):
        """Collecting policy: a sample of π, a uniformly random action w.p. random_eps."""
        policy_key, noise_key, coin_key, random_key = jax.random.split(key, 4)
        out = policy.apply(state.params, *normalized(state.normalizers, obs, task))
        explore = jax.random.uniform(coin_key, obs.shape[:1]) < args.random_eps  # (N,)
        action = policy_distribution(out, discrete, args.min_std).sample(seed=policy_key)
        if discrete:
            random_action = jax.random.randint(random_key, action.shape, 0, env.num_actions)
            return jnp.where(explore, random_action, action).astype(jnp.int32)
        mean = out[0]
        action = action + args.exploration_noise * jax.random.normal(noise_key, mean.shape)
        random_action = jax.random.uniform(random_key, mean.shape, minval=-1.0, maxval=1.0)
        return jnp.clip(jnp.where(explore[:, None], random_action, action), -1.0, 1.0)

    def collect_step(state: TrainState, _):
        key, act_key = jax.random.split(state.key)
        es = state.env_state
        action = sample_action(state, es.obs, es.task, act_key)
        nxt = env.step_batch(es, action)  # jax.vmap(env.step), resets only when needed
        transition = Transition(
            obs=stored(es.obs),
            task=es.task,
            action=action,
            features=nxt.features,
            next_obs=stored(nxt.next_obs) if args.her_critic else None,
        )
        buffer = rb.insert(state.buffer, transition, es.t)
        achieved = jax.vmap(family.achieved)(nxt.features)
        normalizers = Normalizers(
            obs=norm.update(state.normalizers.obs, nxt.next_obs),
            task=norm.update(state.normalizers.task, jnp.concatenate([es.task, achieved])),
        )
        done = nxt.terminated | nxt.truncated
        ret = state.episode_return + nxt.reward
        state = state.replace(
            env_state=nxt,
            buffer=buffer,
            key=key,
            normalizers=normalizers,
            episode_return=jnp.where(done, 0.0, ret),
            env_steps=state.env_steps + args.num_envs,
        )
        stats = {
            "episodes": done.sum(),
            "successes": (done & nxt.success).sum(),
            "return_sum": jnp.where(done, ret, 0.0).sum(),
        }
        return state, stats

    def m_step(state: TrainState, key):
        sample_key, goal_key = jax.random.split(key)
        index = rb.sample_index(state.buffer, sample_key, args.batch_size)
        # on several devices each holds a slice of the batch rows (data parallel)
        batch = parallel.split_batch(rb.gather(state.buffer, index))
        goal, weight, relabeled = hindsight_goals(
            goal_key, state.buffer, index, batch.task, family, args.relabel, args.relabel_prob
        )
        obs, goal_n = normalized(state.normalizers, unstored(batch.obs), goal)
        info, critic_state, critic_params = {}, state.critic, None
        if args.her_critic:  # HER critic step first; the policy step uses the updated critic
            next_obs, _ = normalized(state.normalizers, unstored(batch.next_obs), goal)
            reward = jax.vmap(family.reward)(batch.features, batch.action, goal)  # (B,) -1/0
            terminated = jax.vmap(family.success)(batch.features, goal) & env.terminate_on_success
            c = state.critic
            (_, info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
                c.params,
                c.target_params,
                c.policy_target,
                obs,
                next_obs,
                goal_n,
                batch.action,
                reward,
                terminated,
            )
            updates, critic_opt = optimizer.update(grads, c.opt_state)
            critic_params = optax.apply_updates(c.params, updates)
        (_, policy_info), grads = jax.value_and_grad(policy_loss, has_aux=True)(
            state.params, critic_params, obs, goal_n, batch.action, weight
        )
        updates, opt_state = optimizer.update(grads, state.opt_state)
        params = optax.apply_updates(state.params, updates)
        if args.her_critic:
            critic_state = CriticState(
                params=critic_params,
                target_params=optax.incremental_update(critic_params, c.target_params, args.tau),
                policy_target=optax.incremental_update(params, c.policy_target, args.tau),
                opt_state=critic_opt,
            )
        info = {f"losses/{k}": v for k, v in {**info, **policy_info}.items()}
        if not discrete:
            log_std = jnp.maximum(params["params"]["log_std"], math.log(args.min_std))
            info["losses/policy_std"] = jnp.exp(log_std).mean()
        info["relabel/relabeled_fraction"] = relabeled.mean()
        info["relabel/weight"] = weight.mean()
        info["relabel/goal_shift"] = jnp.linalg.norm(goal - batch.task, axis=-1).mean()
        return state.replace(params=params, opt_state=opt_state, critic=critic_state), info

    def iteration(state: TrainState, _):
        state, stats = jax.lax.scan(collect_step, state, None, collect_steps)
        key, update_key = jax.random.split(state.key)
        state = state.replace(key=key)
        state, info = jax.lax.scan(m_step, state, jax.random.split(update_key, args.gradient_steps))
        return state, (jax.tree.map(jnp.mean, info), jax.tree.map(jnp.sum, stats))

    def train_chunk(state: TrainState):
        state, (info, stats) = jax.lax.scan(iteration, state, None, iters_per_chunk)
        episodes = jnp.maximum(stats["episodes"].sum(), 1)
        metrics = {k: v.mean() for k, v in info.items()}
        metrics["charts/success_rate"] = stats["successes"].sum() / episodes
        metrics["charts/episode_return"] = stats["return_sum"].sum() / episodes
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
        steps_per_chunk=iters_per_chunk * collect_steps * args.num_envs,
        buffer_bytes=lambda state: rb.nbytes(state.buffer),
        policy=deterministic_policy,
        env=env,
    )


def main(args: Args) -> dict:
    train = make_train(args)  # pure functions of one seed
    with training.start(
        "hindsight_em",
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
