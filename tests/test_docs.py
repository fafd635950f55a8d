"""The docs say what the code does: line links point at definitions, every metric a
script logs is explained on its page, and the README links every page."""

import dataclasses
import os
import sys

import jax
import pytest
from conftest import ROOT, load_algo

sys.path.insert(0, os.path.join(ROOT, "docs"))
import links  # noqa: E402

# tiny settings under which each script's metrics are traced (never compiled)
SCRIPTS = {
    "her_dqn": ("her.md", dict(env_id="bitflip", env_kwargs=("n_bits=4",))),
    "her": ("her.md", dict(env_id="pointnav")),
    "hipi_rl": ("hipi_rl.md", dict(env_id="pointnav")),
    "hindsight_em": ("hindsight_em.md", dict(env_id="pointnav", total_timesteps=4000)),
    "hpg": ("hindsight_em.md", dict(env_id="pointnav", total_timesteps=4000)),
}


@pytest.mark.parametrize("doc", links.documents(), ids=os.path.basename)
def test_line_links_point_at_definitions(doc):
    wrong = links.check(doc)
    assert not wrong, f"run `python docs/links.py --fix`: {wrong}"


def logged_metrics(name, fields):
    module = load_algo(name)
    settings = dict(
        num_envs=2,
        total_timesteps=200,
        num_chunks=2,
        batch_size=8,
        buffer_size=400,
        eval_episodes=2,
        quiet=True,
    )
    known = {field.name for field in dataclasses.fields(module.Args)}
    args = module.Args(**{k: v for k, v in {**settings, **fields}.items() if k in known})
    trainer = module.make_train(args)
    state = jax.eval_shape(trainer.init, jax.random.key(0))
    _, metrics = jax.eval_shape(trainer.train_chunk, state)
    metrics.update(jax.eval_shape(trainer.evaluate, state, jax.random.key(1)))
    return {*metrics, "charts/SPS"}  # SPS is added by harness/training.py


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_every_logged_metric_is_explained(name):
    doc, fields = SCRIPTS[name]
    with open(os.path.join(ROOT, "docs", doc)) as f:
        text = f.read()
    missing = sorted(m for m in logged_metrics(name, fields) if f"`{m}`" not in text)
    assert not missing, f"docs/{doc} does not explain {missing}"


def test_readme_links_every_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    pages = [n for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md")]
    missing = [page for page in pages if f"docs/{page}" not in readme]
    assert not missing, f"README.md does not link {missing}"
