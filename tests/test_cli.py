"""The command line: version, help, demo."""

from __future__ import annotations

import subprocess
import sys

import rankfold


def run(*args):
    return subprocess.run([sys.executable, "-m", "rankfold", *args], capture_output=True, text=True, timeout=300)


def test_version_and_help():
    out = run("--version")
    assert out.returncode == 0 and rankfold.__version__ in out.stdout
    out = run("--help")
    assert out.returncode == 0 and "demo" in out.stdout


def test_demo_runs_on_small_data():
    out = run("demo", "--n", "3000", "--queries", "50")
    assert out.returncode == 0, out.stderr
    assert "ExactIndex" in out.stdout and "agreement 1.0000" in out.stdout


def test_cmake_dir():
    out = run("--cmake-dir")
    assert out.returncode == 0 and out.stdout.strip() == rankfold.get_cmake_dir()
