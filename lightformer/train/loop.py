"""One readable training loop (also fine-tuning), fairseq-equivalent where it counts.

Per update: ``update_freq`` token-bucketed batches (times the number of DDP ranks), summed
label-smoothed loss, gradients divided by the target tokens of the whole update, optional clip,
AdamW step at the inverse-sqrt learning rate. Validation (loss and beam-search BLEU) and
checkpoints at fixed update intervals and at each epoch end; the learning curve goes to
``curve.csv``. A run directory resumes from its ``last`` checkpoint to the same weights an
uninterrupted run reaches (CPU, bit-identical): model, optimizer, update count, RNG states and
the position in the (seed, epoch)-determined batch order are all restored. SIGTERM/SIGUSR1 save
a checkpoint at the next update boundary and exit with ``EXIT_PREEMPTED``.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

import lightformer as lf
from lightformer.data.batching import collate, epoch_order, length_buckets
from lightformer.data.indexed import ParallelData, fingerprint
from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.errors import LightformerError
from lightformer.gpu import pick_device
from lightformer.io import file_sha256
from lightformer.metrics.bleu import tokenized_bleu
from lightformer.models.transformer import set_dropout
from lightformer.train.checkpoints import (
    Resume,
    discard_run,
    find_resume,
    mark_best,
    pointed,
    prune,
    save_train_checkpoint,
    set_aside,
)
from lightformer.train.bench import peak_flops
from lightformer.train.config import TrainConfig
from lightformer.train.flops import Throughput, step_macs
from lightformer.train.losses import label_smoothed_nll_loss, seq2seq_loss
from lightformer.train.schedule import inverse_sqrt_lr

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again" — rerunning the same command resumes
CURVE_FIELDS = ["update", "epoch", "wall_s", "tokens_seen", "lr", "train_loss", "train_nll",
                "valid_loss", "valid_nll", "valid_ppl", "valid_bleu",
                "train_tokens_per_s", "train_tflops", "mfu"]  # since the previous row, validation excluded
# keys that may differ between a run and its resumption (schedule length, logging, hardware)
# (data and save_dir are paths: a run bound to its data's contents may move, and so may the data)
RESUMABLE_CHANGES = {"data", "save_dir", "max_updates", "max_epochs", "validate_interval_updates", "save_interval_updates",
                     "keep_last", "device", "compile", "threads", "fused_loss", "eval_max_sentences", "log_interval_s"}


def _event(run: Path, message: str, rank: int = 0) -> None:
    """Log a run's lifecycle to stderr and append it to <run>/events.log, which (unlike a job's
    log, rewritten by each retry) keeps every start, preemption and resumption of the run."""
    if rank != 0:
        return
    print(f"lightformer train: {message} ({run})", file=sys.stderr, flush=True)
    with open(run / "events.log", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")


class PlainProgress:
    """Where no terminal shows the progress bar (a Snakemake or SLURM log), one plain line every
    ``interval`` seconds: update, loss, tokens/s and the time left at this session's pace."""

    def __init__(self, interval: float, total: int, start: int, enabled: bool):
        self.interval, self.total, self.start, self.enabled = interval, total, start, enabled
        self.t0 = self.last = time.monotonic()
        self.tokens = 0

    def tick(self, update: int, loss: float, ntok: int) -> None:
        if not self.enabled:
            return
        self.tokens += ntok
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last, spent = now, now - self.t0
        done = update - self.start
        eta = ""
        if self.total and done:
            left = (self.total - update) * spent / done
            eta = f", ETA {int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"
        print(f"train: update {update}{f'/{self.total}' if self.total else ''}, loss {loss:.3f}, "
              f"{self.tokens / spent:.0f} tok/s{eta}", file=sys.stderr, flush=True)


class Preempted(Exception):
    """Raised after a signal-triggered checkpoint; the CLI exits with EXIT_PREEMPTED."""


class _StopFlag:
    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun. Every collective below
    takes tensors on the training device; the backend string still has a CPU backend beside NCCL."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def binding(cfg: TrainConfig) -> dict:
    """What a run is bound to besides its config: the prepared data and the init_from checkpoint."""
    return {"data": fingerprint(cfg.data), "init_from": file_sha256(cfg.init_from) if cfg.init_from else None}


