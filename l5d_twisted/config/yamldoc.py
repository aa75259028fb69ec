"""YAML text -> a node tree that remembers where every value came from.

PyYAML's composer keeps a start mark (line, column) on every node; the decoder walks the
nodes instead of plain Python values so that each error can name its line.  Scalars are
turned into Python values by PyYAML's safe constructor (so ``yes``/``1e3``/``~`` mean what
YAML says), merge keys (``<<: *anchor``) are expanded in place.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from l5d_twisted.config.errors import ConfigError, ConfigErrors

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"


class Document:
    """One parsed YAML document: its root node and the constructor for its scalars."""

    def __init__(self, root: Node | None, loader: yaml.SafeLoader, source: str) -> None:
        self.root = root
        self.source = source
        self._loader = loader

    def scalar(self, node: ScalarNode) -> Any:
        """The Python value of a scalar (int, float, bool, None, str, date...)."""
        try:
            return self._loader.construct_object(node, deep=True)
        except Exception:
            # PyYAML leaves a node that failed to construct marked as "in progress": reading
            # it again (the decoder may) would report a confusing "recursive node" error.
            self._loader.recursive_objects.pop(node, None)
            raise

    def flatten_merges(self, node: MappingNode) -> None:
        """Expand ``<<`` merge keys of ``node`` in place (raises yaml.YAMLError on bad merges)."""
        self._loader.flatten_mapping(node)


# PyYAML's scanner slows down quadratically with flow nesting ([[[[...), and no config
# needs more than a few levels: refuse absurd nesting before parsing.
MAX_FLOW_DEPTH = 100
_FLOW_CHARS = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    depth = deepest = 0
    for m in _FLOW_CHARS.finditer(text):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def parse(text: str, source: str) -> Document:
    """Compose ``text`` into nodes; unreadable YAML raises ConfigErrors with the line."""
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        message = f"not valid YAML: brackets nested more than {MAX_FLOW_DEPTH} deep"
        raise ConfigErrors([ConfigError("", None, message, source)])
    try:
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (e.context, e.problem) if p)
        if "'\\t'" in problem:
            problem += " (indent YAML with spaces, not tabs)"
        raise ConfigErrors([ConfigError("", line, f"not valid YAML: {problem}", source)]) from None
    except yaml.YAMLError as e:
        raise ConfigErrors([ConfigError("", None, f"not valid YAML: {e}", source)]) from None
    except RecursionError:
        raise ConfigErrors(
            [ConfigError("", None, "not valid YAML: nested too deeply", source)]
        ) from None
    return Document(root, loader, source)


def line_of(node: Node | None) -> int | None:
    if node is None or node.start_mark is None:
        return None
    return int(node.start_mark.line) + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def describe(doc: Document, node: Node) -> str:
    """How a value reads in an error message: ``"abc"``, ``42``, ``a list``, ``null``."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if is_null(node):
        return "nothing (null)"
    text = str(node.value)
    if len(text) > 60:
        text = text[:57] + "..."
    if node.tag == STR_TAG:
        return '"' + text.replace('"', '\\"') + '"'
    return text
