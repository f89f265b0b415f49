"""Training samples made on the fly from labelled cases, with the paper's augmentations.

Only the slices a dataset draws from are kept in memory (uint8 for MS-Net,
small ROI patches for BCC-Net); augmented samples are produced in
``__getitem__``, so 21,600 crops need no 21,600 files. Augmentation depends
only on (seed, epoch, index): runs repeat exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from ..density import energy_normalized_hu
from ..errors import BoneScreenError, check_number
from ..hu import body_from_levels
from ..labels import LEVEL_NAMES, class_index, levels_present
from ..pipeline.bone_health import scan_calibration
from ..pipeline.classify import body_slices
from ..preprocess import CROP_SIZE, context_stack, roi_crop, seg_input
from .cases import CaseRecord
from .label_coverage import label_coverage

Progress = Callable[[int, int], None] | None


class _Augmented(Dataset):
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for ``epoch``."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


def uint8_input(hu: np.ndarray) -> np.ndarray:
    """MS-Net input (:func:`~bonescreen.preprocess.seg_input`) x 255 as uint8, any shape."""
    return np.round(seg_input(hu) * 255).astype(np.uint8)


def evenly_spaced(n: int, count: int) -> np.ndarray:
    """Up to ``count`` indices of ``range(n)`` spread evenly from the first to the last (sorted, unique)."""
    return np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))


class _SlicePairs(_Augmented):
    """uint8 MS-Net inputs ``images`` ((n, 512, 512), or (n, 3, 512, 512) with 2.5-D context) and marks
    ``marks`` (n, 512, 512), augmented on the fly."""

    images: np.ndarray
    marks: np.ndarray
    augment: bool
    repeat: int = 1  # each slice seen this many times per epoch, each time with its own augmentation

    def __len__(self) -> int:
        return len(self.images) * self.repeat

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = i % len(self.images)
        return _slice_pair(self.images[k], self.marks[k], self._rng(i) if self.augment else None)


class SegmentationSlices(_SlicePairs):
    """(CT slice, mark image) pairs for MS-Net.

    Parameters
    ----------
    records : list of CaseRecord
        Cases to draw from.
    slices_per_case : int
        Slices kept per case, spread evenly over its height (paper: 12).
    augment : bool
        Random rotation (+-10 degrees) and translation (+-8% of the side).
    seed : int
        Seed of the augmentation.
    mark : str
        Label map giving the mark image: ``spine`` (all vertebral bone, if the
        set has it) or ``levels``.
    progress : callable, optional
        Called with (cases done, total) while loading.
    context : bool
        Three channels: each slice between its neighbours
        :data:`~bonescreen.preprocess.SEG_CONTEXT_MM` below and above (2.5-D MS-Net).
    """

    def __init__(
        self,
        records: list[CaseRecord],
        slices_per_case: int = 12,
        augment: bool = True,
        seed: int = 0,
        mark: str = "spine",
        progress: Progress = None,
        context: bool = False,
    ) -> None:
        super().__init__(seed)
        check_number("slices_per_case", slices_per_case, 1, whole=True)
        if not records:
            raise BoneScreenError("no cases to take slices from")
        self.augment = augment
        images, marks, self.index = [], [], []
        for n, rec in enumerate(records):
            volume, labels = rec.load(("levels", mark))
            truth = labels.get(mark, labels["levels"]) > 0
            nz = volume.shape[0]
            picks = evenly_spaced(nz, slices_per_case)
            hu = context_stack(volume.hu, volume.spacing[0], picks) if context else volume.hu[picks]
            images.extend(uint8_input(hu))
            marks.extend(truth[picks].astype(np.uint8))
            self.index += [(rec.case_id, int(k)) for k in picks]
            if progress:
                progress(n + 1, len(records))
        self.images = np.stack(images)
        self.marks = np.stack(marks)


#: Chance that a neighbour of a 2.5-D sample is replaced by the slice itself, as at the first and
#: last slices of a volume and for a single slice (:func:`~bonescreen.preprocess.context_positions`).
EDGE_CONTEXT_P = 0.1


def _slice_pair(image: np.ndarray, mark: np.ndarray, rng: np.random.Generator | None):
    """uint8 MS-Net input ((H, W) or (C, H, W)) and mark (H, W) -> float tensors (C, H, W), (1, H, W);
    with ``rng``, the paper's rotation (+-10 degrees) and translation (+-8% of the side), and for a
    2.5-D input a neighbour dropped (:data:`EDGE_CONTEXT_P`)."""
    img = (image if image.ndim == 3 else image[None]).astype(np.float32) / 255.0
    mark = mark.astype(np.float32)
    if rng is not None:
        angle = np.radians(rng.uniform(-10, 10))
        shift = rng.uniform(-0.08, 0.08, 2) * mark.shape[0]
        c = (np.array(mark.shape) - 1) / 2
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        offset = c - rot @ c - shift
        img = np.stack(
            [ndimage.affine_transform(ch, rot, offset=offset, order=1, mode="constant", cval=0.0) for ch in img]
        )
        mark = ndimage.affine_transform(mark, rot, offset=offset, order=0, mode="constant", cval=0.0)
        if len(img) == 3:
            for side in (0, 2):
                if rng.random() < EDGE_CONTEXT_P:
                    img[side] = img[1]
    return torch.from_numpy(img), torch.from_numpy(mark[None])


def _slice_runs(ks: np.ndarray) -> str:
    """Sorted slice indices as runs of consecutive slices: ``slices 3-17, 25-40`` (``slice 5`` for one)."""
    runs = np.split(ks, np.flatnonzero(np.diff(ks) > 1) + 1)
    text = ", ".join(f"{r[0]}" if r.size == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"slice{'s' if ks.size > 1 else ''} {text}"


class LabelledSlices(_SlicePairs):
    """(CT slice, mark image) pairs from real CT with vertebra label maps (:mod:`bonescreen.data.labelled`).

    Each volume is read as ``bonescreen screen`` reads it, its labels are mapped to BoneScreen's
    vertebra ids, and ``slices_per_case`` slices holding vertebrae go to MS-Net's grid
    (:class:`~bonescreen.pipeline.grid.NetGrid`), so users fine-tune on their own scans. Where the labels hold
    some of the vertebrae in view only (:func:`~bonescreen.data.label_coverage.label_coverage`), the slices toward
    the vertebrae they leave out are not used, and ``notes`` says so, one line per such CT.

    Parameters
    ----------
    cases : list of LabelledCT
        From :func:`~bonescreen.data.labelled.find_labelled`.
    slices_per_case : int
        Slices kept per volume, spread over those with vertebrae.
    augment : bool
        The paper's rotation and translation.
    seed : int
        Seed of the augmentation.
    context : bool
        2.5-D input, as :class:`SegmentationSlices`.
    repeat : int
        Times each slice is seen per epoch, each time augmented anew (a few real scans among many
        phantom slices).
    """

    def __init__(
        self,
        cases,
        slices_per_case: int = 24,
        augment: bool = True,
        seed: int = 0,
        context: bool = False,
        repeat: int = 1,
    ) -> None:
        from ..pipeline.grid import NET_SIZE, NetGrid

        super().__init__(seed)
        self.augment = augment
        check_number("repeat", repeat, 1, whole=True)
        self.repeat = int(repeat)
        images, marks, self.index, self.notes = [], [], [], []
        for case in cases:
            volume = case.load_volume()
            try:
                ids = case.load_checked_labels(volume)
            except BoneScreenError as exc:  # (helper-83: labels mirrored left-right were trained on without a word)
                raise BoneScreenError(
                    f"{exc.problem}: not trained on; correct the labels, or leave this CT out (--leave-out "
                    f"{case.name})",
                    exc.path,
                ) from None
            truth = ids > 0
            # labels of some vertebrae in view only: the slices where an unlabelled vertebra may lie are left out,
            # lest MS-Net learn that vertebra as background (until 2026-12-06 such a CT was trained on whole, or,
            # from a TotalSegmentator folder with some files only, not at all)
            coverage = label_coverage(volume.hu, ids, volume.spacing)
            ks = np.flatnonzero(coverage.trainable)
            labelled = np.flatnonzero(truth.any(axis=(1, 2)))
            self.notes += [f"{case.name}: labels: {note}" for note in case.label_notes()]  # (helper-86: evaluate's)
            if coverage.partial or case.partial:
                self.notes.append(
                    f"{case.name}: its labels hold some of the vertebrae in view only "
                    f"({'; '.join(case.partial_reasons() + coverage.unlabelled)}): "
                    + (
                        f"trained on {ks.size} of its {labelled.size} labelled slices, those away from the vertebrae "
                        f"it leaves out (left out: {_slice_runs(np.setdiff1d(labelled, ks))}, counted from its "
                        "first slice, 0)"
                        if ks.size
                        else "not trained on (every labelled slice lies toward a vertebra it leaves out)"
                    )
                )
            if ks.size == 0:
                continue
            picks = ks[evenly_spaced(ks.size, slices_per_case)]
            grid = NetGrid.for_slices(volume.hu.shape[1:], volume.spacing[1:])
            if context:
                stack = context_stack(volume.hu, volume.spacing[0], picks)
                hu = grid.to_net(stack.reshape(-1, *stack.shape[2:]), fill=-1024.0).reshape(len(picks), 3, -1, NET_SIZE)
            else:
                hu = grid.to_net(volume.hu[picks], fill=-1024.0)
            mark = grid.to_net(truth[picks].astype(np.float32), fill=0.0) > 0.5
            images.append(uint8_input(hu))
            marks.append(mark.astype(np.uint8))
            self.index += [(case.name, int(k)) for k in picks]
        if not images:
            why = f" ({'; '.join(self.notes)})" if self.notes else ""
            raise BoneScreenError(f"none of the labelled volumes gives a slice to train on{why}")
        self.images = np.concatenate(images)
        self.marks = np.concatenate(marks)


class SliceShards(_SlicePairs):
    """(CT slice, mark image) pairs read from shards of the realistic phantom (:mod:`bonescreen.phantom.slices`).

    Parameters
    ----------
    folders : list of path
        Folders holding ``slices_*.npz`` shards (already on MS-Net's 512x512 grid).
    augment : bool
        The paper's rotation and translation, as :class:`SegmentationSlices`.
    seed : int
        Seed of the augmentation.
    limit : int, optional
        Use at most this many slices (the first shards first).
    context : bool
        2.5-D input: the shards' ``context`` (the slices below and above each one).

    Raises
    ------
    BoneScreenError
        If a folder holds no shard, or ``context`` is asked of shards made without it.
    """

    def __init__(
        self, folders, augment: bool = True, seed: int = 0, limit: int | None = None, context: bool = False
    ) -> None:
        super().__init__(seed)
        self.augment = augment
        images, marks, self.sources = [], [], []
        for folder in folders:
            shards = sorted(Path(folder).glob("slices_*.npz"))
            shards = [p for p in shards if not p.name.endswith(".tmp.npz")]
            if not shards:
                raise BoneScreenError("no slices_*.npz shards (make them with `bonescreen synth-slices`)", folder)
            for path in shards:
                with np.load(path) as z:
                    if context and "context" not in z:
                        raise BoneScreenError(
                            "shard made without the slices around each one (2.5-D MS-Net); make it again with "
                            "`bonescreen synth-slices --context`",
                            path,
                        )
                    images.append(
                        np.stack([z["context"][:, 0], z["images"], z["context"][:, 1]], axis=1)
                        if context
                        else z["images"]
                    )
                    marks.append(z["marks"])
                self.sources.append(str(path))
        self.images = np.concatenate(images)[:limit]
        self.marks = np.concatenate(marks)[:limit]


def case_input_hu(volume, levels: np.ndarray, spine: np.ndarray | None) -> np.ndarray:
    """A case's CT as BCC-Net's energy-normalized input sees it: the scan's internal calibration from its
    reference tissues round the true lumbar bodies (all true vertebrae kept out), as ``screen`` finds it."""
    bone = (spine if spine is not None else levels) > 0
    body = body_from_levels(levels, volume.spacing)
    calibration = scan_calibration(volume.hu, bone, body, volume.spacing, volume.acquisition)
    return energy_normalized_hu(volume.hu, calibration)[0]


class ClassificationCrops(_Augmented):
    """Masked, cropped, 224x224 ROI images of each level's slices, labelled with the case's class.

    Levels the case set lists as cement-filled or screwed (``cement_levels``, ``screw_levels`` in
    cases.csv) are left out.

    Parameters
    ----------
    records : list of CaseRecord
        Cases to draw from.
    crops_per_case : int
        Samples per case and epoch (paper: 21,600 / 150 = 144); the level
        slices are cycled through.
    augment : bool
        Rotation (+-15 degrees), translation (+-5%) and scaling 0.8-1.0; without
        it, scale 0.9 and no motion, as at inference.
    seed : int
        Seed of the augmentation.
    mask : str
        Label map cropped by: ``levels`` (whole vertebra, the mark image), or
        another level map stored beside it (``pred_levels`` for MS-Net's masks).
        The slices are those through each level's body, chosen as at inference
        (:func:`~bonescreen.pipeline.classify.body_slices`).
    energy_normalized : bool
        Crop the bone as it reads at the reference energy, through each case's internal calibration
        found as at inference (:func:`~bonescreen.density.energy_normalized_hu`), instead of its HU.
    """

    def __init__(
        self,
        records: list[CaseRecord],
        crops_per_case: int = 144,
        augment: bool = True,
        seed: int = 0,
        mask: str = "levels",
        progress: Progress = None,
        energy_normalized: bool = False,
    ) -> None:
        super().__init__(seed)
        check_number("crops_per_case", crops_per_case, 1, whole=True)
        if not records:
            raise BoneScreenError("no cases to take crops from")
        self.augment = augment
        self.patches: list[tuple[np.ndarray, np.ndarray]] = []
        self.labels: list[int] = []
        self.keys: list[tuple[str, int, int]] = []
        per_case: list[list[int]] = []
        for n, rec in enumerate(records):
            volume, labels = rec.load(("levels", mask, "spine") if energy_normalized else ("levels", mask))
            roi_map = labels.get(mask, labels["levels"])
            hu = case_input_hu(volume, labels["levels"], labels.get("spine")) if energy_normalized else volume.hu
            mine = []
            # cement and screws are no bone of the case's class (the pipeline finds them dense and leaves them out)
            treated = set(f"{rec.row.get('cement_levels') or ''} {rec.row.get('screw_levels') or ''}".split())
            for level in levels_present(roi_map):
                if LEVEL_NAMES[level] in treated:
                    continue
                for k in body_slices(roi_map, level, volume.spacing):
                    m = roi_map[k] == level
                    if not m.any():
                        continue
                    rows, cols = np.nonzero(m)
                    pad = int(0.4 * max(np.ptp(rows) + 1, np.ptp(cols) + 1))
                    r0, r1 = max(rows.min() - pad, 0), rows.max() + pad + 1
                    c0, c1 = max(cols.min() - pad, 0), cols.max() + pad + 1
                    mine.append(len(self.patches))
                    self.patches.append((np.round(hu[k, r0:r1, c0:c1]).astype(np.int16), m[r0:r1, c0:c1].copy()))
                    self.labels.append(class_index(rec.label))
                    self.keys.append((rec.case_id, level, int(k)))
            per_case.append(mine)
            if progress:
                progress(n + 1, len(records))
        self.crops_per_case = crops_per_case
        self.per_case = [p for p in per_case if p]
        self.items = self._draw()

    def _draw(self) -> list[int]:
        """The patch of each sample: ``crops_per_case`` per case, dealt to its levels in turn, each
        level's share spread evenly over its body slices.

        A level with fewer slices than its share cycles through them. One with more (a 1 mm scan has
        about 25 body slices a level) takes every n-th slice, from an offset drawn per epoch when
        augmenting, so that each epoch sees other slices; without augmentation the draw is centred
        and repeats. (Before, a case's first ``crops_per_case`` slices were taken: on a thin-slice
        case only L1 and L2.)
        """
        k = self.crops_per_case
        items: list[int] = []
        for c, patches in enumerate(self.per_case):
            by_level: dict[int, list[int]] = {}
            for p in patches:
                by_level.setdefault(self.keys[p][1], []).append(p)
            levels = list(by_level.values())
            # a stream of its own: sample indices stay far below 2**31
            rng = self._rng(2**31 + c)
            for i in range(k):
                slices = levels[i % len(levels)]
                share = len(range(i % len(levels), k, len(levels)))
                j = i // len(levels)
                if share >= len(slices):
                    items.append(slices[j % len(slices)])
                    continue
                offset = rng.uniform(0.0, 1.0) if self.augment else 0.5
                items.append(slices[int((j + offset) * len(slices) / share)])
        return items

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations and, where a case has more slices than samples, other slices."""
        super().set_epoch(epoch)
        self.items = self._draw()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        p = self.items[i]
        hu, m = self.patches[p]
        if self.augment:
            rng = self._rng(i)
            crop = roi_crop(
                hu,
                m,
                CROP_SIZE,
                scale=rng.uniform(0.8, 1.0),
                angle_deg=rng.uniform(-15, 15),
                shift=tuple(rng.uniform(-0.05, 0.05, 2)),
            )
        else:
            crop = roi_crop(hu, m, CROP_SIZE)
        return torch.from_numpy(crop[None].astype(np.float32)), self.labels[p]
