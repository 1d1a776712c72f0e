"""Evaluate modules into one system configuration, the way NixOS merges its modules.

A module is plain data (what a BUILD file can write):

    {"name": "//images/examples:custom-system", "file": "images/examples/BUILD", "dir": "images/examples",
     "imports": ["//images/profiles:development"], "config": {"networking": {"mode": "static"}}}

Values in `config` may be wrapped in markers (JSON objects with a `_redox` key), made by the
BUILD-file functions `mk_default`, `mk_force`, `mk_override`, `mk_if` and `mk_merge`:

    {"_redox": "override", "priority": 1000, "value": V}    mk_default(V)   (mk_force: 50)
    {"_redox": "if", "condition": C, "value": V}           mk_if(C, V)
    {"_redox": "merge", "values": [V, ...]}                 mk_merge([V, ...])

Priorities: lower number wins (mk_force 50 < plain 100 < mk_default 1000 < option default).
Markers may sit at any depth; they apply to every option below them. A condition is a bool or
a string over other options: `"graphics.enable"`, `"!graphics.enable"`,
`"networking.mode == static"`, `"networking.mode != none"` (the right side is JSON if it parses,
else a string). Conditions are evaluated lazily (an option whose value depends on itself is an
error naming the chain).

Merging (types.py): attribute sets merge deeply; lists concatenate the definitions of the
highest priority in module order (a module's imports come before it); a scalar defined twice
with different values at the same priority is an error naming both modules and values.
Unknown options are errors with a did-you-mean. Every error names the option path and module.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from redox_tools.errors import ToolError
from redox_tools.system.types import (
    AttrsOf,
    ListOf,
    NullOr,
    Option,
    OptionType,
    Submodule,
    TypeMismatch,
)

MARK = "_redox"
PRIORITY_FORCE = 50
PRIORITY_PLAIN = 100
PRIORITY_DEFAULT = 1000
PRIORITY_OPTION_DEFAULT = 1500


class EvalError(ToolError):
    """A module system error: names the option path and the module(s) at fault."""


# --- markers (also what the BUILD-file functions return) --------------------------------------


def mk_override(priority: int, value: Any) -> Dict[str, Any]:
    return {MARK: "override", "priority": priority, "value": value}


def mk_default(value: Any) -> Dict[str, Any]:
    return mk_override(PRIORITY_DEFAULT, value)


def mk_force(value: Any) -> Dict[str, Any]:
    return mk_override(PRIORITY_FORCE, value)


def mk_if(condition: Any, value: Any) -> Dict[str, Any]:
    return {MARK: "if", "condition": condition, "value": value}


def mk_merge(values: Sequence[Any]) -> Dict[str, Any]:
    return {MARK: "merge", "values": list(values)}


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and MARK in value


# --- modules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str
    config: Dict[str, Any]
    imports: Tuple[str, ...] = ()
    file: str = ""
    dir: str = ""

    @classmethod
    def from_json(cls, data: Any) -> "Module":
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise EvalError(f"malformed module {str(data)[:80]!r}: needs at least a `name`")
        name = data["name"]
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise EvalError(f"module {name}: `config` must be an attribute set, got {type(config).__name__}")
        imports = data.get("imports") or []
        if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
            raise EvalError(f"module {name}: `imports` must be a list of module names")
        return cls(name, config, tuple(imports), str(data.get("file", "")), str(data.get("dir", "")))


def collect_modules(roots: Sequence[str], modules: Dict[str, Module]) -> List[Module]:
    """Every module reachable from `roots` through `imports`, each once, imports before their
    importer (depth first, in the order written). A cycle is an error naming it."""
    order: List[Module] = []
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(name: str, importer: Optional[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = stack[stack.index(name):] + [name]
            raise EvalError(f"import cycle: {' -> '.join(cycle)}; remove one of these imports")
        module = modules.get(name)
        if module is None:
            where = f"module {importer} imports" if importer else "the system names"
            hint = difflib.get_close_matches(name, list(modules), n=1)
            raise EvalError(f"{where} {name}, which is not a known module" + (f" (did you mean {hint[0]}?)" if hint else ""))
        state[name] = 1
        stack.append(name)
        for imp in module.imports:
            visit(imp, name)
        stack.pop()
        state[name] = 2
        order.append(module)

    for r in roots:
        visit(r, None)
    return order


# --- definitions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    module: Module
    value: Any
    priority: int = PRIORITY_PLAIN
    conditions: Tuple[Any, ...] = ()


@dataclass
class Contribution:
    module: str
    value: Any
    priority: int


OptionTree = Dict[str, Any]  # nested dicts whose leaves are Options


def iter_options(tree: OptionTree, prefix: str = "") -> Iterable[Tuple[str, Option]]:
    for key in sorted(tree):
        node = tree[key]
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(node, Option):
            yield path, node
        else:
            yield from iter_options(node, path)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    hint = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean `{hint[0]}`?)" if hint else ""


def _show(value: Any, secret: bool = False) -> str:
    if secret:
        return "<secret>"
    try:
        return json.dumps(value, sort_keys=True)
    except TypeError:
        return repr(value)


Check = Callable[["Evaluator", Dict[str, Any]], None]


class Evaluator:
    def __init__(self, options: OptionTree, modules: Sequence[Module], checks: Sequence[Check] = ()) -> None:
        self.options = options
        self.modules = list(modules)
        self.checks = list(checks)
        self.option_paths = {p: o for p, o in iter_options(options)}
        self.defs: Dict[str, List[Definition]] = {p: [] for p in self.option_paths}
        self.values: Dict[str, Any] = {}
        self.provenance: Dict[str, List[Contribution]] = {}
        self.warnings: List[str] = []
        self._evaluating: List[str] = []
        for m in self.modules:
            self._flatten(m, m.config, options, "", PRIORITY_PLAIN, ())

    # --- flattening module configs onto declared options --------------------------------
    def _unwrap(self, module: Module, value: Any, prio: int, conds: Tuple[Any, ...], path: str) -> List[Tuple[Any, int, Tuple[Any, ...]]]:
        """Peel markers off `value`: [(plain value, priority, conditions)]."""
        if not is_marker(value):
            return [(value, prio, conds)]
        kind = value.get(MARK)
        where = f"`{path or '<config>'}` in module {module.name}"
        if kind == "override":
            p = value.get("priority")
            if isinstance(p, bool) or not isinstance(p, int) or "value" not in value:
                raise EvalError(f"{where}: malformed mk_override marker {_show(value)}")
            return self._unwrap(module, value["value"], p, conds, path)
        if kind == "if":
            if "condition" not in value or "value" not in value:
                raise EvalError(f"{where}: malformed mk_if marker {_show(value)}")
            return self._unwrap(module, value["value"], prio, conds + (value["condition"],), path)
        if kind == "merge":
            vs = value.get("values")
            if not isinstance(vs, list):
                raise EvalError(f"{where}: malformed mk_merge marker {_show(value)}")
            out: List[Tuple[Any, int, Tuple[Any, ...]]] = []
            for v in vs:
                out += self._unwrap(module, v, prio, conds, path)
            return out
        raise EvalError(f"{where}: unknown marker kind {kind!r} (expected override, if or merge)")

    def _flatten(self, module: Module, value: Any, node: OptionTree, path: str, prio: int, conds: Tuple[Any, ...]) -> None:
        for plain, p, c in self._unwrap(module, value, prio, conds, path):
            if not isinstance(plain, dict):
                what = f"`{path}` is an option group" if path else "a module's config"
                raise EvalError(
                    f"{what}, not an option (module {module.name}): set its options "
                    f"({', '.join(sorted(node))}) in an attribute set, got {_show(plain)}"
                )
            for key, sub in plain.items():
                child = f"{path}.{key}" if path else key
                if key not in node:
                    raise EvalError(
                        f"unknown option `{child}` in module {module.name}"
                        + _suggest(child, [*self.option_paths, *self._group_paths()])
                    )
                target = node[key]
                if isinstance(target, Option):
                    self.defs[child].append(Definition(module, sub, p, c))
                else:
                    self._flatten(module, sub, target, child, p, c)

    def _group_paths(self) -> List[str]:
        out = []
        for p in self.option_paths:
            parts = p.split(".")
            out += [".".join(parts[:i]) for i in range(1, len(parts))]
        return out

    # --- conditions -----------------------------------------------------------------------
    def condition_holds(self, cond: Any, module: Module, path: str) -> bool:
        if isinstance(cond, bool):
            return cond
        if isinstance(cond, list):
            return all(self.condition_holds(c, module, path) for c in cond)
        if not isinstance(cond, str) or not cond.strip():
            raise EvalError(f"mk_if condition {_show(cond)} on `{path}` in module {module.name} is not a bool or an option expression")
        text = cond.strip()
        for op in ("==", "!="):
            if op in text:
                left, right = (s.strip() for s in text.split(op, 1))
                try:
                    expected = json.loads(right)
                except ValueError:
                    expected = right
                actual = self._lookup(left, module, path, cond)
                return (actual == expected) == (op == "==")
        negate = text.startswith("!")
        name = text[1:].strip() if negate else text
        return bool(self._lookup(name, module, path, cond)) != negate

    def _lookup(self, name: str, module: Module, path: str, cond: Any) -> Any:
        try:
            return self.get(name)
        except KeyError:
            raise EvalError(
                f"mk_if condition {cond!r} on `{path}` in module {module.name} names unknown option `{name}`"
                + _suggest(name, self.option_paths)
            ) from None

    # --- evaluation -----------------------------------------------------------------------
    def get(self, path: str) -> Any:
        """The evaluated value at `path` (an option or a path inside one); KeyError if unknown."""
        parts = path.split(".")
        for i in range(len(parts), 0, -1):
            top = ".".join(parts[:i])
            if top in self.option_paths:
                value = self._value(top)
                for k in parts[i:]:
                    if not isinstance(value, dict) or k not in value:
                        raise KeyError(path)
                    value = value[k]
                return value
        below = [p for p in self.option_paths if p.startswith(path + ".")]
        if below:  # an option group: its options as nested attribute sets
            out: Dict[str, Any] = {}
            for p in sorted(below):
                node = out
                parts = p[len(path) + 1:].split(".")
                for k in parts[:-1]:
                    node = node.setdefault(k, {})
                node[parts[-1]] = self._value(p)
            return out
        raise KeyError(path)

    def _value(self, path: str) -> Any:
        if path in self.values:
            return self.values[path]
        if path in self._evaluating:
            chain = self._evaluating[self._evaluating.index(path):] + [path]
            raise EvalError(f"infinite recursion: option `{path}` depends on itself through mk_if conditions: {' -> '.join(chain)}")
        self._evaluating.append(path)
        try:
            opt = self.option_paths[path]
            value = self._merge(opt, opt.type, path, self.defs[path], opt.default if opt.has_default else _MISSING)
        finally:
            self._evaluating.pop()
        self.values[path] = value
        return value

    def _active(self, path: str, defs: Sequence[Definition]) -> List[Definition]:
        out = []
        for d in defs:
            for v, p, c in self._unwrap(d.module, d.value, d.priority, d.conditions, path):
                if all(self.condition_holds(x, d.module, path) for x in c):
                    out.append(Definition(d.module, v, p, ()))
        return out

    def _merge(self, opt: Option, typ: OptionType, path: str, defs: Sequence[Definition], default: Any) -> Any:
        active = self._active(path, defs)
        if isinstance(typ, Submodule):
            return self._merge_submodule(opt, typ, path, active, default)
        if isinstance(typ, AttrsOf):
            return self._merge_attrs(opt, typ, path, active, default)
        if not active:
            if default is _MISSING:
                raise EvalError(f"option `{path}` has no value: no module sets it and it has no default")
            self.provenance.setdefault(path, [])
            return default
        best = min(d.priority for d in active)
        chosen = [d for d in active if d.priority == best]
        checked = [(d, self._check(typ, d, path, opt)) for d in chosen]
        self.provenance[path] = [Contribution(d.module.name, v, d.priority) for d, v in checked]
        list_type = typ if isinstance(typ, ListOf) else None
        if isinstance(typ, NullOr) and isinstance(typ.inner, ListOf) and all(v is not None for _d, v in checked):
            list_type = typ.inner
        if list_type is not None:
            out: List[Any] = []
            for _d, v in checked:
                out += v
            if list_type.unique:
                seen = set()
                deduped = []
                for v in out:
                    key = json.dumps(v, sort_keys=True)
                    if key not in seen:
                        seen.add(key)
                        deduped.append(v)
                out = deduped
            return out
        first_d, first_v = checked[0]
        for d, v in checked[1:]:
            if v != first_v:
                raise EvalError(
                    f"option `{path}` has conflicting values at the same priority ({best}): "
                    f"{_show(first_v, opt.secret)} in module {first_d.module.name} and "
                    f"{_show(v, opt.secret)} in module {d.module.name}; "
                    "use mk_force(...) in one of them (or mk_default(...) in the other)"
                )
        return first_v

    def _check(self, typ: OptionType, d: Definition, path: str, opt: Option) -> Any:
        try:
            value = typ.check(d.value, path)
            return typ.relativize(value, d.module.dir)
        except TypeMismatch as e:
            detail = f"expected {typ}" if opt.secret else str(e)
            raise EvalError(f"option `{path}` in module {d.module.name}: {detail}") from None

    def _merge_submodule(self, opt: Option, typ: Submodule, path: str, active: Sequence[Definition], default: Any) -> Any:
        for d in active:
            if not isinstance(d.value, dict):
                raise EvalError(f"option `{path}` in module {d.module.name}: expected an attribute set ({typ.label}), got {_show(d.value)}")
            for key in d.value:
                if key not in typ.options:
                    raise EvalError(
                        f"unknown option `{path}.{key}` in module {d.module.name}"
                        + _suggest(f"{path}.{key}", [f"{path}.{k}" for k in typ.options])
                    )
        out = {}
        for key, sub in typ.options.items():
            child_defs = [Definition(d.module, d.value[key], d.priority) for d in active if key in d.value]
            sub_default = sub.default if sub.has_default else _MISSING
            if not child_defs and isinstance(default, dict) and key in default:
                sub_default = default[key]
            out[key] = self._merge(sub, sub.type, f"{path}.{key}", child_defs, sub_default)
        return out

    def _merge_attrs(self, opt: Option, typ: AttrsOf, path: str, active: Sequence[Definition], default: Any) -> Any:
        if not active:
            return {} if default is _MISSING else default
        keys: List[str] = []
        for d in active:
            if not isinstance(d.value, dict):
                raise EvalError(f"option `{path}` in module {d.module.name}: expected an attribute set of {typ.element}, got {_show(d.value)}")
            keys += [k for k in d.value if k not in keys]
        out = {}
        for key in keys:
            child_defs = [Definition(d.module, d.value[key], d.priority) for d in active if key in d.value]
            child_path = f"{path}.{key}"
            if isinstance(typ.element, (Submodule, AttrsOf)):
                if not self._active(child_path, child_defs):
                    continue
                out[key] = self._merge(opt, typ.element, child_path, child_defs, _MISSING if not isinstance(typ.element, AttrsOf) else {})
            else:
                if not self._active(child_path, child_defs):
                    continue
                out[key] = self._merge(opt, typ.element, child_path, child_defs, _MISSING)
        return out

    # --- the whole configuration --------------------------------------------------------
    def evaluate(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        for path in sorted(self.option_paths):
            node = config
            parts = path.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = self._value(path)
        self._assertions()
        for check in self.checks:
            check(self, config)
        return config

    def _assertions(self) -> None:
        if "assertions" not in self.option_paths:
            return
        for d in self._active("assertions", self.defs["assertions"]):
            items = d.value if isinstance(d.value, list) else []
            for item in items:
                if not isinstance(item, dict) or "condition" not in item or not isinstance(item.get("message"), str):
                    raise EvalError(f"option `assertions` in module {d.module.name}: each assertion is {{'condition': ..., 'message': '...'}}, got {_show(item)}")
                if not self.condition_holds(item["condition"], d.module, "assertions"):
                    raise EvalError(f"assertion failed in module {d.module.name}: {item['message']} (condition {_show(item['condition'])})")
        if "warnings" in self.option_paths:
            for d in self._active("warnings", self.defs["warnings"]):
                for w in d.value if isinstance(d.value, list) else []:
                    self.warnings.append(f"{w} (module {d.module.name})")

    def modules_setting(self, path: str) -> List[str]:
        """Modules whose definitions made the value at `path` (or below it)."""
        names: List[str] = []
        for p, contribs in sorted(self.provenance.items()):
            if p == path or p.startswith(path + "."):
                names += [c.module for c in contribs if c.module not in names]
        return names

    def fail(self, path: str, message: str) -> "EvalError":
        modules = self.modules_setting(path)
        where = f" (set in {', '.join(modules)})" if modules else ""
        return EvalError(f"option `{path}`{where}: {message}")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def redact(config: Any, options: OptionTree) -> Any:
    """The configuration with every secret option's value replaced (for output and logs)."""
    secret_leaves = {p.split(".")[-1] for p, o in _all_options(options) if o.secret}

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ("<secret>" if k in secret_leaves and sv not in (None, "") else walk(sv)) for k, sv in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(config)


def _all_options(tree: OptionTree, prefix: str = "") -> Iterable[Tuple[str, Option]]:
    for path, opt in iter_options(tree, prefix):
        yield path, opt
        t = opt.type
        while isinstance(t, (AttrsOf, ListOf, NullOr)):
            t = t.element if not isinstance(t, NullOr) else t.inner
        if isinstance(t, Submodule):
            yield from _all_options(t.options, f"{path}.<name>" if isinstance(opt.type, AttrsOf) else path)


def all_options(tree: OptionTree) -> List[Tuple[str, Option]]:
    """Every option, submodule options included (`users.users.<name>.uid`), in path order."""
    return list(_all_options(tree))