def _binding_changes(saved: dict | None, now: dict) -> list[str]:
    if saved is None:
        return []  # a run saved before runs were bound to their data: nothing to compare
    changed = []
    old, new = saved.get("data", {}), now["data"]
    files = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if files:
        changed.append(f"the data under data= ({', '.join(files[:6])}{', ...' if len(files) > 6 else ''})")
    if saved.get("init_from") != now["init_from"]:
        changed.append("the init_from checkpoint's contents")
    return changed


def _build_model(cfg: TrainConfig, data: ParallelData, resume: Resume | None):
    if resume is not None:
        return resume.model
    if cfg.init_from:
        model = lf.load_checkpoint(cfg.init_from)
        drop = {k: v for k, v in cfg.model.items() if k in ("dropout", "attention_dropout", "activation_dropout")}
        # a training recipe may restate the checkpoint's own shapes (random init at the baseline's budget)
        other = sorted(k for k in set(cfg.model) - set(drop) if getattr(model.cfg, k, None) != cfg.model[k])
        if other:
            raise LightformerError(f"model options {other} cannot change when fine-tuning {cfg.init_from!r}; "
                                   f"only dropout rates can")
        model.overridden = {k: (getattr(model.cfg, k), v) for k, v in drop.items() if getattr(model.cfg, k) != v}
        set_dropout(model, **drop)
    else:
        model = lf.build_model(cfg.arch, len(data.src_dict), len(data.tgt_dict), seed=cfg.seed, **cfg.model)
    if (model.cfg.src_vocab, model.cfg.tgt_vocab) != (len(data.src_dict), len(data.tgt_dict)):
        raise LightformerError(
            f"the model's vocabularies ({model.cfg.src_vocab}/{model.cfg.tgt_vocab}) do not match the data's "
            f"dictionaries ({len(data.src_dict)}/{len(data.tgt_dict)}) in {cfg.data!r}")
    return model


def _resume_changes(state: dict, cfg: TrainConfig, bound: dict) -> list[str]:
    """What differs between the checkpoint's run and this command, beyond the resumable keys."""
    now, saved = cfg.to_dict(), state["config"]
    keys = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    changes = [f"config {', '.join(f'{k}: {saved.get(k)!r} -> {now[k]!r}' for k in keys)}"] if keys else []
    return changes + _binding_changes(state.get("bound"), bound)


def _open_run(run: Path, cfg: TrainConfig, restart: str, rank: int, world: int) -> tuple[Resume | None, dict, list]:
    """(what to resume from, the run's binding, lines for the event log). ``restart``: 'no' (resume,
    or stop on any change), 'always' (move the run aside first), 'if-changed' (move it aside only
    when its config, data or init_from changed)."""
    bound, notes = binding(cfg), []
    if restart == "always" and rank == 0 and (moved := discard_run(run)):
        notes.append(f"restart asked: the previous run was moved to {moved.name}")
    _barrier(world)
    resume = find_resume(run)
    if resume is not None:
        changes = _resume_changes(resume.state, cfg, bound)
        if changes and restart != "if-changed":
            raise LightformerError(
                f"{resume.ckpt} belongs to a run whose {'; '.join(changes)} changed since it started; it was not "
                f"resumed. Use a new save_dir, or rerun with --restart (or --restart-if-changed) to start over "
                f"(the old run is moved aside, not deleted)")
        _barrier(world)  # every rank has read the run before rank 0 renames anything in it
        if changes:
            if rank == 0:
                notes.append(f"{'; '.join(changes)} changed: the previous run was moved to {discard_run(run).name}")
            resume = None
        elif rank == 0:
            notes += set_aside(run, resume)
    _barrier(world)
    return resume, bound, notes


