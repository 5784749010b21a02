"""Notebook tests beyond nbval (which pytest runs over notebooks/ itself, see pyproject).

* Structure: every lecture notebook has the parts a student and the instructor rely on.
* Papermill: a notebook run with other parameters really uses them, and the numbers it
  writes to its results JSON are the ones the package computes.
"""

import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_design_patterns", "02_lenet", "03_alexnet", "04_vgg", "05_inception",
            "06_resnet", "07_densenet"]
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9]*.ipynb"))


def _tags(cell):
    return cell.metadata.get("tags", [])


def test_every_lecture_section_has_its_notebook():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_the_course_structure(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    assert "badges" in _tags(cells[0]) and "colab.research.google.com" in cells[0].source
    assert "setup" in _tags(cells[1]) and cells[1].cell_type == "code"

    parameters = [c for c in cells if "parameters" in _tags(c)]
    assert len(parameters) == 1, "exactly one papermill parameters cell"
    names = ["DATASET", "EPOCHS", "BATCH_SIZE", "LR", "SEED", "DATA_ROOT", "RESULTS_JSON"]
    if path.stem == "07_densenet":  # its homework picks the batch size from the memory limit
        names.remove("BATCH_SIZE")
    for name in names:
        assert re.search(rf"^{name}\s*=", parameters[0].source, re.M), f"{name} missing"
    assert re.search(r"^EPOCHS\s*=\s*1\b", parameters[0].source, re.M), "homework is one epoch"

    code = [c.source for c in cells if c.cell_type == "code"]
    prose = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert any("run_banner(" in s for s in code)
    assert any(s.lstrip().startswith("# NBVAL_CHECK_OUTPUT") for s in code)
    assert any("write_results(RESULTS_JSON" in s for s in code)
    for heading in ("학습 목표", "정리", "연습 문제"):
        assert heading in prose, f"'{heading}' section missing"

    # Each homework region is followed by the cell that checks it.
    solution_at = [i for i, c in enumerate(cells) if "### BEGIN SOLUTION" in c.source]
    assert solution_at, "no homework (### BEGIN SOLUTION) region"
    for i in solution_at:
        assert "### END SOLUTION" in cells[i].source
        assert "check" in _tags(cells[i + 1]), f"cell {i + 1} should be the homework check"
    if path.stem == "01_design_patterns":
        # The warm-up: the student trains with fit; the given part of the same cell builds the
        # HomeworkRun that counts its steps, and the check measures the model as in 02-07.
        given, region = cells[solution_at[0]].source.split("### BEGIN SOLUTION")
        assert "HomeworkRun(" in given and "trains_with_fit=True" in given
        assert "fit(" in region
        assert 'check_homework(run, "01_design_patterns", model)' in cells[solution_at[0] + 1].source
        return
    # 02-07: the graded region is the student's own loop; fit stays out of it. The given cell
    # just before it builds the HomeworkRun; the check measures the model itself.
    if path.stem == "07_densenet":
        # Part 1 picks the batch size from the training memory; its check counts it again.
        first = solution_at.pop(0)
        assert "training_memory(" in cells[first].source and "batch_size =" in cells[first].source
        assert "check_batch_size(batch_size, model" in cells[first + 1].source
        assert "batch_size=batch_size" in cells[solution_at[0] - 1].source
    for i in solution_at:
        given, rest = cells[i].source.split("### BEGIN SOLUTION")
        assert not given.strip(), "the homework cell holds only the student's region"
        given = cells[i - 1].source
        region = rest.split("### END SOLUTION")[0]
        for call in ("zero_grad(", "backward(", "step(", "model.train(", "model.eval("):
            assert call in region, f"the student's loop should call {call}"
        assert "fit(" not in region, "the homework region must not call fit"
        assert "HomeworkRun(" in given
        assert f'check_homework(run, "{path.stem}", model)' in cells[i + 1].source


def _code(stem):
    nb = nbformat.read(NOTEBOOK_DIR / f"{stem}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


# The experiment whose outcome the prose states, found by a line of its code; the cell must
# state that outcome with expect(...), which stops a cpu/full run on the notebook's own data
# that disagrees and only prints the claim elsewhere (smoke, rehearsal, the bundled sample).
EXPERIMENTS = {
    "02_lenet": "relu_loss = min(drops",  # ReLU vs tanh, each at its own rate, three seeds
    "03_alexnet": "ratios = [row[\"tanh / ReLU\"]",  # Figure 1: each at its fastest rate, 3 seeds
    "04_vgg": "stuck = f\"{plain}, std {TORCHVISION_STD}\"",  # fixed-scale and He init, BN
    "06_resnet": "plot_seed_band(deg_runs",  # degradation over seeds
    "07_densenet": "format_table(results_rows + own_rows)",  # the course-wide table
}


@pytest.mark.parametrize("stem", EXPERIMENTS, ids=list(EXPERIMENTS))
def test_experiments_assert_what_the_prose_says(stem):
    cells = [s for s in _code(stem) if EXPERIMENTS[stem] in s]
    assert len(cells) == 1, f"the experiment cell of {stem} was not found"
    assert "expect(" in cells[0], "outcomes stated with expect(...)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_outcome_asserts_know_the_data_they_ran_on(path):
    """A bare assert guarded only by the run mode would fail a newcomer's run on the bundled
    sample (issue 20): outcomes go through expect(..., data), which knows the data."""
    for source in _code(path.stem):
        guarded = re.findall(r"^if run_mode\(\) [!=]= \"\w+\":.*\n(?:[ ]+.*\n?)*", source, re.M)
        for block in guarded:
            assert not re.search(r"^\s+assert ", block, re.M), block


@pytest.mark.parametrize("stem", ["03_alexnet", "06_resnet", "07_densenet"])
def test_pretrained_cells_are_behind_the_parameter(stem):
    code = _code(stem)
    assert any(re.search(r"^PRETRAINED = None\b", s, re.M) for s in code)
    downloads = [s for s in code if 'weights="' in s]
    assert downloads, "the notebook should show a trained network"
    for source in downloads:
        assert "if pretrained_enabled(PRETRAINED)" in source or \
            "if not pretrained_enabled(PRETRAINED)" in source
        assert "pretrained_off_note(" in source  # off: what it would show, how to turn it on
        assert "except" in source  # a failed download is reported, not a crash


# Parameter variants run with papermill in smoke mode. Each entry: notebook, parameters,
# and a function that checks the results JSON against what those parameters must produce.
VARIANTS = {
    "02_lenet": {"SEED": 3, "BATCH_SIZE": 64},
    "06_resnet": {"SEED": 1, "BATCH_SIZE": 32},
}


@pytest.mark.notebook
@pytest.mark.parametrize("name, parameters", VARIANTS.items(), ids=list(VARIANTS))
def test_papermill_parameters_reach_the_results(name, parameters, tmp_path):
    results = tmp_path / "results.json"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
        parameters={**parameters, "RESULTS_JSON": str(results)},
        cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False,
    )
    data = json.loads(results.read_text(encoding="utf-8"))
    assert data["mode"] == "smoke"
    assert data["parameters"]["SEED"] == parameters["SEED"]
    assert data["parameters"]["BATCH_SIZE"] == parameters["BATCH_SIZE"]
    assert 0.0 <= data["test_acc"] <= 1.0
    assert data["train_loss"] > 0 and data["seconds"] > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_code_cells_are_short_and_use_the_analysis_helpers(path):
    """A cell a reader takes in at a glance: at most 25 lines, the homework's reference
    solution (the loop a student writes) included. Feature maps and shapes come from
    course_utils.analysis (capture_activations, module_table), not from forward hooks
    written again in each notebook."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = len(cell.source.splitlines())
        assert lines <= 25, f"cell {index} ({cell.id}) has {lines} lines"
        assert "register_forward_hook" not in cell.source, f"cell {index}: use analysis"


@pytest.mark.notebook
def test_07_runs_alone_in_a_fresh_kernel_without_earlier_results(tmp_path):
    """A student who opens only 07: no results/ of 01-06. The table shows this notebook's
    own two runs and names the notebooks to run first; nothing fails."""
    results = tmp_path / "results"
    out = tmp_path / "07_densenet.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / "07_densenet.ipynb"), str(out),
        parameters={"RESULTS_DIR": str(results), "RESULTS_JSON": str(results / "07.json")},
        cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                   for o in c.outputs)
    assert "not in the table, no smoke-mode results in" in text
    assert "01_design_patterns, 02_lenet, 03_alexnet, 04_vgg, 05_inception, 06_resnet" in text
    assert json.loads((results / "07.json").read_text(encoding="utf-8"))["mode"] == "smoke"


# A call that draws: the course's plotting helpers, matplotlib's show, History.plot.
DRAWS = re.compile(r"^(?!from |import ).*\b(plot_\w+|show_\w+|confusion_matrix|bubble_chart|"
                   r"plt\.show|\.plot)\(", re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_figure_a_cell_draws_is_in_its_saved_output(path):
    """A figure that a cell draws but that never reached the saved output (a Figure returned
    from a cell that does not end with it) is one the student reading the notebook never sees.
    Cells behind the pretrained-weights switch show nothing while the weights are off."""
    nb = nbformat.read(path, as_version=4)
    missing = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
               and DRAWS.search(cell.source) and "pretrained_enabled(" not in cell.source
               and not any("image/png" in out.get("data", {}) for out in cell.outputs)]
    assert not missing, f"{path.name}: cells {missing} draw a figure that is not in the output"
