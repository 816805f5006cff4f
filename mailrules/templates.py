"""The Jinja2 environment for reply subjects and bodies.

Rule files come from a shared repository and replies go to strangers, so templates run
in Jinja's sandbox, an undefined name is an error instead of an empty string (a typo
must not send a half-empty reply), and files can only be loaded from the directory of
the rule file that names them.  Validation and rendering use the same environment, so
whatever ``validate`` accepts is what ``run`` can render.
"""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment


def make_environment(base_dir: str | os.PathLike[str]) -> SandboxedEnvironment:
    """A sandboxed environment that loads templates only from ``base_dir``.

    Mail is plain text, so nothing is HTML-escaped; block tags on lines of their own
    leave no blank lines behind, which is what people writing a text reply expect.

    >>> make_environment(".").from_string("Hi {{ name }}").render(name="Ann")
    'Hi Ann'
    """
    return SandboxedEnvironment(
        loader=FileSystemLoader(os.fspath(base_dir)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def check_template_source(text: str, env: Environment | None = None) -> str | None:
    """None when ``text`` compiles, else a message naming the template line.

    Compiling (not just parsing) also catches unknown filters and tests, which Jinja
    reports at compile time.

    >>> check_template_source("{{ message.subject | shout }}")
    "line 1: no filter named 'shout'"
    >>> check_template_source("Hello {{ message.subject }}") is None
    True
    """
    environment = env if env is not None else make_environment(os.curdir)
    try:
        environment.compile(text)
    except TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {_sentence(exc.message or 'invalid template')}"
    except (RecursionError, MemoryError):
        return "template is nested too deeply"
    return None


def template_name(base_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """The loader name of the template file ``path`` inside ``base_dir`` (``/``-separated).

    >>> template_name("/rules", "/rules/templates/away.txt.j2")
    'templates/away.txt.j2'
    """
    relative = Path(os.path.relpath(path, base_dir))
    if relative.parts and relative.parts[0] == os.pardir:
        raise ValueError(f"template {os.fspath(path)!r} is outside {os.fspath(base_dir)!r}")
    return relative.as_posix()


def load_template(base_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Template:
    """Load the template file ``path`` through a sandboxed environment rooted at ``base_dir``."""
    return make_environment(base_dir).get_template(template_name(base_dir, path))


def _sentence(message: str) -> str:
    # Jinja writes "No filter named 'x'."; our messages are lower-case clauses without a full stop.
    message = message.strip().rstrip(".")
    return message[:1].lower() + message[1:]