@torch.no_grad()
def validate(model, data: ParallelData, cfg: TrainConfig, device, autocast) -> dict:
    """Validation loss/NLL per target token, and tokenized BLEU of beam search on the first
    ``eval_max_sentences`` sentences."""
    model.eval()
    src, tgt = data.split("valid")
    batches = length_buckets(src.sizes, tgt.sizes, cfg.max_tokens)
    loss_sum = nll_sum = ntok = 0.0
    for idx in batches:
        b = collate([src[i] for i in idx], [tgt[i] for i in idx])
        with autocast():
            logits = model(b["src_tokens"].to(device), b["prev_output_tokens"].to(device))
        loss, nll = label_smoothed_nll_loss(logits, b["target"].to(device), cfg.label_smoothing)
        loss_sum, nll_sum, ntok = loss_sum + float(loss), nll_sum + float(nll), ntok + b["ntokens"]
    out = {"valid_loss": loss_sum / ntok, "valid_nll": nll_sum / ntok, "valid_ppl": math.exp(nll_sum / ntok)}
    if cfg.eval_bleu:
        n = min(len(src), cfg.eval_max_sentences)
        hyps, refs = [], []
        search = SearchConfig(beam=cfg.eval_beam, max_len_a=1.2, max_len_b=10)
        for idx in length_buckets(src.sizes[:n], tgt.sizes[:n], cfg.max_tokens, max_sentences=128):
            b = collate([src[i] for i in idx])
            with autocast():
                found = beam_search(model, b["src_tokens"].to(device), search)
            hyps += [data.tgt_dict.decode(h[0].tokens, cfg.eval_remove_bpe) for h in found]
            refs += [data.tgt_dict.decode(tgt[i].tolist(), cfg.eval_remove_bpe) for i in idx]
        out["valid_bleu"] = tokenized_bleu(hyps, refs)["score"]
    model.train()
    return out


