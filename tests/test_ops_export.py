"""export_user_data --output: personal data readable by its owner only, never in the checkout."""

import json
import os
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.live import ROOT

pytestmark = pytest.mark.django_db


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_export_file_is_readable_by_its_owner_only(alice, tmp_path):
    target = tmp_path / "alice.json"
    target.write_text("an older export")
    target.chmod(0o644)
    previous = os.umask(0o022)
    try:
        out = StringIO()
        call_command("export_user_data", "alice", "--output", str(target), stdout=out)
    finally:
        os.umask(previous)
    assert mode(target) == 0o600
    assert json.loads(target.read_text())["account"]["username"] == "alice"
    assert "mode 600" in out.getvalue()


@pytest.mark.parametrize("inside", ["alice.json", "var/alice.json", "docs/../alice.json"])
def test_an_export_into_the_checkout_is_refused_and_nothing_written(alice, inside):
    target = ROOT / inside
    with pytest.raises(CommandError, match="inside the checkout"):
        call_command("export_user_data", "alice", "--output", str(target), stdout=StringIO())
    assert not target.exists()


def test_an_export_into_a_missing_folder_says_so(alice, tmp_path):
    with pytest.raises(CommandError, match=r"cannot write .*No such file or directory"):
        call_command(
            "export_user_data",
            "alice",
            "--output",
            str(tmp_path / "nowhere" / "alice.json"),
            stdout=StringIO(),
        )
