"""DDPG + Hindsight Experience Replay for continuous actions.

Andrychowicz et al., "Hindsight Experience Replay", NeurIPS 2017. DDPG (Lillicrap
et al. 2016) with goal-conditioned actor and critic; each sampled transition is
replayed with a goal achieved later in its episode with probability 0.8 (the
future strategy with k = 4, Sec. 4.5) and its reward recomputed for that goal
from the stored features. App. A details: observation and goal normalisation
clipped to ±5, targets clipped to the feasible return range, an L2 penalty on
actions, Gaussian action noise (std 0.2 of the maximal action) plus 30% random
actions. `--em-coef λ` makes it the HER + EM hybrid of Tang & Kucukelbir (Sec. 4.4):
λ times the M-step's imitation loss on the relabeled rows joins the actor loss.
`--reward-convention 0/1` shifts the recomputed rewards from the family's −1/0
to 0/1 (and the target clipping range with them). `--image-obs` observes a picture of
the state (envs/image.py) through a conv encoder in actor and critic, goals staying
low-dimensional. The whole loop is one jitted `lax.scan` per chunk, vmapped over seeds.

    python algos/her.py --env-id pointnav --env-kwargs dim=2
    python algos/her.py --env-id reacher --reward-convention 0/1
    python algos/her.py --env-id pointnav --env-kwargs dim=2 --image-obs --buffer-size 200000
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
from common import normalize as norm  # noqa: E402
from common import parallel  # noqa: E402
from common.evaluate import evaluate  # noqa: E402
from harness import cli, training  # noqa: E402


@dataclass(frozen=True)
class Args(training.RunArgs):
    # run-management flags (seed, num_seeds, num_chunks, save_model, resume, track, ...)
    # come from training.RunArgs
    env_id: str = "pointnav"
    """environment id (see envs.ENV_IDS); must have continuous actions"""
    env_kwargs: tuple[str, ...] = ()
    """env parameters as name=value pairs, e.g. `--env-kwargs dim=8 margin=0.1`"""
    num_envs: int = 16
    """parallel environments per seed"""
    total_timesteps: int = 100_000
    """env steps per seed"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions per seed"""
    batch_size: int = 256
    """transitions per gradient step"""
    gradient_steps: int = 2
    """gradient steps per iteration (one iteration steps every env once)"""
    learning_rate: float = 1e-3
    """Adam learning rate of actor and critic"""
    gamma: float = 0.98
    """discount factor"""
    tau: float = 0.05
    """Polyak rate of the target networks"""
    hidden_sizes: tuple[int, ...] = (256, 256, 256)
    """hidden layer widths of actor and critic"""
    action_l2: float = 1.0
    """weight of the squared-action penalty in the actor loss (mean over batch and dims)"""
    relabel: Literal["future", "final", "episode", "none"] = "future"
    """which hindsight goal relabels a replayed step (the strategies of Sec. 4.5); none
    disables relabeling"""
    relabel_prob: float = 0.8
    """fraction of the batch relabeled: k/(k+1) with k = 4 in the paper"""
    em_coef: float = 0.0
    """λ of the HER + EM hybrid (EM paper, Sec. 4.4): the actor loss gains λ times the
    M-step's loss on the relabeled rows, the squared error between π(s, g̃) and the
    stored action (a Gaussian log-likelihood with fixed variance, for a deterministic
    actor); 0 is HER"""
    reward_convention: Literal["-1/0", "0/1"] = "-1/0"
    """sparse reward on failure/success: -1/0 is the task family's, 0/1 adds 1 to every
    recomputed reward (target clipping follows: [0, 1/(1-gamma)] instead of [-1/(1-gamma), 0])"""
    clip_target: bool = True
    """clip TD targets to the feasible return range"""
    exploration_noise: float = 0.2
    """std of the Gaussian action noise, as a fraction of the maximal action (actions in [-1, 1])"""
    random_eps: float = 0.3
    """probability of a uniformly random action"""
    clip_obs: float = 5.0
    """normalised observations and goals are clipped to ±clip_obs"""
    learning_starts: int = 1_000
    """env steps per seed before learning starts"""
    image_obs: bool = False
    """observe a 32x32 grayscale image of the state (envs/image.py; pointnav dim=2 and
    four_rooms) through a conv encoder in actor and critic; goals stay low-dimensional"""

    def __post_init__(self):
        env = cli.check_training_args(
            self,
            action_l2=">= 0",
            em_coef=">= 0",
            exploration_noise=">= 0",
            random_eps="[0, 1]",
            clip_obs="> 0",
            learning_starts=">= 0",
        )
        if env.discrete:
            raise cli.UsageError(f"{self.env_id} has discrete actions; use algos/her_dqn.py")
        if self.relabel != "none" and not envs.has_achieved(env.family):
            raise cli.UsageError(
                f"--relabel {self.relabel} needs goals achieved by states, which the "
                f"{self.env_id} task family does not define; use --relabel none"
            )
        if self.em_coef > 0 and (self.relabel == "none" or self.relabel_prob == 0):
            raise cli.UsageError(
                "--em-coef imitates actions for hindsight goals, which "
                "--relabel none or --relabel-prob 0 never draws"
            )
        if self.image_obs:
            make_env(self)


