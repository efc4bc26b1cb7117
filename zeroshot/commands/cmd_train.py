"""``zeroshot train SPACE ARCH --data NPZ|DIR``: train one architecture for real and record it.

``--device`` here is the torch device the training runs on (``cpu``, the default, ``cuda``, or ``auto``:
CUDA when present); in ``zeroshot search`` and ``screen`` it names a hardware cost profile instead.
Each epoch prints one line and is written to the results database (``--db``, run kind ``train``).
"""
from zeroshot.cli import add_space_args, space_from_args, space_options
from zeroshot.training_sets import load_dataset
from zeroshot.store import ResultStore
from zeroshot.errors import ParameterError
from zeroshot.estimator.timing import torch_device
from zeroshot.train import DEVICES, OPTIMIZERS, TrainConfig, train

from .cmd_rewrite import resolve_arch

DEFAULTS = TrainConfig()


def add_train_args(p, device_flag: str = "--device") -> None:
    """Training options shared by ``train`` and ``search`` (which calls the device ``--train-device``)."""
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="epochs (default %(default)s)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after this many optimiser steps (tiny budgets; default: no limit)")
    p.add_argument("--optimizer", default=DEFAULTS.optimizer, help=f"{' or '.join(OPTIMIZERS)} (default sgd)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: 0.1 x batch/256 for sgd, "
                                            "2e-3 x batch/256 for adamw)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default 5e-4 for sgd, 0.05 for adamw)")
    p.add_argument("--train-batch-size", type=int, default=DEFAULTS.batch_size,
                   help="training batch size (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=DEFAULTS.val_fraction,
                   help="held-out validation fraction (default %(default)s)")
    p.add_argument("--patience", type=int, metavar="EPOCHS",
                   help="stop after this many epochs without a better validation accuracy (default: never stop "
                        "early)")
    p.add_argument("--no-augment", action="store_true",
                   help="no random crop / flip of images (default: augment)")
    p.add_argument(device_flag, dest="train_device", default=DEFAULTS.device, choices=DEVICES,
                   help="torch device to train on (default cpu; auto: cuda when present)")


def train_config_from_args(args, device_flag: str = "--device") -> TrainConfig:
    """The training settings the flags give, checked (the torch device too) before anything runs; an error
    names the flag that set the setting (``device_flag``: the device's, as :func:`add_train_args`)."""
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.train_batch_size, optimizer=args.optimizer,
                      lr=args.lr, weight_decay=args.weight_decay, val_fraction=args.val_fraction,
                      augment=not args.no_augment, patience=args.patience, max_steps=args.max_steps,
                      seed=args.seed, device=args.train_device)
    try:
        cfg.validate()
        torch_device(cfg.device)
    except ParameterError as e:
        flags = {"batch_size": "train_batch_size", "device": device_flag.lstrip("-").replace("-", "_")}
        if e.param not in flags:
            raise
        raise ParameterError(flags[e.param], e.expected, e.got, e.fix) from None
    return cfg


def register(sub):
    p = sub.add_parser("train", help="train one architecture on a data set (NPZ or image folder)",
                       description="Train one architecture for real on a data set and record each epoch in --db "
                                   "(run kind train).  --device here is the torch device the training runs on; in "
                                   "screen and search --device names a hardware cost profile instead.  Example: "
                                   "zeroshot train nb201 ENCODING --data images.npz --epochs 5")
    add_space_args(p)
    p.add_argument("arch", help="the architecture's encoding, or a baseline name (mobilenetv2)")
    p.add_argument("--data", required=True, metavar="NPZ|DIR",
                   help="NPZ with x and y, or a folder with one subfolder of images per class")
    add_train_args(p)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of init, split, shuffling, augmentation (default %(default)s)")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="checkpoint written every epoch; resumed when it exists (default: none)")
    p.add_argument("--db", help="SQLite results file (default zeroshot-SPACE.db)")
    p.set_defaults(run=run)


def run(args):
    space = space_from_args(args)
    cfg = train_config_from_args(args)
    arch_text = space.format(resolve_arch(space, args.arch))
    arch = space.to_ir(arch_text)
    data = load_dataset(args.data, arch.input_shape, arch.tensor_shape(arch.outputs[0])[0])
    db = args.db or f"zeroshot-{space.name}.db"
    options = space_options(args)
    store = ResultStore(db, space=space.name, space_options=options)
    run_id = store.new_run({"arch": arch_text, "data": args.data, **vars(cfg)}, kind="train")

    def on_epoch(rec):
        store.write_chunk(run_id, rec["epoch"], [(arch_text, 1, rec)])
        print(f"epoch {rec['epoch']:3d}  step {rec['step']:6d}  train_loss {rec['train_loss']:.4f}  "
              f"val_loss {rec['val_loss']:.4f}  val_acc {rec['val_accuracy']:6.2f}", flush=True)

    try:
        result = train(arch, data, cfg, checkpoint=args.checkpoint, on_epoch=on_epoch)
        store.write_chunk(run_id, 0, [(arch_text, 2, result.metrics())], stage_marker=2)
        store.finish_run(run_id, {**result.metrics(), "history": result.history})
    finally:
        store.close()
    print(f"trained {arch_text}: val_accuracy {result.val_accuracy:.2f} (epoch {result.best_epoch}), "
          f"{result.steps} steps in {result.seconds:.1f}s on {result.device}"
          f"{', stopped early' if result.stopped_early else ''}; run {run_id} in {db}")
