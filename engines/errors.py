"""The engines' one exception: bad user input, named by engine and task, listing what is allowed."""

from __future__ import annotations


class EngineError(ValueError):
    """A parameter, preset or mode an engine refuses. The message is one line that names the engine and
    task and lists the allowed values, so a node can show it to the user unchanged."""
