"""linkerd-style configuration: YAML (with line numbers) -> typed, validated, frozen model.

``load_config(text)`` / ``load_config_file(path)`` return a :class:`Config` or raise
:class:`ConfigErrors` listing every problem (``file:line: key.path: message``).
"""

from l5d_twisted.config.errors import ConfigError, ConfigErrors
from l5d_twisted.config.loader import load_config, load_config_file
from l5d_twisted.config.model import (
    AdminConfig,
    Config,
    InterpreterConfig,
    NamerSpec,
    RouterConfig,
    ServerConfig,
)
from l5d_twisted.config.params import (
    BudgetConfig,
    ClientParams,
    PoolConfig,
    RetriesConfig,
    ServiceParams,
)
from l5d_twisted.config.perprefix import ClientConfig, PrefixedParams, ServiceConfig
from l5d_twisted.config.prefix import PrefixPattern
from l5d_twisted.config.schema import PluginSpec, knob
from l5d_twisted.config.tls import ClientAuthConfig, ClientTlsConfig, ServerTlsConfig

__all__ = [
    "AdminConfig",
    "BudgetConfig",
    "ClientAuthConfig",
    "ClientConfig",
    "ClientParams",
    "ClientTlsConfig",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "InterpreterConfig",
    "NamerSpec",
    "PluginSpec",
    "PoolConfig",
    "PrefixPattern",
    "PrefixedParams",
    "RetriesConfig",
    "RouterConfig",
    "ServerConfig",
    "ServerTlsConfig",
    "ServiceConfig",
    "ServiceParams",
    "knob",
    "load_config",
    "load_config_file",
]
