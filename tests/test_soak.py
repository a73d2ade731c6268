"""The soak test, bounded for CI: about a minute of load and random faults."""

import os
import subprocess
import sys

import pytest

from tests.live import ROOT

pytestmark = [pytest.mark.services, pytest.mark.alone]


def test_a_minute_of_load_and_faults_loses_and_doubles_nothing():
    duration = os.environ.get("SOAK_SECONDS", "45")
    result = subprocess.run(
        [sys.executable, "-m", "tests.soak", "--duration", duration],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=float(duration) + 150,
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith("soak:")]
    assert summary, result.stdout + result.stderr
    print(summary[0])
    fields = dict(item.split("=", 1) for item in summary[0].split()[1:])
    assert int(fields["acked"]) > 100, "the soak must really send"
    assert fields["faults"] != "none", "the soak must really inject faults"
    for key in ("duplicates", "missing", "out_of_order", "unexpected_closes", "tracebacks"):
        assert fields[key] == "0", summary[0]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
