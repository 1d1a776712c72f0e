"""Command line of the module system (also what the Pants rules run).

    python -m redox_tools.system options [--option PATH] [--json]
    python -m redox_tools.system eval SYSTEM.json [--option PATH] [--json]
    python -m redox_tools.system build SYSTEM.json --out-dir DIR [--root REPO] [--source-date-epoch N]

SYSTEM.json: {"system": "<name>", "roots": ["<module>", ...], "modules": [<module>, ...]} (each
module as in evaluator.py). `build` writes DIR/config.json (the evaluated configuration with
secrets redacted, plus "packages", "drop_drivers" (the drivers `hardware.drivers` leaves out
of the image) and "warnings"), DIR/overlay.json (the generated files' root
manifest) and DIR/files/ (their content). Bad input: one `error:` line, exit status 2,
nothing written.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from redox_tools.errors import ToolError, run_main
from redox_tools.system import load_system
from redox_tools.system.evaluator import all_options, redact
from redox_tools.system.generate import generate, write_tree
from redox_tools.system.options import option_tree
from redox_tools.system.options.hardware import drop_drivers


def _show_default(opt: Any) -> str:
    if not opt.has_default:
        return "(none)"
    return json.dumps(opt.default)


def cmd_options(args: argparse.Namespace) -> int:
    rows = [(p, o) for p, o in all_options(option_tree()) if not args.option or p == args.option or p.startswith(args.option + ".")]
    if not rows:
        raise ToolError(f"no option `{args.option}`")
    if args.json:
        print(json.dumps([
            {"path": p, "type": str(o.type), "default": o.default if o.has_default else None, "description": o.description,
             "example": o.example, "declared_in": o.declared_in} for p, o in rows
        ], indent=1))
        return 0
    for p, o in rows:
        print(p)
        print(f"    type: {o.type}")
        print(f"    default: {_show_default(o)}")
        if o.example is not None:
            print(f"    example: {json.dumps(o.example)}")
        print(f"    {o.description}")
        print(f"    declared in: {o.declared_in}")
    return 0


def _read(path: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ToolError(f"cannot read system description {path}: {e}") from None


def cmd_eval(args: argparse.Namespace) -> int:
    ev, config = load_system(_read(args.system))
    tree = option_tree()
    for w in ev.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.option:
        print(json.dumps(redact(config, tree), indent=1, sort_keys=True))
        return 0
    try:
        value = ev.get(args.option)
    except KeyError:
        raise ToolError(f"no option `{args.option}`") from None
    value = redact({args.option.split(".")[-1]: value}, tree)[args.option.split(".")[-1]]
    if args.json:
        print(json.dumps({"option": args.option, "value": value, "modules": ev.modules_setting(args.option)}, indent=1))
        return 0
    print(f"{args.option} = {json.dumps(value, sort_keys=True)}")
    modules = ev.modules_setting(args.option)
    print("defined by: " + (", ".join(modules) if modules else "(the option's default)"))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    data = _read(args.system)
    ev, config = load_system(data)
    files = generate(config, data.get("system", "system"), args.root)
    for w in ev.warnings:
        print(f"warning: {w}", file=sys.stderr)
    # Written into a fresh directory that replaces the output only when all of it is there.
    parent = os.path.dirname(os.path.abspath(args.out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".system-", dir=parent)
    try:
        manifest = write_tree(files, tmp, args.source_date_epoch)
        manifest.dump(os.path.join(tmp, "overlay.json"))
        out: Dict[str, Any] = {
            "system": data.get("system", "system"),
            "config": redact(config, option_tree()),
            "packages": config["environment"]["system_packages"],
            "drop_drivers": drop_drivers(config),
            "warnings": ev.warnings,
        }
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        if os.path.exists(args.out_dir):
            shutil.rmtree(args.out_dir)
        os.replace(tmp, args.out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redox_tools.system", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("options", help="list the declared options")
    p.add_argument("--option", help="only this option (or group)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("eval", help="evaluate a system; print its configuration or one option")
    p.add_argument("system")
    p.add_argument("--option")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("build", help="evaluate a system and write its generated files")
    p.add_argument("system")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--root", default=".", help="repository root (for files.*.source)")
    p.add_argument("--source-date-epoch", type=int, default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    args = parser.parse_args(argv)
    handlers = {"options": cmd_options, "eval": cmd_eval, "build": cmd_build}
    return handlers[args.cmd](args)


if __name__ == "__main__":
    run_main(main)


__all__: List[str] = ["main"]
