"""``amc``: the command line on AMC's core and backends.

Every bad path, dataset, parameter or job name ends in one line on stderr and exit code 1 (2 for
usage errors and bad tuning requests), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

from amc_widgets.backends.aws_session import AWS_ERRORS, explain_client_error
from amc_widgets.backends.base import (
    DeploysModels,
    PricesInstances,
    TailsLogs,
    TunesHyperparameters,
    download_or_reuse,
)
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.dataset_import import check_prepared, failed_report, prepare_dataset
from amc_widgets.core.dataset_preview import PER_CLASS, DatasetPictures
from amc_widgets.core.dataset_split import DEFAULT_SPLIT, SplitSettings
from amc_widgets.core.demo_dataset import make_demo_dataset
from amc_widgets.core.endpoints import FAILED, EndpointSpec, wait_until_settled
from amc_widgets.core.errors import AmcError, is_expected, user_message
from amc_widgets.core.hyperparameters import HYPERPARAMETERS, decode_hyperparameters
from amc_widgets.core.instances import THIS_MACHINE, estimate_cost
from amc_widgets.core.jobs import COMPLETED, TERMINAL_STATUSES, JobNotFoundError, JobSpec
from amc_widgets.core.text import human_bytes, human_duration
from amc_widgets.core.tuning import (
    STRATEGIES,
    TUNING_NAME_PATTERN,
    TuningJobDescription,
    TuningSpec,
    TuningSpecError,
    estimate_tuning_cost,
    parse_range,
    validate_tuning_spec,
)
from amc_widgets.core.weights import SCRATCH, WeightsChoice, coco_asset, default_choice, workspace_cache

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
DEBUG_ENV = "AMC_DEBUG"  # set: errors end with their traceback
FOLLOW_POLL_SECONDS = 1.0
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


class ProgressBar:
    """A one-line text progress bar on stderr (redrawn in place on a terminal)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30):
        self.label, self.stream, self.width = label, stream, width
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        percent = int(done * 100 / total) if total else 100
        if percent == self._last:
            return
        self._last = percent
        filled = self.width * percent // 100
        bar = "#" * filled + "-" * (self.width - filled)
        end = "\r" if self.stream.isatty() and percent < 100 else "\n"
        if end == "\n" and percent < 100 and percent % 10:
            return  # not a terminal: one line per 10%
        self.stream.write(f"{self.label} [{bar}] {percent:3d}% {done / 1e6:.1f}/{total / 1e6:.1f} MB{end}")
        self.stream.flush()


def _credentials(args: argparse.Namespace):
    """AWS credentials from --profile, or the default chain (environment, SSO, instance role)."""
    from amc_widgets.backends.aws_session import AwsCredentials

    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return AwsCredentials(profile=args.profile, region=region, endpoint_url=args.endpoint_url)


def _backend(args: argparse.Namespace):
    if args.backend == "local":
        from amc_widgets.backends.local import LocalBackend

        return LocalBackend(home=args.home)
    from amc_widgets.backends.sagemaker import SageMakerBackend

    role = args.role_arn or os.environ.get("AMC_ROLE_ARN", "")
    return SageMakerBackend.connect(_credentials(args), role, create_bucket=args.create_bucket,
                                    image_uri=args.image_uri)


# --- commands ---------------------------------------------------------------------------------

def cmd_demo_dataset(args) -> int:
    data_yaml = make_demo_dataset(Path(args.dest), train=args.train, val=args.val, size=args.size, seed=args.seed)
    print(f"Demo dataset written: {data_yaml}")
    return EXIT_OK


def cmd_check_dataset(args) -> int:
    source, written = Path(args.path), []
    if args.image and not args.preview:
        raise ValueError("--image NAME draws into the --preview DIR folder; give both")
    try:
        with prepare_dataset(source, _split(args)) as prepared:
            report = check_prepared(prepared, source)
            if args.preview:
                written = _write_previews(prepared.path, args)
    except DatasetError as exc:  # the export cannot be read at all
        report = failed_report(source, exc)
    print(report.summary())
    if written:
        print(f"Previews: {len(written)} labelled images written to {args.preview}")
    print("OK: ready for training" if report.ok else "NOT READY: fix the errors above")
    return EXIT_OK if report.ok else EXIT_ERROR


def _write_previews(dataset: Path, args: argparse.Namespace) -> list[Path]:
    with DatasetPictures(dataset) as pictures:
        picked = pictures.find(args.image) if args.image else None  # before writing: a wrong name writes nothing
        written = pictures.write_gallery(Path(args.preview), per_class=args.per_class)
        if picked is not None:
            path = Path(args.preview) / f"image-{picked.name}.png"
            path.write_bytes(pictures.render(picked, max_side=640))
            written.append(path)
    return written


def cmd_datasets(args) -> int:
    backend = _backend(args)
    if args.action == "upload":
        if not args.target:
            raise ValueError("upload needs a folder or .zip: amc datasets upload PATH [--name NAME]")
        info = backend.store_dataset(Path(args.target), name=args.name, overwrite=args.overwrite,
                                     progress=ProgressBar("upload"), split=_split(args))
        print(f"Stored dataset '{info.name}': {info.files} files, {human_bytes(info.bytes)}")
    elif args.action == "rm":
        if not args.target:
            raise ValueError("rm needs a dataset name: amc datasets rm NAME")
        backend.delete_dataset(args.target)
        print(f"Deleted dataset '{args.target}'")
    else:
        datasets = backend.list_datasets()
        if not datasets:
            print("No datasets stored yet. Upload one: amc datasets upload PATH")
        for info in datasets:
            print(f"{info.name:<32} {info.files:>7} files {human_bytes(info.bytes):>10}")
    return EXIT_OK


def _split(args: argparse.Namespace) -> SplitSettings:
    return SplitSettings(val_fraction=args.val_fraction, seed=args.split_seed)


def _add_split_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_SPLIT.val_fraction,
                        help="share of images for validation where the export has no val split (default 0.2)")
    parser.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT.seed,
                        help="seed of that split: the same seed gives the same split (default 0)")


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set needs key=value (got '{pair}')")
        values[key.strip()] = value.strip()
    return values


def training_hyperparameters(args) -> dict[str, str]:
    """The job's hyperparameters: defaults, then the preset, then --set, then the named options."""
    from amc_widgets.core.parameters import TrainingParameters

    params = TrainingParameters()
    if args.preset:
        params = params.apply_preset(args.preset)
    changes: dict[str, object] = _parse_sets(args.set or [])
    for key in ("model", "epochs", "imgsz", "batch", "patience", "workers", "optimizer", "device"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    return params.with_changes(**changes).to_sagemaker()


def start_weights(args, backend, hyperparameters: dict[str, str]) -> dict[str, str]:
    """The hyperparameters of ``--weights`` (default: COCO-pretrained if on this machine, else from
    scratch), checked and stored before the job starts; ``--set weights=FILE`` is taken as given."""
    from amc_widgets.backends.start_weights import prepare_weights
    from amc_widgets.core.hyperparameters import decode_hyperparameters

    if args.weights is None and "weights" in _parse_sets(args.set or []):
        return {}
    model, cache = decode_hyperparameters(hyperparameters)["model"], workspace_cache(args.home)
    choice = WeightsChoice.parse(args.weights) if args.weights else default_choice(cache, model)
    if args.weights is None and choice.kind == SCRATCH:
        print(f"COCO-pretrained {coco_asset(model)} is not on this machine: training from scratch "
              "(--weights coco downloads it once)")
    start = prepare_weights(backend, choice, model, args.dataset, cache, ProgressBar(coco_asset(model)))
    print(start.note)
    return start.hyperparameters


def cmd_train(args) -> int:
    backend = _backend(args)
    hyperparameters = training_hyperparameters(args)
    hyperparameters.update(start_weights(args, backend, hyperparameters))
    spec = JobSpec(dataset=args.dataset, hyperparameters=hyperparameters,
                   instance_type=args.instance_type, instance_count=args.instance_count, spot=args.spot,
                   max_runtime_hours=args.max_hours, max_wait_hours=args.max_wait_hours, name=args.name)
    job = backend.start_job(spec)
    print(f"Started training job {job.name}")
    if isinstance(backend, PricesInstances):
        cost = estimate_cost(spec.instance_type, spec.instance_count, spec.max_runtime_hours, spot=spec.spot,
                             price=backend.instance_price(spec.instance_type))
        print(f"Cost at most: {cost.describe()}")
    if not args.wait:
        print(f"Follow it with: amc logs {job.name} --follow")
        return EXIT_OK
    return follow_logs(backend, job.name, sys.stdout)


def follow_logs(backend, name: str, out: TextIO, sleep: Callable[[float], None] = time.sleep,
                cursor=None) -> int:
    """Print the job's log (from ``cursor``) as it grows until the job ends; exit code from its outcome."""
    while True:
        chunk = backend.read_logs(name, cursor)
        for line in chunk.lines:
            out.write(line + "\n")
        out.flush()
        cursor = chunk.cursor
        if chunk.finished:
            break
        if not chunk.more:
            sleep(FOLLOW_POLL_SECONDS)
    return _outcome(backend, name)


def _outcome(backend, name: str) -> int:
    """Print how the job ended; its exit code."""
    job = backend.describe_job(name)
    print(f"Job {name}: {job.status}" + (f" - {job.failure_reason.splitlines()[0]}" if job.failure_reason else ""),
          file=sys.stderr)
    return EXIT_OK if job.status == COMPLETED else EXIT_ERROR


def cmd_jobs(args) -> int:
    jobs = _backend(args).list_jobs()
    if not jobs:
        print("No training jobs yet. Start one: amc train DATASET")
    for job in jobs:
        created = datetime.fromtimestamp(job.created).strftime("%Y-%m-%d %H:%M")
        tuning = f"  (tuning job {job.tuning_job})" if job.tuning_job else ""
        print(f"{job.name:<58} {job.status:<10} {job.secondary_status:<12} {created} "
              f"{human_duration(job.duration())}{tuning}")
    return EXIT_OK


def follow_live(backend, name: str, out: TextIO) -> int:
    """The log so far, then new lines through Live Tail (which reconnects after its 3 h sessions), then
    the last lines by polling; falls back to polling where the account has no Live Tail or no permission."""
    so_far = backend.read_logs(name)
    for line in so_far.lines:
        out.write(line + "\n")
    out.flush()
    try:
        cursor = backend.tail_logs(name, lambda line: (out.write(line + "\n"), out.flush()), so_far.cursor)
    except AWS_ERRORS as exc:
        print(f"Live Tail is not available: {explain_client_error(exc, 'start Live Tail')}; polling instead",
              file=sys.stderr)
        cursor = so_far.cursor
    return follow_logs(backend, name, out, cursor=cursor)


def cmd_logs(args) -> int:
    if args.live_tail and not args.follow:
        raise ValueError("--live-tail needs --follow")
    backend = _backend(args)
    if args.live_tail and not isinstance(backend, TailsLogs):
        raise ValueError("--live-tail needs a backend that streams logs (--backend sagemaker)")
    if args.live_tail:
        return follow_live(backend, args.job, sys.stdout)
    if args.follow:
        return follow_logs(backend, args.job, sys.stdout)
    cursor, more = None, True
    while more:  # a read is bounded: a long log comes in several
        chunk = backend.read_logs(args.job, cursor)
        for line in chunk.lines:
            print(line)
        cursor, more = chunk.cursor, chunk.more
    return EXIT_OK


def cmd_metrics(args) -> int:
    frame = _backend(args).read_metrics(args.job)
    if frame.empty:
        print("No epoch finished yet.")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return EXIT_OK


def cmd_stop(args) -> int:
    backend = _backend(args)
    if isinstance(backend, TunesHyperparameters) and TUNING_NAME_PATTERN.match(args.job):
        try:
            tuning = backend.stop_tuning_job(args.job)
        except JobNotFoundError:
            pass  # not a tuning job: a training job
        else:
            running = sum(1 for c in tuning.children if c.status not in TERMINAL_STATUSES)
            print(f"Tuning job {tuning.name}: {tuning.status}" + (f" ({running} training jobs stopping)"
                                                                   if running else ""))
            return EXIT_OK
    job = backend.stop_job(args.job)
    print(f"Job {job.name}: {job.status}")
    return EXIT_OK


def _tuning_backend(args) -> TunesHyperparameters:
    backend = _backend(args)
    if not isinstance(backend, TunesHyperparameters):
        raise ValueError(f"the {backend.name} backend cannot run tuning jobs")
    return backend


def tuning_spec(args) -> TuningSpec:
    """The checked tuning request of ``amc tune``; TuningSpecError naming every bad field."""
    problems: dict[str, str] = {}
    ranges = []
    for text in args.range or []:
        try:
            ranges.append(parse_range(text))
        except TuningSpecError as exc:
            problems.update(exc.problems)
    strategy = {s.lower(): s for s in STRATEGIES}.get(args.strategy.lower(), args.strategy)
    max_jobs = args.max_jobs if args.max_jobs is not None or strategy == "Grid" else 12
    spec = TuningSpec(dataset=args.dataset, hyperparameters=training_hyperparameters(args), ranges=ranges,
                      objective=args.objective, strategy=strategy, max_jobs=max_jobs, max_parallel=args.parallel,
                      early_stopping=args.early_stopping, instance_type=args.instance_type,
                      instance_count=args.instance_count, spot=args.spot, max_runtime_hours=args.max_hours,
                      max_wait_hours=args.max_wait_hours, warm_start_from=tuple(args.warm_start or ()),
                      name=args.name, seed=args.seed)
    try:
        spec = validate_tuning_spec(spec)
    except TuningSpecError as exc:
        if problems:  # a range that did not parse is not missing
            exc.problems.pop("ranges", None)
        problems.update(exc.problems)
    if problems:
        raise TuningSpecError(problems)
    return spec


def cmd_tune(args) -> int:
    backend = _tuning_backend(args)
    spec = tuning_spec(args)  # every field checked before weights are fetched or anything starts
    spec.hyperparameters.update(start_weights(args, backend, spec.hyperparameters))
    if isinstance(backend, PricesInstances) and spec.instance_type != THIS_MACHINE:
        cost = estimate_tuning_cost(spec, price=backend.instance_price(spec.instance_type))
        print(f"Cost at most ({spec.total_jobs()} jobs x {spec.max_runtime_hours:g} h): {cost.describe()}")
    else:
        print(f"Runs on this machine: {spec.total_jobs()} training jobs, {spec.max_parallel} at a time "
              "(in the local job queue)")
    tuning = backend.start_tuning_job(spec)
    print(f"Started tuning job {tuning.name}")
    if not args.wait:
        print(f"Follow it with: amc tuning {tuning.name}")
        return EXIT_OK
    return follow_tuning(backend, tuning.name, sys.stdout)


def tuning_progress(tuning: TuningJobDescription) -> str:
    """One line: status, children by status, the best objective so far."""
    counts = tuning.status_counters()
    done = counts["Completed"] + counts["Stopped"] + counts["NonRetryableError"] + counts["RetryableError"]
    line = (f"{tuning.status:<10} {done}/{tuning.max_jobs} done, {counts['InProgress']} running, "
            f"{counts['Stopped']} stopped, {counts['NonRetryableError'] + counts['RetryableError']} failed")
    best = tuning.best
    if best is not None:
        line += f"; best {tuning.objective} {best.objective:.4g} ({best.name})"
    return line


def follow_tuning(backend, name: str, out: TextIO, sleep: Callable[[float], None] = time.sleep) -> int:
    """Print a progress line whenever the tuning job changes, until it ends; 0 only if it completed."""
    last = ""
    while True:
        tuning = backend.describe_tuning_job(name)
        line = tuning_progress(tuning)
        if line != last:
            out.write(f"{datetime.now().strftime('%H:%M:%S')} {line}\n")
            out.flush()
            last = line
        if tuning.is_terminal:
            break
        sleep(FOLLOW_POLL_SECONDS)
    reason = f" - {tuning.failure_reason.splitlines()[0]}" if tuning.failure_reason else ""
    print(f"Tuning job {name}: {tuning.status}{reason}", file=sys.stderr)
    if tuning.best is not None:
        tuned = " ".join(f"{k}={v}" for k, v in tuning.best.tuned.items())
        out.write(f"Best training job: {tuning.best.name} ({tuning.objective} {tuning.best.objective:.4g}): "
                  f"{tuned}\n")
    return EXIT_OK if tuning.status == COMPLETED else EXIT_ERROR


def cmd_tuning_jobs(args) -> int:
    jobs = _tuning_backend(args).list_tuning_jobs()
    if not jobs:
        print("No tuning jobs yet. Start one: amc tune DATASET --range lr0 --max-jobs 6")
        return EXIT_OK
    print(f"{'NAME':<32} {'STATUS':<10} {'JOBS':<30} {'BEST':>9} CREATED")
    for tuning in jobs:
        counts = tuning.status_counters()
        failed = counts["NonRetryableError"] + counts["RetryableError"]
        jobs_text = (f"{counts['Completed']}/{tuning.max_jobs} ok, {counts['InProgress']} run, "
                     f"{counts['Stopped']} stop, {failed} fail")
        best = f"{tuning.best.objective:.4g}" if tuning.best is not None else "-"
        created = datetime.fromtimestamp(tuning.created).strftime("%Y-%m-%d %H:%M")
        print(f"{tuning.name:<32} {tuning.status:<10} {jobs_text:<30} {best:>9} {created}")
    return EXIT_OK


def cmd_tuning(args) -> int:
    tuning = _tuning_backend(args).describe_tuning_job(args.name)
    print(f"Tuning job {tuning.name}: {tuning.status}"
          + (f" - {tuning.failure_reason.splitlines()[0]}" if tuning.failure_reason else ""))
    print(f"  {tuning.strategy}, {tuning.objective} ({tuning.objective_type.lower()}d), "
          f"{tuning.max_jobs} jobs {tuning.max_parallel} at a time, early stopping "
          f"{'on' if tuning.early_stopping else 'off'}, dataset {tuning.dataset}, {tuning.instance_type}, "
          f"{human_duration(tuning.duration())}")
    print(f"  {tuning_progress(tuning)}")
    print("  Ranges: " + "  ".join(r.describe() for r in tuning.ranges))
    if tuning.warm_start_from:
        print("  Warm start from: " + ", ".join(tuning.warm_start_from))
    defaults = decode_hyperparameters({})
    changed = {k: v for k, v in tuning.static_hyperparameters.items()
               if k not in defaults or decode_hyperparameters({k: v})[k] != defaults[k]}
    print("  Static hyperparameters: " + (" ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "-")
          + " (the others at their defaults)")
    children = tuning.children_by_objective()
    if not children:
        print("No training jobs yet.")
        return EXIT_OK
    names = [r.name for r in tuning.ranges]
    width = max(len(c.name) for c in children)
    print(f"\n  {'TRAINING JOB':<{width}} {'STATUS':<10} {tuning.objective:>10} " + " ".join(f"{n:>10}" for n in names))
    best = tuning.best
    for child in children:
        mark = "*" if best is not None and child.name == best.name else " "
        objective = f"{child.objective:.4g}" if child.objective is not None else "-"
        note = f"  {child.status_reason.splitlines()[0]}" if child.status_reason else ""
        print(f"{mark} {child.name:<{width}} {child.status:<10} {objective:>10} "
              + " ".join(f"{child.tuned.get(n, ''):>10}" for n in names) + note)
    if best is not None:
        print(f"\n* best: {best.name} (amc download {best.name} DEST)")
    return EXIT_OK


def cmd_download(args) -> int:
    result = _backend(args).download_outputs(args.job, Path(args.dest), progress=ProgressBar("download"),
                                             overwrite=args.overwrite)
    if result.onnx is None:
        print(f"Downloaded to {result.folder} (no ONNX model in it)")
    else:
        print(result.onnx)
    return EXIT_OK


def _deploying_backend(args) -> DeploysModels:
    backend = _backend(args)
    if not isinstance(backend, DeploysModels):
        raise AmcError(f"The {backend.name} backend cannot deploy models")
    return backend


def cmd_deploy(args) -> int:
    backend = _deploying_backend(args)
    spec = EndpointSpec(job_name=args.job, name=args.name,
                        instance_type=args.instance_type or ("local" if args.backend == "local" else "ml.c5.large"),
                        instance_count=args.instances, serverless_memory_mb=args.serverless_memory,
                        serverless_max_concurrency=args.serverless_concurrency, min_instances=args.min_instances,
                        max_instances=args.max_instances, target_invocations=args.target_invocations).check()
    endpoint = backend.deploy(spec)
    print(f"Deploying {args.job} to endpoint {endpoint.name}")
    endpoint = wait_until_settled(lambda: backend.describe_endpoint(endpoint.name),
                                  lambda e: print(f"Endpoint {e.name}: {e.status}", file=sys.stderr),
                                  timeout=args.timeout)
    if endpoint.status == FAILED:
        raise AmcError(f"Endpoint {endpoint.name} failed: {endpoint.failure_reason}")
    if spec.scales:
        backend.set_scaling(endpoint.name)
        print(f"Autoscaling {spec.min_instances}-{spec.max_instances} instances, target "
              f"{spec.target_invocations} invocations per instance per minute", file=sys.stderr)
    print(f"Endpoint {endpoint.name} is InService at {endpoint.url}. Try it: amc predict {endpoint.name} IMAGE")
    return EXIT_OK


def cmd_endpoints(args) -> int:
    endpoints = _deploying_backend(args).list_endpoints()
    if not endpoints:
        print("No endpoints. Deploy a completed job's model: amc deploy JOB")
    now = time.time()
    for e in endpoints:
        created = datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M")
        cost = f"${e.hourly_cost:.3f}/h, ${e.cost_so_far(now):.2f} so far"
        print(f"{e.name:<63} {e.status:<10} {e.instance_type:<14} {created} {cost}  {e.job_name}"
              + (f"\n    {e.failure_reason}" if e.failure_reason else ""))
    return EXIT_OK


def cmd_predict(args) -> int:
    backend = _deploying_backend(args)
    backend.describe_endpoint(args.endpoint)  # an unknown endpoint is named before any image is read
    attributes = ",".join(f"{key}={value}" for key, value in
                          (("conf", args.conf), ("iou", args.iou), ("max_det", args.max_det)) if value is not None)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    for image in map(Path, args.images):
        content_type = IMAGE_TYPES.get(image.suffix.lower())
        if content_type is None:
            raise AmcError(f"{image}: not a .jpg, .jpeg or .png file")
        body = image.read_bytes()
        answer = backend.invoke_endpoint(args.endpoint, body, content_type, custom_attributes=attributes)
        result = json.loads(answer.body)
        if args.json:
            print(json.dumps({"image": str(image), "seconds": round(answer.seconds, 4), **result}))
        else:
            found = ", ".join(f"{d['class_name']} {d['score']:.2f}" for d in result["detections"]) or "nothing"
            print(f"{image}: {len(result['detections'])} object(s) in {answer.seconds * 1000:.0f} ms: {found}")
        if out:
            drawn = backend.invoke_endpoint(args.endpoint, body, content_type, accept="image/png",
                                            custom_attributes=attributes)
            target = out / f"{image.stem}.png"
            if target.exists():
                raise FileExistsError(f"{target} already exists")
            target.write_bytes(drawn.body)
    return EXIT_OK


def cmd_undeploy(args) -> int:
    _deploying_backend(args).delete_endpoint(args.endpoint)
    print(f"Deleted endpoint {args.endpoint}")
    return EXIT_OK


def cmd_results(args) -> int:
    """Per-class results of a job's model on the validation split, and its confusion matrix."""
    import tempfile

    import pandas as pd

    from amc_widgets.core.results import confusion_matrix, format_table, per_class_table, read_model_card

    with tempfile.TemporaryDirectory(prefix="amc-results-") as scratch:
        dest = Path(args.dest) if args.dest else Path(scratch)
        result = download_or_reuse(_backend(args), args.job, dest, progress=ProgressBar("download"))
        card = read_model_card(result.folder)
        table = per_class_table(card)
        labels, matrix = confusion_matrix(card)
    validation = card["validation"]
    print(f"{args.job}: {card['model']}, {card['epochs_completed']} of {card['epochs_planned']} epochs"
          f"{' (stopped)' if card.get('stopped_by_request') else ''}; best.pt on the validation split "
          f"({validation['images']} images)")
    print(format_table(table))
    conf = validation["confusion_matrix"]
    print(f"\nConfusion matrix (rows predicted, columns true; confidence >= {conf['conf']}, IoU {conf['iou']}):")
    print(pd.DataFrame(matrix.astype(int), index=labels, columns=labels).to_string())
    layout = card.get("onnx", {}).get("output_layout")
    if layout:
        print(f"\nONNX output: {layout}")
    if args.dest:
        print(f"Outputs in {result.folder}")
    return EXIT_OK


def cmd_connect(args) -> int:
    """Test the AWS connection: who you are, the bucket, the roles SageMaker may assume."""
    from amc_widgets.backends.sagemaker import SageMakerBackend

    info = SageMakerBackend.test_connection(_credentials(args))
    print(f"account  {info.account} ({info.partition})\nuser     {info.user_name} ({info.arn})\nregion   {info.region}")
    print(f"bucket   {info.bucket} ({'exists' if info.bucket_exists else 'missing: add --create-bucket'})")
    print(f"space    s3://{info.bucket}/{info.space} (your key: {info.user_key})")
    print("roles    " + (", ".join(info.roles) or "none found (pass --role-arn)"))
    return EXIT_OK


def cmd_iam_policy(args) -> int:
    """The user policy and the execution-role policy (each the same for every user), and what makes a
    role one user's execution role (with --user-key: that user's tags)."""
    import boto3

    from amc_widgets.backends import iam_policy

    region, account = args.region or "*", args.account or "*"
    partition = args.partition or (boto3.Session().get_partition_for_region(args.region) if args.region else "aws")
    bucket = args.bucket or f"sagemaker-{args.region or 'REGION'}-{args.account or 'ACCOUNT'}"
    key = args.user_key or "USER_KEY"
    documents = {
        "user_policy": iam_policy.user_policy(bucket, partition, region, account),
        "execution_role_policy": iam_policy.execution_role_policy(bucket, partition, region, account),
        "execution_role": {  # one per user: this path and trust, the policy above, tagged with the user's key
            "path": iam_policy.ROLE_PATH,
            "trust_policy": iam_policy.trust_policy(),
            "tags": iam_policy.execution_role_tags(key),
        },
    }
    print(json.dumps(documents, indent=2))
    return EXIT_OK


def cmd_serve(args) -> int:
    """Serve the Voila dashboard on the local backend (``--home`` or $AMC_HOME)."""
    from amc_widgets.ui.serve import cull_after_from_env, serve

    if args.home:
        os.environ["AMC_HOME"] = str(Path(args.home).expanduser().resolve())
    cull_after = args.cull_after if args.cull_after is not None else cull_after_from_env()
    if cull_after < 0:
        raise ValueError(f"--cull-after must be 0 (never) or more seconds (got {cull_after})")
    return serve(port=args.port, host=args.host, cull_after=cull_after, token=args.token)


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options of a training job (hyperparameters, weights, instance, limits): ``amc train``'s and
    the static ones of ``amc tune``."""
    parser.add_argument("--model", choices=HYPERPARAMETERS["model"].choices)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--imgsz", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--patience", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--optimizer")
    parser.add_argument("--device")
    parser.add_argument("--weights", help="start from: coco (COCO-pretrained, downloaded once), scratch, "
                       "a .pt file, or job:NAME (a previous job's best.pt); default coco when on this machine")
    parser.add_argument("--preset", help="scratch-low, scratch-med, scratch-high or no-augmentation")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other parameter (repeatable)")
    parser.add_argument("--instance-type", default="local")
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--spot", action="store_true")
    parser.add_argument("--max-hours", type=float, default=48.0,
                       help="stop the job after this many hours of running (default 48, at most 672)")
    parser.add_argument("--max-wait-hours", type=float,
                       help="with --spot: hours the job may take in all, waiting for capacity and restarts "
                            "included (default twice --max-hours, at most 672)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amc", description="AMC - Automated Model Creator")
    parser.add_argument("--backend", default="local", choices=["local", "sagemaker"],
                        help="where datasets and jobs live (default local)")
    parser.add_argument("--home", default=None, help="local workspace (default $AMC_HOME or ~/.amc)")
    aws = parser.add_argument_group("sagemaker backend")
    aws.add_argument("--profile", help="AWS profile (default: environment, SSO or instance role)")
    aws.add_argument("--region", help="AWS region (default $AWS_REGION or us-east-1)")
    aws.add_argument("--endpoint-url", help="another endpoint for every AWS service (S3-compatible or local)")
    aws.add_argument("--role-arn", help="execution role SageMaker assumes (default $AMC_ROLE_ARN)")
    aws.add_argument("--image-uri", help="training image in ECR (default $AMC_TRAINING_IMAGE)")
    aws.add_argument("--create-bucket", action="store_true", help="create sagemaker-<region>-<account> if missing")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo-dataset", help="write a synthetic solder-joint dataset (YOLO format)")
    demo.add_argument("dest", help="a new or empty folder")
    demo.add_argument("--train", type=int, default=240, help="training images (default 240)")
    demo.add_argument("--val", type=int, default=60, help="validation images (default 60)")
    demo.add_argument("--size", type=int, default=160, help="image size in pixels (default 160)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=cmd_demo_dataset)

    check = commands.add_parser("check-dataset", help="check a dataset folder or zip (YOLO, CVAT, Label Studio, "
                                                      "Roboflow, COCO or VOC export)")
    check.add_argument("path")
    check.add_argument("--preview", metavar="DIR", help="draw a few labelled images per class into this new folder")
    check.add_argument("--per-class", type=int, default=PER_CLASS, help="preview images per class (default 3)")
    check.add_argument("--image", metavar="NAME", help="with --preview: also draw this image, by file name")
    _add_split_options(check)
    check.set_defaults(run=cmd_check_dataset)

    datasets = commands.add_parser("datasets", help="list, upload (upload PATH) or delete (rm NAME) datasets")
    datasets.add_argument("action", nargs="?", choices=["list", "upload", "rm"], default="list")
    datasets.add_argument("target", nargs="?", help="folder or .zip to upload, or dataset to delete")
    datasets.add_argument("--name", help="name to store the dataset under (default: folder or zip name)")
    datasets.add_argument("--overwrite", action="store_true", help="replace a stored dataset of the same name")
    _add_split_options(datasets)
    datasets.set_defaults(run=cmd_datasets)

    train = commands.add_parser("train", help="start a training job on a stored dataset")
    train.add_argument("dataset")
    _add_training_options(train)
    train.add_argument("--name", help="job name (default: generated, unique)")
    train.add_argument("--wait", action="store_true", help="stream the log; exit with the job's outcome")
    train.set_defaults(run=cmd_train)

    tune = commands.add_parser("tune", help="start a tuning job: training jobs that search hyperparameter ranges "
                                            "for the best objective (every train option sets the static ones)")
    tune.add_argument("dataset")
    tune.add_argument("--range", action="append", metavar="NAME[=RANGE]",
                      help="a hyperparameter to tune (repeatable): lr0=1e-4:1e-1:log, mosaic=0:1, optimizer=SGD,AdamW, "
                           "or just lr0 for its default range")
    tune.add_argument("--objective", default="mAP50-95", help="the metric to optimise (default mAP50-95; "
                                                              "losses are minimised, the rest maximised)")
    tune.add_argument("--strategy", default="bayesian", help="bayesian (default), random, hyperband or grid")
    tune.add_argument("--max-jobs", type=int, help="training jobs at most (default 12; grid: every combination)")
    tune.add_argument("--parallel", type=int, default=3, help="training jobs at a time (default 3)")
    tune.add_argument("--early-stopping", action="store_true",
                      help="stop a training job early when it does worse than the others so far (its model is kept)")
    tune.add_argument("--warm-start", action="append", metavar="NAME",
                      help="learn from an earlier tuning job's results (repeatable, at most 5)")
    tune.add_argument("--seed", type=int, help="seed of the search (the same seed picks the same values)")
    tune.add_argument("--name", help="tuning job name (default: generated, unique; 32 characters at most)")
    tune.add_argument("--wait", action="store_true", help="follow it to its end; exit 0 only if it completed")
    _add_training_options(tune)
    tune.set_defaults(run=cmd_tune)

    tuning_jobs = commands.add_parser("tuning-jobs", help="list tuning jobs: status, training jobs, best objective")
    tuning_jobs.set_defaults(run=cmd_tuning_jobs)

    tuning = commands.add_parser("tuning", help="a tuning job: its training jobs by objective, the best marked")
    tuning.add_argument("name")
    tuning.set_defaults(run=cmd_tuning)

    jobs = commands.add_parser("jobs", help="list training jobs")
    jobs.set_defaults(run=cmd_jobs)

    logs = commands.add_parser("logs", help="print a job's log")
    logs.add_argument("job")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.add_argument("--live-tail", action="store_true",
                      help="with --follow on SageMaker: stream through CloudWatch Live Tail (billed per minute)")
    logs.set_defaults(run=cmd_logs)

    metrics = commands.add_parser("metrics", help="a job's metrics per epoch")
    metrics.add_argument("job")
    metrics.set_defaults(run=cmd_metrics)

    stop = commands.add_parser("stop", help="stop a job (it saves the model trained so far), or a tuning job "
                                            "and its running training jobs")
    stop.add_argument("job")
    stop.set_defaults(run=cmd_stop)

    download = commands.add_parser("download", help="download a job's outputs; prints the ONNX model's path")
    download.add_argument("job")
    download.add_argument("dest")
    download.add_argument("--overwrite", action="store_true")
    download.set_defaults(run=cmd_download)

    deploy = commands.add_parser("deploy", help="deploy a completed job's model to an endpoint; waits until it serves")
    deploy.add_argument("job")
    deploy.add_argument("--name", help="endpoint name (default: generated from the job's)")
    deploy.add_argument("--instance-type", help="SageMaker instance type (default ml.c5.large)")
    deploy.add_argument("--instances", type=int, default=1, help="initial instance count (default 1)")
    deploy.add_argument("--serverless-memory", type=int, metavar="MB", help="serverless instead: 1024-6144 MB")
    deploy.add_argument("--serverless-concurrency", type=int, default=5, help="serverless max concurrency (5)")
    deploy.add_argument("--min-instances", type=int, help="autoscaling: fewest instances")
    deploy.add_argument("--max-instances", type=int, help="autoscaling: most instances")
    deploy.add_argument("--target-invocations", type=int, help="autoscaling: invocations per instance per minute")
    deploy.add_argument("--timeout", type=float, default=600, help="seconds to wait for InService (default 600)")
    deploy.set_defaults(run=cmd_deploy)

    endpoints = commands.add_parser("endpoints", help="list endpoints: status, instance, cost")
    endpoints.set_defaults(run=cmd_endpoints)

    predict = commands.add_parser("predict", help="send images to an endpoint; print what it finds")
    predict.add_argument("endpoint")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help=".jpg or .png files")
    shown = predict.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON line per image (detections, seconds)")
    shown.add_argument("--out", metavar="DIR", help="also write each image with its boxes drawn to DIR/<name>.png")
    predict.add_argument("--conf", type=float, help="confidence threshold (the server's default 0.25)")
    predict.add_argument("--iou", type=float, help="NMS IoU threshold (default 0.45)")
    predict.add_argument("--max-det", type=int, help="most detections per image (default 100)")
    predict.set_defaults(run=cmd_predict)

    undeploy = commands.add_parser("undeploy", help="delete an endpoint (and its server)")
    undeploy.add_argument("endpoint")
    undeploy.set_defaults(run=cmd_undeploy)

    results = commands.add_parser("results", help="per-class results of a job's model (validation split)")
    results.add_argument("job")
    results.add_argument("--dest", help="keep the downloaded outputs here (default: a temporary folder)")
    results.set_defaults(run=cmd_results)

    connect = commands.add_parser("connect", help="test the AWS connection (account, user, bucket, roles)")
    connect.set_defaults(run=cmd_connect)

    policy = commands.add_parser("iam-policy",
                                 help="print the least-privilege IAM policies the SageMaker backend needs")
    policy.add_argument("--user-key", help="a user's key (`amc connect` prints it): the tag of their execution role")
    policy.add_argument("--bucket")
    policy.add_argument("--account")
    policy.add_argument("--partition", help="aws, aws-cn, aws-us-gov, ... (default: the region's)")
    policy.set_defaults(run=cmd_iam_policy)

    serve = commands.add_parser("serve", help="serve the dashboard (Voila) on the local backend")
    serve.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--cull-after", type=int, metavar="SECONDS",
                       help="end a page's kernel this long after the page is gone; 0: never "
                            "(default $AMC_CULL_AFTER or 300)")
    serve.add_argument("--token", action="store_true", help="ask for a token on loopback too (off loopback always)")
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("amc: interrupted", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - every error ends as one line; AMC_DEBUG=1 keeps tracebacks
        if os.environ.get(DEBUG_ENV):
            raise
        if is_expected(exc):
            print("amc: error: " + user_message(exc), file=sys.stderr)
            if isinstance(exc, TuningSpecError):
                return EXIT_USAGE
        else:
            print(f"amc: internal error: {user_message(exc)} ({DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
