"""`users`: accounts and groups (/etc/passwd, /etc/shadow, /etc/group, home directories)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from redox_tools.system.evaluator import Evaluator, _suggest
from redox_tools.system.types import BOOL, PATH, STR, Int, attrs_of, list_of, null_or, option, sub

FIRST_AUTO_ID = 1000
_ID = Int(0, 65535)

USER = sub(
    "user",
    uid=option(null_or(_ID), "User id; unset: the next free id from 1000 (in name order).", default=None),
    gid=option(null_or(_ID), "Primary group id (the user's own group, named after the user); unset: the uid.", default=None),
    description=option(null_or(STR), "The passwd name field; unset: the user name.", default=None),
    home=option(null_or(PATH), "Home directory; unset: /home/<user> (/root for root).", default=None),
    shell=option(PATH, "Login shell.", default="/bin/ion"),
    groups=option(list_of(STR, unique=True), "Other groups the user is a member of (e.g. `sudo`).", default=[]),
    create_home=option(BOOL, "Create the home directory (mode 0700, owned by the user).", default=True),
    hashed_password=option(
        null_or(STR),
        """An argon2 hash (`$argon2id$...`) written to /etc/shadow as it is. Wins over `password`
        only if `password` is unset (setting both is an error).""",
        default=None,
    ),
    password=option(
        null_or(STR),
        """Plaintext password, hashed at build time (argon2id) into /etc/shadow; never written to the
        image, dist/ or a log. `""` = no password. Prefer `hashed_password` in shared files.""",
        default=None,
        secret=True,
    ),
    random_salt=option(
        BOOL,
        """Salt the hash with random bytes. Default: a salt derived from the system and the user
        name, so two builds write the same /etc/shadow.""",
        default=False,
    ),
)

GROUP = sub(
    "group",
    gid=option(null_or(_ID), "Group id; unset: the next free id from 1000.", default=None),
    members=option(list_of(STR, unique=True), "Member user names.", default=[]),
)

OPTIONS = {
    "users": {
        "users": option(
            attrs_of(USER),
            "Accounts, by login name. Each user also gets a group named after it (gid = the user's gid).",
            default={},
            example={"admin": {"uid": 1001, "gid": 1001, "home": "/home/admin", "shell": "/bin/ion", "groups": ["sudo"]}},
        ),
        "groups": option(attrs_of(GROUP), "Extra groups, by name.", default={}, example={"wheel": {"gid": 10, "members": ["admin"]}}),
    }
}


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    description: str
    home: str
    shell: str
    create_home: bool
    password: Optional[str]
    hashed_password: Optional[str]
    random_salt: bool


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: Tuple[str, ...]


def resolve(config: Dict[str, Any]) -> Tuple[List[User], List[Group]]:
    """Users and groups with every id and default filled in: users sorted by uid, groups by gid."""
    users_cfg: Dict[str, Any] = config["users"]["users"]
    taken = {u["uid"] for u in users_cfg.values() if u["uid"] is not None}
    next_id = FIRST_AUTO_ID
    users: List[User] = []
    for name in sorted(users_cfg):
        u = users_cfg[name]
        uid = u["uid"]
        if uid is None:
            while next_id in taken:
                next_id += 1
            uid = next_id
            taken.add(uid)
        home = u["home"] or ("/root" if name == "root" else f"/home/{name}")
        users.append(
            User(name, uid, u["gid"] if u["gid"] is not None else uid, u["description"] or name, home, u["shell"],
                 u["create_home"], u["password"], u["hashed_password"], u["random_salt"])
        )
    users.sort(key=lambda x: (x.uid, x.name))

    members: Dict[str, List[str]] = {}
    gids: Dict[str, Optional[int]] = {}
    for name, g in config["users"]["groups"].items():
        gids[name] = g["gid"]
        members[name] = list(g["members"])
    sudo = config["security"]["sudo"]
    if sudo["enable"]:
        gids.setdefault(sudo["group"], sudo["gid"])
        members.setdefault(sudo["group"], [])
    for u in users:
        if u.name not in gids:
            gids[u.name] = u.gid
            members.setdefault(u.name, [])
        for g in users_cfg[u.name]["groups"]:
            lst = members.setdefault(g, [])
            if u.name not in lst:
                lst.append(u.name)
    gid_taken = {g for g in gids.values() if g is not None}
    next_gid = FIRST_AUTO_ID
    groups: List[Group] = []
    for name in sorted(gids):
        gid = gids[name]
        if gid is None:
            while next_gid in gid_taken:
                next_gid += 1
            gid = next_gid
            gid_taken.add(gid)
        groups.append(Group(name, gid, tuple(members.get(name, ()))))
    groups.sort(key=lambda g: (g.gid, g.name))
    return users, groups


def check(ev: Evaluator, config: Dict[str, Any]) -> None:
    users_cfg = config["users"]["users"]
    for name in users_cfg:
        if not name or any(c in name for c in ";:,\n /") :
            raise ev.fail(f"users.users.{name}", f"user name {name!r} cannot appear in /etc/passwd (no ; : , / space or newline)")
    by_uid: Dict[int, str] = {}
    for name in sorted(users_cfg):
        uid = users_cfg[name]["uid"]
        if uid is None:
            continue
        if uid in by_uid:
            other = by_uid[uid]
            raise ev.fail(
                f"users.users.{name}.uid",
                f"uid {uid} is also the uid of user `{other}` (set in "
                f"{', '.join(ev.modules_setting(f'users.users.{other}.uid')) or '?'}); every user needs its own uid",
            )
        by_uid[uid] = name
        u = users_cfg[name]
        if u["password"] is not None and u["hashed_password"] is not None:
            raise ev.fail(f"users.users.{name}", "set either `password` or `hashed_password`, not both")
    for name, u in users_cfg.items():
        if u["password"] is not None and u["hashed_password"] is not None:
            raise ev.fail(f"users.users.{name}", "set either `password` or `hashed_password`, not both")
        hp = u["hashed_password"]
        if hp is not None and hp != "" and not hp.startswith("$argon2"):
            raise ev.fail(f"users.users.{name}.hashed_password", "is not an argon2 hash ($argon2id$...); Redox verifies shadow entries with argon2")
    users, groups = resolve(config)
    known_groups = {g.name for g in groups}
    for name, u in users_cfg.items():
        for g in u["groups"]:
            if g not in known_groups and g not in config["users"]["groups"]:
                raise ev.fail(f"users.users.{name}.groups", f"group `{g}` does not exist" + _suggest(g, known_groups) + "; declare it in users.groups")
    by_gid: Dict[int, str] = {}
    for g in groups:
        if g.gid in by_gid:
            raise ev.fail(f"users.groups.{g.name}", f"gid {g.gid} is also the gid of group `{by_gid[g.gid]}`")
        by_gid[g.gid] = g.name
    user_names = {u.name for u in users}
    for name, g in config["users"]["groups"].items():
        for m in g["members"]:
            if m not in user_names:
                raise ev.fail(f"users.groups.{name}.members", f"member `{m}` is not a user" + _suggest(m, user_names))


CHECKS = [check]
