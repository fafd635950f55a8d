"""HIPI-RL: soft actor-critic with relabeling by inverse RL.

Eysenbach, Geng, Levine, Salakhutdinov, "Rewriting History with Inverse RL:
Hindsight Inference for Policy Improvement", NeurIPS 2020, Algorithm 2.
Relabeling is inference: the task a transition (s, a) is evidence for follows
the MaxEnt IRL posterior (Eq. 7 with Eq. 8)

    q(ψ | s, a) ∝ exp(Q̃(s, a, ψ) − log Z(ψ)),

with the soft Q-value Q̃ (App. B) and the partition function log Z(ψ) estimated
over the sampled batch (Alg. 1). Half of every batch is relabeled (App. D);
rewards and terminations are recomputed for the new tasks from the stored
features. Baselines on the same code path: `none`, `random` (prior), and for
goal families HER's `final` and `future`. The whole loop is one jitted
`lax.scan` per chunk, vmapped over seeds.

    python algos/hipi_rl.py --env-id pointnav --env-kwargs dim=2 --relabel inverse_rl
"""

from __future__ import annotations

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

GOAL_STRATEGIES = ("final", "future")  # the --relabel choices that take hindsight goals


@dataclass(frozen=True)
class Args(training.RunArgs):
    # run-management flags (seed, num_seeds, num_chunks, save_model, resume, track, ...)
    # come from training.RunArgs
    env_id: str = "pointnav"
    """environment id (see envs.ENV_IDS); must have continuous actions"""
    env_kwargs: tuple[str, ...] = ()
    """env parameters as name=value pairs, e.g. `--env-kwargs dim=2 margin=0.1`"""
    num_envs: int = 16
    """parallel environments per seed"""
    total_timesteps: int = 32_000
    """env steps per seed"""
    buffer_size: int = 1_000_000
    """replay capacity in transitions per seed"""
    batch_size: int = 128
    """transitions per gradient step (half of them relabeled)"""
    gradient_steps: int = 2
    """gradient steps per iteration (one iteration steps every env once)"""
    learning_rate: float = 3e-4
    """Adam learning rate of actor, critics and temperature (App. C.1)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """hidden layer widths of actor and critics"""
    max_grad_norm: float = 0.0
    """clip gradient norms to this value (App. C.1 uses 1.0); 0 turns clipping off"""
    clip_target: bool = True
    """clip TD targets to the feasible return range of the task family (sparse rewards)"""
    relabel: Literal["inverse_rl", "none", "random", "final", "future"] = "inverse_rl"
    """relabeling strategy"""
    relabel_prob: float = 0.5
    """fraction of each batch that gets a relabeled task (App. D: 1.0 was worse)"""
    partition: bool = True
    """subtract the partition function log Z(ψ) (Eq. 7); --no-partition is the ablation"""
    num_candidates: int = 8
    """inverse_rl: candidate tasks taken from the batch's commanded tasks (at most the batch);
    a finite family's candidates are its whole set instead. The relabeled rows are scored
    against every candidate, so an update's cost grows with this number (docs/hipi_rl.md)"""
    achieved_candidates: bool = True
    """inverse_rl, goal families: the goals reached by the same transitions are candidates too"""
    num_prior_candidates: int = 0
    """inverse_rl: extra candidate tasks drawn from the prior"""
    init_alpha: float = 0.1
    """initial entropy temperature α"""
    normalize_obs: bool = True
    """normalise observations and tasks by running mean and std"""
    learning_starts: int = 2_000
    """env steps per seed before learning starts"""

    def __post_init__(self):
        env = cli.check_training_args(
            self,
            num_candidates="> 0",
            num_prior_candidates=">= 0",
            init_alpha="> 0",
            max_grad_norm=">= 0",
            learning_starts=">= 0",
        )
        if env.discrete:
            raise cli.UsageError(
                f"{self.env_id} has discrete actions; hipi_rl.py needs continuous ones"
            )
        if self.relabel in GOAL_STRATEGIES and not envs.has_achieved(env.family):
            raise cli.UsageError(
                f"--relabel {self.relabel} needs goals achieved by states, which the "
                f"{self.env_id} task family does not define; use inverse_rl, random or none"
            )
        if self.clip_target and getattr(env.family, "reward_bounds", None) is None:
            raise cli.UsageError(
                f"--clip-target needs known reward bounds, which the {self.env_id} "
                "task family does not give; use --no-clip-target"
            )


