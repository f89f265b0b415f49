"""The screening pipeline: segment the lumbar vertebrae, name them, classify each level."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..checkpoint import load_model
from ..device import fallback_note, resolve_device
from ..errors import BoneScreenError, check_number
from ..hu import HUThresholds
from ..io import CTVolume
from ..labels import (
    ALL_VERTEBRA_IDS,
    LEVEL_NAMES,
    UNNAMED_FIRST,
    as_level_labels,
    levels_present,
    lumbar_levels,
    missing_levels,
    name_gaps,
    stray_specks,
    vertebra_id,
    vertebra_ids,
    vertebra_name,
)
from ..mask_fit import off_bone
from ..messages import USER_NAMING, add_input_messages, users_naming_rule, withheld_short_series
from ..ood import FeatureDensity, load_feature_density
from ..orientation_check import FRONT_BACK_FLAGS, front_and_back_swapped, head_and_feet_swapped, orientation_notes
from ..preprocess import trained_energy_normalized
from ..weights import default_weights
from .classify import classify_levels
from .inference import InferenceSettings
from .level_settings import LevelSettings
from .levels import TOP_VERTEBRA_RULE, split_levels, stacked_problem, upside_down_note
from .mark_repair import bridge_dropped_sections
from .progress import ProgressCallback, drive
from .segment import iter_mark_volume

#: Version of result.json's layout (README, "result.json"): the minor number grows with added fields,
#: the major number when a field changes meaning or goes.
RESULT_SCHEMA_VERSION = "4.1"
#: How ``segmentation.naming_rule`` starts for labels given back as BoneScreen wrote them (``--labels``, unedited):
#: the rule of the run that named them follows in brackets.
OWN_LABELS_RULE = "given by the user: BoneScreen's own labels, unedited"


def own_labels_rule(rule: str) -> str:
    """:data:`OWN_LABELS_RULE` with the rule of the run that named the labels (given back again: as it was)."""
    return rule if rule.startswith(OWN_LABELS_RULE) else f"{OWN_LABELS_RULE} ({rule})"


#: How :func:`own_labels_note` begins.
OWN_LABELS_NOTE = "the labels given are BoneScreen's own, unedited"


def own_labels_note(own: dict) -> str:
    """The note every front end shows for BoneScreen's own labels given back unedited
    (:func:`~bonescreen.io.writers.own_labels`: ``naming_rule``, ``naming_certain``); a front end that
    lets the user edit them drops it at the first edit (:data:`OWN_LABELS_NOTE`)."""
    doubt = "" if own["naming_certain"] else f", and names it could not confirm ({own['naming_rule']})"
    return (
        f"{OWN_LABELS_NOTE}: MS-Net's mask, not checked{doubt}; correct them (napari, Slicer or any label editor) "
        "before relying on them"
    )


def own_labels_naming(own: dict) -> tuple[str, list[str]]:
    """result.json's ``naming_rule`` and the naming's notes of BoneScreen's own labels given back
    (:func:`~bonescreen.io.writers.own_labels`): :func:`own_labels_rule` and :func:`own_labels_note` while the map is
    as written; once the user edited vertebrae in it, the rule of the run that named them alone; once the user
    renamed some, :func:`~bonescreen.messages.users_naming_rule` of it (the names are the user's: certain). The split's
    note that the image looked upside down (``upside_down``) is among the notes in every case."""
    # the image's doubt stays whatever the user did to the labels (helper-100: given back, a withheld status came back)
    image = [own["upside_down"]] if own.get("upside_down") else []
    if own.get("renamed") or own["naming_rule"].startswith(USER_NAMING):  # (a map saved with the user's names:
        # helper-67, "BoneScreen's own labels, unedited (names changed by the user ...)")
        return users_naming_rule(own["naming_rule"]), image
    if own.get("edited"):
        return own["naming_rule"], image
    return own_labels_rule(own["naming_rule"]), [*image, own_labels_note(own)]


def own_labels_changes(own: dict, vertebrae: np.ndarray) -> tuple[list[str], list[str]]:
    """The vertebrae the user edited in BoneScreen's own labels (:func:`~bonescreen.io.writers.own_labels`'s
    ``edited``) before giving them back, by name: those still in ``vertebrae`` and those removed (helper-67: a
    vertebra removed was said to be "read as drawn")."""
    return _edited_and_removed(own.get("edited", ()), vertebrae)


def _edited_and_removed(edited: Collection[int], vertebrae: np.ndarray) -> tuple[list[str], list[str]]:
    """The names of the ids ``edited`` that ``vertebrae`` still holds, and of those it no longer does."""
    here = set(np.unique(vertebrae).tolist())
    return [vertebra_name(v) for v in edited if v in here], [vertebra_name(v) for v in edited if v not in here]


def own_labels_changes_note(edited: Collection[int], vertebrae: np.ndarray) -> str | None:
    """The naming note of BoneScreen's own labels whose vertebrae ``edited`` (ids) the user has edited since they
    were written: those still in ``vertebrae`` read as drawn, those removed said so; None when none was. The one
    note for ``screen --labels``, napari and Slicer (helper-117: napari and Slicer left it out of the result)."""
    kept, removed = _edited_and_removed(edited, vertebrae)
    said = [
        f"{', '.join(kept)} edited since they were written: {'those' if len(kept) > 1 else 'that one'} read as drawn"
    ] * bool(kept) + [f"{', '.join(removed)} removed"] * bool(removed)
    if not said:
        return None
    return f"BoneScreen's own labels with {'; '.join(said)}; the others read as MS-Net's mask, not checked"


def own_labels_edited(rule: str, notes: list[str]) -> tuple[str, list[str]]:
    """The naming rule and notes of BoneScreen's own labels once the user has edited them: the rule of the run that
    named them (not :data:`OWN_LABELS_RULE`'s "unedited"), without :func:`own_labels_note` (helper-63, napari and
    Slicer: still called "unedited" after an edit)."""
    return rule, [n for n in notes if not n.startswith(OWN_LABELS_NOTE)]


@dataclass
class Segmentation:
    """What :meth:`Screener.segment` found.

    Attributes
    ----------
    labels : ndarray
        uint8 (z, y, x) on the volume grid: 0 background, 1..5 = L1..L5.
    mark : ndarray
        Boolean mark image of all vertebral bone (also T12, sacrum).
    vertebrae : list
        Every vertebra found, bottom to top, with its name (``S1``, ``L5``, ``T12`` ...).
    rule : str
        How the levels were named.
    certain : bool
        False when no landmark confirmed the names.
    notes : list of str
        Warnings for the user.
    vertebra_map : ndarray, optional
        uint8 (z, y, x): 1 + the index in ``vertebrae`` of each marked voxel's vertebra.
    """

    labels: np.ndarray
    mark: np.ndarray
    vertebrae: list
    rule: str
    certain: bool
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    vertebra_map: np.ndarray | None = None

    def level_names(self) -> list[str]:
        """Names of the lumbar levels present, top to bottom."""
        return [LEVEL_NAMES[lv] for lv in levels_present(self.labels)]

    def evidence(self, spacing: tuple[float, float, float], n_slices: int) -> list[dict]:
        """result.json's ``segmentation.evidence``: what the naming saw of each vertebra (bottom to top), named as
        :meth:`map_names` names them; ``spacing`` (mm) and ``n_slices`` are the segmented CT's."""
        return [
            {**v.evidence(spacing, n_slices), "name": name}
            for v, name in zip(self.vertebrae, self.map_names(), strict=True)
        ]

    def map_names(self) -> list[str]:
        """The names of ``vertebrae`` (bottom to top) as the map of every vertebra holds them
        (:meth:`vertebra_labels`): a name the naming gave that no id carries (a piece of the sacrum, ``S?``; a
        vertebra above T1) is its id's ``unnamed N``, as napari, Slicer and report.png show it (helper-104:
        result.json said "T0" where report.png said "unnamed 1")."""
        return [vertebra_name(vid) for vid in vertebra_ids([v.name for v in self.vertebrae])]

    def vertebra_labels(self) -> np.ndarray:
        """uint8 (z, y, x) map of every vertebra found, with the ids of DESIGN.md.

        1..5 = L1..L5, 6 = T12, 7 = sacrum, 8 = T11 ...; vertebrae the rule could not name
        (``S?``) are 21, 22, ... from the lowest. This is the map users correct (napari layer,
        Slicer segments); :meth:`Screener.classify` takes it as it is given.
        """
        if self.vertebra_map is None:
            return self.labels.copy()
        ids = vertebra_ids([v.name for v in self.vertebrae])
        lut = np.zeros(256, np.uint8)
        lut[1 : len(ids) + 1] = ids[:255]
        return lut[self.vertebra_map]


