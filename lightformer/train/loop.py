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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from lightformer.checkpoint import load_checkpoint
from lightformer.config import DROPOUTS
from lightformer.data.batching import collate, epoch_order, length_buckets
from lightformer.data.indexed import ParallelData, fingerprint
from lightformer.decode.beam import SearchConfig, beam_search
from lightformer.errors import LightformerError
from lightformer.gpu import pick_device
from lightformer.io import atomic_path, file_sha256, one_writer
from lightformer.metrics.bleu import tokenized_bleu
from lightformer.models.build import build_model
from lightformer.models.losses import label_smoothed_nll_loss, seq2seq_loss
from lightformer.models.transformer import set_dropout
from lightformer.hardware import peak_flops
from lightformer.train.flops import Throughput, step_macs
from lightformer.train.recipes import TrainConfig
from lightformer.train.run_dir import (
    Resume,
    discard_run,
    find_resume,
    mark_best,
    pointed,
    prune,
    save_train_checkpoint,
    set_aside,
)
from lightformer.train.schedule import inverse_sqrt_lr

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again" — rerunning the same command resumes
CURVE_FIELDS = ["update", "epoch", "wall_s", "tokens_seen", "lr", "train_loss", "train_nll",
                "valid_loss", "valid_nll", "valid_ppl", "valid_bleu",
                "train_tokens_per_s", "train_tflops", "mfu"]  # since the previous row, validation excluded
IDENTITY = ["task", "model", "seed"]  # the run's record (lightformer train --record): reports group curves by it
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
        model = load_checkpoint(cfg.init_from)
        drop = {k: v for k, v in cfg.model.items() if k in DROPOUTS}
        # a training recipe may restate the checkpoint's own shapes (random init at the baseline's budget)
        other = sorted(k for k in set(cfg.model) - set(drop) if getattr(model.cfg, k, None) != cfg.model[k])
        if other:
            raise LightformerError(f"model options {other} cannot change when fine-tuning {cfg.init_from!r}; "
                                   f"only dropout rates can")
        model.overridden = {k: (getattr(model.cfg, k), v) for k, v in drop.items() if getattr(model.cfg, k) != v}
        set_dropout(model, **drop)
    else:
        model = build_model(cfg.arch, len(data.src_dict), len(data.tgt_dict), seed=cfg.seed, **cfg.model)
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


