"""The Prometheus subchart's rendered config and rules pass promtool, and its discovery and
relabelling do what linkerd-viz did."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_testlib import CHART, RELEASE, localise, prometheus_files, render

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing"
)


def write_rendered(tmp_path: Path, values: list[Path] | None = None) -> tuple[Path, Path]:
    """The rendered prometheus.yml and rules.yml as local files, discovery by file_sd.

    Debian's Prometheus is built without Kubernetes discovery, so the one
    kubernetes_sd_configs block (checked by the tests below) becomes a file_sd block; the
    rest of the config, relabelling included, is promtool-checked as rendered.
    """
    files = prometheus_files(render("helm4", values or []))
    return localise(files, tmp_path, tmp_path / "targets.json")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "values", [[], [CHART / "ci" / "tuned-values.yaml"]], ids=["default", "tuned"]
)
def test_promtool_accepts_config_and_rules(tmp_path: Path, values: list[Path]) -> None:
    config, rules = write_rendered(tmp_path, values)
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    # The check above is meaningful: promtool does fail on bad PromQL.
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: x\n  rules:\n  - record: a:b\n    expr: sum(rate(x[1m])\n")
    assert promtool("check", "rules", str(bad)).returncode != 0


def test_discovery_keeps_only_this_release_mesh_admin_port() -> None:
    config = yaml.safe_load(prometheus_files(render())["prometheus.yml"])
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/admin/metrics/prometheus"
    assert job["kubernetes_sd_configs"][0]["role"] == "endpoints"
    keeps = {
        tuple(r["source_labels"]): r["regex"]
        for r in job["relabel_configs"]
        if r.get("action") == "keep"
    }
    assert keeps[("__meta_kubernetes_service_label_app_kubernetes_io_name",)] == "l5d-twisted"
    assert keeps[("__meta_kubernetes_service_label_app_kubernetes_io_instance",)] == RELEASE
    assert keeps[("__meta_kubernetes_endpoint_port_name",)] == "admin"
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"instance", "node", "namespace"} <= targets


def test_relabelling_shortens_client_and_service_to_last_segment(tmp_path: Path) -> None:
    # promtool's rule tests evaluate metric_relabel-equivalent label_replace calls: check the
    # regexes with the same RE2 semantics by a label_replace unit test.
    config = yaml.safe_load(prometheus_files(render())["prometheus.yml"])
    relabels = {
        r["source_labels"][0]: r for r in config["scrape_configs"][0]["metric_relabel_configs"]
    }
    assert set(relabels) == {"client", "service"}
    rules = tmp_path / "relabel.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "relabel",
                        "rules": [
                            {
                                "record": f"short_{label}",
                                "expr": (
                                    f'label_replace(raw, "{label}", "{r["replacement"]}", '
                                    f'"{label}", "{r["regex"]}")'
                                ),
                            }
                            for label, r in relabels.items()
                        ],
                    }
                ]
            }
        )
    )
    test = tmp_path / "relabel_test.yml"
    test.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": (
                                    'raw{client="%/io.l5d.k8s.daemonset/default/incoming/l5d'
                                    '/#/io.l5d.k8s/default/http/world-v1"}'
                                ),
                                "values": "1",
                            },
                            {"series": 'raw{service="svc/hello"}', "values": "2"},
                        ],
                        "promql_expr_test": [
                            {
                                "expr": 'short_client{client!=""}',
                                "eval_time": "0m",
                                "exp_samples": [
                                    {"labels": 'short_client{client="world-v1"}', "value": 1}
                                ],
                            },
                            {
                                "expr": 'short_service{service!=""}',
                                "eval_time": "0m",
                                "exp_samples": [
                                    {"labels": 'short_service{service="hello"}', "value": 2}
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    result = promtool("test", "rules", str(test))
    assert result.returncode == 0, result.stdout + result.stderr


def test_slo_burn_alerts_fire_on_fast_burn(tmp_path: Path) -> None:
    """A service failing 10 % of 10 rps for an hour pages (99.9 % SLO); a healthy one does not."""
    _, rules = write_rendered(tmp_path)
    test = tmp_path / "slo_test.yml"
    test.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": 'rt:service:requests{rt="outgoing",service="hello",instance="a"}',
                                "values": "0+600x120",
                            },
                            {
                                "series": 'rt:service:success{rt="outgoing",service="hello",instance="a"}',
                                "values": "0+540x120",
                            },
                            {
                                "series": 'rt:service:failures{rt="outgoing",service="hello",instance="a"}',
                                "values": "0+60x120",
                            },
                            {
                                "series": 'rt:service:requests{rt="outgoing",service="world",instance="a"}',
                                "values": "0+600x120",
                            },
                            {
                                "series": 'rt:service:success{rt="outgoing",service="world",instance="a"}',
                                "values": "0+600x120",
                            },
                            {
                                "series": 'rt:service:failures{rt="outgoing",service="world",instance="a"}',
                                "values": "0+0x120",
                            },
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "70m",
                                "alertname": "L5dServiceErrorBudgetBurnFast",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "rt": "outgoing",
                                            "service": "hello",
                                            "severity": "page",
                                        },
                                        "exp_annotations": {
                                            "summary": "Service hello on router outgoing burns its error budget fast",
                                            "description": (
                                                "Its failure ratio would exhaust the 0.999 "
                                                "success-rate SLO's 30-day error budget "
                                                "in under 2 to 5 days."
                                            ),
                                        },
                                    },
                                ],
                            },
                        ],
                        "promql_expr_test": [
                            {
                                "expr": "rt_service:success_rate:ratio_rate1m",
                                "eval_time": "70m",
                                "exp_samples": [
                                    {
                                        "labels": 'rt_service:success_rate:ratio_rate1m{rt="outgoing",service="hello"}',
                                        "value": 0.9,
                                    },
                                    {
                                        "labels": 'rt_service:success_rate:ratio_rate1m{rt="outgoing",service="world"}',
                                        "value": 1,
                                    },
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    result = promtool("test", "rules", str(test))
    assert result.returncode == 0, result.stdout + result.stderr
