"""Real CT with vertebra label maps, in the common layouts, mapped to BoneScreen's vertebra ids.

BoneScreen's ids (DESIGN.md): 1..5 = L1..L5, 6 = T12, 7 = sacrum, 8 = T11, 9 = T10,
10 = L6, 11..19 = T9..T1, 21, 22, ... = vertebrae without a name here (cervical).
Label maps from other tools are mapped by a named scheme (:mod:`bonescreen.label_schemes`).

Layouts of a folder (:func:`find_labelled`):

- ``verse``: ``**/sub-*_ct.nii.gz`` with the ``**/sub-*_seg-vert_msk.nii.gz`` of the same scan (the same
  BIDS entities: subject, ``split-``, ``dir-`` ...).
- ``totalseg``: one folder per subject with ``ct.nii.gz`` and either ``segmentations/vertebrae_*.nii.gz``
  (one mask per vertebra) or a combined map ``*.nii.gz`` beside it.
- ``nnunet``: nnU-Net raw ``imagesTr/<case>_0000.nii.gz`` and ``labelsTr/<case>.nii.gz``.
- ``shared``: the project's labelled development images (``shared/data/real``, :func:`builtin_real_cases`),
  for leave-one-out fine-tuning (:func:`leave_out`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BoneScreenError
from ..io import load_ct
from ..io.folders import CANNOT_BE_READ, find_files, walk_folders
from ..io.nifti import is_nifti_path, read_nifti, why_unreadable
from ..io.volume import CTVolume, reorient
from ..io.writers import read_labels_nifti
from ..label_schemes import MASK_SCHEME, SCHEMES, TOTALSEG_LAST_ID, ids_beyond, in_folder_words, map_labels
from ..labels import VERTEBRA_NAMES


def read_label_grid(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A label map (NIfTI or NRRD) as an (i, j, k) array and its (x, y, z) -> RAS affine.

    Raises
    ------
    BoneScreenError
        If the file cannot be read (cut short, not a NIfTI or NRRD) or is not 3-D (a 4-D map with one volume is
        read as that volume), naming the file (helper-70: a truncated map and a 4-D one gave tracebacks).
    """
    path = Path(path)
    try:
        if path.suffix == ".nrrd":
            import nrrd

            data, header = nrrd.read(str(path))
            a = np.eye(4)
            a[:3, :3] = np.asarray(header["space directions"], float).T
            a[:3, 3] = header["space origin"]
            space = str(header.get("space", "left-posterior-superior"))
            if space.startswith("left-posterior") or space == "LPS":
                a = np.diag([-1.0, -1.0, 1.0, 1.0]) @ a  # LPS -> RAS
        else:
            img = read_nifti(path)
            data, a = np.asarray(img.dataobj), img.affine
    except Exception as exc:  # nibabel and pynrrd raise several types for damaged files
        raise BoneScreenError(f"unreadable label map ({why_unreadable(path, exc)})", path) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BoneScreenError(f"expected a 3-D label map, got shape {data.shape}", path)
    return data, a


