"""``l5d-twisted dtab list|get|create|update|delete`` against a real namerd (namerctl's
commands): the round trip, the version check on update, clear errors and exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from l5d_testing import free_port
from namerd_helpers import NamerdProcess

REPO = Path(__file__).resolve().parents[2]


def dtab(
    *args: str, stdin: str = "", base_url: str | None = None, env_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NAMERCTL_BASE_URL"}
    env["PYTHONPATH"] = str(REPO)
    if env_url is not None:
        env["NAMERCTL_BASE_URL"] = env_url
    command = [sys.executable, "-m", "l5d_twisted", "dtab", *args]
    if base_url is not None:
        command += ["--base-url", base_url]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, timeout=60, cwd=REPO
    )


def test_round_trip_with_the_version_check(namerd: NamerdProcess, tmp_path: Path) -> None:
    url = namerd.base_url
    split = "/host/world => 9 * /srv/world-v1 & 1 * /srv/world-v2;\n"
    created = dtab("create", "canary", "-", stdin=split, base_url=url)
    assert created.returncode == 0, created.stderr
    assert created.stderr.startswith("created canary (version ")

    listed = dtab("list", env_url=url)  # namerctl's environment variable
    assert (listed.returncode, listed.stdout) == (0, "canary\ndefault\n")
    assert json.loads(dtab("list", "--json", base_url=url).stdout) == ["canary", "default"]

    got = dtab("get", "canary", base_url=url)
    assert got.returncode == 0
    version = namerd.call("GET", "/api/1/dtabs/canary").headers["etag"]
    assert (
        got.stdout == f"# version {version}\n/host/world => 9.0 * /srv/world-v1 & /srv/world-v2;\n"
    )
    saved = tmp_path / "canary.dtab"
    saved.write_text(got.stdout.replace("9.0 * /srv/world-v1 & ", ""))  # an operator's edit

    # someone else updates first: the edit made from the old read must not overwrite theirs
    other = dtab("update", "canary", "-", stdin="/host/world => /srv/world-v1\n", base_url=url)
    assert other.returncode == 0 and "version not checked" in other.stderr
    stale = dtab("update", "canary", str(saved), base_url=url)
    assert stale.returncode == 1
    assert "the dtab changed since you read it" in stale.stderr
    assert f"no longer at version {version}" in stale.stderr
    assert (
        namerd.call("GET", "/api/1/dtabs/canary", headers={"Accept": "application/dtab"}).text
        == "/host/world => /srv/world-v1\n"
    )

    # read again, edit, update: the version in the file is current, so it is written
    fresh = tmp_path / "fresh.dtab"
    fresh.write_text(dtab("get", "canary", base_url=url).stdout.replace("v1", "v2"))
    done = dtab("update", "canary", str(fresh), base_url=url)
    assert done.returncode == 0 and ", was " in done.stderr
    assert (
        namerd.call("GET", "/api/1/dtabs/canary", headers={"Accept": "application/dtab"}).text
        == "/host/world => /srv/world-v2\n"
    )

    # --version overrides the file's (here a stale one)
    forced = dtab("update", "canary", str(fresh), "--version", version, base_url=url)
    assert forced.returncode == 1 and "changed since you read it" in forced.stderr

    deleted = dtab("delete", "canary", base_url=url)
    assert (deleted.returncode, deleted.stderr) == (0, "deleted canary\n")
    missing = dtab("get", "canary", base_url=url)
    assert missing.returncode == 1 and "no dtab namespace canary" in missing.stderr
    assert dtab("delete", "canary", base_url=url).returncode == 1
    assert dtab("list", base_url=url).stdout == "default\n"


def test_json_input_and_output_as_namerctl(namerd: NamerdProcess) -> None:
    url = namerd.base_url
    got = json.loads(dtab("get", "default", "--json", base_url=url).stdout)
    assert got == {"version": "AAAAAAAAAAE=", "dtab": [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]}
    got["dtab"][0]["dst"] = "/#/other"
    updated = dtab("update", "default", "-", stdin=json.dumps(got), base_url=url)
    assert updated.returncode == 0, updated.stderr
    assert "was AAAAAAAAAAE=" in updated.stderr  # the version came from the JSON
    again = dtab("update", "default", "-", stdin=json.dumps(got), base_url=url)
    assert again.returncode == 1 and "changed since you read it" in again.stderr
    assert (
        dtab("create", "j", "-", stdin='[{"prefix": "/a", "dst": "/b"}]', base_url=url).returncode
        == 0
    )
    exists = dtab("create", "j", "-", stdin="/a => /b", base_url=url)
    assert exists.returncode == 1 and "already exists (use update)" in exists.stderr


def test_bad_input_and_unreachable_namerd(namerd: NamerdProcess, tmp_path: Path) -> None:
    url = namerd.base_url
    bad = dtab("create", "broken", "-", stdin="/svc => ", base_url=url)
    assert bad.returncode == 2
    assert "stdin: dtab: expected a name" in bad.stderr and "offset 8" in bad.stderr
    assert namerd.call("GET", "/api/1/dtabs/broken").status == 404  # nothing was sent
    nofile = dtab("create", "broken", str(tmp_path / "nope.dtab"), base_url=url)
    assert nofile.returncode == 2 and "cannot read" in nofile.stderr
    badjson = dtab("create", "broken", "-", stdin='[{"prefix": 1}]', base_url=url)
    assert badjson.returncode == 2 and "entry 0" in badjson.stderr
    badname = dtab("get", "../x", base_url=url)
    assert badname.returncode == 2 and "a namespace has only" in badname.stderr
    badurl = dtab("list", base_url="namerd:4180")
    assert badurl.returncode == 2 and "--base-url" in badurl.stderr
    down = dtab("list", base_url=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3 and "cannot reach namerd" in down.stderr


def test_the_local_dtab_commands_still_work() -> None:
    shown = dtab("show", "/svc => /#/io.l5d.fs; /svc/a => /b")
    assert (shown.returncode, shown.stdout) == (0, "/svc => /#/io.l5d.fs;\n/svc/a => /b;\n")
