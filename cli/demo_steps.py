"""A tiny resumable step runner for the demo: each finished step leaves a marker holding the hash of
its inputs, so a re-run skips it; a changed input or a missing output re-runs it."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aucues.io import atomic_write_json


@dataclass
class Step:
    name: str
    title: str
    fn: Callable[[], Any]
    params: dict = field(default_factory=dict)
    outputs: tuple[str, ...] = ()      # paths (relative to the run folder) that must exist afterwards
    always: bool = False               # e.g. starting a server: never skipped


class StepRunner:
    def __init__(self, out: Path, console):
        self.out = Path(out)
        self.console = console
        self.marks = self.out / ".steps"
        self.timings: dict[str, float] = {}
        self.results: dict[str, Any] = {}

    def _key(self, step: Step) -> str:
        return hashlib.sha256(json.dumps(step.params, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def done(self, step: Step) -> bool:
        mark = self.marks / f"{step.name}.json"
        if step.always or not mark.exists():
            return False
        try:
            info = json.loads(mark.read_text())
        except ValueError:
            return False
        return info.get("key") == self._key(step) and all((self.out / o).exists() for o in step.outputs)

    def run(self, step: Step, index: int, total: int) -> Any:
        head = f"[bold cyan][{index}/{total}][/] {step.title}"
        if self.done(step):
            info = json.loads((self.marks / f"{step.name}.json").read_text())
            self.console.print(f"{head} [dim](done earlier, reused)[/]")
            self.results[step.name] = info.get("result")
            self.timings[step.name] = 0.0
            return info.get("result")
        self.console.rule(head, align="left")
        t0 = time.perf_counter()
        result = step.fn()
        dt = time.perf_counter() - t0
        self.timings[step.name] = dt
        self.results[step.name] = result
        if not step.always:
            atomic_write_json(self.marks / f"{step.name}.json",
                              {"key": self._key(step), "seconds": round(dt, 1), "result": result})
        self.console.print(f"[green]✓[/] {step.title} [dim]({dt:.1f} s)[/]")
        return result
