"""The `kabin` entry points, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys


def test_python_dash_m_kabin_lists_the_operator_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kabin", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "operator" in out


def test_operator_help_documents_namespace_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kabin", "operator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--namespace" in out


def test_unknown_command_fails_with_nonzero_exit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kabin", "no-such-command"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "No such command" in result.stderr


def test_agent_without_its_settings_names_what_is_missing() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("KABIN_")}
    result = subprocess.run(
        [sys.executable, "-m", "kabin", "agent"], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0
    assert "KABIN_AGENT_SESSION" in result.stderr and "KABIN_AGENT_POD" in result.stderr
