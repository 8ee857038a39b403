"""``python -m training.train CONFIG [--backbone swinunetr|unet] [--resume CKPT]``.

Multi-process: ``torchrun --nproc_per_node N -m training.train CONFIG``. AdamW, warm-up + cosine lr
stepped per epoch, masked BCE + Dice, AMP on GPU, gradient accumulation, checkpoints every
``train.save_every`` epochs and on Ctrl-C/SIGTERM, exact resume, TensorBoard logs, validation Dice,
one summary line per epoch on stdout. Exit status: 0 done, 2 configuration error, 3 too many
non-finite steps in a row (``train.max_nonfinite_steps``), 130 Ctrl-C, 143 SIGTERM (``last.pth`` saved;
the message says how to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import command
from .checkpointing import rng_state, save_training_checkpoint, set_rng_state
from .config import TrainingConfig, load_config
from .datasets import build_train_loader
from .determinism import deterministic_pooling, enable_deterministic_algorithms, seed_everything
from .distributed import (
    DistInfo,
    any_across,
    barrier,
    cleanup,
    init_distributed,
    mean_across,
    means_across,
    world_size_from_env,
)
from .errors import ConfigError
from .losses import PartialLabelLoss
from .model_setup import build_training_model
from .nonfinite import NonFiniteGuard, NonFiniteTrainingError
from .preflight import load_resume_checkpoint, preflight
from .resume_check import OVERRIDE_FLAG, RECORD_KEY, check_resume, resume_record
from .schedule import warmup_cosine


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` (``auto``: bf16 on CUDA, none on CPU)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp in ("auto", "bf16"):
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    raise ValueError(f"train.amp must be auto, bf16, fp16 or off, not {amp!r}.")


def build_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW (official default) or SGD with momentum, from ``config.train``."""
    train = config.train
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
        )
    return torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)