def make_env(args: Args) -> envs.Env:
    return cli.make_env(args.env_id, args.env_kwargs)


# ---------------------------------------------------------------- state types
@struct.dataclass
class Transition:
    obs: jax.Array  # (obs_dim,)
    task: jax.Array  # (task_dim,) the commanded task
    action: jax.Array  # (action_dim,) in [-1, 1]
    next_obs: jax.Array  # (obs_dim,)
    features: jax.Array  # (feature_dim,) of the state reached


@struct.dataclass
class Normalizers:
    obs: norm.RunningStats
    task: norm.RunningStats


@struct.dataclass
class TrainState:
    actor_params: dict
    critic_params: dict
    critic_target: dict
    log_alpha: jax.Array  # () log of the entropy temperature
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    normalizers: Normalizers
    env_state: envs.EnvState  # (N,)
    buffer: rb.BufferState
    episode_return: jax.Array  # (N,) running return of each env's current episode
    env_steps: jax.Array  # () int32 per seed
    key: jax.Array


# ---------------------------------------------------------------- networks
class Trunk(nn.Module):
    """ReLU MLP on the concatenation of its inputs. The first layer's kernel (one matrix,
    initialised as a Dense on the concatenation) is applied to each input's rows of it
    and summed: the same function, but inputs with different leading shapes broadcast.
    Scoring R rows against K candidate tasks passes rows as (R, 1, ·) and tasks as
    (1, K, ·), and the first layer then costs R + K rows instead of R × K."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, *inputs):
        first, *rest = self.hidden_sizes
        sizes = [x.shape[-1] for x in inputs]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (sum(sizes), first))
        bias = self.param("bias", nn.initializers.zeros_init(), (first,))
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        x = bias + sum(x @ kernel[a : a + n] for x, a, n in zip(inputs, starts, sizes, strict=True))
        x = nn.relu(x)
        for width in rest:
            x = nn.relu(nn.Dense(width)(x))
        return x


class Actor(nn.Module):
    """Tanh-squashed Gaussian π(a | s, ψ)."""

    action_dim: int
    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, obs, task):
        x = Trunk(self.hidden_sizes)(obs, task)
        mean = nn.Dense(self.action_dim)(x)
        log_std = jnp.clip(nn.Dense(self.action_dim)(x), -5.0, 2.0)
        return mean, log_std


class TwinCritic(nn.Module):
    """Q_1, Q_2 (s, ψ, a); `num_heads=1` evaluates Q_1 alone."""

    hidden_sizes: tuple[int, ...]

    def setup(self):
        self.trunks = [Trunk(self.hidden_sizes) for _ in range(2)]
        self.heads = [nn.Dense(1) for _ in range(2)]

    def __call__(self, obs, task, action, num_heads: int = 2):
        q = [self.heads[k](self.trunks[k](obs, task, action))[..., 0] for k in range(num_heads)]
        return jnp.stack(q)  # (num_heads, ...)


def policy_distribution(mean, log_std):
    """π(a | s, ψ): a = tanh(u), u ~ N(mean, diag(std²)), SAC's squashed Gaussian; its
    log-density is the Gaussian's minus log|det ∂a/∂u|, summed over action dims."""
    gaussian = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
    return distrax.Transformed(gaussian, distrax.Block(distrax.Tanh(), ndims=1))


def sample_action(key, mean, log_std):
    """An action and its log π, from the pre-tanh draw (no atanh of a saturated tanh)."""
    return policy_distribution(mean, log_std).sample_and_log_prob(seed=key)


def action_log_prob(mean, log_std, action):
    """log π of a stored action. In float32, tanh gives exactly ±1 for |u| > ~9, whose
    atanh is infinite: stored actions are first moved 1e-6 inside (-1, 1)."""
    return policy_distribution(mean, log_std).log_prob(jnp.clip(action, -1.0 + 1e-6, 1.0 - 1e-6))


