"""Sub-commands ``embed train|evaluate|enroll|verify|identify|experiment``: face embeddings."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from cnnlab.data.augment import PRESETS
from cnnlab.embed.config import LOSSES
from cnnlab.cli.help import add_command, show_config_defaults
from cnnlab.embed.config import EmbedConfig
from cnnlab.errors import UserError
from cnnlab.runs.checkpoint import CHECKPOINTS


def _add_data_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--data", help="folder with one sub-folder of images per person (e.g. ../shared/data/faces/orl_att); "
                   "default: the generated `identities` set")
    g.add_argument("--identities", type=int, help="people in the generated set")
    g.add_argument("--per-identity", type=int, help="images per person in the generated set")
    g.add_argument("--image-size", type=int, help="images are resized to this square size (default: the model's)")
    g.add_argument("--train-ids", type=int, help="people to train on (default: half)")
    g.add_argument("--dev-ids", type=int, help="people to calibrate the threshold on (default: a quarter)")
    g.add_argument("--test-ids", type=int, help="people to test on, never trained on (default: a quarter)")
    g.add_argument("--seed", type=int, help="shuffles who goes to train, dev and test; batches; augmentation")


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint (may raise --epochs; default: a new run)")
    _add_data_arguments(p.add_argument_group("data"))
    g = p.add_argument_group("training")
    g.add_argument("--train-per-identity", type=int, metavar="N", help="use only each training person's first N images (default: all)")
    g.add_argument("--augment", choices=list(PRESETS), help="augmentation preset")
    g.add_argument("--model", help="registry backbone (see `cnnlab models`)")
    g.add_argument("--pretrained", nargs="?", const=True, metavar="TAG", help="start from the backbone's ImageNet weights")
    g.add_argument("--dim", type=int, help="embedding size")
    g.add_argument("--freeze-backbone", action="store_const", const=True, help="train only the projection head on a "
                   "frozen --pretrained backbone (with --augment none its features are computed once; default: off)")
    g.add_argument("--loss", choices=LOSSES, help="metric-learning loss; whiten: no training steps, the head is "
                   "within-class whitening of the frozen features, fitted in closed form (with --pretrained "
                   "--freeze-backbone --augment none)")
    g.add_argument("--margin", type=float, help="the loss's margin (default: triplet 0.2, contrastive 0.5, arcface 28.6 degrees)")
    g.add_argument("--ids-per-batch", type=int, metavar="P", help="people per batch")
    g.add_argument("--images-per-id", type=int, metavar="K", help="images per person per batch")
    g.add_argument("--epochs", type=int, help="epochs to train")
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--weight-decay", type=float, help="L2 penalty")
    g.add_argument("--device", help="auto (first GPU, else CPU), cpu, cuda, cuda:1 ... (default: auto)")
    g.add_argument("--output", help="run directory to create (default: runs/<time>-<model>-<data>)")


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.embed.config import EmbedConfig
    from cnnlab.embed.trainer import EmbedTrainer

    settings = {f.name: getattr(args, f.name) for f in fields(EmbedConfig) if getattr(args, f.name, None) is not None}
    if args.resume:
        given = sorted(set(settings) - {"epochs"})
        if given:
            raise UserError(f"--resume continues a run with its saved settings; drop --{given[0].replace('_', '-')} "
                            "(only --epochs may change)")
        trainer = EmbedTrainer.resume(args.resume, epochs=args.epochs)
    else:
        trainer = EmbedTrainer(EmbedConfig(**settings))
    print(trainer.fit())
    return 0


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cnnlab.device import pick_device
    from cnnlab.embed.run import load_embedder

    return load_embedder(args.run, args.checkpoint, pick_device(args.device))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.embed.evaluate import evaluate_run
    from cnnlab.embed.protocol import parse_rule

    run = _load(args)
    evaluation = evaluate_run(run, parse_rule(args.threshold_at), args.enrolled, args.baselines)
    print(results_table({name: r.summary() for name, r in evaluation.results.items()}))
    print(f"threshold {evaluation.results['cnn'].threshold:.4f} (calibrated on the dev identities at "
          f"{args.threshold_at}); wrote {evaluation.out_dir}/metrics.json, roc.png, cmc.png, distances.png")
    return 0


def results_table(rows: dict[str, dict]) -> str:
    cols = [("eer", "EER"), ("auc", "AUC"), ("tar_at_far_1pct", "TAR@FAR1%"), ("tar_at_far_0.1pct", "TAR@FAR0.1%"),
            ("accuracy_at_threshold", "acc@thr"), ("rank1", "rank-1"), ("rank5", "rank-5"),
            ("dir_at_fpir_1pct", "DIR@FPIR1%")]
    lines = [f"{'method':<24}" + "".join(f"{title:>12}" for _, title in cols)]
    for name, s in rows.items():
        lines.append(f"{name:<24}" + "".join(f"{s[key]:>12.4f}" for key, _ in cols))
    return "\n".join(lines)


def _embed_files(run, paths: list[str], detect: bool):  # type: ignore[no-untyped-def]
    from cnnlab.data.files import load_image_files
    from cnnlab.embed.detect import detect_largest_faces

    images = detect_largest_faces(paths, run.image_size) if detect else load_image_files(paths, run.image_size)
    return run.encoder(images)


def cmd_enroll(args: argparse.Namespace) -> int:
    from cnnlab.embed.gallery import Gallery, load_gallery, save_gallery

    run = _load(args)
    if Path(args.gallery).exists():
        gallery = load_gallery(args.gallery)
        gallery.check_model(run.fingerprint, args.gallery)
    else:
        gallery = Gallery(run.fingerprint)
    gallery.add(_embed_files(run, args.images, args.detect), [args.name] * len(args.images), list(args.images))
    save_gallery(args.gallery, gallery)
    print(f"enrolled {len(args.images)} image(s) of {args.name}; {args.gallery} holds {len(gallery.names)} image(s) "
          f"of {len(gallery.people())} people")
    return 0


def _gallery_and_threshold(args: argparse.Namespace, run):  # type: ignore[no-untyped-def]
    from cnnlab.embed.evaluate import read_threshold
    from cnnlab.embed.gallery import load_gallery

    gallery = load_gallery(args.gallery)
    gallery.check_model(run.fingerprint, args.gallery)
    return gallery, (args.threshold if args.threshold is not None else read_threshold(run))


def cmd_verify(args: argparse.Namespace) -> int:
    from cnnlab.embed.gallery import search_exact

    run = _load(args)
    gallery, threshold = _gallery_and_threshold(args, run)
    rows = [i for i, n in enumerate(gallery.names) if n == args.claimed]
    if not rows:
        raise UserError(f"'{args.claimed}' is not enrolled in {args.gallery}: enrolled are {', '.join(gallery.people()[:10])}")
    distance = float(search_exact(gallery.embeddings[rows], _embed_files(run, [args.image], args.detect), k=1)[0][0, 0])
    same = distance <= threshold
    answer = {"image": args.image, "claimed": args.claimed, "distance": distance, "threshold": threshold, "match": same}
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        verdict = "MATCH" if same else "NO MATCH"
        print(f"{args.image} as {args.claimed}: distance {distance:.4f}, threshold {threshold:.4f}: {verdict}")
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from cnnlab.embed.gallery import nearest_people

    run = _load(args)
    gallery, threshold = _gallery_and_threshold(args, run)
    top = nearest_people(gallery, _embed_files(run, [args.image], args.detect), args.top_k)[0]
    best_name, best = top[0]
    answer = {"image": args.image, "threshold": threshold, "identity": best_name if best <= threshold else None,
              "candidates": [{"name": n, "distance": d} for n, d in top]}
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        who = best_name if best <= threshold else "nobody enrolled (unknown person)"
        print(f"{args.image}: {who} (nearest {best_name} at distance {best:.4f}, threshold {threshold:.4f})")
        for rank, (n, d) in enumerate(top, 1):
            print(f"  {rank}. {n}  {d:.4f}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from cnnlab.embed.experiment import one_per_person

    table = one_per_person(args.data, epochs=args.epochs, seed=args.seed or 0, device=args.device or "auto",
                           scale=args.scale)
    print(table.render())
    return 0


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run directory written by `cnnlab embed train`")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                   help="the best epoch's weights (by the run's --monitor), or the last epoch's")
    p.add_argument("--device", default="auto", help="auto (first GPU, else CPU), cpu, cuda, cuda:1 ...")


def _add_detect_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detect", action="store_true", help="crop the largest face first (MTCNN from facenet-pytorch, "
                   "an optional package: pip install --no-deps facenet-pytorch==2.6.0 requests)")


def register(sub: argparse._SubParsersAction) -> None:
    embed = add_command(sub, "embed", "face embeddings: train, evaluate, enroll, verify, identify",
                        ["cnnlab embed train --data ../shared/data/faces/orl_att --output runs/faces",
                         "cnnlab embed verify runs/faces people.gallery photo.png --as s1"])
    cmds = embed.add_subparsers(dest="embed_command", metavar="SUBCOMMAND", required=True)

    p = add_command(cmds, "train", "train an embedding network (triplet, contrastive or ArcFace loss)",
                    ["cnnlab embed train", "cnnlab embed train --data ../shared/data/faces/orl_att --loss triplet"])
    _add_train_arguments(p)
    show_config_defaults(p, EmbedConfig().to_dict())
    p.set_defaults(func=cmd_train)

    p = add_command(cmds, "evaluate", "threshold on dev people; ROC, EER, TAR@FAR, CMC, DIR@FPIR on test people",
                    ["cnnlab embed evaluate runs/faces", "cnnlab embed evaluate runs/faces --threshold-at 0.01"])
    _add_run_arguments(p)
    p.add_argument("--threshold-at", default="eer", metavar="eer|FAR", help="calibrate at the dev EER point (eer) "
                   "or at a target false accept rate such as 0.01")
    p.add_argument("--enrolled", type=int, default=5, help="images enrolled per test person for identification")
    p.add_argument("--baselines", action="store_true", help="also Eigenfaces and ImageNet MobileNetV2 features")
    p.set_defaults(func=cmd_evaluate)

    p = add_command(cmds, "enroll", "add images of one person to a gallery (created if absent)",
                    ["cnnlab embed enroll runs/faces people.gallery --name s1 s1/1.pgm s1/2.pgm"])
    _add_run_arguments(p)
    p.add_argument("gallery", metavar="GALLERY", help="gallery file, e.g. people.gallery")
    p.add_argument("--name", required=True, help="the person's name")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="images of the person")
    _add_detect_argument(p)
    p.set_defaults(func=cmd_enroll)

    for name, func, help_ in (("verify", cmd_verify, "is IMAGE the enrolled person NAME? (1:1)"),
                              ("identify", cmd_identify, "who in the gallery is IMAGE, if anyone? (1:N)")):
        extra = "--as s1" if name == "verify" else "--top-k 3"
        p = add_command(cmds, name, help_, [f"cnnlab embed {name} runs/faces people.gallery photo.png {extra}"])
        _add_run_arguments(p)
        p.add_argument("gallery", metavar="GALLERY", help="gallery file written by `cnnlab embed enroll`")
        p.add_argument("image", metavar="IMAGE", help="the image to check")
        if name == "verify":
            p.add_argument("--as", dest="claimed", required=True, metavar="NAME", help="the claimed identity")
        else:
            p.add_argument("--top-k", type=int, default=5, help="candidates to list")
        p.add_argument("--threshold", type=float, help="distance threshold (default: the one `embed evaluate` calibrated)")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        _add_detect_argument(p)
        p.set_defaults(func=func)

    p = add_command(cmds, "experiment", "one-per-person: can one photo per person train an embedding?",
                    ["cnnlab embed experiment one-per-person --scale 0.25"])
    p.add_argument("name", choices=["one-per-person"], help="the experiment")
    p.add_argument("--data", help="folder of people (e.g. ORL); default: the generated `identities` set")
    p.add_argument("--epochs", type=int, default=8, help="epochs per training run")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the default numbers of people (quick runs)")
    p.add_argument("--seed", type=int, help="seeds the splits and training (default: 0)")
    p.add_argument("--device", help="auto (first GPU, else CPU), cpu, cuda ... (default: auto)")
    p.set_defaults(func=cmd_experiment)
