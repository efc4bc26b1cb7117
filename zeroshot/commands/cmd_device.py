"""``zeroshot device list`` / ``zeroshot device show NAME_OR_FILE``: the device models.

Each action is a pair ``(add_parser, run)`` in :data:`ACTIONS`; a new action (``device profile``) is one
more function pair and one more entry.
"""
import json

from estimator.devices import DeviceError, list_devices, load_device
from zeroshot.errors import UserError


def _load(name: str):
    try:
        return load_device(name)
    except DeviceError as e:
        raise UserError(str(e)) from None


def add_list(sub):
    return sub.add_parser("list", help="the built-in device profiles, one per line")


def run_list(args):
    devices = [_load(name) for name in list_devices()]
    width = max(len(d.name) for d in devices)
    print(f"{'name':{width}}  {'kind':8} summary")
    for d in devices:
        print(f"{d.name:{width}}  {d.kind:8} {d.summary()}")


def add_show(sub):
    p = sub.add_parser("show", help="print a device's JSON (a built-in name or a .json file)")
    p.add_argument("name", metavar="NAME_OR_FILE")
    return p


def run_show(args):
    print(json.dumps(_load(args.name).to_dict(), indent=2))


ACTIONS = {"list": (add_list, run_list), "show": (add_show, run_show)}


def register(sub):
    p = sub.add_parser("device", help="list and show device models (latency estimation)")
    actions = p.add_subparsers(dest="device_action", metavar="ACTION", required=True)
    for add, run in ACTIONS.values():
        add(actions).set_defaults(run=run)
