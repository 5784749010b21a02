"""The repository's own promises: environment.yml mirrors pyproject.toml, CI runs the
README's test command, and pytest collects every notebook exactly once."""

import re
import subprocess
import sys

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_installs_what_pyproject_declares(repo_root):
    project = _pyproject(repo_root)["project"]
    declared = set(project["dependencies"])
    for requirements in project["optional-dependencies"].values():
        # "course-utils[notebooks]" inside an extra refers to the package itself
        declared |= {r for r in requirements if not r.startswith(project["name"])}

    environment = yaml.safe_load((repo_root / "environment.yml").read_text(encoding="utf-8"))
    assert any(str(d).startswith("python=3.11") for d in environment["dependencies"])
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-e")}

    assert {_normalise(r) for r in listed} == {_normalise(r) for r in declared}
    assert "-e ." in pip_section


def test_no_upper_pins_on_torch(repo_root):
    """Colab and Kaggle preinstall torch; an upper bound would make pip fight them."""
    for requirement in _pyproject(repo_root)["project"]["dependencies"]:
        assert "<" not in requirement and "==" not in requirement, requirement


def test_ci_runs_both_readme_commands_and_the_rehearsal(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme and "make notebooks" in readme and "make rehearse" in readme
    ci = (repo_root / ".ci" / "run").read_text(encoding="utf-8")
    parts = re.findall(r'^part "[^"]+" (make \w+)$', ci, re.M)
    assert parts == ["make test", "make notebooks", "make rehearse"]  # timed, in this order
    assert re.search(r"^unset COURSE_DATA ", ci, re.M)  # no data: the sample fallback


def test_every_notebook_is_collected_exactly_once(repo_root):
    notebooks = sorted(p.name for p in (repo_root / "notebooks").glob("[0-9]*.ipynb"))
    assert notebooks, "no notebooks in notebooks/"
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q"],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    ).stdout
    collected = [line.split("::")[0] for line in listing.splitlines() if ".ipynb::" in line]
    files = sorted(set(collected))
    assert [f.split("/")[-1] for f in files] == notebooks
    assert all(f.startswith("notebooks/") for f in files), files


def test_grading_is_one_make_command_and_nbgrader_is_instructor_only(repo_root):
    makefile = (repo_root / "Makefile").read_text(encoding="utf-8")
    assert "\ngrade: $(VENV)/.installed-instructor" in makefile
    assert "course_tools grade $(SMOKE_FLAG) $(SUBMISSIONS)" in makefile
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert 'make grade SUBMISSIONS="a.ipynb b.ipynb"' in readme
    assert "채점은 학생의 코드를 실행합니다" in readme  # grading runs student code: said plainly
    project = _pyproject(repo_root)["project"]
    assert not any("nbgrader" in r for r in project["dependencies"])  # students never need it
    assert any(r.startswith("nbgrader") for r in project["optional-dependencies"]["instructor"])
