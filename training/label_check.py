"""Compare the label values found while preparing with each dataset's ``label_map``.

A mapped value that occurs in none of a dataset's label files trains its classes with zero positives
(every voxel says "background"): usually a wrong value in the config. Values that occur but are not
mapped are background by design, and are only reported.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .case_cache import CaseJob
    from .config import TrainingConfig

log = logging.getLogger(__name__)


def label_value_counts(jobs: list[CaseJob]) -> dict[str, Counter]:
    """Voxel count per raw label value, summed over each dataset's prepared cases."""
    totals: dict[str, Counter] = {}
    for job in jobs:
        counts = totals.setdefault(job.dataset, Counter())
        try:
            recorded = json.loads(job.sidecar.read_text(encoding="utf-8")).get("label_values", {})
        except (OSError, json.JSONDecodeError):
            continue
        counts.update({int(value): int(count) for value, count in recorded.items()})
    return totals


def check_label_values(config: TrainingConfig, jobs: list[CaseJob]) -> list[str]:
    """Warn (or, with ``strict_labels``, fail) for mapped label values that never occur.

    Returns:
        The problems found, one line per dataset.

    Raises:
        ConfigError: ``strict_labels`` is set and some mapped value never occurs.
    """
    totals = label_value_counts(jobs)
    problems = []
    for spec in config.datasets:
        counts = totals.get(spec.key)
        if not counts:
            continue  # no cases
        absent = sorted(value for value in spec.label_map if counts[value] == 0)
        if absent:
            names = {v: [config.class_table.resolve_key(i) for i in spec.label_map[v]] for v in absent}
            problems.append(
                f"dataset {spec.key!r}: label_map value(s) {absent} occur in none of its "
                f"{sum(1 for j in jobs if j.dataset == spec.key)} label files, so {names} would train with "
                f"no positive voxel; values found: {sorted(v for v in counts if v)}"
            )
        unmapped = sorted(value for value in counts if value and value not in spec.label_map)
        if unmapped:
            log.info("dataset %r: label values %s are not in label_map (background)", spec.key, unmapped)
    if problems and config.strict_labels:
        raise ConfigError("\n".join(problems) + "\n(strict_labels: true; fix label_map or the labels)")
    for line in problems:
        log.warning("warning: %s", line)
    return problems