def given_names(vertebrae: np.ndarray) -> list[str]:
    """The names of the vertebrae a map given by the user holds (ids of DESIGN.md), lowest first: by the middle of
    each one's slices (z runs inferior to superior), as ``segmentation.vertebrae`` lists those the split found
    (helper-106: null with ``--labels``, where the README said it lists every vertebra).

    ``vertebrae``: uint8 (z, y, x) map of every vertebra given.
    """
    boxes = ndimage.find_objects(vertebrae)
    middles = [((box[0].start + box[0].stop) / 2, vid) for vid, box in enumerate(boxes, start=1) if box is not None]
    return [vertebra_name(vid) for _, vid in sorted(middles)]


def segmentation_record(
    source: str,
    naming_rule: str,
    naming_certain: bool,
    notes: list[str],
    vertebrae: list[str],
    level_settings: LevelSettings,
    evidence: list[dict] | None = None,
) -> dict:
    """result.json's ``segmentation``: the one form for ``screen``, napari and Slicer (helper-117: napari's and
    Slicer's lacked ``source``, ``vertebrae``, ``evidence`` and ``level_settings``).

    Parameters
    ----------
    source : {"bonescreen", "user", "user mask"}
        MS-Net's mark as it came; the user's labels (BoneScreen's own, edited or renamed, included); the user's
        mask of the spine, split and named by BoneScreen.
    naming_rule, naming_certain, notes
        How the vertebrae were named, whether the names are certain, and the naming's notes.
    vertebrae : list of str
        Every vertebra found or given, lowest first (:func:`given_names`, or the split's ``map_names``).
    level_settings : LevelSettings
        The split's settings (each with its source).
    evidence : list of dict, optional
        What the naming saw of each vertebra (:meth:`~bonescreen.pipeline.levels.Vertebra.evidence`), where the
        split named them (None for the user's labels).
    """
    return {
        "source": source,
        "naming_rule": naming_rule,
        "vertebrae": list(vertebrae),
        "naming_certain": bool(naming_certain),
        "evidence": evidence,
        "notes": list(notes),
        "level_settings": level_settings.as_dict(),
    }


