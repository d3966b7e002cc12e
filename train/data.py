"""Examples -> tokenized model windows (with start/end labels for training) as a torch Dataset."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from qa_engine.core.windows import Windows, WindowTokenizer
from qa_engine.formats.squad import DataError, Example, split_by_fit

from .labels import answer_char_spans, answer_token_spans

log = logging.getLogger(__name__)

SEQUENCE_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
LABEL_COLUMNS = ("start_positions", "end_positions")
CHUNK = 2048  # examples windowed at a time, to bound the padded intermediate arrays


class WindowDataset(Dataset):
    """Rows of model inputs (and labels when training) sharing one padded width; `collate` trims batches."""

    def __init__(self, columns: dict[str, np.ndarray]):
        sizes = {len(v) for v in columns.values()}
        if len(sizes) != 1:
            raise ValueError(f"columns differ in length: {sizes}")
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns["input_ids"])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[i] for k, v in self.columns.items()}


def collate(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack rows into long tensors cut to the batch's longest window (padding sits on the right)."""
    batch = {k: torch.from_numpy(np.stack([r[k] for r in rows])).long() for k in rows[0]}
    width = int(batch["attention_mask"].sum(dim=1).max())
    for k in SEQUENCE_COLUMNS:
        if k in batch:
            batch[k] = batch[k][:, :width].contiguous()
    return batch


def _columns(windows: Windows, input_names: Sequence[str], width: int, pad_id: int) -> dict[str, np.ndarray]:
    pad = width - windows.input_ids.shape[1]
    return {
        name: np.pad(getattr(windows, name).astype(np.int32), ((0, 0), (0, pad)),
                     constant_values=pad_id if name == "input_ids" else 0)
        for name in input_names
    }


def training_dataset(
    examples: Sequence[Example], windower: WindowTokenizer, input_names: Sequence[str], strict: bool = False
) -> WindowDataset:
    """Windows of every example labelled with its first answer's token span (CLS when not wholly inside)."""
    usable = [ex for ex in examples if ex.answer_texts and ex.answer_texts[0].strip()]
    if len(usable) < len(examples):
        log.warning("%d questions have a blank first answer and are skipped", len(examples) - len(usable))
    usable, too_long = split_by_fit(usable, windower)
    if too_long and strict:
        raise DataError(f"question id {too_long[0].id} is too long for max_length {windower.config.max_length}")
    if not usable:
        raise DataError("no usable training examples")
    width = windower.config.max_length
    parts: list[dict[str, np.ndarray]] = []
    for lo in tqdm(range(0, len(usable), CHUNK), desc="tokenizing", unit="chunk", disable=len(usable) <= CHUNK):
        chunk = usable[lo : lo + CHUNK]
        windows = windower.windows([ex.question for ex in chunk], [ex.context for ex in chunk])
        char_starts, char_ends = answer_char_spans(
            [ex.answer_texts[0] for ex in chunk], [ex.answer_starts[0] for ex in chunk]
        )
        starts, ends = answer_token_spans(windows, char_starts, char_ends)
        part = _columns(windows, input_names, width, windower.template.pad_id)
        part["start_positions"], part["end_positions"] = starts.astype(np.int32), ends.astype(np.int32)
        parts.append(part)
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    answered = int((columns["start_positions"] > 0).sum())
    log.info("%d training questions -> %d windows (%d hold their answer)", len(usable),
             len(columns["input_ids"]), answered)
    return WindowDataset(columns)


def inference_dataset(
    examples: Sequence[Example], windower: WindowTokenizer, input_names: Sequence[str]
) -> tuple[WindowDataset, Windows, list[Example]]:
    """Unlabelled windows of the examples that fit, the `Windows` they came from, and those examples."""
    fits, _ = split_by_fit(examples, windower)
    if not fits:
        raise DataError("no question fits a window")
    windows = windower.windows([ex.question for ex in fits], [ex.context for ex in fits])
    columns = _columns(windows, input_names, windows.input_ids.shape[1], windower.template.pad_id)
    return WindowDataset(columns), windows, fits