# ---------------------------------------------------------------- relabeling
def log_partition(logits):
    """log Z(ψ_j) = logsumexp_i R[i, j] − log B over the batch (Alg. 1). (B, K) -> (K,)"""
    chex.assert_rank(logits, 2)
    return jax.nn.logsumexp(logits, axis=0) - jnp.log(logits.shape[0])


def relabel_log_posterior(logits, use_partition):
    """log q(ψ_j | s_i, a_i) = log softmax_j(R[i, j] − log Z(ψ_j)) (Eq. 7). (B, K) -> (B, K)"""
    chex.assert_rank(logits, 2)
    if use_partition:
        logits = logits - log_partition(logits)[None, :]
    return jax.nn.log_softmax(logits, axis=1)


def relabel_inverse_rl(key, logits, use_partition=True):
    """Sample ψ̃_i ~ q(ψ | s_i, a_i) for every row: indices (B,) and log q (B, K)."""
    log_q = relabel_log_posterior(logits, use_partition)
    return jax.random.categorical(key, log_q, axis=1), log_q


def hindsight_goal_index(buffer, key, index, strategy):
    """The stored step whose achieved goal relabels each sampled step (HER, Sec. 4.5):
    final, the last stored step of its episode; future, uniform over this step and the
    later ones. The buffer gives the episode's extent and the index arithmetic."""
    back, ahead = rb.episode_bounds(buffer, index)  # stored steps before / after, (B,)
    u = jax.random.uniform(key, index.row.shape)
    if strategy == "final":
        offset = ahead
    elif strategy == "future":
        offset = jnp.floor(u * (ahead + 1)).astype(jnp.int32)
    else:
        raise ValueError(f"unknown goal strategy {strategy!r}")
    return rb.shift(buffer, index, jnp.clip(offset, -back, ahead))  # u·n may round to n


def make_soft_q_logits(actor, critic, family, gamma):
    def soft_q_logits(
        key,
        actor_params,
        critic_params,
        log_alpha,
        obs,
        action,
        next_obs,
        features,
        tasks,
        tasks_n,
        terminate_on_success,
    ):
        """The soft Q-value of row i under task j (Eq. 13, App. B), one backup from the
        stored features so that the reward of ψ_j is exact:

            R[i, j] = r_j(s_i, a_i) − α log π(a_i | s_i, ψ_j)
                      + γ (1 − d_ij) [Q_1(s'_i, ã_ij, ψ_j) − α log π(ã_ij | s'_i, ψ_j)]

        with ã_ij ~ π(· | s'_i, ψ_j); the bracket is the soft value V(s'_i, ψ_j), from the
        first critic alone (SAC's target takes the min of both): the R × K pairs dominate
        the cost of an update, and a second critic would add a third to it. `obs`,
        `next_obs`, `tasks_n` as the networks see them (normalised); `features` and
        `tasks` as the family sees them.
        rows (R, ·), tasks (K, D) -> (R, K)"""
        chex.assert_rank([obs, action, next_obs, tasks_n], 2)
        alpha = jnp.exp(log_alpha)
        rows, cands = obs[:, None], tasks_n[None]  # (R, 1, ·), (1, K, ·): the nets broadcast
        per_task = jax.vmap(jax.vmap(family.reward, (None, None, 0)), (0, 0, None))
        reward = per_task(features, action, tasks)  # (R, K)
        done = jax.vmap(jax.vmap(family.success, (None, 0)), (0, None))(features, tasks)
        done = done & terminate_on_success
        next_mean, next_log_std = actor.apply(actor_params, next_obs[:, None], cands)
        next_action, next_log_pi = sample_action(key, next_mean, next_log_std)  # (R, K, A)
        q_next = critic.apply(critic_params, next_obs[:, None], cands, next_action, 1)[0]
        soft_value = q_next - alpha * next_log_pi
        mean, log_std = actor.apply(actor_params, rows, cands)
        log_pi = action_log_prob(mean, log_std, jnp.broadcast_to(action[:, None], mean.shape))
        return reward - alpha * log_pi + gamma * (1.0 - done) * soft_value

    return soft_q_logits


