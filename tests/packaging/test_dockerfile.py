"""The operator image: hadolint-clean, pinned, small and non-root (no Docker daemon needed)."""

from __future__ import annotations

import fnmatch
import re

from .packaging_support import REPO, run

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(DOCKERFILE):
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_hadolint_reports_nothing() -> None:
    result = run("hadolint", "--no-color", REPO / "Dockerfile", check=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout


def test_base_image_is_pinned_to_a_full_python_patch_version() -> None:
    base = next(args for name, args in instructions(DOCKERFILE) if name == "ARG")  # the global ARG before FROM
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", base), base


def test_final_stage_copies_only_the_virtualenv_and_runs_as_a_numeric_non_root_user() -> None:
    builder, final = stages()
    assert builder[0][1].endswith("AS builder")
    final_dict = {name: args for name, args in final}
    copies = [args for name, args in final if name == "COPY"]
    assert copies == ["--from=builder /opt/kubemeter /opt/kubemeter"]
    assert not any(name == "RUN" for name, _ in final)  # no package manager, compiler or pip in the runtime stage
    user = final_dict["USER"]
    assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user) and user.split(":")[0] == "65532"
    assert final_dict["ENTRYPOINT"] == '["kubemeter"]' and final_dict["CMD"] == '["run"]'
    assert final_dict["EXPOSE"] == "8080"
    assert "PYTHONDONTWRITEBYTECODE=1" in final_dict["ENV"] and "PYTHONUNBUFFERED=1" in final_dict["ENV"]
    assert "org.opencontainers.image.source=" in final_dict["LABEL"]


def test_image_installs_the_wheel_without_the_sim_extra() -> None:
    builder = stages()[0]
    install = " ".join(args for name, args in builder if name == "RUN")
    assert "pip wheel --no-deps" in install
    assert re.search(r"pip install /tmp/wheels/kubemeter-\*\.whl(\s|$)", install), install  # no [sim]


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    patterns = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern[1:] if negated else pattern
            body = body.rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                keep = negated
        return keep

    copied = [args.split()[:-1] for name, args in stages()[0] if name == "COPY"]
    for source in (s for sources in copied for s in sources):
        assert included(source.rstrip("/")), source
    for unwanted in (".git", ".venv", "tests/fixtures/README.md", "charts/kubemeter/Chart.yaml", ".cache/tools"):
        assert not included(unwanted), unwanted