def make_env(args: Args) -> envs.Env:
    env = cli.make_env(args.env_id, args.env_kwargs)
    if args.image_obs:
        from envs.image import ImageObs

        try:
            env = ImageObs(env)
        except ValueError as err:
            raise cli.UsageError(f"--image-obs: {err}") from None
    return env


# ---------------------------------------------------------------- state types
@struct.dataclass
class Transition:
    obs: jax.Array  # (obs_dim,) float32, or uint8 pixels with --image-obs
    task: jax.Array  # (task_dim,) the commanded goal
    action: jax.Array  # (action_dim,)
    next_obs: jax.Array  # (obs_dim,) as obs
    features: jax.Array  # (feature_dim,) of the state reached


@struct.dataclass
class Normalizers:
    obs: norm.RunningStats
    task: norm.RunningStats


@struct.dataclass
class TrainState:
    actor_params: dict
    critic_params: dict
    actor_target: dict
    critic_target: dict
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    normalizers: Normalizers
    env_state: envs.EnvState  # (N,)
    buffer: rb.BufferState
    episode_return: jax.Array  # (N,) running return of each env's current episode
    env_steps: jax.Array  # () int32 per seed
    key: jax.Array


# ---------------------------------------------------------------- networks
class ConvEncoder(nn.Module):
    """Flattened pictures (..., H*W*C) -> (..., features): two stride-2 3x3 convolutions
    (16 and 32 channels) and a dense layer, the encoder of algos/hindsight_em.py."""

    image_shape: tuple[int, int, int]
    features: int = 64

    @nn.compact
    def __call__(self, obs):
        x = obs.reshape(-1, *self.image_shape)
        x = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2))(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2))(x))
        x = nn.relu(nn.Dense(self.features)(x.reshape(x.shape[0], -1)))
        return x.reshape(*obs.shape[:-1], self.features)