def _rng_state(device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _rewrite_curve(path: Path, upto_update: int) -> None:
    """Drop curve rows written after the checkpoint being resumed (they will be redone)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["update"]) <= upto_update]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        w.writeheader()
        w.writerows(rows)


def train(cfg: TrainConfig, progress: bool = True, restart: str = "no") -> dict:
    """Train (or fine-tune, or resume) as ``cfg`` says; returns the final summary. ``restart``:
    see :func:`_open_run`."""
    if not cfg.data or not cfg.save_dir:
        raise LightformerError("data and save_dir must be set (e.g. data=DIR save_dir=DIR)")
    rank, world = _distributed()
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    use_bf16 = cfg.bf16 and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    data = ParallelData(cfg.data)
    train_src, train_tgt = data.split("train")
    data.split("valid")  # fail early on a missing or empty validation split
    run = Path(cfg.save_dir)
    resume, bound, notes = _open_run(run, cfg, restart, rank, world)
    state = resume.state if resume is not None else None
    model = _build_model(cfg, data, resume).to(device)
    torch.manual_seed(cfg.seed)
    model.train()
    params = list(model.parameters())  # each shared factor once
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda")  # one kernel for every parameter's update
    peak, device_label = peak_flops(device, "bf16" if use_bf16 else "fp32", None)
    meter = Throughput(step_macs(model), peak * world if peak else None)
    pad_to = cfg.pad_to_multiple or (8 if device.type == "cuda" else 1)  # tensor-core friendly widths
    fused = cfg.fused_loss == "on" or (cfg.fused_loss == "auto" and device.type == "cuda")
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        forward = model
    if cfg.compile:
        forward = torch.compile(forward)

    num_updates, epoch, position, tokens_seen, wall_before, best = 0, 1, 0, 0, 0.0, None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        num_updates, epoch, position = state["num_updates"], state["epoch"], state["position"]
        tokens_seen, wall_before, best = state["tokens_seen"], state["wall_s"], state["best"]
        _set_rng_state(state["rng"], device)
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        for note in notes:
            _event(run, note)
        for key, (was, now) in getattr(model, "overridden", {}).items():
            _event(run, f"the recipe sets {key}={now} (the init_from checkpoint had {was})")
        _event(run, f"resumed from {resume.ckpt.name} at update {num_updates}" if state is not None else "started")
        # the recipe as given, plus the model as built (its actual dimensions and dropout rates)
        (run / "config.json").write_text(json.dumps(cfg.to_dict() | {"model_config": model.cfg.to_dict()},
                                                    indent=2) + "\n")
        _rewrite_curve(run / "curve.csv", num_updates)

    batches = length_buckets(train_src.sizes, train_tgt.sizes, cfg.max_tokens)
    update_freq = cfg.effective_update_freq(world)
    if cfg.update_tokens and rank == 0:
        _event(run, f"update_freq {update_freq}: {update_freq} x {world} rank(s) x max_tokens {cfg.max_tokens} "
                    f">= update_tokens {cfg.update_tokens}")
    per_update = update_freq * world
    t0 = time.perf_counter()
    running = {"loss": 0.0, "nll": 0.0, "ntok": 0}
    bar = tqdm(total=cfg.max_updates or None, initial=num_updates, desc="train", unit="upd",
               disable=(not progress or rank != 0) or None)
    plain = PlainProgress(cfg.log_interval_s, cfg.max_updates, num_updates,
                          enabled=progress and rank == 0 and bar.disable)

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def preempted() -> Preempted:
        """After the signal-triggered save: close the bar, log the event, return the exception."""
        bar.close()
        _barrier(world)  # rank 0's save is on disk before any rank exits (torchrun then stops the rest)
        signum = stop.signum or "on another rank"
        _event(run, f"preempted by signal {signum}: saved update {num_updates}", rank)
        return Preempted(f"signal {signum}: saved {run / 'checkpoints'} at update {num_updates}")

    def checkpoint(name: str, metrics: dict | None = None) -> None:
        with meter.paused():
            save(name, metrics)

    def save(name: str, metrics: dict | None = None) -> None:
        nonlocal best
        is_best = False
        if metrics:
            value = metrics["valid_bleu" if cfg.best_metric == "bleu" else "valid_loss"]
            is_best = best is None or (value > best if cfg.best_metric == "bleu" else value < best)
            best = value if is_best else best
        if rank != 0:
            return
        st = {"config": cfg.to_dict(), "optimizer": optimizer.state_dict(), "num_updates": num_updates,
              "epoch": epoch, "position": position, "tokens_seen": tokens_seen, "wall_s": wall(),
              "best": best, "rng": _rng_state(device), "bound": bound}
        save_train_checkpoint(run, name, model, st, provenance={"train": "lightformer train", "update": num_updates,
                                                                "epoch": epoch, "data": cfg.data})
        if is_best:
            mark_best(run, name)
        prune(run, cfg.keep_last)

    def evaluate() -> dict:
        rates = meter.window()
        with meter.paused():
            metrics = validate(model, data, cfg, device, autocast) if rank == 0 else {}
        if rank == 0:
            row = {"update": num_updates, "epoch": epoch, "wall_s": round(wall(), 3), "tokens_seen": tokens_seen,
                   "lr": optimizer.param_groups[0]["lr"],
                   "train_loss": running["loss"] / max(running["ntok"], 1),
                   "train_nll": running["nll"] / max(running["ntok"], 1)} | metrics | rates
            path = run / "curve.csv"
            new = not path.exists()
            with open(path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=CURVE_FIELDS, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
            running.update(loss=0.0, nll=0.0, ntok=0)
        return metrics

    def done() -> bool:
        return bool((cfg.max_updates and num_updates >= cfg.max_updates) or
                    (cfg.max_epochs and epoch > cfg.max_epochs))

    saved_at, last_eval = -1, (-1, None)  # update of the last checkpoint, (update, metrics) of the last validation
    stopping = False  # a stop signal, agreed by all ranks at the start of each update
    with _StopFlag() as stop:
        while not done():
            order = epoch_order(len(batches), cfg.seed, epoch)
            while position < len(order) and not done():
                group = order[position: position + per_update][rank::world]
                samples = [collate([train_src[i] for i in batches[j]], [train_tgt[i] for i in batches[j]], pad_to)
                           for j in group]
                if device.type == "cuda":  # page-locked, so the copies below overlap with compute
                    samples = [{k: v.pin_memory() if torch.is_tensor(v) else v for k, v in s.items()} for s in samples]
                ntok, votes = sum(s["ntokens"] for s in samples), 1.0 if stop.signum else 0.0
                counts = None
                if world > 1:  # target tokens and "a rank was signalled": one collective, on the training device
                    counts = torch.tensor([ntok, votes], dtype=torch.float64).to(device, non_blocking=True)
                    dist.all_reduce(counts)
                sums = torch.zeros(2, device=device, dtype=torch.float64)  # loss, nll: one host sync per update
                for k, s in enumerate(samples):
                    sync = contextlib.nullcontext() if (world == 1 or k == len(samples) - 1) else forward.no_sync()
                    with sync, autocast():
                        loss, nll = seq2seq_loss(forward, model, s["src_tokens"].to(device, non_blocking=True),
                                                 s["prev_output_tokens"].to(device, non_blocking=True),
                                                 s["target"].to(device, non_blocking=True), cfg.label_smoothing, fused)
                    loss.backward()
                    sums += torch.stack([loss.detach(), nll.detach()]).double()
                values = (sums if counts is None else torch.cat([sums, counts])).tolist()  # the one host sync
                loss_sum, nll_sum = values[:2]
                if counts is not None:
                    ntok, votes = int(values[2]), values[3]
                stopping = votes > 0
                if not math.isfinite(loss_sum):
                    last = pointed(run, "last")
                    raise LightformerError(f"non-finite loss at update {num_updates + 1}; stopped without saving. "
                                           f"Last good checkpoint: {last or 'none'}")
                scale = world / ntok  # DDP averaged over ranks; fairseq divides the sum by tokens
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(scale)
                if cfg.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
                num_updates += 1
                lr = inverse_sqrt_lr(num_updates, cfg.lr, cfg.warmup_updates, cfg.warmup_init_lr)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                own = np.concatenate([batches[j] for j in group]) if group else np.zeros(0, dtype=np.int64)
                meter.add(ntok, train_src.sizes[own], train_tgt.sizes[own], scale=world)  # DDP: ranks alike
                position += per_update
                tokens_seen += ntok
                running["loss"] += loss_sum
                running["nll"] += nll_sum
                running["ntok"] += ntok // world
                bar.update()
                bar.set_postfix(loss=f"{loss_sum / max(ntok // world, 1):.3f}", lr=f"{lr:.2e}",
                                tok_s=f"{tokens_seen / max(wall() - wall_before, 1e-9):.0f}")
                plain.tick(num_updates, loss_sum / max(ntok // world, 1), ntok)
                if position >= len(order):  # epoch end: validate and save there
                    break
                metrics = None
                if cfg.validate_interval_updates and num_updates % cfg.validate_interval_updates == 0:
                    metrics = evaluate()
                    last_eval = (num_updates, metrics)
                if (cfg.save_interval_updates and num_updates % cfg.save_interval_updates == 0) or stopping:
                    checkpoint(f"update_{num_updates:07d}", metrics)
                    saved_at = num_updates
                if stopping:
                    raise preempted()
            # epoch end or the last update: validate (under the epoch that just ran) and save,
            # unless this very update was validated or saved already
            metrics = last_eval[1] if last_eval[0] == num_updates else evaluate()
            last_eval = (num_updates, metrics)
            if position >= len(order):
                epoch, position = epoch + 1, 0
            if saved_at != num_updates:
                checkpoint(f"update_{num_updates:07d}", metrics)
                saved_at = num_updates
            if stopping:
                raise preempted()
    bar.close()
    if rank == 0 and pointed(run, "best") is None and pointed(run, "last") is not None:
        mark_best(run, pointed(run, "last").name)  # the best one was unreadable and set aside
    summary = {"num_updates": num_updates, "epoch": epoch, "tokens_seen": tokens_seen, "wall_s": wall(),
               "best": best, "best_metric": cfg.best_metric, "last": str(pointed(run, "last")),
               "best_checkpoint": str(pointed(run, "best")), "device_name": device_label,
               "peak_flops": peak} | meter.session()  # this session's throughput, validation excluded
    if rank == 0:
        (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _event(run, f"finished at update {num_updates}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary
