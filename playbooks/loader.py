"""Load a directory of playbooks; any invalid file stops start-up with its file, line and reason."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.errors import PlaybookError
from playbooks.schema import Playbook, SetSettings

SETTINGS_FILE = "_settings.yaml"
_Model = TypeVar("_Model", bound=BaseModel)


def bundled_directory() -> Path:
    """The default playbooks that ship with Earful."""
    return Path(str(resources.files("playbooks") / "defaults"))


@dataclass(frozen=True, slots=True)
class PlaybookSet:
    """Validated playbooks in evaluation order (file name order) and the set's settings."""

    directory: Path
    playbooks: tuple[Playbook, ...]
    settings: SetSettings


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the 1-based line of every node by its path; refuse repeated mapping keys."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise PlaybookError(f"line {key.start_mark.line + 1}", f"key {name!r} repeated")
            seen.add(name)
            out[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


def _parse(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(str(path), f"cannot read: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[tuple[Any, ...], int] = {}
        try:
            _lines(node, (), lines)
        except PlaybookError as exc:
            raise PlaybookError(f"{path}:{exc.where.removeprefix('line ')}", exc.reason) from None
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PlaybookError(f"{path}:{line}", f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}:1", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def _validate(model: type[_Model], path: Path) -> _Model:
    data, lines = _parse(path)
    if data is None:
        if model is SetSettings:  # a settings file with every line commented out
            data = {}
        else:
            raise PlaybookError(f"{path}:1", "the file is empty")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        while loc not in lines and loc:
            loc = loc[:-1]
        where = ".".join(str(part) for part in error["loc"]) or "top level"
        message = str(error["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PlaybookError(f"{path}:{lines.get(loc, 1)}", f"{where}: {message}{more}") from None


def load_playbooks(directory: Path | None = None) -> PlaybookSet:
    """Validate every ``*.yaml`` in ``directory`` (default: the bundled set) in file name order."""
    directory = directory or bundled_directory()
    if not directory.is_dir():
        raise PlaybookError(str(directory), "not a directory of playbooks")
    files = sorted(p for p in directory.glob("*.yaml") if p.name != SETTINGS_FILE)
    if not files:
        raise PlaybookError(str(directory), "no playbook files (*.yaml) in it")
    settings_path = directory / SETTINGS_FILE
    settings = _validate(SetSettings, settings_path) if settings_path.is_file() else SetSettings()
    playbooks = tuple(_validate(Playbook, path) for path in files)
    names: dict[str, Path] = {}
    for playbook, path in zip(playbooks, files, strict=True):
        if playbook.name in names:
            raise PlaybookError(
                str(path), f"playbook name {playbook.name!r} is also used by {names[playbook.name]}"
            )
        names[playbook.name] = path
    return PlaybookSet(directory=directory, playbooks=playbooks, settings=settings)