def _rewrite_curve(path: Path, upto_update: int, identity: dict) -> None:
    """Drop curve rows written after the checkpoint being resumed (they will be redone); the rows
    kept carry this session's identity (a curve from before runs recorded it gains it). Replaced
    atomically: a crash mid-rewrite leaves the old curve, never half of it."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r | identity for r in csv.DictReader(f) if int(r["update"]) <= upto_update]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS + IDENTITY, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


@dataclass
class RunState:
    """Where a run is: what its checkpoints carry (beside weights, optimizer and RNG) and the sums
    since the last curve row."""
    num_updates: int = 0
    epoch: int = 1
    position: int = 0  # batches of this epoch's order already used
    tokens_seen: int = 0
    wall_before: float = 0.0  # seconds spent by the sessions before this one
    best: float | None = None
    loss: float = 0.0  # since the last curve row
    nll: float = 0.0
    ntok: int = 0
    saved_at: int = -1  # this session: update of the last checkpoint
    evaluated: tuple = (-1, None)  # this session: (update, metrics) of the last validation

    @classmethod
    def restored(cls, st: dict) -> "RunState":
        return cls(num_updates=st["num_updates"], epoch=st["epoch"], position=st["position"],
                   tokens_seen=st["tokens_seen"], wall_before=st["wall_s"], best=st["best"])


class Prefetcher:
    """Collates the next update's batches on a worker thread while the device runs this one
    (the collation otherwise waits for the update's one host sync)."""

    def __init__(self, pool: ThreadPoolExecutor, make):
        self.pool, self.make, self.pending = pool, make, None

    def take(self, key, group) -> list[dict]:
        ready, self.pending = self.pending, None
        return ready[1].result() if ready is not None and ready[0] == key else self.make(group)

    def ahead(self, key, group) -> None:
        self.pending = (key, self.pool.submit(self.make, group))


def _training_device(cfg: TrainConfig, world: int) -> torch.device:
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if cfg.threads and device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    return device


def train(cfg: TrainConfig, progress: bool = True, restart: str = "no", record: dict | None = None) -> dict:
    """Train (or fine-tune, or resume) as ``cfg`` says; returns the final summary. ``restart``:
    see :func:`_open_run`. ``record``: the run's identity (task, model) written into every curve
    row with its seed, not part of the config (a run resumes whatever it is called). One session per
    run directory at a time (its writer lock; rank 0 holds it for all ranks of a torchrun)."""
    if int(os.environ.get("RANK", "0")) != 0 or not cfg.save_dir:
        return Trainer(cfg, progress, restart, record).run()
    with one_writer(cfg.save_dir, "train"):
        return Trainer(cfg, progress, restart, record).run()


class Trainer:
    """One session of a run: set up from the config (resuming when the run has a checkpoint), then
    updates, validation and checkpoints until max_updates/max_epochs or a stop signal."""

    def __init__(self, cfg: TrainConfig, progress: bool = True, restart: str = "no", record: dict | None = None):
        if not cfg.data or not cfg.save_dir:
            raise LightformerError("data and save_dir must be set (e.g. data=DIR save_dir=DIR)")
        self.cfg, self.run_dir = cfg, Path(cfg.save_dir)
        self.identity = {k: (record or {}).get(k, "") for k in IDENTITY} | {"seed": cfg.seed}
        self.rank, self.world = _distributed()
        self.device = device = _training_device(cfg, self.world)
        self.use_bf16 = cfg.bf16 and device.type == "cuda"
        self.data = ParallelData(cfg.data)
        self.train_src, self.train_tgt = self.data.split("train")
        self.data.split("valid")  # fail early on a missing or empty validation split
        resume, self.bound, notes = _open_run(self.run_dir, cfg, restart, self.rank, self.world)
        self.model = model = _build_model(cfg, self.data, resume).to(device)
        torch.manual_seed(cfg.seed)
        model.train()
        self.params = list(model.parameters())  # each shared factor once
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps,
                                           weight_decay=cfg.weight_decay,
                                           fused=device.type == "cuda")  # one kernel for every parameter's update
        self.peak, self.device_label = peak_flops(device, "bf16" if self.use_bf16 else "fp32", None)
        self.meter = Throughput(step_macs(model), self.peak * self.world if self.peak else None)
        self.pad_to = cfg.pad_to_multiple or (8 if device.type == "cuda" else 1)  # tensor-core friendly widths
        self.fused = cfg.fused_loss == "on" or (cfg.fused_loss == "auto" and device.type == "cuda")
        self.forward = model
        if self.world > 1:
            self.forward = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            self.forward = torch.compile(self.forward)
        self.state = RunState()
        if resume is not None:
            self.state = RunState.restored(resume.state)
            self.optimizer.load_state_dict(resume.state["optimizer"])
            _set_rng_state(resume.state["rng"], device)
        self.batches = length_buckets(self.train_src.sizes, self.train_tgt.sizes, cfg.max_tokens)
        self.per_update = cfg.effective_update_freq(self.world) * self.world
        self._open_log(resume, notes)
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=cfg.max_updates or None, initial=self.state.num_updates, desc="train", unit="upd",
                        disable=(not progress or self.rank != 0) or None)
        self.plain = PlainProgress(cfg.log_interval_s, cfg.max_updates, self.state.num_updates,
                                   enabled=progress and self.rank == 0 and self.bar.disable)

    def _open_log(self, resume: Resume | None, notes: list[str]) -> None:
        """Events, the recipe as given plus the model as built, and the curve cut back to the resumed update."""
        if self.rank != 0:
            return
        run, cfg = self.run_dir, self.cfg
        run.mkdir(parents=True, exist_ok=True)
        for note in notes:
            _event(run, note)
        for key, (was, now) in getattr(self.model, "overridden", {}).items():
            _event(run, f"the recipe sets {key}={now} (the init_from checkpoint had {was})")
        _event(run, f"resumed from {resume.ckpt.name} at update {self.state.num_updates}" if resume else "started")
        (run / "config.json").write_text(json.dumps(cfg.to_dict() | {"model_config": self.model.cfg.to_dict()},
                                                    indent=2) + "\n")
        _rewrite_curve(run / "curve.csv", self.state.num_updates, self.identity)
        if cfg.update_tokens:
            f = self.per_update // self.world
            _event(run, f"update_freq {f}: {f} x {self.world} rank(s) x max_tokens {cfg.max_tokens} "
                        f">= update_tokens {cfg.update_tokens}")

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else contextlib.nullcontext()

    def wall(self) -> float:
        return self.state.wall_before + time.perf_counter() - self.t0

    def done(self) -> bool:
        s, cfg = self.state, self.cfg
        return bool((cfg.max_updates and s.num_updates >= cfg.max_updates) or (cfg.max_epochs and s.epoch > cfg.max_epochs))

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> dict:
        with _StopFlag() as self.stop, ThreadPoolExecutor(1, thread_name_prefix="collate") as pool:
            self.prefetch = Prefetcher(pool, self._collate)
            while not self.done():
                order = epoch_order(len(self.batches), self.cfg.seed, self.state.epoch)
                stopping = self._epoch(order)
                self._close_epoch(order, stopping)
        return self._finish()

    def _group(self, order: np.ndarray, position: int) -> np.ndarray:
        """This rank's batches of the update that starts at ``position``."""
        return order[position: position + self.per_update][self.rank::self.world]

    def _collate(self, group) -> list[dict]:
        samples = [collate([self.train_src[i] for i in self.batches[j]], [self.train_tgt[i] for i in self.batches[j]],
                           self.pad_to) for j in group]
        if self.device.type == "cuda":  # page-locked, so the copies to the device overlap with compute
            samples = [{k: v.pin_memory() if torch.is_tensor(v) else v for k, v in b.items()} for b in samples]
        return samples

    def _epoch(self, order: np.ndarray) -> bool:
        """Updates from the current position until the epoch ends or the run is done, validating
        and saving at their intervals. True when a stop signal came in the epoch's last update."""
        s, cfg = self.state, self.cfg
        while s.position < len(order) and not self.done():
            group = self._group(order, s.position)
            samples = self.prefetch.take((s.epoch, s.position), group)
            following = s.position + self.per_update
            if following < len(order):
                self.prefetch.ahead((s.epoch, following), self._group(order, following))
            stopping = self._update(group, samples)
            if s.position >= len(order):
                return stopping
            metrics = None
            if cfg.validate_interval_updates and s.num_updates % cfg.validate_interval_updates == 0:
                metrics = self._evaluate()
            if (cfg.save_interval_updates and s.num_updates % cfg.save_interval_updates == 0) or stopping:
                self._checkpoint(metrics)
            if stopping:
                raise self._preempted()
        return False

    def _close_epoch(self, order: np.ndarray, stopping: bool) -> None:
        """Epoch end or the last update: validate (under the epoch that just ran) and save, unless
        this very update was validated or saved already."""
        s = self.state
        metrics = s.evaluated[1] if s.evaluated[0] == s.num_updates else self._evaluate()
        if s.position >= len(order):
            s.epoch, s.position = s.epoch + 1, 0
        if s.saved_at != s.num_updates:
            self._checkpoint(metrics)
        if stopping:
            raise self._preempted()

    def _update(self, group: np.ndarray, samples: list[dict]) -> bool:
        """One optimizer update on this rank's batches; True when any rank was signalled to stop."""
        s, cfg, device, world = self.state, self.cfg, self.device, self.world
        ntok, votes = sum(b["ntokens"] for b in samples), 1.0 if self.stop.signum else 0.0
        counts = None
        if world > 1:  # target tokens and "a rank was signalled": one collective, on the training device
            counts = torch.tensor([ntok, votes], dtype=torch.float64).to(device, non_blocking=True)
            dist.all_reduce(counts)
        sums = torch.zeros(2, device=device, dtype=torch.float64)  # loss, nll: one host sync per update
        for k, b in enumerate(samples):
            sync = contextlib.nullcontext() if (world == 1 or k == len(samples) - 1) else self.forward.no_sync()
            with sync, self.autocast():
                loss, nll = seq2seq_loss(self.forward, self.model, b["src_tokens"].to(device, non_blocking=True),
                                         b["prev_output_tokens"].to(device, non_blocking=True),
                                         b["target"].to(device, non_blocking=True), cfg.label_smoothing, self.fused)
            loss.backward()
            sums += torch.stack([loss.detach(), nll.detach()]).double()
        values = (sums if counts is None else torch.cat([sums, counts])).tolist()  # the one host sync
        loss_sum, nll_sum = values[:2]
        if counts is not None:
            ntok, votes = int(values[2]), values[3]
        if not math.isfinite(loss_sum):
            raise LightformerError(f"non-finite loss at update {s.num_updates + 1}; stopped without saving. "
                                   f"Last good checkpoint: {pointed(self.run_dir, 'last') or 'none'}")
        lr = self._step(scale=world / ntok)  # DDP averaged over ranks; fairseq divides the sum by tokens
        own = np.concatenate([self.batches[j] for j in group]) if len(group) else np.zeros(0, dtype=np.int64)
        self.meter.add(ntok, self.train_src.sizes[own], self.train_tgt.sizes[own], scale=world)  # DDP: ranks alike
        s.position += self.per_update
        s.tokens_seen += ntok
        s.loss, s.nll, s.ntok = s.loss + loss_sum, s.nll + nll_sum, s.ntok + ntok // world
        per_token = loss_sum / max(ntok // world, 1)
        self.bar.update()
        self.bar.set_postfix(loss=f"{per_token:.3f}", lr=f"{lr:.2e}",
                             tok_s=f"{s.tokens_seen / max(self.wall() - s.wall_before, 1e-9):.0f}")
        self.plain.tick(s.num_updates, per_token, ntok)
        return votes > 0

    def _step(self, scale: float) -> float:
        """Scale and clip the gradients, set the schedule's learning rate, step; returns the rate."""
        cfg = self.cfg
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(scale)
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_norm)
        self.state.num_updates += 1
        lr = inverse_sqrt_lr(self.state.num_updates, cfg.lr, cfg.warmup_updates, cfg.warmup_init_lr)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return lr

    # --- validation, checkpoints, the end ---------------------------------------------------------

    def _evaluate(self) -> dict:
        s, rates = self.state, self.meter.window()
        with self.meter.paused():
            metrics = validate(self.model, self.data, self.cfg, self.device, self.autocast) if self.rank == 0 else {}
        if self.rank == 0:
            row = {"update": s.num_updates, "epoch": s.epoch, "wall_s": round(self.wall(), 3),
                   "tokens_seen": s.tokens_seen, "lr": self.optimizer.param_groups[0]["lr"],
                   "train_loss": s.loss / max(s.ntok, 1), "train_nll": s.nll / max(s.ntok, 1)} | metrics | rates
            row |= self.identity
            path = self.run_dir / "curve.csv"
            new = not path.exists()
            with open(path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=CURVE_FIELDS + IDENTITY, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
            s.loss, s.nll, s.ntok = 0.0, 0.0, 0
        s.evaluated = (s.num_updates, metrics)
        return metrics

    def _checkpoint(self, metrics: dict | None) -> None:
        """Save update_<N> (rank 0), mark it best when its metric is, prune old ones; validation's
        and saving's time stay out of the throughput."""
        s, cfg = self.state, self.cfg
        s.saved_at = s.num_updates
        is_best = False
        if metrics:
            value = metrics["valid_bleu" if cfg.best_metric == "bleu" else "valid_loss"]
            is_best = s.best is None or (value > s.best if cfg.best_metric == "bleu" else value < s.best)
            s.best = value if is_best else s.best
        if self.rank != 0:
            return
        name = f"update_{s.num_updates:07d}"
        with self.meter.paused():
            st = {"config": cfg.to_dict(), "optimizer": self.optimizer.state_dict(), "num_updates": s.num_updates,
                  "epoch": s.epoch, "position": s.position, "tokens_seen": s.tokens_seen, "wall_s": self.wall(),
                  "best": s.best, "rng": _rng_state(self.device), "bound": self.bound}
            save_train_checkpoint(self.run_dir, name, self.model, st, provenance={
                "train": "lightformer train", "update": s.num_updates, "epoch": s.epoch, "data": cfg.data})
            if is_best:
                mark_best(self.run_dir, name)
            prune(self.run_dir, cfg.keep_last)

    def _preempted(self) -> Preempted:
        """After the signal-triggered save: close the bar, log the event, return the exception."""
        self.bar.close()
        _barrier(self.world)  # rank 0's save is on disk before any rank exits (torchrun then stops the rest)
        signum, n = self.stop.signum or "on another rank", self.state.num_updates
        _event(self.run_dir, f"preempted by signal {signum}: saved update {n}", self.rank)
        return Preempted(f"signal {signum}: saved {self.run_dir / 'checkpoints'} at update {n}")

    def _finish(self) -> dict:
        self.bar.close()
        run, s = self.run_dir, self.state
        if self.rank == 0 and pointed(run, "best") is None and pointed(run, "last") is not None:
            mark_best(run, pointed(run, "last").name)  # the best one was unreadable and set aside
        summary = {"num_updates": s.num_updates, "epoch": s.epoch, "tokens_seen": s.tokens_seen, "wall_s": self.wall(),
                   "best": s.best, "best_metric": self.cfg.best_metric, "last": str(pointed(run, "last")),
                   "best_checkpoint": str(pointed(run, "best")), "device_name": self.device_label,
                   "peak_flops": self.peak} | self.meter.session()  # this session's throughput, validation excluded
        if self.rank == 0:
            (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            _event(run, f"finished at update {s.num_updates}")
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return summary