class Trainer:
    """One training run (one process of it under torchrun).

    Args:
        config: the training configuration.
        dist_info: this process's place in a torchrun job (default: a single process).
        show_progress: show progress bars (rank 0 only).
        check: run the preflight checks first (``main`` runs them itself, earlier).

    Raises:
        ConfigError: from the preflight checks (inputs, embeddings, prepared cases), before the data
            loader and the model are built.
    """

    def __init__(
        self,
        config: TrainingConfig,
        dist_info: DistInfo | None = None,
        show_progress: bool = True,
        check: bool = True,
    ):
        if check:
            preflight(config)
        self.config = config
        self.dist = dist_info or DistInfo()
        self.show_progress = show_progress and self.dist.is_main
        if config.train.deterministic:
            enable_deterministic_algorithms()
        seed_everything(config.train.seed)
        self.model, self.embedding_source = build_training_model(config)
        if config.train.deterministic:
            deterministic_pooling(self.model)
        self.model.to(self.dist.device)
        self.net: torch.nn.Module = self.model
        if self.dist.enabled:
            self.net = DistributedDataParallel(
                self.model,
                device_ids=[self.dist.device.index] if self.dist.device.type == "cuda" else None,
                broadcast_buffers=False,
            )
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = warmup_cosine(self.optimizer, config.train.warmup_epochs, config.train.epochs)
        self.amp_dtype = autocast_dtype(config.train.amp, self.dist.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.nonfinite = NonFiniteGuard(
            config.train.max_nonfinite_steps, self.dist, check_gradients=self.amp_dtype != torch.float16
        )
        self.loss_fn = PartialLabelLoss(per_slice_dice=config.train.dice == "slice")
        self.loader, self.sampler = build_train_loader(config, self.dist.rank, self.dist.world_size)
        self.epoch = 0
        self.step = 0  # optimizer steps so far
        self.epoch_batches = 0  # micro-batches of the current epoch consumed
        self.committed_batches = 0  # ... of which the gradients were applied (resume point)
        self.stop_requested = False
        self.stopped_by_signal = False  # fit() ended early because of SIGTERM
        self.writer = None
        self.checkpoint_dir = config.output_dir / "checkpoints"

    # --- state -------------------------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "nonfinite": self.nonfinite.state_dict(),
            "rng": rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "epoch_batches": self.committed_batches,
            "world_size": self.dist.world_size,
            RECORD_KEY: resume_record(self.config, self.dist.world_size),
        }

    def save(self, name: str) -> Path | None:
        """Write ``checkpoints/<name>.pth`` (rank 0 only) and return its path."""
        path = None
        if self.dist.is_main:
            path = save_training_checkpoint(
                self.checkpoint_dir / f"{name}.pth",
                self.model,
                self.training_state(),
                class_names=list(self.config.class_table.names),
                prompt_template=self.config.prompt_template,
                embedding_source=self.embedding_source,
                training_config=self.config.summary(),
            )
        barrier(self.dist)
        return path

    def resume(
        self, checkpoint: str | Path | dict[str, Any], allow_config_change: bool = False, check: bool = True
    ) -> None:
        """Restore model, optimizer, scheduler, scaler, RNG states and position from a checkpoint.

        Args:
            checkpoint: a training checkpoint file, or its already loaded content.
            allow_config_change: continue even if resume-relevant settings changed (noted in the log).
            check: compare the checkpoint with this run first (``main`` does it itself, earlier).

        Raises:
            ResumeError: the checkpoint cannot continue this run (:func:`~.resume_check.check_resume`).
        """
        payload = checkpoint if isinstance(checkpoint, dict) else load_resume_checkpoint(checkpoint)
        if check:
            source = "the checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
            notes = check_resume(payload, self.config, self.dist.world_size, allow_config_change, source)
            for note in notes if self.dist.is_main else []:
                print(note, flush=True)
        self.model.load_state_dict(payload["state_dict"], strict=True)
        state = payload["training_state"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.nonfinite.load_state_dict(state.get("nonfinite", {}))
        set_rng_state(state["rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.epoch_batches = self.committed_batches = state["epoch_batches"]

    # --- loop --------------------------------------------------------------------------------------
    def _batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        device = self.dist.device
        image = batch["image"].to(device, non_blocking=True).as_tensor()
        target = batch["target"].to(device, non_blocking=True)
        target = target.as_tensor() if hasattr(target, "as_tensor") else target
        annotated = batch["annotated"].to(device)
        autocast = (
            torch.autocast(device.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        )
        with autocast:
            logits = self.net(image)
        return self.loss_fn(logits.float(), target, annotated)

    def _optimizer_step(self) -> bool:
        """Apply the accumulated gradients, or skip them if the loss or a gradient is non-finite on any
        rank (``training.nonfinite``); True if applied. Either way the step counts as taken."""
        skip = self.nonfinite.should_skip(self.model.parameters(), self.epoch, self.step)
        if skip and self.nonfinite.in_epoch == 1 and self.dist.is_main:
            tqdm.write(
                f"epoch {self.epoch + 1} step {self.step}: non-finite loss or gradient, optimizer step "
                "skipped (further skips this epoch are counted in the epoch line)"
            )
        if not skip:
            if self.config.train.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return not skip

    def _request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    def fit(self, max_steps: int | None = None) -> None:
        """Train until ``train.epochs`` (or ``max_steps`` optimizer steps, then save ``last``)."""
        train = self.config.train
        accumulate = max(1, train.accumulate)
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.config.output_dir / "tensorboard"))
        previous = signal.signal(signal.SIGTERM, self._request_stop)
        if self.dist.is_main:
            print(
                f"Training {self.config.name}: epoch {self.epoch} of {train.epochs}, "
                f"checkpoints in {self.checkpoint_dir}",
                flush=True,
            )
        try:
            while self.epoch < train.epochs:
                started, lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
                if self._train_epoch(accumulate, max_steps):
                    self.save("last")
                    self.stopped_by_signal = self.stop_requested
                    return
                self._epoch_summary(started, lr)
                self.scheduler.step()
                self.epoch += 1
                self.epoch_batches = self.committed_batches = 0
                if train.val_every and self.epoch % train.val_every == 0:
                    self.validate()
                if train.save_every and self.epoch % train.save_every == 0:
                    self.save(f"epoch_{self.epoch}")
                    self.save("last")
            self.save("final")
        except KeyboardInterrupt:
            self.save("interrupted")
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            if self.writer:
                self.writer.close()

    def _epoch_summary(self, started: float, lr: float) -> None:
        """Print one line per finished epoch (rank 0): mean loss over all ranks, lr and time."""
        losses = self.epoch_losses
        mean = mean_across(sum(losses) / max(len(losses), 1), self.dist)
        skipped = self.nonfinite.end_epoch()  # the same on every rank (the ranks agree on each skip)
        if self.dist.is_main:
            print(
                f"epoch {self.epoch + 1}/{self.config.train.epochs}  loss {mean:.4f}  lr {lr:.3e}  "
                f"{time.perf_counter() - started:.1f} s  step {self.step}"
                + (f"  skipped {skipped} non-finite steps" if skipped else ""),
                flush=True,
            )
            if self.writer:
                self.writer.add_scalar("train/epoch_loss", mean, self.epoch)
                self.writer.add_scalar("train/nonfinite_skipped_epoch", skipped, self.epoch)

    def _train_epoch(self, accumulate: int, max_steps: int | None) -> bool:
        """Train one epoch from ``epoch_batches``; True if training must stop (signal or max_steps)."""
        batch_size = self.config.data.batch_size
        available = math.ceil(len(self.sampler.base) / batch_size)
        limit = min(self.config.train.steps_per_epoch * accumulate or available, available)
        self.sampler.set_epoch(self.epoch, skip=self.epoch_batches * batch_size)
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        bar = tqdm(
            total=limit,
            initial=self.epoch_batches,
            desc=f"epoch {self.epoch}",
            unit="batch",
            disable=not self.show_progress,
            leave=False,
        )
        start, crops, pending = time.perf_counter(), 0, 0
        self.epoch_losses: list[float] = []
        lr = self.optimizer.param_groups[0]["lr"]
        for batch in self.loader:
            if self.epoch_batches >= limit:
                break
            if pending == 0:
                self.nonfinite.begin_step(self.model)
            pending += 1
            last_of_group = pending == accumulate or self.epoch_batches + 1 >= limit
            sync = contextlib.nullcontext() if last_of_group or not self.dist.enabled else self.net.no_sync()
            with sync:
                loss, parts = self._batch_loss(batch)
                self.scaler.scale(loss / accumulate).backward()
            self.epoch_batches += 1
            loss_value = loss.item()
            self.nonfinite.note_loss(loss_value)
            if math.isfinite(loss_value):
                self.epoch_losses.append(loss_value)
            crops += batch["image"].shape[0]
            if not last_of_group:
                continue
            pending = 0
            applied = self._optimizer_step()
            self.committed_batches = self.epoch_batches
            # logged: the step's last micro-batch, averaged over the processes
            step_loss, step_bce, step_dice = means_across(
                [loss_value, parts["bce"], parts["dice"]], self.dist
            )
            rate = crops * self.dist.world_size / max(time.perf_counter() - start, 1e-9)
            bar.update(accumulate)
            bar.set_postfix(loss=f"{step_loss:.4f}", crops_s=f"{rate:.2f}", lr=f"{lr:.2e}")
            if self.writer and not applied:
                self.writer.add_scalar("train/nonfinite_skipped", self.nonfinite.total, self.step)
            elif self.writer:
                self.writer.add_scalar("train/loss", step_loss, self.step)
                self.writer.add_scalar("train/bce", step_bce, self.step)
                self.writer.add_scalar("train/dice_loss", step_dice, self.step)
                self.writer.add_scalar("train/lr", lr, self.step)
                self.writer.add_scalar("train/crops_per_s", rate, self.step)
            stop = self.stop_requested or (max_steps is not None and self.step >= max_steps)
            if any_across(stop, self.dist):
                bar.close()
                return True
        bar.close()
        return False

    def validate(self) -> dict[str, float]:
        """Mean Dice per class over the validation cases, on every process.

        Each process scores its share of the cases (the replicas hold the same parameters, and no buffer
        enters inference); the rows are gathered in case order, so the means equal a single process's.
        Rank 0 logs them and writes ``<output_dir>/validation/epoch_<n>.csv`` (``evaluate``'s format).
        """
        results: dict[str, float] = {}
        if any(spec.val_cases for spec in self.config.datasets):
            from .evaluate import evaluate_cases, mean_dice_per_class, summarize, write_csv

            rows = evaluate_cases(
                self.config,
                self.model,
                self.dist.device,
                nsd_tolerance_mm=None,
                amp_dtype=self.amp_dtype,
                dist_info=self.dist,
            )
            results = mean_dice_per_class(rows)
        if self.dist.is_main and results:
            write_csv(
                rows + summarize(rows),
                self.config.output_dir / "validation" / f"epoch_{self.epoch}.csv",
                overwrite=True,
            )
            if self.writer:
                for key, value in results.items():
                    self.writer.add_scalar(f"val_dice/{key}", value, self.epoch)
                self.writer.add_scalar("val_dice/mean", float(np.mean(list(results.values()))), self.epoch)
            tqdm.write(
                f"epoch {self.epoch} validation Dice: "
                + ", ".join(f"{k} {v:.3f}" for k, v in results.items())
            )
        return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=command("train"), description=__doc__.split("\n")[0])
    parser.add_argument(
        "config", help=f"training config (YAML or JSON); run {command('prepare')} on it first"
    )
    parser.add_argument("--backbone", choices=["swinunetr", "unet"], help="override model.backbone")
    parser.add_argument("--resume", help="training checkpoint to continue from (exact resume)")
    parser.add_argument(
        OVERRIDE_FLAG,
        action="store_true",
        help="resume even though resume-relevant settings (network, preprocessing, datasets, optimisation) "
        "differ from the checkpoint's; the changes are logged",
    )
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument(
        "--max-steps", type=int, help="stop (and save 'last') after this many optimizer steps"
    )
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {"model": {"backbone": args.backbone}, "train": {"epochs": args.epochs}}
    try:  # everything that can be checked before data and model are built
        config = load_config(args.config, overrides)
        payload = load_resume_checkpoint(args.resume) if args.resume else None
        preflight(config)
        notes = (
            check_resume(payload, config, world_size_from_env(), args.resume_allow_config_change, args.resume)
            if payload is not None
            else []
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    info = init_distributed(args.device)
    for note in notes if info.is_main else []:
        print(note, flush=True)
    last = config.output_dir / "checkpoints" / "last.pth"
    try:
        try:
            trainer = Trainer(config, info, check=False)  # preflight ran above
            if payload is not None:
                trainer.resume(payload, check=False)  # checked above
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            trainer.fit(max_steps=args.max_steps)
        except NonFiniteTrainingError as error:
            if info.is_main:
                print(f"error: {error}", file=sys.stderr, flush=True)
            return 3
        if trainer.stopped_by_signal:
            if info.is_main:
                print(
                    f"Stopped by SIGTERM at epoch {trainer.epoch}, step {trainer.step}; checkpoint saved to "
                    f"{last}. Resume with: {command('train')} {args.config} --resume {last}",
                    file=sys.stderr,
                    flush=True,
                )
            return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("Interrupted; checkpoint saved to", config.output_dir / "checkpoints" / "interrupted.pth")
        return 130
    finally:
        cleanup(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
