"""Every docs table is its records' rendering, and the learning tests' thresholds are
clear of their measured distributions (docs/testing.md)."""

import inspect
import json

import numpy as np
import pytest

from experiments import report as writer
from experiments.figures import FIGURES, LEARNING_TESTS
from harness import records, report


@pytest.mark.parametrize("name", [*writer.SECTIONS, writer.README_MARKER])
def test_docs_section_is_regenerated_from_its_records(name):
    file, expected = writer.expected(name)
    current = report.current_section(file, name)
    assert current is not None, f"{file} has no <!-- {name}:begin/end --> markers"
    assert current == expected, f"run `python experiments/report.py {name}`"


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_record_holds_its_command_commit_machine_and_seeds(name):
    figure = FIGURES[name]
    for config, record in report.load(figure).items():
        header = record.header
        assert header["command"] == report.command_text(figure, figure.run(config))
        assert len(header["commit"]) == 40 and header["machine"]["cpu"]
        assert header["wall_seconds"] > 0
        assert len(record.seeds) == header["num_seeds"] == figure.num_seeds


def test_learning_thresholds_are_clear_of_the_worst_seed_and_the_best_baseline():
    found = report.load(LEARNING_TESTS)
    for run in LEARNING_TESTS.runs:
        if run.threshold is None:
            continue
        assert run.config in found, f"{run.config}: not yet recorded"
        final = found[run.config].final(LEARNING_TESTS.metric)
        assert len(final) >= 8
        assert run.threshold <= final.min() - 0.05, (run.config, final)
        assert run.threshold <= final.mean() - 3 * final.std(ddof=1), (run.config, final)
        baseline = found[f"{run.config}-none"].final(LEARNING_TESTS.metric)
        assert run.threshold >= baseline.max() + 0.05, (run.config, baseline)


def test_mean_ci_matches_a_students_t_interval():
    values = np.array([0.2, 0.4, 0.6])
    mean, half = report.mean_ci(values)
    # t_{0.975, 2} = 4.303, s = 0.2
    assert mean == pytest.approx(0.4) and half == pytest.approx(4.303 * 0.2 / np.sqrt(3))
    assert np.isnan(report.mean_ci(np.array([0.5]))[1])


def test_a_record_round_trips_and_a_broken_one_is_refused(tmp_path):
    file = str(tmp_path / "x.jsonl")
    rows = [{"step": 10, "seed": s, "eval/success_rate": 0.1 * s} for s in range(3)]
    rows += [{"step": 20, "seed": s, "eval/success_rate": 0.2 * s} for s in range(3)]
    records.write(file, {"command": "c"}, rows)
    record = records.read(file)
    assert record.seeds == [0, 1, 2] and list(record.steps) == [10, 20]
    np.testing.assert_allclose(record.final("eval/success_rate"), [0.0, 0.2, 0.4])
    with open(file, "a") as f:
        f.write(json.dumps({"seed": 0}) + "\n")
    with pytest.raises(ValueError, match="without step"):
        records.read_curves(file)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="not a readable record"):
        records.read(str(tmp_path / "bad.jsonl"))


def test_sweep_runs_the_spec_command_and_records_it(tmp_path, monkeypatch):
    from harness import specs, sweep

    monkeypatch.setattr(records, "RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(sweep, "RUNS", str(tmp_path / "runs"))
    flags = ("--env-id", "bitflip", "--env-kwargs", "n_bits=4", "--total-timesteps", "256",
             "--num-envs", "4", "--num-chunks", "2", "--eval-episodes", "4", "--batch-size", "8",
             "--buffer-size", "256", "--learning-starts", "16")  # fmt: skip
    run = specs.Run("tiny", "her_dqn", flags, "tiny")
    figure = specs.Figure("tiny_figure", "docs/testing.md", (run,), num_seeds=2)
    assert not sweep.is_current(figure, run)
    # code changes while the run trains: the header keeps the code the run started with
    monkeypatch.setattr(records, "commit", lambda: {"commit": "a" * 40, "uncommitted": []})
    digests = iter(["d1", "d2"])
    monkeypatch.setattr(records, "code_digest", lambda paths: next(digests))
    file = sweep.train(figure, run)
    record = records.read(file)
    assert record.header["commit"] == "a" * 40 and record.header["code_digest"] == "d1"
    assert record.header["code_changed_during_run"]
    assert record.header["command"] == specs.command_text(figure, run)
    assert record.header["machine"]["cores"] >= 1 and record.header["wall_seconds"] > 0
    assert record.seeds == [0, 1] and list(record.steps) == [128, 256]
    assert {"eval/success_rate", "eval/episode_return"} <= set(record.rows[-1])
    assert sweep.is_current(figure, run)


def test_learning_test_docstrings_quote_their_records():
    import test_learning

    found = report.load(LEARNING_TESTS)
    tests = [getattr(test_learning, n) for n in dir(test_learning) if n.startswith("test_")]
    for run in (r for r in LEARNING_TESTS.runs if r.threshold is not None):
        (test,) = [t for t in tests if f'check("{run.config}"' in inspect.getsource(t)]
        worst = found[run.config].final(LEARNING_TESTS.metric).min()
        best_baseline = found[f"{run.config}-none"].final(LEARNING_TESTS.metric).max()
        assert f"worst seed {worst:.2f}" in " ".join(test.__doc__.split()), test.__name__
        assert f"best seed reaches {best_baseline:.2f}" in " ".join(test.__doc__.split())


def test_uncommitted_code_files_are_named_whole():
    porcelain = " M algos/her.py\nM  envs/core.py\n?? harness/new.py\n"
    assert records.changed_files(porcelain) == ["algos/her.py", "envs/core.py", "harness/new.py"]
