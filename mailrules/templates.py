"""The Jinja2 environment for reply subjects and bodies.

Rule files come from a shared repository and replies go to strangers, so templates run
in Jinja's sandbox, an undefined name is an error instead of an empty string (a typo
must not send a half-empty reply), and files can only be loaded from the directory of
the rule file that names them.  Validation and rendering use the same environment, so
whatever ``validate`` accepts is what ``run`` can render.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import (Environment, FileSystemLoader, StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta,
                    nodes)
from jinja2.sandbox import SandboxedEnvironment

from mailrules.errors import Loc, Problem

if TYPE_CHECKING:
    from mailrules.parse import TemplateRef


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


@dataclass(frozen=True, slots=True)
class TemplateFault:
    """A name a template uses that no message will ever have; ``line``/``column`` are 1-based in ``file``.

    ``file`` is None for the checked text itself, else the template file (an include) it is in.
    """

    line: int
    column: int
    message: str
    file: str | None = None
    token: str = field(default="", repr=False)  # the undefined name or key, to find it in the text


_MISSING = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


def find_undefined(text: str, env: Environment, variables: Mapping[str, object],
                   name: str | None = None) -> TemplateFault | None:
    """The first undefined name in a template that compiles, or None.

    Every branch is read for names the template context lacks (``mesage``) and for keys
    ``message``, ``rule`` and ``account`` don't have (``message.subjet``); then the
    template is rendered with ``variables`` (a sample message) and the strict undefined,
    which also finds what only rendering reaches.  ``name`` is the loader name of a file
    template (its includes then resolve), None for inline text.

    >>> sample = {"message": {"subject": "Hi"}}
    >>> find_undefined("{% if message.subject %}{{ message.subjet }}{% endif %}", make_environment("."), sample)
    TemplateFault(line=1, column=36, message="'message' has no 'subjet'; it has subject", file=None)
    >>> find_undefined("Re: {{ message.subject }}", make_environment("."), sample) is None
    True
    """
    lines = text.splitlines()
    return _static_fault(text, lines, env, variables) or _render_fault(text, lines, env, variables, name)


def _static_fault(text: str, lines: list[str], env: Environment,
                  variables: Mapping[str, object]) -> TemplateFault | None:
    tree = env.parse(text)
    free = meta.find_undeclared_variables(tree)
    faults: list[TemplateFault] = []
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name in free and node.name not in variables and node.name not in env.globals:
            known = ", ".join(sorted(variables))
            faults.append(_fault(lines, node.lineno, node.name, f"{node.name!r} is undefined; templates see {known}"))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        fault = _missing_key(node, lines, free, variables)
        if fault is not None:
            faults.append(fault)
    return min(faults, key=lambda fault: (fault.line, fault.column), default=None)


def _missing_key(node: nodes.Getattr | nodes.Getitem, lines: list[str], free: set[str],
                 variables: Mapping[str, object]) -> TemplateFault | None:
    owner = node.node
    if not (isinstance(owner, nodes.Name) and owner.name in free and isinstance(variables.get(owner.name), dict)):
        return None
    if isinstance(node, nodes.Getattr):
        key = node.attr
    elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        key = node.arg.value
    else:
        return None
    keys = variables[owner.name]
    assert isinstance(keys, dict)
    if key in keys:
        return None
    message = f"{owner.name!r} has no {key!r}; it has {', '.join(sorted(keys))}"
    return _fault(lines, node.lineno, key, message)


def _render_fault(text: str, lines: list[str], env: Environment, variables: Mapping[str, object],
                  name: str | None) -> TemplateFault | None:
    try:
        template = env.get_template(name) if name is not None else env.from_string(text)
        template.render(variables)
    except UndefinedError as exc:
        found = _MISSING.search(str(exc))
        if found is None:
            return None  # e.g. an index past the sample's end: that depends on the real message
        line, file = _template_line(exc, template.filename)
        token = found.group(1) or found.group(2)
        source = lines if file is None else _file_lines(file)
        fault = _fault(source, line, token, _sentence(str(exc)))
        return fault if file is None else TemplateFault(fault.line, fault.column, fault.message, file)
    except Exception:  # noqa: BLE001 - anything else depends on the real message, and run reports it
        return None
    return None


def _template_line(exc: BaseException, filename: str | None) -> tuple[int, str | None]:
    """Where in which template the error was raised: Jinja rewrites the traceback's last
    frames to template lines (marked by ``__jinja_exception__``); the innermost one wins."""
    line, file = 1, None
    trace = exc.__traceback__
    while trace is not None:
        if "__jinja_exception__" in trace.tb_frame.f_globals:
            code = trace.tb_frame.f_code.co_filename
            line, file = trace.tb_lineno, (None if code in (filename, "<template>") else code)
        trace = trace.tb_next
    return line, file


def _file_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _fault(lines: list[str], line: int, token: str, message: str) -> TemplateFault:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return TemplateFault(line, _token_column(text, token), message, token=token)


def _token_column(text: str, token: str, start: int = 0) -> int:
    """1-based column of ``token`` used as a name or key in ``text`` (0 if absent): ``subjet`` in ``message.subjet``."""
    word = re.escape(token)
    found = re.compile(rf"(?<![\w.])({word})\b|\.\s*({word})\b|['\"]({word})['\"]").search(text, start)
    if found is None:
        return 0
    group = next(index for index in (1, 2, 3) if found.group(index) is not None)
    return found.start(group) + 1


def template_problem(ref: TemplateRef, source: str, env: Environment) -> Problem | None:
    """A compiling template's first undefined name, as a problem at its ``file:line:col``.

    Inline text is located in the rule file, a template file (or a file it includes) in
    that file, named as the rule file names it.
    """
    from mailrules.variables import sample_variables

    name = None if ref.path is None else template_name(ref.base_dir, ref.path)
    fault = find_undefined(source, env, sample_variables(), name)
    if fault is None:
        return None
    if ref.path is None:
        return Problem(_inline_loc(ref, fault, source), f"template {ref.shown_as}: {fault.message}")
    inside = name if fault.file is None else template_name(ref.base_dir, fault.file)
    shown = os.path.normpath(os.path.join(os.path.dirname(ref.loc.file), inside))
    return Problem(Loc(shown, fault.line, max(fault.column, 1)),
                   f"{fault.message} (in reply template {ref.shown_as!r}, named at {ref.loc})")


def _inline_loc(ref: TemplateRef, fault: TemplateFault, source: str) -> Loc:
    """Template line N is rule-file line N of a quoted scalar, N + 1 of a block (``|``); folded text
    only moves it further down, so the first use of the name from there on is the one."""
    lines = _file_lines(ref.loc.file)
    first = ref.loc.line + fault.line - 1
    for number in range(first, min(first + len(source.splitlines()) + 2, len(lines)) + 1):
        start = ref.loc.col - 1 if number == ref.loc.line else 0
        column = _token_column(lines[number - 1], fault.token, start) if fault.token else 0
        if column:
            return Loc(ref.loc.file, number, column)
    return ref.loc


def _sentence(message: str) -> str:
    # Jinja writes "No filter named 'x'."; our messages are lower-case clauses without a full stop.
    message = message.strip().rstrip(".")
    return message[:1].lower() + message[1:]
