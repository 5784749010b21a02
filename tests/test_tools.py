"""Instructor tools (course_tools) on small synthetic notebooks.

The notebooks here follow the course conventions (badges, setup, parameters, a solution
region, a ``check`` cell) but hold trivial code, so that a kernel run takes seconds. The
last tests hold the committed notebooks in notebooks/ to the hygiene rules.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_tools.clean import WIDGET_VIEW, hygiene_problems
from course_tools.cli import main
from course_tools.grade import check_submission, notebook_id, restore_checks, retag_checks
from course_tools.homework import find_exercises, make_homework
from course_tools.kernel import PYTHON_KERNEL, python_kernel
from course_tools.links import (
    COLAB_BADGE,
    KAGGLE_BADGE,
    README_END,
    README_START,
    RepoConfig,
    badges_source,
    edit_pyproject,
    load_toml,
    read_repo_config,
    setup_source,
    sync_problems,
)
from course_tools.notebooks import ToolError

REPO = Path(__file__).resolve().parents[1]
CONFIG = RepoConfig("https://github.com/deep-learning-systems/advanced-cnn-course", "main",
                          "course-utils")

# Exercise 1 is a real (tiny) homework: the student's loop trains LeNet-5 on 1,024 images of
# the bundled MNIST sample, the check and the grader measure the model themselves.
GIVEN_1 = """\
import torch
import torch.nn.functional as F

from course_utils.data import load_data
from course_utils.homework import HomeworkRun
from course_utils.models import get_model

