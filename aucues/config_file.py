"""Config layering shared by every stage: typed dataclass defaults <- a YAML file <- CLI flags.

One reader for config files (one-line errors: missing file, bad YAML with its line, not a mapping,
unknown keys with a close-match hint) and one merge rule (a flag given as None was not given)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable

from aucues.errors import AucuesError


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file holding a mapping -> dict (empty file -> {})."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise AucuesError(f"{what} {p} not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise AucuesError(f"{what} {p}: invalid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AucuesError(f"{what} {p}: cannot read ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise AucuesError(f"{what} {p}: expected a mapping of keys to values")
    return data


def check_known_keys(values: dict, known: Iterable[str], where: str) -> None:
    """Unknown keys are an error naming each, with the closest known key as a hint."""
    known = list(known)
    unknown = sorted(set(map(str, values)) - set(known))
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=1)
            hints.append(f"{k} (did you mean {close[0]}?)" if close else k)
        raise AucuesError(f"{where}: unknown key(s): {', '.join(hints)}")


def layered(defaults: dict[str, Any], file_values: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """defaults <- file <- flags; a flag whose value is None was not given on the command line."""
    out = dict(defaults)
    out.update(file_values)
    out.update({k: v for k, v in flags.items() if v is not None})
    return out
