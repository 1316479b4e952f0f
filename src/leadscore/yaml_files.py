"""Reading a spec or config YAML file: one line for every way a hand-written file fails.

Specs (:mod:`leadscore.specs`) and training configs (:mod:`leadscore.config`) are written by
hand and read by the same function, each with its own loader, so that a file that is not
UTF-8, does not parse, nests too deep or expands an alias bomb is refused alike, naming the
file, instead of a traceback or gigabytes of memory.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import yaml

from leadscore.errors import SpecError, invalid_yaml

__all__ = ["YAML_MAX_VALUES", "read_yaml_file"]


#: The most values (keys, items and scalars) a spec or config may hold once its aliases are
#: expanded. Aliases share one object, but every later step (text normalising, validation)
#: walks each use: nine levels of nine ``*a`` each, a 432-byte file, are 387 million values
#: and gigabytes of memory. A hand-written spec holds hundreds.
YAML_MAX_VALUES = 100_000


class _AliasBomb(Exception):
    """A YAML document whose aliases expand past :data:`YAML_MAX_VALUES` or into themselves."""


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes a list or mapping node holds (a mapping's keys as well as its values)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded_size(root: yaml.Node) -> None:
    """Raise :class:`_AliasBomb` where ``root`` expanded would exceed :data:`YAML_MAX_VALUES`
    values or holds itself (``&a [*a]``); counted on the composed nodes, each shared node
    once, so the check costs the file's size, not the expansion's."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            sizes[key] = 1 + sum(sizes[id(child)] for child in _yaml_children(node))
            if sizes[key] > YAML_MAX_VALUES:
                raise _AliasBomb(f"expand to more than {YAML_MAX_VALUES:,} values")
            continue
        if key in sizes:
            continue
        if key in entered:  # entered and not done: an ancestor of itself
            raise _AliasBomb("refer to themselves (an alias inside its own anchor)")
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _yaml_children(node))


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    """A mapping of a YAML document that holds one key twice."""

    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


def _check_duplicate_keys(root: yaml.Node) -> None:
    """Raise :class:`_DuplicateKey` for the first mapping of ``root`` that holds a key twice.

    YAML's loaders keep the last value without a word, so a second ``exclude:`` block pasted
    at the end of a spec silently dropped every exclusion of the first, and a ``test_size``
    written twice trained with the second. Checked on the composed nodes, before any loader
    builds the document, so every loader a caller passes is covered and a key written out
    over a merged one (``<<: *defaults``) stays allowed: merge keys are not compared. Keys are
    compared as their loader resolved them (``1`` and ``"1"`` differ) and in the composed
    Unicode form the spec reader folds keys to.
    """
    seen_nodes: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                    continue
                folded = (key.tag, unicodedata.normalize("NFC", str(key.value)))
                line = key.start_mark.line + 1
                if folded in lines:
                    raise _DuplicateKey(str(key.value), lines[folded], line)
                lines[folded] = line
        stack.extend(_yaml_children(node))


def read_yaml_file(path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The parsed YAML of the spec or config file ``path``, or a one-line :class:`SpecError`
    for a file that is not UTF-8, does not parse, nests deeper than Python's recursion limit
    allows the parser, holds an impossible date, or whose aliases expand past
    :data:`YAML_MAX_VALUES` values: each of these was a traceback, a misleading message or,
    for an alias bomb, gigabytes of memory. A key written twice in one mapping is refused
    too, where YAML would silently keep the second."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise SpecError(
            f"{path} is not UTF-8 text: line {line} has the byte 0x{data[err.start]:02X}",
            "Save it as UTF-8 (your editor's Save As, encoding UTF-8).",
        ) from err
    reader = loader(text)
    try:
        node = reader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        _check_duplicate_keys(node)
        return reader.construct_document(node)
    except _DuplicateKey as err:
        raise SpecError(
            f"{path}: the key {err.key!r} is written twice in one block (lines {err.first} "
            f"and {err.second}); YAML would keep only the second",
            f"Keep one {err.key}: and delete the other (moving into the kept one any entries "
            "of the other you still need).",
        ) from None
    except _AliasBomb as err:
        raise SpecError(
            f"{path}: its YAML aliases (*name) {err}",
            "Write the values out rather than nesting anchors (&name) in one another.",
        ) from None
    except RecursionError:
        raise SpecError(
            f"{path} nests lists or keys too deep for the YAML reader",
            "Write it with fewer nested levels (a spec or config needs a handful).",
        ) from None
    except yaml.YAMLError as err:
        raise invalid_yaml(path, err) from err
    except ValueError as err:
        # YAML reads 2024-13-45 as a date and fails there ("month must be in 1..12", "day is
        # out of range for month"); any other value error (an integer of 5,000 digits) is not
        # about a date
        if "must be in" in str(err) or "out of range" in str(err):
            raise SpecError(
                f"{path} holds an impossible date: {err}", "Write dates as YYYY-MM-DD that exist."
            ) from err
        raise SpecError(
            f"{path} holds a value YAML cannot read: {' '.join(str(err).split())[:200]}",
            "Check the value the message names and write it plainly.",
        ) from err
    finally:
        reader.dispose()
