"""Packaging for l5d-twisted.  Tool settings live in pyproject.toml."""

import re
from pathlib import Path

from setuptools import find_packages, setup

# The version's one place is l5d_twisted/__init__.py (`l5d-twisted --version` prints it).
_INIT = (Path(__file__).parent / "l5d_twisted" / "__init__.py").read_text(encoding="utf-8")
VERSION = re.search(r'^__version__ = "([^"]+)"$', _INIT, re.M).group(1)  # type: ignore[union-attr]

setup(
    name="l5d-twisted",
    version=VERSION,
    description="A linkerd 1.x style service mesh proxy on the Twisted reactor",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["l5d_twisted", "l5d_twisted.*"]),
    include_package_data=True,
    package_data={"l5d_twisted": ["admin/static/*", "py.typed"]},
    install_requires=[
        "twisted[tls]>=24.3.0",
        "treq>=23.11.0",
        "pyyaml>=6.0",
        "httptools>=0.6.1",
    ],
    extras_require={
        "test": [
            "pytest>=8.0",
            # the reference the exposition (telemetry/promtext.py) is compared with in tests
            "prometheus-client>=0.20.0",
            "pytest-twisted>=1.14",
            "pytest-timeout>=2.2",
            "hypothesis>=6.100",
            "kmock>=0.8",
            # tests/telemetry/test_telemetry_influxdb.py reads io.l5d.influxdb's lines with it.
            "line-protocol-parser>=2.0",
            "kubernetes-validate>=1.30",
            "playwright>=1.45",
            "ruff>=0.5",
            "mypy>=1.10",
            "types-PyYAML>=6.0",
            # tools/dashboards/generate.py builds the chart's Grafana dashboards with it.
            # Pinned to the release generated for the chart's Grafana (11.6): the versions
            # carry an epoch (a build date), so >= would pick the newest build of any target.
            "grafana-foundation-sdk==1769699379!11.6.0",
        ],
    },
    entry_points={"console_scripts": ["l5d-twisted=l5d_twisted.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
        "Topic :: Internet :: Proxy Servers",
    ],
)