def candidate_tasks(family, key, task, reached, num_prior: int):
    """The tasks the inverse-RL posterior chooses among (Alg. 1). A finite family: its
    whole set, each task once, so that q ∝ p(ψ)·exp(...) holds with the uniform prior
    (the batch's commanded tasks are members of the set and are not added again).
    Otherwise: the batch's commanded tasks (C, D), the goals the same transitions
    reached (`reached`, (C, D) or None), and `num_prior` draws from the prior.
    -> (K, D), and the index of each commanded task among them, (C,)"""
    if family.tasks is not None:
        distance = jnp.sum((task[:, None] - family.tasks[None]) ** 2, axis=-1)  # (C, K)
        return family.tasks, jnp.argmin(distance, axis=1)
    parts = [task] + ([] if reached is None else [reached])
    if num_prior:
        parts.append(family.sample(key, (num_prior,)))
    return jnp.concatenate(parts), jnp.arange(task.shape[0])


def entropy_of(log_q):
    return -jnp.sum(jnp.exp(log_q) * log_q, axis=-1)


# ---------------------------------------------------------------- losses
def make_losses(actor, critic, args: Args, target_entropy, q_bounds):
    def critic_loss(
        critic_params,
        critic_target,
        actor_params,
        log_alpha,
        key,
        obs,
        task,
        action,
        next_obs,
        reward,
        terminated,
    ):
        chex.assert_equal_shape([reward, terminated])
        mean, log_std = actor.apply(actor_params, next_obs, task)
        next_action, next_log_pi = sample_action(key, mean, log_std)
        q_next = critic.apply(critic_target, next_obs, task, next_action).min(axis=0)
        soft_next = q_next - jnp.exp(log_alpha) * next_log_pi
        target = reward + args.gamma * (1.0 - terminated) * soft_next  # terminated, never truncated
        if args.clip_target:
            target = jnp.clip(target, *q_bounds)
        q = critic.apply(critic_params, obs, task, action)  # (2, B)
        loss = jnp.mean(jnp.sum((q - jax.lax.stop_gradient(target)[None]) ** 2, axis=0))
        return loss, {"critic_loss": loss, "q_values": q.mean()}

    def actor_loss(actor_params, critic_params, log_alpha, key, obs, task):
        mean, log_std = actor.apply(actor_params, obs, task)
        action, log_pi = sample_action(key, mean, log_std)
        q = critic.apply(critic_params, obs, task, action).min(axis=0)
        loss = jnp.mean(jnp.exp(log_alpha) * log_pi - q)
        return loss, {"actor_loss": loss, "entropy": -log_pi.mean()}

    def alpha_loss(log_alpha, entropy):
        loss = log_alpha * (entropy - target_entropy)
        return loss, {"alpha_loss": loss, "alpha": jnp.exp(log_alpha)}

    return critic_loss, actor_loss, alpha_loss