def no_lumbar_result(thresholds: HUThresholds, found: str) -> dict:
    """The ``levels``/``overall`` part of result.json when no lumbar level is in the mask.

    ``found`` says which vertebrae were found or given (for example "vertebrae found: T12, T11 (none
    lumbar)"); it joins the overall flag. The naming's other notes stay notes (``segmentation.notes``).
    """
    reason = "no lumbar vertebra (L1-L5) in the mask: nothing was classified"
    return {
        "levels": [],
        "overall": {
            "levels_used": [],
            "probabilities": None,
            "prediction": None,
            "trabecular_hu": None,
            "hu_category": None,
            "vbmd_mg_cm3": None,
            "vbmd_sd_mg_cm3": None,
            "acr_category": None,
            "vbmd_levels_used": [],
            "left_out": {},
            "bone_status": None,
            "bone_status_withheld": None,
            "labels_off_bone": [],
            "uncertain": True,
            "reasons": [reason, found],
        },
        "hu_thresholds": thresholds.as_dict(),
        "density_calibration": None,
    }


#: Most bone a mask of the spine holds per mm along the body's axis (cm3/mm): a lumbar vertebra with its arch is 40-80
#: cm3 over about 35 mm of spine (Visible Human; about 2 cm3/mm), and a mask that holds the pelvis too reaches 7 over
#: the 100 mm of the iliac wings, 9 over 20 mm (the Visible Human's pelvis voxelised solid: review, helper-112). A mask
#: holding more than this holds other structures: organs, muscles (TotalSegmentator's whole map: 35).
MAX_SPINE_CM3_PER_MM = 12.0


