"""README's examples, run as a reader would run them, so README cannot drift
from the code.

README marks the fenced blocks this test runs with an HTML comment (invisible
on GitHub) on the line before the fence:

  <!-- tested: python -->   a Python program, run with this interpreter in an
                            empty folder (skipped when it imports torch and
                            torch is missing)
  <!-- tested: output -->   the exact stdout of the python block before it
  <!-- tested: console -->  `$ command` lines, each followed by its exact
                            stdout; the commands of one block share one empty
                            folder and run in bash with the mcgq CLI on PATH

In expected output, `...` stands for any text within a line (paths, dates).
The CLI is $MCGQ_CLI (scripts/test.sh sets it to build-ci's), else the first
of build-ci, build-demo, build, build-host under the source root that has
tools/mcgq; console blocks are skipped, saying so, when there is none.
"""

import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
README = os.environ.get("MCGQ_README", os.path.join(ROOT, "README.md"))
MARK = re.compile(r"^<!-- tested: (python|output|console) -->\s*$")
FENCE = re.compile(r"^(```+)\s*(\S*)\s*$")
TIMEOUT_S = 300


def marked_blocks(path):
    """[(kind, line number of the fence, [lines])] of the marked blocks."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        i += 1
        if not m:
            continue
        while i < len(lines) and not lines[i].strip():
            i += 1
        opening = FENCE.match(lines[i]) if i < len(lines) else None
        if not opening:
            raise AssertionError("%s:%d: '%s' is not followed by a fenced block"
                                 % (path, i, m.group(0)))
        start = i + 1
        end = start
        while end < len(lines) and lines[end].rstrip() != opening.group(1):
            end += 1
        if end == len(lines):
            raise AssertionError("%s:%d: fenced block never closed" % (path, start))
        blocks.append((m.group(1), start, lines[start:end]))
        i = end + 1
    return blocks


def python_cases(blocks):
    """[(line, code, expected stdout lines or None)]."""
    cases = []
    for index, (kind, line, body) in enumerate(blocks):
        if kind == "output" and (index == 0 or blocks[index - 1][0] != "python"):
            raise AssertionError("README line %d: an output block must follow a python block"
                                 % line)
        if kind != "python":
            continue
        expected = None
        if index + 1 < len(blocks) and blocks[index + 1][0] == "output":
            expected = blocks[index + 1][2]
        cases.append((line, "\n".join(body) + "\n", expected))
    return cases


def console_steps(body, line):
    """[(command, expected stdout lines)] of a console block."""
    steps = []
    for text in body:
        if text.startswith("$ "):
            steps.append([text[2:], []])
        elif steps and steps[-1][0].endswith("\\") and not steps[-1][1]:
            steps[-1][0] += "\n" + text  # a continued command line
        elif steps:
            steps[-1][1].append(text)
        else:
            raise AssertionError("README line %d: console block must start with '$ '" % line)
    return [(cmd, out) for cmd, out in steps]


def matches(expected, actual):
    """Whether actual stdout lines match expected ones (`...` = any text)."""
    expected = [e.rstrip() for e in expected]
    actual = [a.rstrip() for a in actual]
    if len(expected) != len(actual):
        return False
    for e, a in zip(expected, actual):
        pattern = ".*".join(re.escape(part) for part in e.split("..."))
        if not re.fullmatch(pattern, a):
            return False
    return True


def output_lines(stdout):
    lines = stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def find_cli():
    given = os.environ.get("MCGQ_CLI")
    if given:
        return given if os.access(given, os.X_OK) else None
    for build in ("build-ci", "build-demo", "build", "build-host"):
        path = os.path.join(ROOT, build, "tools", "mcgq")
        if os.access(path, os.X_OK):
            return path
    return None


BLOCKS = marked_blocks(README) if os.path.exists(README) else []
PYTHON = python_cases(BLOCKS)
CONSOLE = [(line, body) for kind, line, body in BLOCKS if kind == "console"]


def test_readme_has_tested_examples():
    """The markers are what make the examples tested: losing them must fail."""
    assert os.path.exists(README), "README not found at %s (set MCGQ_README)" % README
    assert len(PYTHON) >= 2, "README should mark its numpy and PyTorch examples"
    assert any(expected is not None for _, _, expected in PYTHON)
    assert len(CONSOLE) >= 1, "README should mark its mcgq command examples"


@pytest.mark.parametrize("line,code,expected", PYTHON, ids=["line%d" % c[0] for c in PYTHON])
def test_readme_python(line, code, expected, tmp_path):
    if re.search(r"^\s*(import|from) torch", code, re.M):
        pytest.importorskip("torch")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, "README line %d failed:\n%s" % (line, result.stderr)
    if expected is not None:
        got = output_lines(result.stdout)
        assert matches(expected, got), (
            "README line %d printed:\n%s\nREADME says:\n%s"
            % (line, "\n".join(got), "\n".join(expected)))


@pytest.mark.parametrize("line,body", CONSOLE, ids=["line%d" % c[0] for c in CONSOLE])
def test_readme_console(line, body, tmp_path):
    cli = find_cli()
    if cli is None:
        pytest.skip("no mcgq CLI: set MCGQ_CLI or build tools/mcgq in build-ci, "
                    "build-demo, build or build-host")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(cli)) + os.pathsep + env.get("PATH", "")
    for command, expected in console_steps(body, line):
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=str(tmp_path),
                                env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert result.returncode == 0, "README line %d: `%s` exited %d:\n%s" % (
            line, command, result.returncode, result.stderr)
        got = output_lines(result.stdout)
        assert matches(expected, got), (
            "README line %d: `%s` printed:\n%s\nREADME says:\n%s"
            % (line, command, "\n".join(got), "\n".join(expected)))


def test_matcher_can_fail():
    """The comparison itself: a changed digit, a missing line or an extra one
    must not pass, and `...` must not swallow a line break."""
    assert matches(["a ... b"], ["a xyz b"])
    assert not matches(["a 1 b"], ["a 2 b"])
    assert not matches(["x", "y"], ["x"])
    assert not matches(["x"], ["x", "y"])
    assert not matches(["..."], ["a", "b"])