# ---------------------------------------------------------------- training
def make_train(args: Args):
    env = make_env(args)
    family = env.family
    actor = Actor(action_dim=env.action_size, hidden_sizes=args.hidden_sizes)
    critic = TwinCritic(hidden_sizes=args.hidden_sizes)

    def optimizer():
        adam = optax.adam(args.learning_rate)
        return (
            optax.chain(optax.clip_by_global_norm(args.max_grad_norm), adam)
            if (args.max_grad_norm > 0)
            else adam
        )

    actor_opt, critic_opt, alpha_opt = optimizer(), optimizer(), optax.adam(args.learning_rate)
    target_entropy = -float(env.action_size)
    q_bounds = None
    if args.clip_target:
        low, high = family.reward_bounds
        q_bounds = (min(low / (1 - args.gamma), low), max(high / (1 - args.gamma), high))
    critic_loss, actor_loss, alpha_loss = make_losses(actor, critic, args, target_entropy, q_bounds)
    soft_q_logits = make_soft_q_logits(actor, critic, family, args.gamma)
    num_candidates = min(args.num_candidates, args.batch_size)
    num_relabeled = round(args.relabel_prob * args.batch_size)
    num_iters = args.total_timesteps // args.num_envs
    iters_per_chunk = -(-num_iters // args.num_chunks)
    learning_starts_iter = args.learning_starts // args.num_envs

    def init(key):
        actor_key, critic_key, env_key, state_key = jax.random.split(key, 4)
        env_state = jax.vmap(env.reset)(jax.random.split(env_key, args.num_envs))
        obs, task = env_state.obs[0], env_state.task[0]
        action = jnp.zeros((env.action_size,))
        actor_params = actor.init(actor_key, obs, task)
        critic_params = critic.init(critic_key, obs, task, action)
        log_alpha = jnp.log(jnp.asarray(args.init_alpha, jnp.float32))
        example = Transition(
            obs=obs, task=task, action=action, next_obs=obs, features=env_state.features[0]
        )
        return TrainState(
            actor_params=actor_params,
            critic_params=critic_params,
            critic_target=critic_params,
            log_alpha=log_alpha,
            actor_opt=actor_opt.init(actor_params),
            critic_opt=critic_opt.init(critic_params),
            alpha_opt=alpha_opt.init(log_alpha),
            normalizers=Normalizers(obs=norm.init(obs.shape[-1]), task=norm.init(task.shape[-1])),
            env_state=env_state,
            buffer=rb.init(example, args.num_envs, args.buffer_size, env.episode_length),
            episode_return=jnp.zeros((args.num_envs,)),
            env_steps=jnp.zeros((), jnp.int32),
            key=state_key,
        )

    def normalize_obs(normalizers, obs):
        return norm.normalize(normalizers.obs, obs) if args.normalize_obs else obs

    def normalize_task(normalizers, task):
        return norm.normalize(normalizers.task, task) if args.normalize_obs else task

    def relabel(state: TrainState, key, index, batch):
        """New tasks for the first `num_relabeled` rows of the batch (its order is
        random, so this relabels a random `relabel_prob` fraction), plus diagnostics."""
        if args.relabel == "none" or num_relabeled == 0:
            return batch.task, {}
        rows = jnp.arange(num_relabeled)
        info = {}
        if args.relabel == "random":
            new_task = family.sample(key, (num_relabeled,))
        elif args.relabel in GOAL_STRATEGIES:
            head = rb.Index(row=index.row[:num_relabeled], env=index.env[:num_relabeled])
            goal_at = hindsight_goal_index(state.buffer, key, head, args.relabel)
            achieved = state.buffer.data.features[goal_at.row, goal_at.env]
            new_task = jax.vmap(family.achieved)(achieved)
        else:  # inverse_rl, Alg. 1: candidate tasks from the batch, the prior, the set
            prior_key, logits_key, sample_key = jax.random.split(key, 3)
            reached = None
            if envs.has_achieved(family) and args.achieved_candidates:
                reached = jax.vmap(family.achieved)(batch.features[:num_candidates])
            candidates, commanded = candidate_tasks(
                family, prior_key, batch.task[:num_candidates], reached, args.num_prior_candidates
            )  # (K, D), (C,)
            nz = state.normalizers
            head = slice(0, num_relabeled)
            logits = soft_q_logits(
                logits_key,
                state.actor_params,
                state.critic_params,
                state.log_alpha,
                normalize_obs(nz, batch.obs[head]),
                batch.action[head],
                normalize_obs(nz, batch.next_obs[head]),
                batch.features[head],
                candidates,
                normalize_task(nz, candidates),
                env.terminate_on_success,
            )  # (R, K)
            logits = jax.lax.stop_gradient(logits)
            chosen, log_q = relabel_inverse_rl(sample_key, logits, args.partition)  # Eq. 7
            new_task = candidates[chosen]
            own = rows[: min(num_relabeled, num_candidates)]  # rows whose task is a candidate
            info = {
                "relabel/commanded_fraction": jnp.mean(chosen[own] == commanded[own]),
                "relabel/posterior_entropy": entropy_of(log_q).mean(),
                "relabel/log_partition_std": jnp.std(log_partition(logits)),
                "relabel/q_commanded": jnp.mean(logits[own, commanded[own]]),
                "relabel/q_relabeled": jnp.mean(logits[rows, chosen]),
            }
        return batch.task.at[:num_relabeled].set(new_task), info

    def update(state: TrainState, key):
        sample_key, relabel_key, critic_key, actor_key = jax.random.split(key, 4)
        index = rb.sample_index(state.buffer, sample_key, args.batch_size)
        # on several devices each holds a slice of the batch rows (data parallel)
        batch = parallel.split_batch(rb.gather(state.buffer, index))
        task, relabel_info = relabel(state, relabel_key, index, batch)
        reward = jax.vmap(family.reward)(batch.features, batch.action, task)  # recomputed for ψ̃
        terminated = jax.vmap(family.success)(batch.features, task) & env.terminate_on_success
        nz = state.normalizers
        obs, next_obs = normalize_obs(nz, batch.obs), normalize_obs(nz, batch.next_obs)
        task_n = normalize_task(nz, task)

        (_, critic_info), grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params,
            state.critic_target,
            state.actor_params,
            state.log_alpha,
            critic_key,
            obs,
            task_n,
            batch.action,
            next_obs,
            reward,
            terminated,
        )
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt)
        critic_params = optax.apply_updates(state.critic_params, updates)

        (_, actor_info), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, critic_params, state.log_alpha, actor_key, obs, task_n
        )
        updates, actor_opt_state = actor_opt.update(grads, state.actor_opt)
        actor_params = optax.apply_updates(state.actor_params, updates)

        (_, alpha_info), grads = jax.value_and_grad(alpha_loss, has_aux=True)(
            state.log_alpha, actor_info["entropy"]
        )
        updates, alpha_opt_state = alpha_opt.update(grads, state.alpha_opt)
        log_alpha = optax.apply_updates(state.log_alpha, updates)

        state = state.replace(
            actor_params=actor_params,
            critic_params=critic_params,
            log_alpha=log_alpha,
            critic_target=optax.incremental_update(critic_params, state.critic_target, args.tau),
            actor_opt=actor_opt_state,
            critic_opt=critic_opt_state,
            alpha_opt=alpha_opt_state,
        )
        info = {f"losses/{k}": v for k, v in {**critic_info, **actor_info, **alpha_info}.items()}
        info["relabel/reward"] = reward.mean()
        return state, {**info, **relabel_info}

    def iteration(state: TrainState, _):
        key, act_key, update_key = jax.random.split(state.key, 3)
        it = state.env_steps // args.num_envs
        es = state.env_state
        nz = state.normalizers
        mean, log_std = actor.apply(
            state.actor_params, normalize_obs(nz, es.obs), normalize_task(nz, es.task)
        )
        action, _ = sample_action(act_key, mean, log_std)
        nxt = env.step_batch(es, action)  # jax.vmap(env.step), resets only when needed
        transition = Transition(
            obs=es.obs, task=es.task, action=action, next_obs=nxt.next_obs, features=nxt.features
        )
        buffer = rb.insert(state.buffer, transition, es.t)
        normalizers = Normalizers(
            obs=norm.update(nz.obs, nxt.next_obs), task=norm.update(nz.task, es.task)
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

    def mean_action_policy(state):
        def policy(obs, task, key):
            nz = state.normalizers
            mean, _ = actor.apply(
                state.actor_params, normalize_obs(nz, obs), normalize_task(nz, task)
            )
            return jnp.tanh(mean)

        return policy

    def evaluate_state(state: TrainState, key):
        metrics = evaluate(env, mean_action_policy(state), key, args.eval_episodes)
        return {f"eval/{k}": v for k, v in metrics.items()}

    return training.Train(
        init=init,
        train_chunk=train_chunk,
        evaluate=evaluate_state,
        steps_per_chunk=iters_per_chunk * args.num_envs,
        buffer_bytes=lambda state: rb.nbytes(state.buffer),
        policy=mean_action_policy,
        env=env,
    )


def main(args: Args) -> dict:
    train = make_train(args)  # pure functions of one seed
    with training.start(
        "hipi_rl",
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