def overfull_mask(mark: np.ndarray, spacing: tuple[float, float, float]) -> str | None:
    """Why a mask of the spine holds far more than vertebral bone, or None (:data:`MAX_SPINE_CM3_PER_MM`).

    ``mark``: bool (z, y, x); ``spacing``: (dz, dy, dx) mm. A map of many structures read with the ``mask`` ids (every
    id above 0 taken as vertebral bone: TotalSegmentator's or VerSe's whole map) is the likely cause.
    """
    slices = np.flatnonzero(mark.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    length_mm = (slices[-1] - slices[0] + 1) * spacing[0]
    cm3 = float(np.count_nonzero(mark)) * float(np.prod(spacing)) / 1000.0
    if cm3 <= MAX_SPINE_CM3_PER_MM * length_mm:
        return None
    return (
        f"the mask holds {cm3:.0f} cm3 over {length_mm:.0f} mm of the body's axis, {cm3 / length_mm:.0f} cm3 per mm, "
        f"where a spine's bone is under {MAX_SPINE_CM3_PER_MM:g}: it holds more than the spine (organs, muscles?). A "
        "map of many structures is read with its own ids (TotalSegmentator's: totalseg; VerSe's: verse), not as a "
        "mask; the image's orientation is not judged from it, and the names are not confirmed"
    )


class Screener:
    """MS-Net + BCC-Net screening of a CT volume.

    Parameters
    ----------
    seg_weights, cls_weights : str or PathLike, optional
        Weights folders or ``.safetensors`` files; the bundled defaults if None.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
    thresholds : HUThresholds
        Trabecular HU cut-offs and contrast offset.
    settings : InferenceSettings
        Precision (bf16 autocast where the hardware has it), memory format, compilation, batch size.
    level_settings : LevelSettings
        Constants of the level split and naming, each with its source; recorded in result.json.

    Creating a screener changes no setting of the host process (allocator, numpy, cuDNN): the
    ``bonescreen`` command line and the batch workers tune their own processes.

    Raises
    ------
    BoneScreenError
        If the device is not present here.
    """

    def __init__(
        self,
        seg_weights: str | os.PathLike | None = None,
        cls_weights: str | os.PathLike | None = None,
        device: str = "auto",
        thresholds: HUThresholds = HUThresholds(),
        settings: InferenceSettings = InferenceSettings(),
        level_settings: LevelSettings = LevelSettings(),
    ) -> None:
        self.device = resolve_device(device)
        #: Set when ``auto`` found no GPU: a line to show the user (the CLI and the GUIs do).
        self.device_note = fallback_note(device, self.device)
        self.thresholds = thresholds
        self.settings = settings
        self.level_settings = level_settings
        #: Seconds spent in the networks since the screener was made (``network_s``), for benchmarks.
        self.stats: dict = {}
        self._paths = {
            "segmentation": Path(seg_weights) if seg_weights else default_weights("segmentation"),
            "classification": Path(cls_weights) if cls_weights else default_weights("classification"),
        }
        self._models: dict = {}
        self._meta: dict = {}

    def model(self, task: str):
        """The network for ``segmentation`` or ``classification``, loaded and prepared on first use."""
        if task not in self._models:
            model, meta = load_model(self._paths[task], self.device)
            if meta.get("task", task) != task:
                raise BoneScreenError(f"these weights are not a {task} model", self._paths[task])
            self._models[task], self._meta[task] = self.settings.prepare(model), meta
        return self._models[task]

    @property
    def density(self) -> FeatureDensity | None:
        """BCC-Net's training-feature density (:mod:`bonescreen.ood`), when its weights have one."""
        self.model("classification")
        if not hasattr(self, "_density"):
            self._density = load_feature_density(self._paths["classification"], self._meta["classification"])
        return self._density

    @property
    def temperature(self) -> float:
        """BCC-Net's calibration temperature (its JSON's ``calibration.temperature``; 1 when it has none)."""
        self.model("classification")
        return float(self._meta["classification"].get("calibration", {}).get("temperature", 1.0))

    @property
    def energy_normalized(self) -> bool:
        """Whether BCC-Net was trained on energy-normalized crops
        (:func:`~bonescreen.preprocess.trained_energy_normalized`)."""
        self.model("classification")
        return trained_energy_normalized(self._meta["classification"])

    def model_record(self, task: str) -> dict:
        """Name and SHA-256 of the weights in use for ``task`` (and BCC-Net's temperature), for result.json."""
        self.model(task)
        out = {"name": self._meta[task]["model"], "sha256": self._meta[task]["sha256"]}
        if task == "classification":
            out["temperature"] = self.temperature
        return out

    def run_record(self) -> dict:
        """result.json's ``device`` and ``inference`` (precision, batch size, compiled) of this screener."""
        return {"device": str(self.device), "inference": self.settings.describe(self.device)}

    def models(self) -> dict:
        """:meth:`model_record` of both networks, for result.json."""
        return {task: self.model_record(task) for task in self._paths}

    def iter_segment(
        self, volume: CTVolume, top_level: int | None = None, slices: np.ndarray | None = None
    ) -> Generator[tuple[str, int, int], None, Segmentation]:
        """:meth:`segment` as a generator: yields ``(stage, done, total)`` between batches, returns the result.

        Closing the generator between yields cancels the run (GUIs run it in a worker).
        """
        if top_level is not None:
            check_number("top_level", top_level, 1, 5, whole=True)
        t0 = time.perf_counter()
        model = self.model("segmentation")
        stats = self.stats
        mark = yield from iter_mark_volume(
            model,
            volume.hu,
            volume.spacing,
            self.device,
            self.settings.batch_size(self.device),
            slices=slices,
            settings=self.settings,
            stats=stats,
        )
        yield "name levels", 0, 1
        mark, bridged = bridge_dropped_sections(mark, volume.hu, volume.spacing)
        seg = self.name_mark(volume, mark, top_level, bridged, users_mask=False)
        yield "name levels", 1, 1
        seg.seconds = time.perf_counter() - t0
        return seg

    def name_mark(
        self,
        volume: CTVolume,
        mark: np.ndarray,
        top_level: int | None = None,
        bridged: int = 0,
        users_mask: bool = True,
    ) -> Segmentation:
        """Split a mask of vertebral bone into vertebrae and name them (:func:`~.levels.split_levels`).

        ``mark`` is bool (z, y, x) on the volume's grid: MS-Net's mark, or a user's mask of the spine (a label
        map read with the ``mask`` scheme, :mod:`bonescreen.label_schemes`). The discs the split finds filled
        are taken out of the returned mark. ``bridged``: the slices where
        :func:`~.mark_repair.bridge_dropped_sections` filled the mark, said in a note after the orientation's doubt.
        ``users_mask``: the mask is a user's (not MS-Net's mark), so one far fuller than a spine's bone is said to be
        a map of other structures (:func:`overfull_mask`).

        Raises
        ------
        BoneScreenError
            If ``mark`` does not fit the volume, or ``top_level`` is not 1..5.
        """
        t0 = time.perf_counter()
        mark = np.asarray(mark, dtype=bool)
        if mark.shape != volume.shape:
            raise BoneScreenError(f"a mask of shape {mark.shape} does not fit the CT of shape {volume.shape}")
        if not mark.any():  # (helper-37: a user's empty mask was "no vertebra found in the mark")
            empty = np.zeros(mark.shape, np.uint8)
            note = "the mask is empty: it holds no vertebral bone"
            return Segmentation(empty, mark, [], "none", False, [note], time.perf_counter() - t0, empty)
        split = split_levels(mark, volume.spacing, volume.hu, top_level=top_level, settings=self.level_settings)
        if split.discs is not None and split.discs.any():
            mark = mark & ~split.discs
        # said as soon as the mark is split (napari's and Slicer's Segment step), before the user corrects a mask of
        # a mirrored spine; classify() flags it again and gives no bone status (stop 63)
        filled = [
            f"MS-Net left a vertebral body's section out on {bridged} slice(s) between marked slices; filled from the "
            "slices above and below, where the CT reads as the bone beside it"
        ] * bool(bridged)
        upside = orientation_notes(split.notes)  # the image's doubts first, then the mark's, then the naming's
        # a mask far fuller than any spine's bone (a map of organs and muscles read with ids 'mask') says nothing of
        # where the spine lies: its orientation is not judged from it, and what it is is said first (helper-110:
        # TotalSegmentator's whole map read as a mask was taken for an image with its front and back swapped)
        overfull = overfull_mask(mark, volume.spacing) if users_mask else None
        notes = [
            *([overfull] if overfull else front_and_back_swapped(volume.hu, mark, volume.spacing)),
            *upside,
            *filled,
            *(n for n in split.notes if n not in upside),
        ]
        certain = split.certain and not overfull
        if certain and volume.orientation_unknown:  # read upside down, the names would run the wrong way
            certain = False
            notes.append(
                "level names not confirmed: the file states no orientation, and the names assume the head end "
                "is up (see the orientation flag)"
            )
        if not split.labels.any():
            found = ", ".join(v.name for v in split.vertebrae)
            notes.append(f"vertebrae found: {found} (none lumbar)" if found else "no vertebra found in the mark")
        return Segmentation(
            split.labels,
            mark,
            split.vertebrae,
            split.rule,
            certain,
            notes,
            time.perf_counter() - t0,
            split.vertebra_map,
        )

    def segment(
        self, volume: CTVolume, progress: ProgressCallback | None = None, top_level: int | None = None
    ) -> Segmentation:
        """Segment and name the lumbar vertebrae of ``volume``.

        ``progress(stage, done, total)`` is called between batches of slices;
        returning False cancels (raises :class:`~.progress.Cancelled`).
        """
        return drive(self.iter_segment(volume, top_level), progress)

    def classify(
        self,
        volume: CTVolume,
        labels: np.ndarray,
        progress: ProgressCallback | None = None,
        names_certain: bool = True,
        mask_checked: bool | Collection[int] = True,
        users_labels: bool | None = None,
        upside_down: str | None = None,
        front_back: Sequence[str] | None = None,
        naming_rule: str | None = None,
    ) -> dict:
        """Classify each lumbar level on ``labels`` (the user's corrected labels or :meth:`segment`'s).

        ``labels`` may be level labels (1..5) or an all-vertebrae map with the ids of DESIGN.md
        (:meth:`Segmentation.vertebra_labels`, as the user corrected and renamed it): its ids are
        taken as the names, and L1..L5 are classified. ``mask_checked`` False says that ``labels`` are
        :meth:`segment`'s, not checked by a user: a bone status resting on fractures is then unconfirmed; a
        collection of level ids (1-5) says that the user edited those levels of :meth:`segment`'s labels and not
        the others (:func:`~bonescreen.labels.edited_levels`). ``users_labels`` (default: whether any level is
        checked) says that the ids are the user's, so a lumbar id holding several vertebrae is refused
        (:func:`~.levels.stacked_problem`); the split's own ids are not checked. ``upside_down``: the split's
        note that the scan looks upside down (:func:`~.levels.upside_down_note` of its notes). With it, or with the
        spine in the front of the body (:func:`~bonescreen.orientation_check.front_and_back_swapped`), no bone status
        is given (``overall.bone_status_withheld``); ``front_back``: that check's flags where the caller has them
        already (:meth:`screen`: the split's notes), else it is made here. ``naming_rule``: how the names were found
        (result.json ``segmentation.naming_rule``); where they are the split's guess from the top vertebra in view
        (:data:`~.levels.TOP_VERTEBRA_RULE`, not confirmed) on a series shorter than one vertebra spans, no bone status
        is given either (:func:`~bonescreen.messages.withheld_short_series`).

        Returns the ``levels`` and ``overall`` parts of result.json, with the volume's
        reading notes and flags (:func:`~bonescreen.messages.add_input_messages`).

        Raises
        ------
        BoneScreenError
            If ``labels`` does not fit the volume or holds no lumbar level.
        """
        labels = np.asarray(labels)
        if labels.shape != volume.shape:
            raise BoneScreenError(f"labels of shape {labels.shape} do not fit the CT of shape {volume.shape}")
        vertebrae = as_level_labels(labels, allowed=ALL_VERTEBRA_IDS)
        labels = lumbar_levels(vertebrae)
        users = bool(mask_checked) if users_labels is None else users_labels
        if users and (problem := stacked_problem(labels, volume.spacing, self.level_settings)):
            # a user's id over several vertebrae (a binary mask of the spine read as L1): every figure would mix them
            raise BoneScreenError(problem)
        # labels most of whose levels sit on none of this CT's bone (another CT's, or flipped) say nothing of where
        # its spine lies or which way its head is (labels made on this CT's anatomy sit on its bone, whatever its
        # header says): the flag that they are off the bone says what is wrong (helper-114: a shifted map was blamed
        # on the CT's front and back; helper-115: a map flipped head to feet, on the CT's head and feet)
        all_off = users and 2 * len(off_bone(volume.hu, labels)) >= len(levels_present(labels))
        if front_back is not None:
            swapped = list(front_back)
        elif all_off:
            swapped = []
        else:
            swapped = front_and_back_swapped(volume.hu, vertebrae, volume.spacing)
        # (names given on an upside-down image)
        reversed_names = [] if all_off else head_and_feet_swapped(vertebrae, volume.spacing)
        doubts = [*swapped, *([upside_down] if upside_down else reversed_names)]
        # names the split guessed from the top vertebra on a series shorter than one vertebra (no landmark can be in
        # view): no status (review, helper-107: names unconfirmed for another reason, a sacrum in view, keep theirs)
        extent = volume.shape[0] * volume.spacing[0]
        guessed = not names_certain and TOP_VERTEBRA_RULE in (naming_rule or "")
        short = extent < self.level_settings.max_body_mm and guessed
        withheld = withheld_short_series(extent, self.level_settings.max_body_mm) if short else None
        model = self.model("classification")
        with self.settings.forward_context(self.device):
            result = classify_levels(
                model,
                volume.hu,
                labels,
                volume.spacing,
                self.device,
                self.thresholds,
                names_certain,
                progress=progress,
                stats=self.stats,
                body_radius_mm=self.level_settings.body_radius_mm,
                temperature=self.temperature,
                density=self.density,
                acquisition=volume.acquisition,
                bone=vertebrae > 0,
                energy_normalized=self.energy_normalized,
                mask_checked=mask_checked,
                disc_hu=(self.level_settings.disc_valley_hu, self.level_settings.disc_max_hu),
                orientation_doubts=doubts,
                withheld=withheld,
            )
        flags = [
            *volume.flags,
            *swapped,
            *stray_specks(labels, volume.spacing),
            # each pair of names the wrong way round is said once, as the image's orientation, where all are
            *([] if reversed_names else name_gaps(vertebrae, volume.spacing)),
        ]
        notes = list(volume.notes)
        if users:  # a level the user deleted between two kept (helper-110: it dropped out without a word)
            notes += missing_levels(vertebrae)
        unnamed = [vertebra_name(int(v)) for v in np.unique(vertebrae) if v >= UNNAMED_FIRST]
        if users and unnamed:  # a vertebra the user painted without a name (helper-64: never mentioned)
            notes.append(
                f"{', '.join(unnamed)} not classified: only L1-L5 are; rename {'them' if len(unnamed) > 1 else 'it'} "
                "if lumbar"
            )
        if (vertebrae == vertebra_id("L6")).any():  # (helper-68: L5 renamed L6 was left out without a word)
            notes.append("L6 not classified: only L1-L5 are (the ACR categories and the paper's levels)")
        return add_input_messages(result, notes, flags)

    def screen(
        self,
        volume: CTVolume,
        progress: ProgressCallback | None = None,
        labels: np.ndarray | None = None,
        mark: np.ndarray | None = None,
        own_labels: dict | None = None,
        segmentation: Segmentation | None = None,
    ) -> tuple[dict, np.ndarray, np.ndarray]:
        """Segment (unless ``labels``, ``mark`` or ``segmentation`` are given) and classify.

        ``labels`` are the user's vertebra labels (ids of DESIGN.md, taken as the names); ``mark`` is a user's
        bool mask of the spine, split and named as MS-Net's mark is (:meth:`name_mark`). ``own_labels`` says
        how BoneScreen named ``labels`` that are its own, given back (``naming_rule``, ``naming_certain``,
        ``edited``; :func:`~bonescreen.io.writers.own_labels`): names it could not confirm stay flagged with that
        reason, and the mask stays MS-Net's, not checked, but for the vertebrae the user edited since.
        ``segmentation``: this screener's :meth:`segment` of ``volume``, made already (``bonescreen evaluate`` scores
        it before classifying it as ``screen`` does).

        Returns
        -------
        (dict, ndarray, ndarray)
            result.json's content, the level labels (0, 1..5 = L1..L5) and the map of every vertebra
            found or given (ids of DESIGN.md), all uint8 (z, y, x) on the volume's grid.
        """
        timings = {}
        notes: list[str] = []
        certain = True
        seg = None
        network0 = self.stats.get("network_s", 0.0)
        if labels is not None and mark is not None:
            raise BoneScreenError("give the labels or a mask of the spine, not both")
        if labels is None:
            seg = segmentation or (self.segment(volume, progress) if mark is None else self.name_mark(volume, mark))
            labels, certain, notes = seg.labels, seg.certain, list(seg.notes)
            vertebrae = seg.vertebra_labels()
            timings["segment"] = round(seg.seconds, 3)
        else:  # the user's level labels, or an all-vertebrae map whose ids are taken as the names
            vertebrae = as_level_labels(labels, allowed=ALL_VERTEBRA_IDS)
            labels = lumbar_levels(vertebrae)
            if own_labels:  # (helper-39: a run's own unedited labels, given back, made its names certain)
                certain = bool(own_labels["naming_certain"] or own_labels.get("renamed"))
                own_rule, notes = own_labels_naming(own_labels)
                if said := own_labels_changes_note(own_labels.get("edited", ()), vertebrae):  # (helper-66: nowhere)
                    notes.append(said)
            if not labels.any():
                given = ", ".join(vertebra_name(k) for k in np.unique(vertebrae) if k)
                notes = [f"vertebrae given: {given} (none lumbar)" if given else "the labels given are empty"]
        t0 = time.perf_counter()
        if labels.any():
            # a user's labels or mask are the user's (helper-37: a user's mask, split here, was called "MS-Net's
            # mask, not yet checked"); the split's doubts are the naming's (names_certain)
            checked = (seg is None and not own_labels) or mark is not None
            if own_labels and own_labels.get("edited"):  # the vertebrae edited since are the user's (helper-64)
                checked = list(own_labels["edited"])
            # every vertebra, not the lumbar levels alone: their names' gaps, the neighbours' bone (helper-66: T12
            # renamed from L1 over L2 was flagged in napari, which passes every vertebra, and not here)
            result = self.classify(
                volume,
                vertebrae,
                progress,
                names_certain=certain,
                mask_checked=checked,
                users_labels=seg is None,
                upside_down=upside_down_note(notes),
                # the split read the front and back already (about a second on a 512 x 512 CT)
                front_back=None if seg is None else [n for n in seg.notes if n.startswith(FRONT_BACK_FLAGS)],
                naming_rule=seg.rule if seg is not None else own_rule if own_labels else None,
            )
        else:
            # the last note says which vertebrae were found or given (segment() and the branch above)
            result = add_input_messages(no_lumbar_result(self.thresholds, notes[-1]), volume.notes, volume.flags)
        timings["classify"] = round(time.perf_counter() - t0, 3)
        timings["network"] = round(self.stats.get("network_s", 0.0) - network0, 3)
        result = {
            "schema_version": RESULT_SCHEMA_VERSION,
            **self.run_record(),
            **result,
            "segmentation": segmentation_record(
                "user" if seg is None else "bonescreen" if mark is None else "user mask",
                seg.rule if seg is not None else own_rule if own_labels else "given by the user",
                certain,
                notes,
                seg.map_names() if seg is not None else given_names(vertebrae),
                self.level_settings,
                seg.evidence(volume.spacing, volume.hu.shape[0]) if seg is not None else None,
            ),
            "models": self.models(),
            "timings_s": timings,
        }
        return result, labels, vertebrae
