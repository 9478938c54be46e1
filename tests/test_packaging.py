"""Packaging: requirements.txt and pyproject.toml agree, and `pip install` gives a working `deepfake-detector`
command outside the project folder."""
import os
import shutil
import site
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from conftest import PROJECT_ROOT, write_tone
from tiny_detector import save_tiny_detector

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]


def requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def normalised(requirement: str) -> tuple[str, str]:
    parsed = Requirement(requirement)
    return parsed.name.lower().replace("_", "-"), str(parsed.specifier)


def test_requirements_txt_is_pyproject_dependencies_plus_every_extra():
    from_requirements = [normalised(line) for line in requirement_lines((PROJECT_ROOT / "requirements.txt").read_text())]
    declared = PYPROJECT["dependencies"] + [requirement for extra in PYPROJECT["optional-dependencies"].values()
                                            for requirement in extra]
    # Extras that pull in other extras of this package ("deepfake-detector[demo,serve]") add no new range.
    from_pyproject = [normalised(line) for line in declared if Requirement(line).name != PYPROJECT["name"]]
    assert len(from_requirements) == len(set(from_requirements)), "a package is listed twice in requirements.txt"
    assert sorted(from_requirements) == sorted(from_pyproject)
    assert all(specifier for _, specifier in from_pyproject), "every dependency needs a version range"


def test_every_extra_named_by_the_test_extra_exists():
    extras = PYPROJECT["optional-dependencies"]
    for requirement in map(Requirement, extras["test"]):
        if requirement.name == PYPROJECT["name"]:
            assert requirement.extras <= set(extras) - {"test"}


def copy_project_sources(destination):
    """The files a build reads, so setuptools' build/ and egg-info folders land in a scratch copy."""
    destination.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", destination)
    shutil.copy(PROJECT_ROOT / "README.md", destination)
    shutil.copytree(PROJECT_ROOT / "src", destination / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return destination


@pytest.mark.slow
def test_pip_install_gives_a_console_command_that_predicts_outside_the_project(tmp_path):
    pytest.importorskip("setuptools", reason="building the package offline (--no-build-isolation) needs setuptools")
    # A throwaway venv that sees this environment's packages through a .pth file, so `pip install --no-deps`
    # builds and installs only this package (seconds, offline) while its dependencies come from here.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    venv_python = venv / "bin" / "python"
    venv_site = subprocess.run([str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(venv_site, "zz_shared_environment.pth"), "w") as pth:
        pth.write("\n".join(site.getsitepackages()) + "\n")
    project = copy_project_sources(tmp_path / "project")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    install = subprocess.run([str(venv_python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                              "--no-index", "--quiet", str(project)], capture_output=True, text=True, env=env,
                             timeout=300)
    assert install.returncode == 0, install.stderr
    command = venv / "bin" / "deepfake-detector"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.run([str(venv_python), "-c", "import deepfake_detector; print(deepfake_detector.__file__)"],
                           capture_output=True, text=True, env=env, cwd=outside, check=True).stdout
    assert where.startswith(venv_site), where  # the installed copy, not the source tree
    assert os.path.isfile(os.path.join(venv_site, "deepfake_detector", "serve", "web", "index.html"))

    usage = subprocess.run([str(command), "--help"], capture_output=True, text=True, env=env, cwd=outside,
                           timeout=120)
    assert usage.returncode == 0 and "predict" in usage.stdout and "demo-data" in usage.stdout
    predict_help = subprocess.run([str(command), "predict", "--help"], capture_output=True, text=True, env=env,
                                  cwd=outside, timeout=120)
    assert predict_help.returncode == 0 and "--model" in predict_help.stdout

    model = save_tiny_detector(tmp_path / "models")
    write_tone(outside / "clip.wav", 2.0, noise=0.05)
    result = subprocess.run([str(command), "predict", "clip.wav", "--model", str(model), "--json", "out.json"],
                            capture_output=True, text=True, env=env, cwd=outside, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (outside / "out.json").is_file() and "clip.wav" in result.stdout