@dataclass
class LabelledCT:
    """A real CT and its vertebra labels, with the scheme that maps them to BoneScreen ids."""

    name: str
    image: Path
    labels: list[Path]
    scheme: str | dict[int, int]
    label_ids: list[int] | None = None  # per-vertebra mask files: the foreign id of each file
    #: the labels hold only some of the vertebrae in view (a ``segmentations`` folder with the files of some
    #: vertebrae only): the mark is scored against those vertebrae alone
    #: (:func:`~bonescreen.labelled_eval.evaluate_labelled_case`)
    partial: bool = False
    #: why the case cannot be read, found when the folder was listed (raised by :meth:`load_labels`)
    problem: str | None = None
    #: the scheme is the layout's (VerSe's, TotalSegmentator's folders), not chosen with --label-scheme (nnU-Net's)
    scheme_from_layout: bool = False

    def load_volume(self) -> CTVolume:
        """The CT, read as ``bonescreen screen`` reads it."""
        return load_ct(self.image)

    def load_labels(self, volume: CTVolume) -> np.ndarray:
        """BoneScreen vertebra ids (uint8, z, y, x) on the volume's grid.

        Raises
        ------
        BoneScreenError
            If the case has a ``problem``, or a map cannot be read, does not lie on the CT's grid, or holds no
            vertebra of the scheme (:func:`~bonescreen.io.writers.read_labels_nifti`).
        """
        if self.problem:
            raise BoneScreenError(self.problem, self.image.parent)
        if isinstance(self.scheme, str) and all(is_nifti_path(p) for p in self.labels):
            # as `screen --labels` reads a map: on the CT's grid (corners, orientation), the scheme's ids, one
            # vertebra per id (helper-70: a map of another origin, of organs read as VerSe's vertebrae, or of no
            # vertebra id at all was scored without a word, its Dice near 0 in the mean)
            if self.label_ids is None:
                try:
                    return read_labels_nifti(volume, self.labels[0], scheme=self.scheme)
                except BoneScreenError as exc:  # its hint, in a folder's words where the layout sets the ids
                    problem = in_folder_words(exc.problem) if self.scheme_from_layout else exc.problem
                    raise BoneScreenError(problem, exc.path) from None
            foreign = np.zeros(volume.hu.shape, np.int64)  # one mask file per vertebra: its foreign id
            for path, vid in zip(self.labels, self.label_ids, strict=True):
                foreign[read_labels_nifti(volume, path, scheme=MASK_SCHEME)] = vid
            return map_labels(foreign, self.scheme)
        foreign = None  # the files' foreign ids in one map: the unnamed vertebrae are numbered among all of them
        for i, path in enumerate(self.labels):
            data, affine = read_label_grid(path)
            if self.label_ids is not None:
                data = (np.asarray(data) > 0) * self.label_ids[i]
            zyx, _, _ = reorient(np.asarray(data), affine)
            if zyx.shape != volume.hu.shape:
                raise BoneScreenError(f"label grid {zyx.shape} does not match the CT {volume.hu.shape}", path)
            try:  # each file's values checked as it is read (helper-70: float labels, a CT: the file was not named)
                mapped = map_labels(zyx, self.scheme)
            except BoneScreenError as exc:
                raise BoneScreenError(exc.problem, path) from None
            foreign = zyx if foreign is None else np.where(mapped > 0, zyx, foreign)
        return map_labels(foreign, self.scheme)

    def load_checked_labels(self, volume: CTVolume) -> np.ndarray:
        """:meth:`load_labels`, refused where they cannot be this CT's vertebrae: a map that holds no vertebra, or
        one none of whose vertebrae sits on the CT's bone (:func:`~bonescreen.mask_fit.off_bone`: labels of another
        scan, or flipped). ``evaluate`` and ``real_ct.py`` score no such map (helper-70), and ``train-seg`` trains on
        none (helper-83: a map mirrored left-right was trained on without a word).

        Raises
        ------
        BoneScreenError
            As :meth:`load_labels`, and naming the label file where the map holds no vertebra or none on bone.
        """
        from ..mask_fit import off_bone

        truth = self.load_labels(volume)
        ids = [int(v) for v in np.flatnonzero(np.bincount(truth.ravel())) if v]
        if not ids:  # (helper-70: an empty map scored Dice 0 into the mean)
            raise BoneScreenError("the label map holds no vertebra", self.labels[0])
        off = off_bone(volume.hu, truth, ids)
        if len(off) == len(ids):  # (helper-70: labels flipped on the CT's grid scored 0.001)
            raise BoneScreenError(
                "no given vertebra sits on this CT's bone (" + next(iter(off.values())) + ")", self.labels[0]
            )
        return truth

    def label_notes(self) -> list[str]:
        """What the label maps hold that is read as no vertebra though the scheme does not name it, one line per file:
        ids beyond the scheme's last (:func:`~bonescreen.label_schemes.ids_beyond`). A vertebra renumbered so is
        lost from the labels, and the mark's vertebra there reads as a false mark (helper-83: Dice 0.720 for 0.782).

        Raises
        ------
        BoneScreenError
            If a map cannot be read.
        """
        if not isinstance(self.scheme, str) or self.label_ids is not None:  # per-vertebra mask files: no ids
            return []
        notes = []
        for path in self.labels:
            data, _ = read_label_grid(path)
            beyond = ids_beyond(data, self.scheme)
            if beyond:
                shown = ", ".join(f"{v} ({n} voxels)" for v, n in list(beyond.items())[:6])
                notes.append(
                    f"{Path(path).name} holds ids beyond the last of {self.scheme}'s numbering "
                    f"({TOTALSEG_LAST_ID}): {shown}; read as no vertebra (a vertebra renumbered so is not scored)"
                )
        return notes

    def partial_reasons(self) -> list[str]:
        """Why the folder's layout says the labels hold some vertebrae only (:attr:`partial`), one line; empty when
        it does not. The CT may say so too (:func:`~bonescreen.data.label_coverage.label_coverage`)."""
        if not self.partial:
            return []
        return [
            f"its segmentations folder holds {sum(p.name.startswith('vertebrae_') for p in self.labels)} vertebra "
            f"file(s), where TotalSegmentator writes "
            f"{TOTALSEG_VERTEBRA_FILES} (empty for a vertebra not in view)"
        ]

    def name_of(self, vid: int) -> str:
        """Name of a BoneScreen vertebra id; ``?`` for ids without a name."""
        return VERTEBRA_NAMES.get(int(vid), "?")


def builtin_real_cases(root: str | os.PathLike | None = None) -> list[LabelledCT]:
    """The labelled real CT of ../shared/data (see its README): T11-T12 series, 3-slice series, L2-L4 crop.

    Parameters
    ----------
    root : path, optional
        The ``shared/data/real`` folder; default beside the repository.
    """
    here = Path(__file__).resolve()
    real = (
        Path(root)
        if root
        else next(
            (p / "shared" / "data" / "real" for p in here.parents if (p / "shared" / "data" / "real").is_dir()), None
        )
    )
    if real is None or not real.is_dir():
        return []
    return [
        # TotalSegmentator's ribs are not vertebrae: only its ids 32-33 count
        LabelledCT(
            "totalseg-t11t12-dicom",
            real / "totalseg-t11t12-dicom",
            [real / "totalseg-t11t12-dicom-labels.nii.gz"],
            {32: 6, 33: 8},
        ),
        # dcmqi's label 2 is the whole vertebra (about T10-T11: no name given)
        LabelledCT("dcmqi-ct3slice", real / "dcmqi-ct3slice", [real / "dcmqi-ct3slice" / "spine_seg.nrrd"], {2: 21}),
        LabelledCT(
            "tptbox-l3-crop",
            real / "tptbox-l3-crop" / "sub-ct_label-22_ct.nii.gz",
            [real / "tptbox-l3-crop" / "sub-ct_seg-vert_label-22_msk.nii.gz"],
            "verse",
        ),
    ]


def _bids_entities(path: Path) -> tuple[frozenset[str], str]:
    """The BIDS entities (``key-value`` parts) of a file name and its suffix: ``sub-x_split-a_ct.nii.gz`` ->
    ({"sub-x", "split-a"}, "ct")."""
    parts = path.name.removesuffix(".nii.gz").split("_")
    return frozenset(parts[:-1]), parts[-1]


def _verse_cases(root: Path, scheme: str) -> list[LabelledCT]:
    """VerSe (BIDS-like) pairs: a CT ``<entities>_ct.nii.gz`` and the vertebra mask with the same entities plus
    ``seg-vert``, suffix ``msk``, wherever it lies under ``root`` (VerSe keeps masks in ``derivatives/``).

    Matching every entity, not the subject's prefix, keeps apart a subject's several scans (``split-``,
    ``dir-``) and subjects whose names share a prefix (helper-34: ``sub-a1`` took ``sub-a10``'s mask), and finds
    masks with more entities (TPTBox's ``sub-ct_seg-vert_label-22_msk.nii.gz``).
    """
    masks = _verse_masks(root)
    cases = []
    for ct in find_files(root, "sub-*_ct.nii.gz"):
        entities, _ = _bids_entities(ct)
        if entities in masks:
            name = ct.name.removesuffix("_ct.nii.gz")
            cases.append(LabelledCT(name, ct, [masks[entities][0]], "verse", scheme_from_layout=True))
    return cases


def _verse_masks(root: Path) -> dict[frozenset[str], list[Path]]:
    masks: dict[frozenset[str], list[Path]] = {}
    for path in find_files(root, "sub-*_msk.nii.gz"):
        entities, _ = _bids_entities(path)
        if "seg-vert" in entities:
            masks.setdefault(entities - {"seg-vert"}, []).append(path)
    return masks


def verse_unpaired(root: str | os.PathLike) -> list[str]:
    """What a VerSe folder holds that is not a case, one line each: a CT without a vertebra mask of the same
    scan, and a scan with more than one such mask (the first, by name, is used). Empty when all pair up.

    (helper-35: a CT whose mask was misnamed left the benchmark without a word.)
    """
    root = Path(root)
    masks = _verse_masks(root)
    lines = []
    for ct in find_files(root, "sub-*_ct.nii.gz"):
        entities, _ = _bids_entities(ct)
        found = masks.get(entities, [])
        if not found:
            lines.append(f"{ct.name}: no vertebra mask of the same scan (*_seg-vert_msk.nii.gz): not evaluated")
        elif len(found) > 1:
            lines.append(f"{ct.name}: {len(found)} vertebra masks of the same scan: {found[0].name} used")
    return lines


def nnunet_unpaired(root: str | os.PathLike) -> list[str]:
    """What an nnU-Net raw folder holds that is not a case, one line each: an image named without nnU-Net's channel
    suffix (``_0000``), an image without its label map, a label map without its image. Empty when all pair up.

    (helper-70: an image without labels and labels without an image were dropped without a word.)
    """
    root = Path(root)
    labels = {p.name[: -len(".nii.gz")] for p in (root / "labelsTr").glob("*.nii.gz")}
    imaged, lines = set(), []
    for image in sorted((root / "imagesTr").glob("*.nii.gz")):
        case, _, channel = image.name[: -len(".nii.gz")].rpartition("_")
        if not case or len(channel) != 4 or not channel.isdigit():
            lines.append(f"imagesTr/{image.name}: not named <case>_0000.nii.gz (nnU-Net's channel): not evaluated")
        elif channel == "0000":
            imaged.add(case)
            if case not in labels:
                lines.append(f"imagesTr/{image.name}: no labelsTr/{case}.nii.gz: not evaluated")
    lines += [f"labelsTr/{c}.nii.gz: no imagesTr/{c}_0000.nii.gz: not evaluated" for c in sorted(labels - imaged)]
    return lines


def totalseg_unpaired(root: str | os.PathLike) -> list[str]:
    """What a TotalSegmentator folder holds that is not a case, one line each: a ``ct.nii.gz`` with neither a label
    map beside it nor ``segmentations/vertebrae_*.nii.gz``, and such labels with no ``ct.nii.gz`` beside them. Empty
    when every CT has its labels and every label map its CT.

    (helper-83: such a CT was left out without a word, where an nnU-Net folder names its unpaired images; helper-86:
    so were the labels of a folder without its CT.)
    """
    root = Path(root)
    lines = []
    for ct in find_files(root, "ct.nii.gz"):
        seg = ct.parent / "segmentations"
        singles = seg.is_dir() and any(seg.glob("vertebrae_*.nii.gz"))
        beside = any(p.name != "ct.nii.gz" for p in ct.parent.glob("*.nii.gz"))
        if not singles and not beside:
            where = ct.relative_to(root).as_posix()
            lines.append(f"{where}: no label map beside it nor segmentations/vertebrae_*.nii.gz: not evaluated")
    labelled = {p.parent for p in find_files(root, "total*.nii.gz")}
    labelled |= {p.parent.parent for p in find_files(root, "segmentations/vertebrae_*.nii.gz")}
    for folder in sorted(f for f in labelled if not (f / "ct.nii.gz").is_file()):
        where = folder.relative_to(root).as_posix()
        lines.append(f"{where if where != '.' else root.name}: vertebra labels and no ct.nii.gz: not evaluated")
    return lines


def unpaired(root: str | os.PathLike, layout: str | None) -> list[str]:
    """What a folder of ``layout`` holds that is not a case (:func:`verse_unpaired`, :func:`nnunet_unpaired`,
    :func:`totalseg_unpaired`), one line each; empty for the shared layout."""
    readers = {"verse": verse_unpaired, "nnunet": nnunet_unpaired, "totalseg": totalseg_unpaired}
    lines = readers.get(layout or "", lambda _: [])(root)
    # folders that cannot be listed may hold scans: named (helper-94: a case folder without permission was passed
    # over without a word, an unreadable labelsTr/ read as images without labels)
    skipped: list[tuple[Path, str]] = []
    for _ in walk_folders(root, skipped=skipped):
        pass
    root = Path(root)
    for path, why in skipped:
        if why.startswith(CANNOT_BE_READ):
            where = path.relative_to(root).as_posix() if path != root else root.name
            lines.append(f"{where}/: {why}: not evaluated")
    return lines


