"""A YAML file -> plain values plus the line of every field, or ONE line ``FILE:LINE: FIELD: message``.

The file is composed into YAML nodes with the safe loader (never ``yaml.load``), so every value
keeps the line it came from. Hostile input ends in a ``SpecError``, never a traceback or a hang:
only regular files are read (a FIFO would block forever), bounded in size; nesting is bounded; an
alias is expanded at most ``MAX_VALUES`` values in all ("billion laughs"); NUL bytes, unpaired
surrogates, non-finite numbers, dates, Python tags and duplicate keys are refused.
"""

from __future__ import annotations

import math
import os
import stat
from typing import Any, Sequence

import yaml

FieldPath = tuple  # keys (str) and list indices (int), e.g. ("methods", 2, "grid", "k", 1)

MAX_BYTES = 1 << 20  # a spec is a page of text; 1 MiB is far beyond any real one
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_VALUES = 100_000  # values produced, aliases expanded included

_MAP_TAGS = ("tag:yaml.org,2002:map",)
_SEQ_TAGS = ("tag:yaml.org,2002:seq",)


class SpecError(Exception):
    """An invalid file. ``str()`` is one line: ``FILE:LINE: FIELD: message`` (LINE absent when the
    value came from a command-line override or no line applies)."""

    def __init__(self, file: str, line: int | None, field: str, message: str):
        self.file, self.line, self.field = file, line, field
        self.message = " ".join(str(message).split())  # one line, whatever the cause said
        super().__init__(self.file, self.line, self.field, self.message)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


