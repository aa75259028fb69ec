"""values.schema.json rejects bad values with a message naming the value, in helm 3 and 4."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_testlib import CHART, HELMS, helm

BAD_VALUES = [
    ({"mesh": {"admin": {"port": 70000}}}, "port", "65"),
    ({"mesh": {"outgoing": {"port": "4140"}}}, "outgoing", "integer"),
    ({"mesh": {"admn": {"port": 1}}}, "admn", "not allowed"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy", "IfNotPresent"),
    ({"grafana": {"enabled": "yes"}}, "enabled", "boolean"),
    ({"mesh": {"recentRequests": {"sampleRate": 1.5}}}, "sampleRate", "1"),
    ({"mesh": {"appNamespace": "Bad_NS"}}, "appNamespace", ""),
    ({"hello-world": {"world": {"failureRate": 2}}}, "failureRate", "1"),
    ({"hello-world": {"proxy": {"hostEnv": "POD_IP"}}}, "hostEnv", "HOST_IP"),
    ({"prometheus": {"slo": {"successRate": 1.0}}}, "successRate", ""),
    ({"prometheus": {"retention": "six hours"}}, "retention", ""),
    ({"grafana": {"anonymous": {"role": "Boss"}}}, "role", "Viewer"),
    ({"image": {"digest": "latest"}}, "digest", "sha256"),
    ({"mesh": {"admin": {"drainPeriodMs": -1}}}, "drainPeriodMs", "0"),
    ({"mesh": {"outgoing": {"requestDtab": {"enabled": "yes"}}}}, "enabled", "boolean"),
    ({"networkPolicy": {"enabled": "on"}}, "enabled", "boolean"),
]


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize(
    "values,names,hint", BAD_VALUES, ids=[next(iter(v)) + "-" + n for v, n, _ in BAD_VALUES]
)
def test_schema_rejects_bad_values_clearly(
    tmp_path: Path, version: str, values: dict, names: str, hint: str
) -> None:
    path = tmp_path / "bad-values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm(version, "template", "mesh", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    message = result.stderr
    assert "schema" in message, message
    assert names in message and hint in message, message


@pytest.mark.parametrize("version", sorted(HELMS))
def test_template_rejects_a_grace_period_shorter_than_the_drain(version: str) -> None:
    result = helm(
        version,
        "template",
        "mesh",
        str(CHART),
        "--set",
        "terminationGracePeriodSeconds=15",
        check=False,
    )
    assert result.returncode != 0
    assert (
        "terminationGracePeriodSeconds (15) must be greater than "
        "mesh.admin.drainPeriodMs + mesh.admin.shutdownGraceMs (5000 + 10000 ms)" in result.stderr
    )
    assert (
        helm(
            version, "template", "mesh", str(CHART), "--set", "terminationGracePeriodSeconds=16"
        ).returncode
        == 0
    )


@pytest.mark.parametrize("version", sorted(HELMS))
def test_decimals_given_with_set_are_accepted(version: str) -> None:
    # `helm --set x=0.2` passes the string "0.2": fractions accept numeric strings too.
    sets = [
        "hello-world.world.failureRate=0.2",
        "mesh.recentRequests.sampleRate=.5",
        "prometheus.slo.successRate=0.99",
    ]
    args = [a for s in sets for a in ("--set", s)]
    result = helm(version, "template", "mesh", str(CHART), *args)
    assert "sampleRate: 0.5" in result.stdout
    assert "rt_service:error_ratio:rate1h > 0.144" in result.stdout
    for bad in ("hello-world.world.failureRate=abc", "prometheus.slo.successRate=1.0"):
        rejected = helm(version, "template", "mesh", str(CHART), "--set", bad, check=False)
        assert rejected.returncode != 0 and bad.split("=")[0].split(".")[-1] in rejected.stderr


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize(
    "sets,message",
    [
        (
            ["mesh.incoming.port=9990"],
            "mesh.outgoing.port (4140), mesh.incoming.port (9990) and mesh.admin.port (9990) must differ",
        ),
        (
            ["mesh.hostNetwork=true", "mesh.outgoing.port=4000"],
            "with mesh.hostNetwork, mesh.outgoing.hostPort (4140) must equal mesh.outgoing.port (4000) or be 0",
        ),
    ],
    ids=["port-clash", "hostnetwork-hostport"],
)
def test_template_rejects_inconsistent_ports(version: str, sets: list[str], message: str) -> None:
    args = [a for s in sets for a in ("--set", s)]
    result = helm(version, "template", "mesh", str(CHART), *args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
