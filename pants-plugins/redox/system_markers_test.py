"""The BUILD-file markers are the plain data the evaluator (redox_tools.system.evaluator, another
resolve, run as a process) reads: this pins the format on the plugin's side."""
import json

from redox.system_markers import BUILD_FILE_OBJECTS, mk_default, mk_force, mk_if, mk_merge, mk_override


def test_markers_are_plain_json():
    value = mk_merge([mk_if("graphics.enable", mk_force(["a"])), mk_default({"x": 1}), mk_override(10, True)])
    assert json.loads(json.dumps(value)) == {
        "_redox": "merge",
        "values": [
            {"_redox": "if", "condition": "graphics.enable", "value": {"_redox": "override", "priority": 50, "value": ["a"]}},
            {"_redox": "override", "priority": 1000, "value": {"x": 1}},
            {"_redox": "override", "priority": 10, "value": True},
        ],
    }
    assert sorted(BUILD_FILE_OBJECTS) == ["mk_default", "mk_force", "mk_if", "mk_merge", "mk_override"]
