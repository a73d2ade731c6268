"""Making a staff account on the install `make run` serves: one documented command."""

import base64
import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_make_admin_creates_a_superuser_without_a_secret_key_in_the_environment(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    database = tmp_path / "chat.sqlite3"
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        VAR_DIR=str(tmp_path / "var"),
        DJANGO_SUPERUSER_USERNAME="boss",
        DJANGO_SUPERUSER_PASSWORD="a long staff passphrase",
        DJANGO_SUPERUSER_EMAIL="boss@example.org",
    )
    # What `make admin` runs, with the answers given up front instead of typed.
    assert (
        "scripts/admin"
        in subprocess.run(
            ["make", "-n", "admin"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    done = subprocess.run(
        [str(ROOT / "scripts" / "admin"), "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT is_staff, is_superuser, password FROM auth_user WHERE username = 'boss'"
        ).fetchone()
    assert row[:2] == (1, 1)
    # Hashed by the site's own hasher (PBKDF2), which these tests' settings replace.
    algorithm, iterations, salt, digest = row[2].split("$")
    assert algorithm == "pbkdf2_sha256"
    expected = hashlib.pbkdf2_hmac(
        "sha256", b"a long staff passphrase", salt.encode(), int(iterations)
    )
    assert base64.b64encode(expected).decode() == digest


def test_the_readme_says_how_to_make_a_staff_account():
    readme = (ROOT / "README.md").read_text()
    assert "make admin" in readme