#: TotalSegmentator writes a file for every vertebra of its classes, empty where the vertebra is not in view
#: (C1-C7, T1-T12, L1-L5 in v1; S1 too in v2): a ``segmentations`` folder with fewer holds some vertebrae only
TOTALSEG_VERTEBRA_FILES = 24
#: TotalSegmentator v2 writes the sacrum (its id 25) as ``sacrum.nii.gz``, beside ``vertebrae_S1`` (26): until
#: 2026-12-05 only ``vertebrae_*`` files were read, and a folder's sacrum was the S1 file's alone (helper-59).
TOTALSEG_SACRUM_FILE = "sacrum"
TOTALSEG_SACRUM_ID = 25


def _totalseg_cases(root: Path, scheme: str) -> list[LabelledCT]:
    cases = []
    for ct in find_files(root, "ct.nii.gz"):
        seg = ct.parent / "segmentations"
        singles = sorted(seg.glob("vertebrae_*.nii.gz")) if seg.is_dir() else []
        if singles:
            inverse = {f"vertebrae_{n}": i for i, n in _totalseg_names().items()}
            inverse[TOTALSEG_SACRUM_FILE] = TOTALSEG_SACRUM_ID
            partial = len(singles) < TOTALSEG_VERTEBRA_FILES
            if (seg / f"{TOTALSEG_SACRUM_FILE}.nii.gz").is_file():  # v2's sacrum beside vertebrae_S1 (helper-59)
                singles.append(seg / f"{TOTALSEG_SACRUM_FILE}.nii.gz")
            ids = [inverse.get(p.name[: -len(".nii.gz")]) for p in singles]
            keep = [(p, i) for p, i in zip(singles, ids, strict=True) if i is not None]
            files, file_ids = [p for p, _ in keep], [i for _, i in keep]
            cases.append(
                LabelledCT(ct.parent.name, ct, files, "totalseg", file_ids, partial=partial, scheme_from_layout=True)
            )
            continue
        maps = sorted(p for p in ct.parent.glob("*.nii.gz") if p.name != "ct.nii.gz")
        # several maps beside the CT: TotalSegmentator's combined one is named for its task (total.nii.gz,
        # total_*.nii.gz); else none is guessed (helper-70: a body mask beside total.nii.gz, first by name, was scored)
        chosen = [p for p in maps if p.name.startswith("total")] if len(maps) > 1 else maps
        if len(chosen) == 1:
            cases.append(LabelledCT(ct.parent.name, ct, chosen, "totalseg", scheme_from_layout=True))
        elif maps:
            problem = (
                f"{len(maps)} label maps beside ct.nii.gz ({', '.join(p.name for p in maps)}) and not one named "
                "total*.nii.gz: keep the vertebra map alone beside the CT, or name it total.nii.gz"
            )
            cases.append(LabelledCT(ct.parent.name, ct, maps, "totalseg", problem=problem))
    return cases


def _totalseg_names() -> dict[int, str]:
    names = {26: "S1"}  # 25, the sacrum, is sacrum.nii.gz (TOTALSEG_SACRUM_FILE)
    names.update({27 + i: f"L{5 - i}" for i in range(5)})
    names.update({32 + i: f"T{12 - i}" for i in range(12)})
    names.update({44 + i: f"C{7 - i}" for i in range(7)})
    return names


def _nnunet_cases(root: Path, scheme: str) -> list[LabelledCT]:
    cases = []
    for lab in sorted((root / "labelsTr").glob("*.nii.gz")):
        case = lab.name[: -len(".nii.gz")]
        image = root / "imagesTr" / f"{case}_0000.nii.gz"
        if os.path.lexists(image):  # a broken link or a pipe too: it fails by name (helper-94: dropped unsaid)
            cases.append(LabelledCT(case, image, [lab], scheme))
    return cases


def _shared_cases(root: Path, scheme: str) -> list[LabelledCT]:
    """The project's development images (``shared/data/real``), when ``root`` is that folder."""
    return [c for c in builtin_real_cases(root) if c.image.exists() and all(p.exists() for p in c.labels)]


#: The layouts, in the order a folder is tried without one named: the project's own images first (their files
#: are named exactly; the L2-L4 crop's names also fit VerSe's).
LAYOUTS: dict[str, Callable[[Path, str], list[LabelledCT]]] = {
    "shared": _shared_cases,
    "verse": _verse_cases,
    "totalseg": _totalseg_cases,
    "nnunet": _nnunet_cases,
}


def _check_names(cases: list[LabelledCT], names: list[str], what: str, where) -> None:
    """Raise, naming the cases there are, when one of ``names`` is not a case's name."""
    known = {c.name for c in cases}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BoneScreenError(
            f"no labelled CT named {', '.join(unknown)}{what} (found: {', '.join(sorted(known))})", where
        )


def leave_out(cases: list[LabelledCT], names: list[str], where: str | os.PathLike | None = None) -> list[LabelledCT]:
    """The cases without those named (leave-one-out training and evaluation on a few labelled CT).

    Parameters
    ----------
    cases : list of LabelledCT
        From :func:`find_labelled`.
    names : list of str
        Case names (:attr:`LabelledCT.name`) to drop.
    where : path, optional
        The folder, named in the error.

    Raises
    ------
    BoneScreenError
        If a name is not among the cases (a typo would silently train on the image meant to be held out),
        or nothing is left.
    """
    _check_names(cases, names, " to leave out", where)
    kept = [c for c in cases if c.name not in set(names)]
    if not kept:
        raise BoneScreenError("leaving those out leaves no labelled CT", where)
    return kept


def only(cases: list[LabelledCT], names: list[str], where: str | os.PathLike | None = None) -> list[LabelledCT]:
    """The cases named (one image of a folder measured alone, as leave-one-out weights are).

    Raises
    ------
    BoneScreenError
        If a name is not among the cases (the error lists those there are).
    """
    _check_names(cases, names, "", where)
    return [c for c in cases if c.name in set(names)]


def find_labelled(root: str | os.PathLike, layout: str | None = None, scheme: str = "verse") -> list[LabelledCT]:
    """Labelled CT in a folder of one of :data:`LAYOUTS` (tried in turn when ``layout`` is None).

    Parameters
    ----------
    root : path
        The folder.
    layout : {"verse", "totalseg", "nnunet", "shared"}, optional
        Its layout.
    scheme : {"verse", "totalseg"}
        Label ids of an nnU-Net folder (the other layouts have their own).

    Raises
    ------
    BoneScreenError
        If no labelled CT is found, or the layout or scheme is unknown.
    """
    root = Path(root)
    if not root.is_dir():
        raise BoneScreenError("not a folder" if os.path.lexists(root) else "no such folder", root)
    if scheme not in SCHEMES:
        raise BoneScreenError(f"unknown label scheme {scheme!r} (expected {', '.join(SCHEMES)})", root)
    if layout is not None and layout not in LAYOUTS:
        raise BoneScreenError(f"unknown layout {layout!r} (expected {', '.join(LAYOUTS)})", root)
    for name in [layout] if layout else list(LAYOUTS):
        cases = LAYOUTS[name](root, scheme)
        if cases:
            return cases
    # the layout named finds nothing: say which one the folder has (helper-70: the error listed the layouts only)
    other = next((name for name in LAYOUTS if name != layout and LAYOUTS[name](root, scheme)), None) if layout else None
    left = unpaired(root, layout)[:3]  # files of the layout that make no case (an image named without _0000)
    if layout in (None, "nnunet"):  # nnUNet_raw's parent folder given (helper-83: the datasets lie one level down)
        below = [f"{p.parent.name}/" for p in sorted(root.glob("*/imagesTr"))][:3]
        left += [f"an nnU-Net dataset lies one level down: give {', '.join(below)}"] if below else []
    raise BoneScreenError(
        "no labelled CT found"
        + (f" ({'; '.join(left)})" if left else "")
        + (f" in the {layout} layout: the folder is laid out as {other} (--layout {other}); " if other else " (")
        + "layouts: VerSe sub-*_ct.nii.gz + *_seg-vert_msk.nii.gz; TotalSegmentator ct.nii.gz + "
        "segmentations/vertebrae_*.nii.gz or one label map beside it; nnU-Net imagesTr/<case>_0000.nii.gz + "
        "labelsTr/<case>.nii.gz; shared: the project's shared/data/real" + ("" if other else ")"),
        root,
    )