def format_path(path: Sequence[Any]) -> str:
    """``("methods", 2, "grid", "k", 1)`` -> ``methods[2].grid.k[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def show(value: Any) -> str:
    """A value for a message: its repr, cut at 60 characters, unprintable characters escaped."""
    text = ascii(value) if isinstance(value, str) and not value.isprintable() else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def text_problem(text: str) -> str | None:
    """Why a string cannot be used as text (a NUL byte, an unpaired surrogate), or None."""
    if "\0" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains an unpaired surrogate {ascii(text[exc.start])} (not valid Unicode text)"
    return None


def read_bytes(file: str) -> bytes:
    """The bytes of a regular file of at most ``MAX_BYTES``; anything else is a ``SpecError``."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)  # non-blocking: opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise SpecError(file, None, "(file)", "spec file not found") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise SpecError(file, None, "(file)", f"cannot read the spec: {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(file, None, "(file)", "not a regular file (a folder, FIFO or device): give a YAML file")
        if info.st_size > MAX_BYTES:
            raise SpecError(
                file, None, "(file)", f"the spec is {info.st_size} bytes: more than the {MAX_BYTES} a spec may have"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecError(file, None, "(file)", f"cannot read the spec: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def decode(file: str, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(file, line, "(file)", "the spec is not UTF-8 text") from None
    if "\0" in text:
        raise SpecError(file, text[: text.index("\0")].count("\n") + 1, "(file)", "the spec contains a NUL byte")
    return text


def read_yaml(file: str, text: str, empty_message: str) -> tuple[Any, dict[FieldPath, int]]:
    """Parse one YAML document: its plain value and the line of every field path."""
    reader = _Reader(file, text)
    return reader.read(empty_message), reader.lines


class _Reader:
    def __init__(self, file: str, text: str):
        self.file = file
        self.text = text
        self.lines: dict[FieldPath, int] = {}
        self._stack: set[int] = set()
        self._flattened: set[int] = set()  # mappings already checked and merged (reused through an alias)
        self._values = 0
        self._sizes: dict[int, int] = {}  # mapping node -> entries once merged

    def fail(self, line: int | None, where: FieldPath, message: str) -> SpecError:
        return SpecError(self.file, line, format_path(where), message)

    def read(self, empty_message: str) -> Any:
        loader = None
        try:
            self.check_depth()  # before composing: the composer recurses once per nesting level
            loader = yaml.SafeLoader(self.text)  # its reader checks the characters: inside the try
            self.loader = loader
            node = loader.get_single_node()
            if node is None:
                raise SpecError(self.file, 1, "(top level)", empty_message)
            return self.value(node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = exc.problem or "invalid YAML"
            if exc.context and message.startswith("but "):  # "expected X", "but found Y"
                message = f"{exc.context}, {message}"
            elif exc.context:
                at = exc.context_mark.line + 1 if exc.context_mark else None
                started = f" started at line {at})" if at and mark and at != mark.line + 1 else ")"
                message += f" ({exc.context}" + started
            raise SpecError(self.file, mark.line + 1 if mark else None, "(syntax)", message) from None
        except yaml.reader.ReaderError as exc:  # a character YAML does not allow
            line = self.text[: exc.position].count("\n") + 1
            message = f"character {exc.character!r} is not allowed in YAML"
            raise SpecError(self.file, line, "(syntax)", message) from None
        except yaml.YAMLError as exc:
            raise SpecError(self.file, None, "(syntax)", str(exc)) from None
        except RecursionError:  # the composer recurses once per nesting level
            raise SpecError(self.file, None, "(syntax)", f"nested too deeply (at most {MAX_DEPTH} levels)") from None
        finally:
            if loader is not None:
                loader.dispose()

    def check_depth(self) -> None:
        """Refuse nesting deeper than ``MAX_DEPTH`` from the parser's events (iterative, no recursion)."""
        depth = 0
        for event in yaml.parse(self.text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(
                        self.file,
                        event.start_mark.line + 1,
                        "(syntax)",
                        f"nested too deeply (at most {MAX_DEPTH} levels)",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1

    def value(self, node: yaml.Node, where: FieldPath) -> Any:
        line = node.start_mark.line + 1
        self._values += 1
        if self._values > MAX_VALUES:
            raise self.fail(line, where, f"the YAML expands to more than {MAX_VALUES} values (aliases included)")
        if len(where) > MAX_DEPTH:
            raise self.fail(line, where, f"nested too deeply (at most {MAX_DEPTH} levels)")
        self.lines[where] = line
        if id(node) in self._stack:
            raise self.fail(line, where, "recursive YAML alias")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, where)
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag not in _SEQ_TAGS:
                    raise self.fail(line, where, f"unsupported YAML tag {node.tag}")
                return [self.value(item, where + (i,)) for i, item in enumerate(node.value)]
            if node.tag not in _MAP_TAGS:
                raise self.fail(line, where, f"unsupported YAML tag {node.tag}")
            return self.mapping(node, where)
        finally:
            self._stack.discard(id(node))

    def mapping(self, node: yaml.MappingNode, where: FieldPath) -> dict[str, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in [] if id(node) in self._flattened else node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # explicit keys may override merged (<<) ones
                continue
            key = self.key(key_node, where)
            if key in first_line:
                raise self.fail(
                    key_node.start_mark.line + 1,
                    where + (key,),
                    f"duplicate key '{key}' (first at line {first_line[key]}): YAML would silently keep the last one",
                )
            first_line[key] = key_node.start_mark.line + 1
        if id(node) not in self._flattened and self.merged_size(node, set()) > MAX_VALUES:
            raise self.fail(
                node.start_mark.line + 1, where, f"the YAML merges (<<) expand to more than {MAX_VALUES} keys"
            )
        self.loader.flatten_mapping(node)
        self._flattened.add(id(node))
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, where)
            result[key] = self.value(value_node, where + (key,))
        return result

    def merged_size(self, node: yaml.Node, seen: set[int]) -> int:
        """How many entries ``flatten_mapping`` would give ``node`` (each merged mapping counted once per use)."""
        if not isinstance(node, yaml.MappingNode) or id(node) in seen:
            return 0  # not a mapping, or a merge cycle: both reported by the loader itself
        if id(node) in self._sizes:
            return self._sizes[id(node)]
        seen = seen | {id(node)}
        size = 0
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                size += 1
            elif isinstance(value_node, yaml.SequenceNode):
                size += sum(self.merged_size(item, seen) for item in value_node.value)
            else:
                size += self.merged_size(value_node, seen)
            if size > MAX_VALUES:
                break
        self._sizes[id(node)] = size
        return size

    def key(self, node: yaml.Node, where: FieldPath) -> str:
        key = self.scalar(node, where) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            got = show(key) if key is not None else "a " + node.id
            raise self.fail(node.start_mark.line + 1, where, f"mapping keys must be strings, got {got}")
        return key

    def scalar(self, node: yaml.ScalarNode, where: FieldPath) -> Any:
        line = node.start_mark.line + 1
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:  # e.g. a !!python/... tag: never constructed
            raise self.fail(line, where, exc.problem or "invalid value") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(line, where, f"expected a finite number, got {node.value}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise self.fail(
                line, where, f"unsupported value {node.value!r} ({type(value).__name__}): quote it to make it a string"
            )
        if isinstance(value, str) and text_problem(value):
            raise self.fail(line, where, f"{show(value)} {text_problem(value)}")
        return value