class Actor(nn.Module):
    action_dim: int
    hidden_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int] | None = None  # set: obs are pictures

    @nn.compact
    def __call__(self, obs, task):
        if self.image_shape is not None:
            obs = ConvEncoder(self.image_shape)(obs)
        x = jnp.concatenate([obs, task], axis=-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return jnp.tanh(nn.Dense(self.action_dim)(x))


class Critic(nn.Module):
    hidden_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int] | None = None  # set: obs are pictures

    @nn.compact
    def __call__(self, obs, task, action):
        if self.image_shape is not None:
            obs = ConvEncoder(self.image_shape)(obs)
        x = jnp.concatenate([obs, task, action], axis=-1)
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(1)(x)[..., 0]


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
    in the same episode (HER Alg. 1, line "sample a set of additional goals")."""
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


# ---------------------------------------------------------------- losses
def make_losses(actor, critic, args: Args):
    low, high = (
        (-1.0 / (1.0 - args.gamma), 0.0)
        if args.reward_convention == "-1/0"
        else (0.0, 1.0 / (1.0 - args.gamma))
    )

    def critic_loss(
        critic_params, actor_target, critic_target, obs, next_obs, task, action, reward, terminated
    ):
        chex.assert_equal_shape([reward, terminated])
        next_action = actor.apply(actor_target, next_obs, task)
        q_next = critic.apply(critic_target, next_obs, task, next_action)  # (B,)
        target = reward + args.gamma * (1.0 - terminated) * q_next
        if args.clip_target:
            target = jnp.clip(target, low, high)
        q = critic.apply(critic_params, obs, task, action)
        loss = jnp.mean((q - jax.lax.stop_gradient(target)) ** 2)
        return loss, {"critic_loss": loss, "q_values": q.mean()}

    def actor_loss(actor_params, critic_params, obs, task, stored_action, relabeled):
        action = actor.apply(actor_params, obs, task)
        q = critic.apply(critic_params, obs, task, action)
        loss = -q.mean() + args.action_l2 * jnp.mean(action**2)  # mean over dims too
        info = {"actor_loss": loss}
        if args.em_coef > 0:  # the hybrid: the M-step on the hindsight pairs (s, a, g̃)
            error = jnp.sum((action - stored_action) ** 2, axis=-1)
            weight = relabeled.astype(jnp.float32)
            em_loss = jnp.sum(weight * error) / jnp.maximum(weight.sum(), 1.0)
            loss = loss + args.em_coef * em_loss
            info = {"actor_loss": loss, "em_loss": em_loss}
        return loss, info

    return critic_loss, actor_loss


# ---------------------------------------------------------------- training
def make_train(args: Args):
    env = make_env(args)
    family = env.family
    image_shape = getattr(env, "image_shape", None)
    actor = Actor(
        action_dim=env.action_size, hidden_sizes=args.hidden_sizes, image_shape=image_shape
    )
    critic = Critic(hidden_sizes=args.hidden_sizes, image_shape=image_shape)
    actor_optimizer = optax.adam(args.learning_rate)
    critic_optimizer = optax.adam(args.learning_rate)
    critic_loss, actor_loss = make_losses(actor, critic, args)
    num_iters = args.total_timesteps // args.num_envs
    iters_per_chunk = -(-num_iters // args.num_chunks)
    learning_starts_iter = args.learning_starts // args.num_envs

    def stored(obs):  # pictures are kept as uint8 in the buffer: a quarter of the memory
        return obs if image_shape is None else jnp.round(obs * 255).astype(jnp.uint8)

    def unstored(obs):
        return obs if image_shape is None else obs.astype(jnp.float32) / 255

    def init(key):
        actor_key, critic_key, env_key, state_key = jax.random.split(key, 4)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, args.num_envs))
        obs, task = env_state.obs[0], env_state.task[0]
        action = jnp.zeros((env.action_size,))
        actor_params = actor.init(actor_key, obs, task)
        critic_params = critic.init(critic_key, obs, task, action)
        example = Transition(
            obs=stored(obs),
            task=task,
            action=action,
            next_obs=stored(obs),
            features=env_state.features[0],
        )
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            actor_target=actor_params,
            critic_target=critic_params,
            actor_opt=actor_optimizer.init(actor_params),
            critic_opt=critic_optimizer.init(critic_params),
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
        obs, task_n = normalized(state.normalizers, unstored(batch.obs), task)
        next_obs, _ = normalized(state.normalizers, unstored(batch.next_obs), task)
        (_, critic_info), critic_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params,
            state.actor_target,
            state.critic_target,
            obs,
            next_obs,
            task_n,
            batch.action,
            reward,
            terminated,
        )
        updates, critic_opt = critic_optimizer.update(critic_grads, state.critic_opt)
        critic_params = optax.apply_updates(state.critic_params, updates)
        (_, actor_info), actor_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, critic_params, obs, task_n, batch.action, relabeled
        )
        updates, actor_opt = actor_optimizer.update(actor_grads, state.actor_opt)
        actor_params = optax.apply_updates(state.actor_params, updates)
        state = state.replace(
            actor_params=actor_params,
            critic_params=critic_params,
            actor_target=optax.incremental_update(actor_params, state.actor_target, args.tau),
            critic_target=optax.incremental_update(critic_params, state.critic_target, args.tau),
            actor_opt=actor_opt,
            critic_opt=critic_opt,
        )
        info = {
            **{f"losses/{k}": v for k, v in {**critic_info, **actor_info}.items()},
            "relabel/relabeled_fraction": relabeled.mean(),
            "relabel/reward": reward.mean(),
        }
        return state, info

    def iteration(state: TrainState, _):
        key, noise_key, coin_key, random_key, update_key = jax.random.split(state.key, 5)
        it = state.env_steps // args.num_envs
        es = state.env_state
        action = actor.apply(state.actor_params, *normalized(state.normalizers, es.obs, es.task))
        action = action + args.exploration_noise * jax.random.normal(noise_key, action.shape)
        random_action = jax.random.uniform(random_key, action.shape, minval=-1.0, maxval=1.0)
        explore = jax.random.uniform(coin_key, action.shape[:1]) < args.random_eps
        action = jnp.clip(jnp.where(explore[:, None], random_action, action), -1.0, 1.0)
        nxt = env.step_batch(es, action)  # jax.vmap(env.step), resets only when needed
        transition = Transition(
            obs=stored(es.obs),
            task=es.task,
            action=action,
            next_obs=stored(nxt.next_obs),
            features=nxt.features,
        )
        buffer = rb.insert(state.buffer, transition, es.t)
        achieved = jax.vmap(family.achieved)(nxt.features) if envs.has_achieved(family) else es.task
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
        }
        return state, (info, stats)

    def train_chunk(state: TrainState):
        state, (info, stats) = jax.lax.scan(iteration, state, None, iters_per_chunk)
        episodes = jnp.maximum(stats["episodes"].sum(), 1)
        learned = stats["learned"]  # losses average over iterations that updated
        metrics = {k: jnp.sum(v * learned) / jnp.maximum(learned.sum(), 1) for k, v in info.items()}
        metrics["charts/success_rate"] = stats["successes"].sum() / episodes
        metrics["charts/episode_return"] = stats["return_sum"].sum() / episodes
        return state, metrics

    def deterministic_policy(state):
        return lambda obs, task, key: actor.apply(
            state.actor_params, *normalized(state.normalizers, obs, task)
        )

    def evaluate_state(state: TrainState, key):
        metrics = evaluate(env, deterministic_policy(state), key, args.eval_episodes)
        return {f"eval/{k}": v for k, v in metrics.items()}

    return training.Train(
        init=init,
        train_chunk=train_chunk,
        evaluate=evaluate_state,
        steps_per_chunk=iters_per_chunk * args.num_envs,
        buffer_bytes=lambda state: rb.nbytes(state.buffer),
        policy=deterministic_policy,
        env=env,
    )


def main(args: Args) -> dict:
    train = make_train(args)  # pure functions of one seed
    with training.start(
        "her",
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