train, test = load_data("sample", batch_size=32, image_size=32, subset=1024, test_subset=512)
torch.manual_seed(0)
model = get_model("lenet5")
run = HomeworkRun(model, train, test)
"""
SOLUTION_1 = """\
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
model.train()
for x, y in run.batches():
    with run.autocast():
        loss = F.cross_entropy(model(x).float(), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""
EXERCISE_1 = GIVEN_1 + "### BEGIN SOLUTION\n" + SOLUTION_1 + "### END SOLUTION"
CHECK_1 = """\
from course_utils.homework import check_homework

check_homework(run, "02_lenet", model)"""
# What a student who wants the points without the work might write instead of the loop.
FABRICATED_1 = """\
class History:
    def __init__(self):
        self.epochs, self.final = [{"epoch": 1}], {"test_acc": 0.99}


history = History()
test_acc = accuracy = 0.99
print("epoch 1/1: train loss 0.0312 acc 0.9901 | test loss 0.0299 acc 0.9900")
"""
EXERCISE_2 = """\
### BEGIN SOLUTION
answer = 6 * 7
### END SOLUTION"""
CHECK_2 = 'assert globals().get("answer") == 42, "answer should be 42"'


def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def course_notebook(name: str = "02_lenet") -> nbformat.NotebookNode:
    """A solution notebook shaped like the course's (two exercises)."""
    nb = new_notebook(cells=[
        tagged(new_markdown_cell(badges_source(CONFIG, name)), "badges"),
        tagged(new_code_cell(setup_source(CONFIG)), "setup"),
        new_markdown_cell("# 5.2 Synthetic\n\n학습 목표: nothing"),
        tagged(new_code_cell(f'EPOCHS = 1\nRESULTS_JSON = "results/{name}.json"'), "parameters"),
        new_markdown_cell("## Homework: train"),
        new_code_cell(EXERCISE_1),
        tagged(new_code_cell(CHECK_1), "check"),
        new_markdown_cell("## Exercise 2"),
        new_code_cell(EXERCISE_2),
        tagged(new_code_cell(CHECK_2), "check"),
        new_code_cell("import json\nfrom pathlib import Path\n\n"
                      "Path(RESULTS_JSON).parent.mkdir(parents=True, exist_ok=True)\n"
                      'Path(RESULTS_JSON).write_text(json.dumps({"test_acc": 0.9}))\n'
                      'Path("side_effect.txt").write_text("written by the notebook")'),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


@pytest.fixture
def root(tmp_path) -> Path:
    """A throwaway repository: the real pyproject.toml, a README with markers, notebooks/."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "README.md").write_text(
        f"# Course\n\nIntro.\n\n{README_START}\nold links\n{README_END}\n\nEnd.\n",
        encoding="utf-8")
    nbformat.write(course_notebook(), root / "notebooks" / "02_lenet.ipynb")
    return root


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# --------------------------------------------------------------------------------------
# homework
# --------------------------------------------------------------------------------------

def test_student_version_keeps_the_given_lines_and_stubs_the_loop():
    student, exercises = make_homework(course_notebook(), "02_lenet")
    assert exercises == 2
    source = student.cells[5].source
    assert source.startswith(GIVEN_1)  # loaders, model and HomeworkRun are given
    assert source.endswith("# YOUR CODE HERE\nraise NotImplementedError()")
    assert "optimizer" not in source and "SOLUTION" not in source


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("0[2-7]_*.ipynb")),
                         ids=lambda p: p.stem)
def test_student_versions_of_the_course_notebooks_keep_the_given_part(path):
    student, exercises = make_homework(nbformat.read(path, as_version=4), path.stem)
    solutions = [i for i, c in enumerate(student.cells) if "solution" in c.metadata.get("tags", [])]
    # 07 has two parts: the batch size from the counted memory, then the loop (as in 02-06)
    assert exercises == len(solutions) == (2 if path.stem == "07_densenet" else 1)
    if path.stem == "07_densenet":
        first = student.cells[solutions[0]]
        assert first.source == "# YOUR CODE HERE\nraise NotImplementedError()"
        assert "training_memory(model, 32" in student.cells[solutions[0] - 1].source
        assert "check_batch_size(" in student.cells[solutions[0] + 1].source
    at = solutions[-1]
    cell = student.cells[at]
    assert "HomeworkRun(" in student.cells[at - 1].source  # the given cell just before
    assert cell.source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert "zero_grad" not in cell.source and "torch.optim.SGD" not in cell.source


@pytest.mark.notebook
def test_the_untouched_student_version_of_02_fails_its_check(tmp_path):
    student, _ = make_homework(
        nbformat.read(REPO / "notebooks" / "02_lenet.ipynb", as_version=4), "02_lenet")
    nbformat.write(student, tmp_path / "02_lenet.ipynb")
    report = check_submission(tmp_path / "02_lenet.ipynb", REPO, smoke=True, timeout=300)
    assert report.exit_code == 1
    assert "still raises NotImplementedError" in report.text
    assert "0 optimizer steps" in report.text  # the grader measured the untrained model


def test_student_version_refuses_unbalanced_markers():
    for broken in ("### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION"):
        nb = course_notebook()
        nb.cells[8].source = broken
        with pytest.raises(ToolError, match="cell 9"):
            make_homework(nb, "02_lenet")


def test_homework_clears_outputs_keeps_checks_and_cleans_metadata(root, tmp_path, capsys):
    path = root / "notebooks" / "02_lenet.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[5].outputs = [new_output("stream", name="stdout", text="trained\n")]
    nb.cells[5].execution_count = 3
    nb.cells[5].metadata["papermill"] = {"duration": 1.0}
    nb.metadata["papermill"] = {"parameters": {}}
    nb.metadata["widgets"] = {"state": {}}
    nb.cells.append(new_markdown_cell("Answer:\n### BEGIN SOLUTION\nbecause\n### END SOLUTION"))
    nbformat.write(nb, path)

    code, out = run_cli(capsys, "--root", root, "homework", "--out", tmp_path / "hw")
    assert code == 0 and "2 exercise(s)" in out
    student = nbformat.read(tmp_path / "hw" / "02_lenet.ipynb", as_version=4)
    sources = "\n".join(c.source for c in student.cells)
    assert "SOLUTION" not in sources and "optimizer" not in sources and "6 * 7" not in sources
    assert sources.count("raise NotImplementedError()") == 2
    assert student.cells[-1].source == "Answer:\nYOUR ANSWER HERE"
    assert [c.source for c in student.cells if "check" in c.metadata.get("tags", [])] \
        == [CHECK_1, CHECK_2]
    assert all(c.outputs == [] and c.execution_count is None
               for c in student.cells if c.cell_type == "code")
    assert "papermill" not in student.metadata and "widgets" not in student.metadata
    assert all("papermill" not in c.metadata for c in student.cells)
    assert student.metadata["course"]["id"] == "02_lenet"
    assert [i for i, c in enumerate(student.cells) if "solution" in c.metadata.get("tags", [])] \
        == [5, 8]
    assert nbformat.read(path, as_version=4) == nb  # the source notebook is not touched


def test_student_version_stops_at_first_exercise_under_papermill(tmp_path):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    student, _ = make_homework(course_notebook(), "02_lenet")
    nbformat.write(student, tmp_path / "student.ipynb")
    with pytest.raises(PapermillExecutionError) as err:
        pm.execute_notebook(str(tmp_path / "student.ipynb"), str(tmp_path / "out.ipynb"),
                            kernel_name=PYTHON_KERNEL, kernel_manager_class=python_kernel(),
                            cwd=str(tmp_path), progress_bar=False)
    assert err.value.ename == "NotImplementedError"
    assert err.value.cell_index == 5  # exercise 1, after setup and parameters ran fine
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    setup = next(c for c in executed.cells if "setup" in c.metadata.get("tags", []))
    assert "course_utils 0." in "".join(o.get("text", "") for o in setup.outputs)
    assert not (tmp_path / "side_effect.txt").exists()  # nothing after the exercise ran


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------

def test_check_passes_a_good_submission_in_a_temporary_folder(root, tmp_path, capsys):
    submission = tmp_path / "submitted" / "02_lenet_kim.ipynb"
    submission.parent.mkdir()
    shutil.copy(root / "notebooks" / "02_lenet.ipynb", submission)
    before = submission.read_bytes()
    code, out = run_cli(capsys, "--root", root, "check", submission, "--timeout", 60)
    assert code == 0, out
    assert out.count("PASSED") == 2 and "FAILED" not in out
    assert "the check passed and the grader's measurement agrees" in out
    measured = next(line for line in out.splitlines() if "measured by the grader" in line)
    accuracy = float(measured.split("test accuracy ")[1].split("%")[0])
    assert 60 <= accuracy <= 100, measured  # LeNet-5 after 32 steps on the MNIST sample
    assert "32 optimizer steps (one epoch: 32)" in measured
    assert "1,024 training images" in measured
    assert "Traceback" not in out
    # Everything the notebook wrote (results/, side_effect.txt) went to the temporary folder.
    assert sorted(p.name for p in submission.parent.iterdir()) == ["02_lenet_kim.ipynb"]
    assert submission.read_bytes() == before
    assert sorted(p.name for p in (root / "notebooks").iterdir()) == ["02_lenet.ipynb"]
    assert not (REPO / "notebooks" / "side_effect.txt").exists()
    assert not (Path.cwd() / "side_effect.txt").exists()


def test_check_reports_each_exercise_on_a_partly_done_submission(root, tmp_path):
    student, _ = make_homework(course_notebook(), "02_lenet")
    student.cells[8].source = "answer = 42"  # exercise 2 done, exercise 1 left as the stub
    student.cells[-1].source = 'raise ValueError("boom")'  # a later cell that raises
    submission = tmp_path / "homework.ipynb"  # file name says nothing: metadata identifies it
    nbformat.write(student, submission)

    report = check_submission(submission, root, timeout=60,
                                    save_executed=tmp_path / "executed.ipynb")
    assert report.exit_code == 1
    lines = report.text.splitlines()
    exercise_1 = next(line for line in lines if "exercise 1" in line)
    exercise_2 = next(line for line in lines if "exercise 2" in line)
    assert "FAILED" in exercise_1 and "NotImplementedError" in exercise_1
    assert "PASSED" in exercise_2
    assert "ValueError: boom" in report.text and "cell 11" in report.text
    assert "1 of 2 exercise(s) passed" in report.text
    assert "Traceback" not in report.text
    # The check cell itself fails on the stub (and passed on the solution above).
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    errors = [o for o in executed.cells[6].outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "AssertionError"
    assert "optimizer.step()이 한 번도 불리지 않았습니다" in errors[0].evalue
    assert not [o for o in executed.cells[9].outputs if o.output_type == "error"]


def submission_with_loop(root, tmp_path, loop: str, name: str = "02_lenet.ipynb") -> Path:
    """The student version with ``loop`` written into exercise 1 (exercise 2 done)."""
    student, _ = make_homework(course_notebook(), "02_lenet")
    student.cells[5].source = GIVEN_1 + loop
    student.cells[8].source = "answer = 42"
    path = tmp_path / name
    nbformat.write(student, path)
    return path


def test_grade_fails_a_fabricated_result_and_measures_the_model_itself(root, tmp_path, capsys):
    good = submission_with_loop(root, tmp_path, SOLUTION_1, "good.ipynb")
    fake = submission_with_loop(root, tmp_path, FABRICATED_1, "fake.ipynb")
    code, out = run_cli(capsys, "--root", root, "grade", good, fake, "--timeout", 120)
    assert code == 1, out
    good_report, fake_report = out.split("Checked fake.ipynb")
    assert "Result: 2 of 2 exercise(s) passed." in good_report
    fake_lines = fake_report.splitlines()
    exercise_1 = next(line for line in fake_lines if "exercise 1" in line)
    assert "FAILED" in exercise_1 and "optimizer.step()" in exercise_1
    measured = next(line for line in fake_lines if "measured by the grader" in line)
    assert "0 optimizer steps" in measured and "0 training images" in measured
    accuracy = float(measured.split("test accuracy ")[1].split("%")[0])
    assert accuracy < 40, measured  # an untrained LeNet-5, not the 99 % the notebook claims
    assert "Result: 1 of 2 exercise(s) passed" in fake_report
    assert "Graded 2 submission(s): 1 passed, 1 did not." in out


def test_grade_fails_a_loop_without_optimizer_step_or_zero_grad(root, tmp_path):
    no_step = SOLUTION_1.replace("    optimizer.step()\n", "")
    report = check_submission(submission_with_loop(root, tmp_path, no_step), root,
                                    timeout=120)
    assert report.exit_code == 1
    assert "0 optimizer steps" in report.text and "optimizer.step()" in report.text

    no_zero_grad = SOLUTION_1.replace("    optimizer.zero_grad()\n", "")
    report = check_submission(submission_with_loop(root, tmp_path, no_zero_grad), root,
                                    timeout=120)
    assert report.exit_code == 1
    assert "optimizer.zero_grad()가 빠졌습니다" in report.text


def test_grader_runs_student_code_without_the_instructors_environment(root, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_TOKEN", "secret-123")
    spy = SOLUTION_1 + ('import os, pathlib\n'
                        'print("HOME=" + os.environ["HOME"])\n'
                        'print("TOKEN=" + os.environ.get("INSTRUCTOR_TOKEN", "none"))\n'
                        'print("CWD=" + os.getcwd())\n'
                        'pathlib.Path("~/written.txt").expanduser().write_text("x")\n')
    executed = tmp_path / "executed.ipynb"
    report = check_submission(submission_with_loop(root, tmp_path, spy), root,
                                    timeout=120, save_executed=executed)
    assert report.exit_code == 0, report.text
    nb = nbformat.read(executed, as_version=4)
    printed = "".join(o.get("text", "") for o in nb.cells[5].outputs)
    home = printed.split("HOME=")[1].split()[0]
    assert "TOKEN=none" in printed
    # The saved copy shows paths relative to the executed notebook (machine paths are
    # cleaned): HOME was the throwaway folder's home/, beside its notebooks/.
    assert home == "../home", printed
    assert not (Path.home() / "written.txt").exists()


def test_check_stops_a_hanging_cell_and_says_so(root, tmp_path):
    nb = course_notebook()
    nb.cells.insert(7, new_code_cell("import time\n\ntime.sleep(600)"))
    submission = tmp_path / "02_lenet.ipynb"
    nbformat.write(nb, submission)
    report = check_submission(submission, root, timeout=20)
    assert report.exit_code == 1
    assert "cell 8 (`import time`) did not finish within the per-cell time limit of 20 s" \
        in report.text
    assert "exercise 1" in report.text and "exercise 2" in report.text
    assert "never run" in report.text
    assert "measured by the grader: test accuracy" in report.text  # right after exercise 1
    assert "Traceback" not in report.text


@pytest.mark.parametrize("content, expected", [
    ("this is not json {", "not valid JSON"),
    ('{"name": "a list of cells is missing"}', "not a Jupyter notebook"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary file"),
])
def test_check_refuses_files_that_are_not_notebooks(root, tmp_path, capsys, content, expected):
    submission = tmp_path / "02_lenet.ipynb"
    if isinstance(content, bytes):
        submission.write_bytes(content)
    else:
        submission.write_text(content, encoding="utf-8")
    code, out = run_cli(capsys, "--root", root, "check", submission)
    assert code == 2
    assert expected in out and "Download .ipynb" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_check_refuses_a_notebook_that_is_not_a_course_notebook(root, tmp_path, capsys):
    submission = tmp_path / "my_experiments.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print('hello')")]), submission)
    code, out = run_cli(capsys, "--root", root, "check", submission)
    assert code == 2
    assert "not one of the course notebooks" in out and "02_lenet" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1

    code, out = run_cli(capsys, "--root", root, "check", tmp_path / "missing.ipynb")
    assert code == 2 and "there is no such file" in out

    nbformat.write(course_notebook("03_alexnet"), tmp_path / "03_alexnet.ipynb")
    code, out = run_cli(capsys, "--root", root, "check", tmp_path / "03_alexnet.ipynb",
                        "--expect", "02_lenet")
    assert code == 2 and "this is the course notebook 03_alexnet, but 02_lenet was expected" in out


def test_check_refuses_a_submission_whose_check_cells_were_deleted(root, tmp_path):
    nb = course_notebook()
    del nb.cells[9]  # the second check cell
    submission = tmp_path / "02_lenet.ipynb"
    nbformat.write(nb, submission)
    report = check_submission(submission, root)
    assert report.exit_code == 2
    assert "1 check cell(s), the course notebook has 2" in report.text

    for cell in nb.cells:  # an editor that drops all tags: nothing to grade, no reference
        cell.metadata.pop("tags", None)
    nbformat.write(nb, submission)
    report = check_submission(submission, root.parent / "elsewhere")
    assert report.exit_code == 2 and "has no cell tagged 'check'" in report.text


def test_check_finds_untagged_check_cells_and_restores_edited_ones(root):
    nb = course_notebook()
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    nb.cells[9].source = "pass  # my own check"
    assert find_exercises(nb) == []
    reference = nbformat.read(root / "notebooks" / "02_lenet.ipynb", as_version=4)
    retag_checks(nb, reference)
    exercises = find_exercises(nb)
    assert [e.check for e in exercises] == [6]  # the edited one is not recognised by source
    nb.cells[9].metadata["tags"] = ["check"]
    exercises = find_exercises(nb)
    notes = restore_checks(nb, exercises, root / "notebooks" / "02_lenet.ipynb")
    assert nb.cells[9].source == CHECK_2
    assert notes == ["exercise 2: the check cell was edited; the course's original check was used"]


def test_notebook_is_identified_by_metadata_then_badges_then_file_name():
    nb = course_notebook("03_alexnet")
    assert notebook_id(nb, "whatever.ipynb") == "03_alexnet"  # badge link
    nb.metadata["course"] = {"id": "04_vgg"}
    assert notebook_id(nb, "whatever.ipynb") == "04_vgg"
    bare = new_notebook(cells=[new_code_cell("x = 1")])
    assert notebook_id(bare, "06_resnet (1).ipynb") == "06_resnet"
    assert notebook_id(bare, "homework.ipynb") is None


def test_find_exercises_pairs_each_check_with_its_solution_cell():
    exercises = find_exercises(course_notebook())
    assert [(e.solution, e.check, e.title) for e in exercises] == [
        (5, 6, "Homework: train"), (8, 9, "Exercise 2")]


# --------------------------------------------------------------------------------------
# set-repo-url / sync
# --------------------------------------------------------------------------------------

def test_set_repo_url_rewrites_pyproject_badges_setup_and_readme(root, capsys):
    original = (root / "pyproject.toml").read_text(encoding="utf-8")
    code, out = run_cli(capsys, "--root", root, "set-repo-url",
                        "git@github.com:someone/cnn-course.git", "--ref", "v2025.1")
    assert code == 0, out

    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    data = load_toml(text)
    assert data["project"]["urls"]["Repository"] == "https://github.com/someone/cnn-course"
    assert data["tool"]["course"]["ref"] == "v2025.1"
    assert data["project"]["dependencies"] == load_toml(original)["project"]["dependencies"]
    old_line = 'Repository = "https://github.com/deep-learning-systems/advanced-cnn-course"'
    assert old_line in original and 'ref = "main"' in original
    # only the two lines change: the URL and the ref in [tool.course]
    assert text == original.replace(
        old_line, 'Repository = "https://github.com/someone/cnn-course"').replace(
        'ref = "main"', 'ref = "v2025.1"')

    nb = nbformat.read(root / "notebooks" / "02_lenet.ipynb", as_version=4)
    badges, setup = nb.cells[0].source, nb.cells[1].source
    blob = "github.com/someone/cnn-course/blob/v2025.1/notebooks/02_lenet.ipynb"
    assert "(https://colab.research.google.com/github/someone/cnn-course/blob/v2025.1/" \
           "notebooks/02_lenet.ipynb)" in badges
    assert f"(https://kaggle.com/kernels/welcome?src=https://{blob})" in badges
    assert COLAB_BADGE in badges and KAGGLE_BADGE in badges
    assert '%pip install -q "course-utils @ git+https://github.com/someone/cnn-course@v2025.1"' \
        in setup
    assert nb.metadata["course"]["id"] == "02_lenet"

    readme = (root / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# Course\n\nIntro.\n\n") and readme.endswith("\n\nEnd.\n")
    assert "old links" not in readme
    assert "[5.2 Synthetic](notebooks/02_lenet.ipynb)" in readme
    assert f"https://kaggle.com/kernels/welcome?src=https://{blob}" in readme
    assert "git clone --branch v2025.1 https://github.com/someone/cnn-course.git" in readme

    # sync from the new pyproject changes nothing more, and the URL is kept.
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out = run_cli(capsys, "--root", root, "sync")
    assert code == 0 and "up to date" in out and "README.md: unchanged" in out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_sync_adds_missing_cells_and_set_repo_url_rejects_bad_input(root, capsys):
    path = root / "notebooks" / "02_lenet.ipynb"
    nb = nbformat.read(path, as_version=4)
    del nb.cells[:2]  # a freshly written notebook without badges and setup
    nbformat.write(nb, path)
    code, out = run_cli(capsys, "--root", root, "sync")
    assert code == 0 and "added badges cell" in out and "added setup cell" in out
    synced = nbformat.read(path, as_version=4)
    assert synced.cells[0].metadata["tags"] == ["badges"]
    assert synced.cells[1].source == setup_source(CONFIG)
    assert sync_problems(synced, CONFIG, "02_lenet") == []

    before = (root / "pyproject.toml").read_bytes()
    for bad in (["https://gitlab.com/a/b"], ["https://github.com/a/b", "--ref", "bad ref"]):
        code, out = run_cli(capsys, "--root", root, "set-repo-url", *bad)
        assert code == 2 and out.startswith("error: ") and "Traceback" not in out
    assert (root / "pyproject.toml").read_bytes() == before


def test_setup_cell_passes_ruff_and_badges_are_plain_markdown(tmp_path):
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment")
    path = tmp_path / "02_lenet.ipynb"
    nbformat.write(course_notebook(), path)
    result = subprocess.run([str(ruff), "check", "--no-cache", "--config",
                             str(REPO / "pyproject.toml"), str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    setup = setup_source(CONFIG)
    assert "    %pip install" in setup  # only inside the Colab/Kaggle branch
    assert all(len(line) <= 100 for line in setup.splitlines() if "%pip" not in line)


# --------------------------------------------------------------------------------------
# run / clean / hygiene / html
# --------------------------------------------------------------------------------------

def test_run_executes_cleans_and_names_the_failing_cell(root, capsys):
    ok = new_notebook(cells=[new_markdown_cell("# 5.1 OK"),
                             new_code_cell("import os\n\nprint(os.getcwd())"),
                             new_code_cell("1 + 1"),
                             new_code_cell("from course_utils.env import progress_bar\n\n"
                                           "for _ in progress_bar(iterable=range(50), "
                                           "desc='epoch 1/1', mininterval=0):\n    pass")])
    nbformat.write(ok, root / "notebooks" / "01_design_patterns.ipynb")
    broken = new_notebook(cells=[new_markdown_cell("# 5.2 Broken"), new_code_cell("x = 1"),
                                 new_code_cell('raise RuntimeError("broken on purpose")'),
                                 new_code_cell("y = 2")])
    broken_path = root / "notebooks" / "02_lenet.ipynb"
    nbformat.write(broken, broken_path)
    before = broken_path.read_bytes()
    hanging = new_notebook(cells=[new_code_cell("x = 1"),
                                  new_code_cell("import time\n\ntime.sleep(60)")])
    nbformat.write(hanging, root / "notebooks" / "03_alexnet.ipynb")

    code, out = run_cli(capsys, "--root", root, "run", "--no-sync", "--timeout", 5)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("01_design_patterns.ipynb") and lines[0].endswith(" ok")
    assert lines[1].startswith("02_lenet.ipynb") and lines[1].endswith("FAILED")
    assert "02_lenet.ipynb: cell 3 (In [2]: `raise RuntimeError(\"broken on purpose\")`) " \
           "raised RuntimeError: broken on purpose" in out
    assert "03_alexnet.ipynb: cell 2 (`import time`) did not finish within the time limit " \
           "of 5 s" in out
    assert "Traceback" not in out
    assert lines[-1].startswith("total") and lines[-1].endswith("1 ok, 2 failed")
    assert broken_path.read_bytes() == before  # a failed run leaves the notebook as it was

    executed = nbformat.read(root / "notebooks" / "01_design_patterns.ipynb", as_version=4)
    assert [c.execution_count for c in executed.cells if c.cell_type == "code"] == [1, 2, 3]
    assert executed.cells[1].outputs[0].text.strip() == "."  # cwd notebooks/, path cleaned
    # the progress bar is saved as one line of text in its final state, not as a widget
    bar, = executed.cells[3].outputs
    assert bar.output_type == "stream" and bar.text.startswith("epoch 1/1: 100%")
    assert bar.text.count("\n") == 1 and "\r" not in bar.text
    assert hygiene_problems(executed) == []


def test_clean_strips_papermill_widgets_and_machine_paths(tmp_path, capsys):
    notebook_dir = tmp_path / "notebooks"
    nb = new_notebook(cells=[new_code_cell("print(stuff)", execution_count=1, outputs=[
        new_output("stream", name="stdout",
                   text=f"saved {notebook_dir}/results/a.json\nfrom {notebook_dir.parent}/data"
                        f"\nhome {Path.home()}/x\n"),
        new_output("display_data", data={"text/plain": "bar 50%",
                                          WIDGET_VIEW: {"model_id": "unknown"}}),
        # a text progress bar as a kernel streams it: every refresh overwrites the line
        new_output("stream", name="stdout", text="epoch 1/1:   0%|          | 0/3\r"),
        new_output("stream", name="stdout", text="epoch 1/1:  67%|######6   | 2/3\r"),
        new_output("stream", name="stdout", text="epoch 1/1: 100%|##########| 3/3\n"),
    ])])
    nb.metadata["papermill"] = {"parameters": {}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells[0].metadata.update(papermill={"duration": 0.1}, execution={"x": 1}, tags=[])
    path = notebook_dir / "01_design_patterns.ipynb"
    notebook_dir.mkdir()
    nbformat.write(nb, path)
    assert len(hygiene_problems(nb)) >= 5

    code, out = run_cli(capsys, "clean", path)
    assert code == 0 and "cleaned" in out
    cleaned = nbformat.read(path, as_version=4)
    assert hygiene_problems(cleaned) == []
    assert cleaned.cells[0].outputs[0].text == \
        "saved results/a.json\nfrom ../data\nhome ~/x\n"
    assert cleaned.cells[0].outputs[1].data == {"text/plain": "bar 50%"}
    assert cleaned.cells[0].outputs[2].text == "epoch 1/1: 100%|##########| 3/3\n"
    assert len(cleaned.cells[0].outputs) == 3
    assert cleaned.cells[0].metadata == {}


def executed_notebook() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# 5.3 Executed"),
        new_code_cell("a = 1", execution_count=1),
        new_code_cell("", execution_count=None),  # empty cells are not executed
        new_code_cell("print(a)", execution_count=2,
                      outputs=[new_output("stream", name="stdout", text="1\n")]),
    ])


@pytest.mark.parametrize("spoil, problem", [
    (lambda nb: nb.metadata.update(papermill={}), "notebook metadata has 'papermill'"),
    (lambda nb: nb.metadata.update(widgets={}), "notebook metadata has 'widgets'"),
    (lambda nb: nb.cells[1].metadata.update(papermill={}), "cell metadata has 'papermill'"),
    (lambda nb: nb.cells[3].outputs.append(
        new_output("error", ename="ValueError", evalue="bad", traceback=[])),
     "error output ValueError: bad"),
    (lambda nb: nb.cells[3].outputs.append(
        new_output("stream", name="stdout", text="data in /home/alice/data\n")),
     "machine path in output"),
    (lambda nb: nb.cells[3].outputs.append(
        new_output("execute_result", data={"text/plain": "'C:\\\\Users\\\\me'"},
                   execution_count=2)), "machine path in output"),
    (lambda nb: nb.cells[3].outputs.append(
        new_output("display_data", data={"text/html": "<p>/tmp/x.png</p>"})),
     "machine path in output"),
    (lambda nb: setattr(nb.cells[3], "execution_count", 5), "execution count 5, expected 2"),
    (lambda nb: setattr(nb.cells[1], "execution_count", 2), "execution count 2, expected 1"),
    (lambda nb: setattr(nb.cells[3], "execution_count", None), "not executed"),
    (lambda nb: [setattr(c, "execution_count", None) for c in nb.cells[1:]],
     "has not been executed"),
    (lambda nb: nb.cells[3].outputs.append(
        new_output("display_data", data={WIDGET_VIEW: {}, "text/plain": "x"})),
     "widget output"),
])
def test_hygiene_catches_each_problem(spoil, problem):
    nb = executed_notebook()
    assert hygiene_problems(nb) == []
    spoil(nb)
    problems = hygiene_problems(nb)
    assert any(problem in p for p in problems), problems


def test_hygiene_ignores_urls_that_contain_home():
    nb = executed_notebook()
    nb.cells[3].outputs[0].text = "see https://example.org/home/page and ~/data\n"
    assert hygiene_problems(nb) == []


def test_html_export_writes_a_page_per_notebook_and_an_index(tmp_path, capsys):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nbformat.write(executed_notebook(), nb_dir / "03_alexnet.ipynb")
    code, out = run_cli(capsys, "html", "--out", tmp_path / "site", nb_dir / "03_alexnet.ipynb")
    assert code == 0
    page = (tmp_path / "site" / "03_alexnet.html").read_text(encoding="utf-8")
    assert "5.3 Executed" in page and "print" in page
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'href="03_alexnet.html"' in index


def test_pyproject_editing_keeps_other_lines():
    text = '[project]\nname = "x"\n\n[project.urls]\nHomepage = "h"\n\n[tool.ruff]\nline = 1\n'
    edited = edit_pyproject(text, "https://github.com/a/b", "main")
    data = load_toml(edited)
    assert data["project"]["urls"] == {"Homepage": "h", "Repository": "https://github.com/a/b"}
    assert data["tool"] == {"ruff": {"line": 1}, "course": {"ref": "main"}}
    # the lines that were there stay as they were: only the two new ones are added
    assert edited.replace('Repository = "https://github.com/a/b"\n', "").replace(
        '\n[tool.course]\nref = "main"\n', "") == text
    again = edit_pyproject(edited, "https://github.com/a/b", "v1")
    assert load_toml(again)["tool"]["course"]["ref"] == "v1"
    assert again.replace('ref = "v1"', 'ref = "main"') == edited


# --------------------------------------------------------------------------------------
# The committed notebooks
# --------------------------------------------------------------------------------------

COMMITTED = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", COMMITTED or [None], ids=lambda p: p.name if p else "none")
def test_committed_notebooks_are_clean(path):
    if path is None:
        pytest.skip("no notebooks committed yet")
    problems = hygiene_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", COMMITTED or [None], ids=lambda p: p.name if p else "none")
def test_committed_notebooks_link_to_the_configured_repository(path):
    if path is None:
        pytest.skip("no notebooks committed yet")
    config = read_repo_config(REPO)
    problems = sync_problems(nbformat.read(path, as_version=4), config, path.stem)
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_a_rehearsal_runs_full_mode_on_two_batches_and_leaves_the_notebook(root, capsys):
    rehearsed = new_notebook(cells=[
        tagged(new_code_cell('RESULTS_JSON = "results/02_lenet.json"'), "parameters"),
        new_code_cell("from course_utils.data import load_data\n"
                      "from course_utils.env import expect, run_mode, write_results\n"
                      "from course_utils.models import get_model\n"
                      "from course_utils.train import fit\n"
                      "train, test = load_data('mnist', batch_size=64, image_size=32)\n"
                      "history = fit(get_model('lenet5'), train, test, progress=False)\n"
                      "assert run_mode() == 'full' and train.num_samples == 128\n"
                      "expect(history.final['test_acc'] > 0.99, 'LeNet-5 learns', train)\n"
                      "write_results(RESULTS_JSON, {'test_acc': history.final['test_acc']})")])
    rehearsed.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}
    path = root / "notebooks" / "02_lenet.ipynb"
    nbformat.write(rehearsed, path)
    (root / "course_utils").mkdir()
    before = path.read_bytes()

    code, out = run_cli(capsys, "--root", root, "run", "--rehearse", "--precision", "fp16")
    assert code == 0, out
    assert "02_lenet.ipynb" in out and " ok  (1 outcome claims printed, not checked; 1 did " \
        "not hold on 2 batches)" in out
    assert path.read_bytes() == before  # the notebook itself is untouched
    executed = nbformat.read(root / "build" / "rehearsal" / "02_lenet.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    assert "[not checked: a rehearsal: full-mode settings on a couple of batches] LeNet-5 " \
           "learns: does NOT hold in this run" in text
    assert (root / "build" / "rehearsal" / "results" / "02_lenet.json").is_file()
    assert not (root / "notebooks" / "results").exists()
    plan = json.loads((root / "course_utils" / "full_runs.json").read_text())
    [row] = plan["02_lenet"]  # the one fit call, as the full run would make it
    assert (row["model"], row["batch_size"], row["train_images"], row["steps"]) == (
        "LeNet5", 64, 60_000, 938)
