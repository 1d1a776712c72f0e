from redox.goals.sysroot import tree_conflicts


def test_identical_entries_are_no_conflict() -> None:
    trees = [("a", [("usr/lib/x.a", "file 1 -"), ("usr/lib/l", "symlink -> x.a")]),
             ("b", [("usr/lib/x.a", "file 1 -"), ("usr/lib/l", "symlink -> x.a")])]
    assert tree_conflicts(trees) == []


def test_each_differing_path_names_the_first_tree_and_the_other() -> None:
    trees = [("//r:relibc", [("usr/lib/libc.a", "file 1 -"), ("usr/lib/crt0.o", "file 2 -")]),
             ("//g:libgcc", [("usr/lib/libgcc_eh.a", "file 3 -")]),
             ("//o:other", [("usr/lib/libc.a", "file 4 -"), ("usr/lib/crt0.o", "symlink -> crt1.o")]),
             ("//p:exec", [("usr/lib/libgcc_eh.a", "file 3 x")])]
    assert tree_conflicts(trees) == [
        "usr/lib/crt0.o (from //r:relibc and //o:other)",
        "usr/lib/libc.a (from //r:relibc and //o:other)",
        "usr/lib/libgcc_eh.a (from //g:libgcc and //p:exec)",
    ]
