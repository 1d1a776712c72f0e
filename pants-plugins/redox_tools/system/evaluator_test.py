"""Merge semantics of the module system, on small modules and a small option set."""
from __future__ import annotations

import pytest

from redox_tools.system.evaluator import (
    EvalError,
    Evaluator,
    Module,
    collect_modules,
    mk_default,
    mk_force,
    mk_if,
    mk_merge,
    mk_override,
)
from redox_tools.system.types import BOOL, INT, PACKAGE, STR, attrs_of, enum, list_of, option, sub

OPTIONS = {
    "a": {
        "flag": option(BOOL, "a flag", default=False),
        "n": option(INT, "a number", default=1),
        "name": option(STR, "a name", default="x"),
        "mode": option(enum("on", "off"), "a mode", default="off"),
        "items": option(list_of(STR), "items", default=[]),
        "uniq": option(list_of(STR, unique=True), "unique items", default=[]),
        "map": option(attrs_of(STR), "a map", default={}),
        "pkgs": option(list_of(PACKAGE), "packages", default=[]),
    },
    "people": option(
        attrs_of(sub("person", age=option(INT, "age", default=0), tags=option(list_of(STR), "tags", default=[]))),
        "people",
        default={},
    ),
}


def evaluate(*modules: Module, roots=None):
    by_name = {m.name: m for m in modules}
    ordered = collect_modules(roots or [modules[-1].name], by_name)
    ev = Evaluator(OPTIONS, ordered)
    return ev, ev.evaluate()


def M(name, config, imports=(), dir="d"):
    return Module(name, config, tuple(imports), f"{dir}/BUILD", dir)


def test_defaults_and_plain_values():
    _, c = evaluate(M("m", {"a": {"n": 5}}))
    assert c["a"]["n"] == 5 and c["a"]["flag"] is False and c["people"] == {}


def test_lists_concatenate_imports_first_and_unique_drops_duplicates():
    base = M("base", {"a": {"items": ["b1", "b2"], "uniq": ["x", "y"]}})
    mid = M("mid", {"a": {"items": ["m1"], "uniq": ["y", "z"]}}, ["base"])
    top = M("top", {"a": {"items": ["t1"], "uniq": ["x"]}}, ["mid", "base"])
    _, c = evaluate(base, mid, top)
    assert c["a"]["items"] == ["b1", "b2", "m1", "t1"]
    assert c["a"]["uniq"] == ["x", "y", "z"]


def test_attrs_merge_deeply():
    one = M("one", {"people": {"ann": {"age": 3, "tags": ["a"]}}, "a": {"map": {"k1": "v1"}}})
    two = M("two", {"people": {"ann": {"tags": ["b"]}, "bob": {}}, "a": {"map": {"k2": "v2"}}}, ["one"])
    _, c = evaluate(one, two)
    assert c["people"] == {"ann": {"age": 3, "tags": ["a", "b"]}, "bob": {"age": 0, "tags": []}}
    assert c["a"]["map"] == {"k1": "v1", "k2": "v2"}


def test_priorities():
    low = M("low", {"a": {"n": mk_default(2), "name": "plain"}})
    high = M("high", {"a": {"n": 3, "name": mk_force("forced")}}, ["low"])
    _, c = evaluate(low, high)
    assert c["a"]["n"] == 3 and c["a"]["name"] == "forced"
    # lists: only the definitions of the best priority count
    l1 = M("l1", {"a": {"items": mk_default(["d"])}})
    l2 = M("l2", {"a": {"items": ["p"]}}, ["l1"])
    l3 = M("l3", {"a": {"items": mk_override(10, ["o"])}}, ["l2"])
    assert evaluate(l1, l2)[1]["a"]["items"] == ["p"]
    assert evaluate(l1, l2, l3)[1]["a"]["items"] == ["o"]
    # a marker around a group pushes down to every option below it
    g = M("g", {"a": mk_default({"n": 7, "name": "from-default"})})
    h = M("h", {"a": {"name": "plain"}}, ["g"])
    _, c = evaluate(g, h)
    assert c["a"] ["n"] == 7 and c["a"]["name"] == "plain"


