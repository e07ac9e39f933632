"""The API answers as its OpenAPI document says: Schemathesis, every check, bounded examples.

Statuses, response bodies, content types, headers, refused schema-violating requests and no 5xx,
on every operation (the plugins' included). When this fails, the report names the operation, the
check and a curl command that reproduces it. It runs on the PostgreSQL queue only: the HTTP
contract is the web layer's, the same on every engine, and the end-to-end modules prove each
engine's sends (the SQS run cost 18 s of the suite's budget and found nothing the other did not).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[1] / "data" / "schemathesis.toml"
#: Examples per operation and phase: enough to reach every documented status, bounded in time.
EXAMPLES = 25
#: Fixed, so that a failure is reproduced by the same run (the report prints a replay command too).
SEED = 20261129

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def schemathesis_command() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    assert found, "schemathesis is not installed (it is in the project's dev extras)"
    return [found, "--config-file", str(CONFIG), "--no-color"]


@pytest.mark.timeout(600)
def test_every_operation_answers_as_documented(api_url: str, tenant_token: str) -> None:
    run = subprocess.run(
        [
            *schemathesis_command(), "run", f"{api_url}/openapi.json",
            "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED),
            "--header", f"Authorization: Bearer {tenant_token}",
        ],
        capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "API Operations:" in report and "Tested: 38" in report, report
