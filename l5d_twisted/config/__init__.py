"""linkerd-style configuration: YAML (with line numbers) -> typed, validated, frozen model.

``load_config(text)`` / ``load_config_file(path)`` return a :class:`Config` or raise
:class:`ConfigErrors` listing every problem (``file:line: key.path: message``);
``config_json(config)`` shows one as JSON.

The modules, each importing only those above it (``tests/config/test_config_imports.py``):

* ``errors``, ``yamldoc``, ``schema``: errors, YAML nodes with lines, ``knob()``;
* ``linkerd1_keys``: linkerd 1's keys and kinds, each marked supported, differs or not yet
  (the refusals and the reference's marks);
* ``tls``, ``prefix``, ``params``, ``perprefix``, ``forwarded``, ``model``: the model, pure
  data;
* ``decode``: the generic decoder (YAML node + field type -> value), which knows no model type;
* ``dtabs``, ``decoders``: the model types' own readings, in one table (``TYPE_DECODERS``);
* ``checks``, ``loader``: cross-field checks, and ``load_config`` tying it together;
* ``tojson``, ``reference``: the model as JSON and as the Markdown reference.
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
from l5d_twisted.config.tojson import config_json, to_json

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
    "config_json",
    "knob",
    "load_config",
    "load_config_file",
    "to_json",
]
