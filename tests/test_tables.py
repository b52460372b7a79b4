"""Every table a command prints is readable at 80 columns and in a pipe: nothing cut ("…"), numbers
and markers whole, wide tables wrap text or leave out whole columns (and say which)."""

from __future__ import annotations

import io

import pytest

from rewardgen.cli.display import components_table, debug_table, final_table, suite_table, summary_table
from rewardgen.inspect.debug import ComponentStats, DebugReport, Flag
from rewardgen.tables import Col, fitted_table

LONG_ERROR = ("ValueError: shapes (4096,) and (4096, 3) do not match in component 'upright_torso_penalty' at step 17 "
              "of the smoke run; the reward must return one value per world")


def render(table, width: int, terminal: bool) -> str:
    """What a person sees: the table printed by Rich at ``width`` columns, on a terminal or into a pipe."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, force_terminal=terminal, color_system=None, legacy_windows=False).print(table)
    return out.getvalue()


def check_readable(text: str, width: int, whole: list[str]) -> None:
    """The golden rule: no line wider than ``width``, no cell cut with "…", every cell in ``whole``
    (numbers, labels, markers) on one line, whole."""
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert "…" not in text and "..." not in text, text
    for cell in whole:
        assert any(cell in line for line in lines), (cell, text)


def summary() -> dict:
    cands = []
    for c in range(4):
        cands.append({"candidate": c, "status": "runtime_error" if c == 1 else "ok",
                      "fitness": None if c == 1 else -0.0079123456 * (c + 1), "success": c == 2,
                      "env_steps": 1_536_000 if c == 2 else 307_200, "fate": "eliminated" if c == 3 else "final",
                      "error": LONG_ERROR if c == 1 else None})
    return {"run_dir": "runs/20261206-012456-halfcheetah-run-backward",
            "best": {"generation": 1, "candidate": 2, "fitness": -0.0237},
            "generations": [{"generation": g, "candidates": cands} for g in range(2)]}


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("terminal", [True, False])
def test_the_evolve_summary_keeps_numbers_labels_and_the_best_marker(width, terminal):
    text = render(summary_table(summary(), width), width, terminal)
    check_readable(text, width, ["g1c2 *", "-0.02374", "-0.007912", "1.54M", "307k (cut)", "runtime_error",
                                 "g0c3"])
    assert "* the best candidate of the run" in text and "(cut): stopped early" in text
    if width == 80:
        flat = " ".join(text.replace("│", " ").split())
        assert "ValueError: shapes (4096,) and (4096, 3)" in flat and "return one value per world" in flat  # wrapped, whole
    else:
        assert "left out at 60 columns: error (--json has every field)" in " ".join(text.split())


def test_components_final_debug_and_suite_tables_fit_80_columns():
    comps = {"forward_progress_of_the_torso_along_x": [{"mean": 0.0123456}, {"mean": 2.98765}],
             "control_cost": [{"mean": -0.4567891}, {"mean": -0.0000123456}]}
    final = {"rows": [{"label": "best evolved reward", "ok": 3, "seeds": 3, "fitness_mean": 6.84123, "fitness_std": 1.2345,
                       "success_rate": 1.0, "human_normalized": 0.66789},
                      {"label": "human (env reward)", "ok": 2, "seeds": 3, "fitness_mean": -0.0578912,
                       "fitness_std": 0.0141234, "success_rate": 0.33333, "human_normalized": 1.0},
                      {"label": "sparse success reward", "ok": 3, "seeds": 3, "fitness_mean": -0.0221234,
                       "fitness_std": 0.0023456, "success_rate": 0.0, "human_normalized": None}]}
    def stats(name, m):
        return ComponentStats(name, m, 0.123456, -1.23456, 9.87654, 0.45, 0.0, 0, -0.123, 0.987, None)
    report = DebugReport("hopper-hop", "forward_velocity(body=torso)", [], 5000,
                         [stats("forward_velocity_of_the_torso_body", 1.23456), stats("ctrl", -0.0123456)],
                         stats("total", 1.2222), [Flag("dominant", "ctrl", "x")], ["random"])
    suite = {"rows": [{"task": "halfcheetah-run-backward", "finished": True, "steps": 300_000,
                       "evolved": {"mean": 6.01234, "std": 0.14, "ok": 3, "seeds": 3, "success_rate": 1.0},
                       "human": {"mean": 5.8234, "std": 0.11, "ok": 3, "seeds": 3, "success_rate": 1.0},
                       "sparse": {"mean": 2.85, "std": 0.43, "ok": 2, "seeds": 3, "success_rate": 0.0},
                       "score": 1.07, "evolved_ge_human": True, "evolved_ge_both": True}]}
    for width in (80, 100):
        for terminal in (True, False):
            check_readable(render(components_table({"components": comps}, width), width, terminal), width,
                           ["2.988", "-1.235e-05", "100%"])
            text = render(final_table(final, "20261206-012456-halfcheetah-run", width), width, terminal)
            check_readable(text, width, ["best evolved reward", "sparse success reward", "6.841", "-0.05789", "2/3"])
            check_readable(render(debug_table(report, width), width, terminal), width,
                           ["1.235", "-0.01235", "45%", "-0.12"])
            text = render(suite_table(suite, "runs/suite", width), width, terminal)
            check_readable(text, width, ["halfcheetah-run-backward", "6.01 ± 0.14", "5.82 ± 0.11", "yes"])
    assert "left out at 80 columns" in " ".join(render(suite_table(suite, "runs/suite", 80), 80, False).split())


def test_fitted_table_leaves_out_the_least_important_column_first():
    cols = [Col("name"), Col("a", 0), Col("b", 2), Col("c", 1)]
    rows = [["x" * 10, "1" * 20, "2" * 20, "3" * 20]]
    text = render(fitted_table(cols, rows, 60), 60, False)
    check_readable(text, 60, ["1" * 20, "3" * 20])
    assert "2" * 20 not in text and "left out at 60 columns: b" in text
    text = render(fitted_table(cols, rows, 40), 40, False)
    assert "left out at 40 columns: b, c" in " ".join(text.split()) and "1" * 20 in text


@pytest.mark.slow
def test_resume_prints_the_summary_whole_in_a_pipe(small_real_run):
    """The real evolve summary of a real run, as a pipe gets it (80 columns)."""
    from conftest import cli

    run_dir, _ = small_real_run
    res = cli("resume", str(run_dir))
    assert res.returncode == 0, res.stderr
    table = res.stdout[res.stdout.index("┌"):res.stdout.index("┘") + 1]
    check_readable(table, 80, ["candidate", "fitness"])
    import json

    run = json.loads((run_dir / "run.json").read_text())
    best = run["best"]
    assert f"g{best['generation']}c{best['candidate']} *" in table  # the best row keeps its marker
    for gen in run["generations"]:
        for c in gen["candidates"]:
            if c["fitness"] is not None:
                assert f"{c['fitness']:.4g}" in table