def test_equal_priority_conflict_names_both_modules_and_values():
    one = M("//x:one", {"a": {"n": 1}})
    two = M("//x:two", {"a": {"n": 2}}, ["//x:one"])
    with pytest.raises(EvalError) as e:
        evaluate(one, two)
    msg = str(e.value)
    assert "`a.n`" in msg and "1 in module //x:one" in msg and "2 in module //x:two" in msg
    # the same value twice is no conflict
    assert evaluate(one, M("//x:three", {"a": {"n": 1}}, ["//x:one"]))[1]["a"]["n"] == 1


def test_mk_if_on_other_options():
    m = M("m", {
        "a": {
            "flag": True,
            "mode": mk_if("a.flag", "on"),
            "items": mk_merge([mk_if("a.flag", ["with-flag"]), mk_if("!a.flag", ["without"]), ["always"]]),
            "n": mk_if("a.mode == on", 10),
            "name": mk_if("a.mode != on", "not-used"),
        },
        "people": {"ann": mk_if(False, {"age": 1}), "bob": mk_if("a.flag", {"age": 2})},
    })
    _, c = evaluate(m)
    assert c["a"]["mode"] == "on" and c["a"]["n"] == 10 and c["a"]["name"] == "x"
    assert c["a"]["items"] == ["with-flag", "always"]
    assert c["people"] == {"bob": {"age": 2, "tags": []}}


def test_mk_if_self_reference_is_an_error():
    with pytest.raises(EvalError, match="infinite recursion.*a.flag"):
        evaluate(M("m", {"a": {"flag": mk_if("a.flag", True)}}))


def test_mk_if_unknown_option_in_condition():
    with pytest.raises(EvalError, match=r"names unknown option `a.flga`.*did you mean `a.flag`"):
        evaluate(M("m", {"a": {"n": mk_if("a.flga", 3)}}))


def test_import_cycle_names_the_chain():
    a = M("a", {}, ["b"])
    b = M("b", {}, ["c"])
    c = M("c", {}, ["a"])
    with pytest.raises(EvalError, match="import cycle: a -> b -> c -> a"):
        evaluate(a, b, c, roots=["a"])


def test_unknown_option_did_you_mean_and_wrong_type():
    with pytest.raises(EvalError, match=r"unknown option `a.itmes` in module m \(did you mean `a.items`\?\)"):
        evaluate(M("m", {"a": {"itmes": []}}))
    with pytest.raises(EvalError, match=r"unknown option `people.ann.agee` in module m \(did you mean `people.ann.age`\?\)"):
        evaluate(M("m", {"people": {"ann": {"agee": 1}}}))
    with pytest.raises(EvalError, match=r"option `a.n` in module m: expected an int, got string '3'"):
        evaluate(M("m", {"a": {"n": "3"}}))
    with pytest.raises(EvalError, match=r"option `a.mode` in module m: expected one of 'on', 'off'"):
        evaluate(M("m", {"a": {"mode": "maybe"}}))
    with pytest.raises(EvalError, match=r"`a` is an option group"):
        evaluate(M("m", {"a": 3}))


def test_package_references_relative_to_the_module():
    _, c = evaluate(M("m", {"a": {"pkgs": [":local", "//packages/userspace:ion"]}}, dir="images/x"))
    assert c["a"]["pkgs"] == ["//images/x:local", "//packages/userspace:ion"]
    with pytest.raises(EvalError, match="expected a package target address"):
        evaluate(M("m", {"a": {"pkgs": ["ripgrep"]}}))


def test_provenance():
    one = M("one", {"a": {"items": ["1"]}})
    two = M("two", {"a": {"items": ["2"], "n": 4}}, ["one"])
    ev, _ = evaluate(one, two)
    assert ev.modules_setting("a.items") == ["one", "two"]
    assert ev.modules_setting("a.n") == ["two"]
    assert ev.modules_setting("a") == ["one", "two"]


def test_literal_markers_as_the_build_file_functions_write_them():
    # redox/system_markers.py (the BUILD-file side) writes exactly these dicts
    m = M("m", {"a": {
        "n": {"_redox": "override", "priority": 50, "value": 9},
        "items": {"_redox": "merge", "values": [{"_redox": "if", "condition": "a.n == 9", "value": ["yes"]}, ["b"]]},
    }})
    _, c = evaluate(m)
    assert c["a"]["n"] == 9 and c["a"]["items"] == ["yes", "b"]
