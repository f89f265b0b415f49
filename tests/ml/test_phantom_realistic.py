"""The realistic phantom: real bone shapes from meshes, a pelvis, ribs and femurs, and training slices from it."""

import json

import numpy as np
import pytest

from bonescreen.errors import BoneScreenError
from bonescreen.phantom.meshes import read_obj, signed_distance, voxelize
from bonescreen.phantom.realistic import RealisticConfig, make_realistic_case
from bonescreen.phantom.scene import Acquisition, draw_scene, render_slice
from bonescreen.phantom.shapes import load_templates
from bonescreen.phantom.slices import make_scene_slices, write_slice_shards
from bonescreen.pipeline.grid import NET_SIZE


def _cube_obj(path, side=10.0):
    """A closed cube of ``side`` mm as an OBJ file with quad faces (fanned into triangles on reading)."""
    v = [(x, y, z) for x in (0, side) for y in (0, side) for z in (0, side)]
    quads = [(1, 2, 4, 3), (5, 7, 8, 6), (1, 5, 6, 2), (3, 4, 8, 7), (1, 3, 7, 5), (2, 6, 8, 4)]
    path.write_text(
        "".join(f"v {a} {b} {c}\n" for a, b, c in v) + "".join(f"f {' '.join(map(str, q))}\n" for q in quads)
    )


def test_voxelized_cube_has_its_volume_and_signed_distance(tmp_path):
    path = tmp_path / "cube.obj"
    _cube_obj(path, 10.0)
    vertices, triangles = read_obj(path)
    assert triangles.shape == (12, 3)
    inside = voxelize(vertices, triangles, origin=np.array([-5.0, -5.0, -5.0]), shape=(21, 21, 21))
    assert inside.sum() == 10**3  # voxel centres at integers: 0.., 9 inside [0, 10)
    sdf = signed_distance(inside)
    assert sdf[10, 10, 10] < -4 and sdf[0, 0, 0] > 4


def test_a_hole_through_the_shape_stays_open(tmp_path):
    """A square ring (20 mm outside, an 8 mm hole along the slices' axis, 10 mm tall), like a vertebra
    round its foramen: the voxelizer must not fill the hole."""
    outer = [(x, y, z) for z in (0, 10) for (x, y) in ((0, 0), (20, 0), (20, 20), (0, 20))]
    inner = [(x, y, z) for z in (0, 10) for (x, y) in ((6, 6), (14, 6), (14, 14), (6, 14))]
    faces = []
    for i in range(4):  # sides, outer and inner; top and bottom rings
        j = (i + 1) % 4
        faces += [(1 + i, 1 + j, 5 + j, 5 + i), (9 + i, 13 + i, 13 + j, 9 + j)]
        faces += [(5 + i, 5 + j, 13 + j, 13 + i), (1 + i, 9 + i, 9 + j, 1 + j)]
    path = tmp_path / "ring.obj"
    path.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in outer + inner)
        + "".join(f"f {a} {b} {c} {d}\n" for a, b, c, d in faces)
    )
    vertices, triangles = read_obj(path)
    inside = voxelize(vertices, triangles, origin=np.array([-2.0, -2.0, -2.0]), shape=(25, 25, 15))
    assert not inside[12, 12, 7]  # the hole (x = y = 10 mm)
    assert inside[4, 4, 7] and inside[19, 12, 7]  # the ring
    assert abs(inside.sum() - (400 - 64) * 10) < 0.05 * (400 - 64) * 10


def test_obj_without_faces_is_refused(tmp_path):
    path = tmp_path / "empty.obj"
    path.write_text("v 0 0 0\n")
    with pytest.raises(BoneScreenError, match=r"empty\.obj"):
        read_obj(path)


def test_templates_hold_the_real_bones():
    templates = load_templates()
    assert {f"L{i}" for i in range(1, 6)} | {"S1", "Pelvis"} <= set(templates)
    # volumes of the Visible Human's bones (cm3): lumbar vertebrae 60-100, the hip bones several hundred
    for name in ("L1", "L3", "L5"):
        assert 60 < (templates[name].sdf < 0).sum() / 1000 < 100
    assert (templates["Pelvis"].sdf < 0).sum() / 1000 > 500


def test_slices_label_vertebrae_and_not_pelvis_ribs_or_femurs():
    rng = np.random.default_rng(5)
    scene = draw_scene(rng)
    acq = Acquisition(2.0, (200, 200), (0.0, 0.0), 2.0, 0.5, 0.0, 10.0, -1024.0)
    # through the femoral heads: bright bone, no vertebra but the lowest sacrum at most
    femur_z = scene.tubes[0].points[0, 2]
    hu, spine = render_slice(scene, acq, float(femur_z), rng)
    assert (hu > 400).sum() > 100
    assert set(np.unique(spine)) <= {0, 7}
    # through L3: a vertebra labelled 3 with bone HU, and the label holds its trabecular interior
    hu, spine = render_slice(scene, acq, scene.levels_z[3], rng)
    assert (spine == 3).sum() * 4.0 > 1000  # mm2
    # through T11: its ribs are bright bone outside the label
    hu, spine = render_slice(scene, acq, scene.levels_z[8], rng)
    assert (spine == 8).any() and ((hu > 300) & (spine == 0)).sum() > 20


def test_a_coarse_pixel_averages_what_it_covers():
    """Partial volume: without kernel and noise, a 3 mm pixel is the mean of the 1.5 mm samples it covers
    (the same samples, texture included, as a 1.5 mm slice over the same field), so a thin cortex reads dim."""
    from bonescreen.phantom.scene import RENDER_PIXEL_MM

    assert RENDER_PIXEL_MM == 1.5  # a 3 mm pixel averages 2 x 2 samples
    scene = draw_scene(np.random.default_rng(5))
    z = scene.levels_z[3]
    fine = Acquisition(1.5, (160, 160), (0.0, 0.0), 1.0, 0.0, 0.0, 0.0, float("nan"))
    coarse = Acquisition(3.0, (80, 80), (0.0, 0.0), 1.0, 0.0, 0.0, 0.0, float("nan"))
    hu1, spine1 = render_slice(scene, fine, z, np.random.default_rng(1))
    hu3, spine3 = render_slice(scene, coarse, z, np.random.default_rng(1))
    assert (spine1 == 3).sum() > 200 and (spine3 == 3).sum() > 50
    block = hu1.reshape(80, 2, 80, 2).mean(axis=(1, 3))
    assert np.abs(hu3 - block).max() <= 1.0  # HU are rounded to integers after the mean
    assert hu3.max() < hu1.max() - 100  # the cortex's brightest pixels are averaged with what lies beside them


def test_osteophytes_grow_from_the_rim_not_over_the_endplate():
    """A body with 6 mm osteophytes: 3 mm above its upper endplate's middle lies the disc, not a plate of
    bone labelled as the vertebra (such a plate made the whole-vertebra label 5 mm taller than the body)."""
    scene = draw_scene(np.random.default_rng(5))
    bone = next(b for b in scene.bones if b.spine_id == 3)
    bone.osteophyte_mm, bone.normal, bone.fracture = 6.0, None, None
    _, high, outline = bone.body.endplates
    i, j = np.unravel_index(np.argmax(outline), outline.shape)  # the middle of the body seen from above
    top = bone.body.origin + np.array([i, j, 0.0])
    top[2] = high[i, j] + 3.0
    x, y, z = bone.centre_world(top)
    acq = Acquisition(0.5, (120, 120), (float(x), float(y)), 0.5, 0.0, 0.0, 0.0, float("nan"))
    hu, spine = render_slice(scene, acq, float(z), np.random.default_rng(0))
    assert spine[60, 60] == 0 and hu[60, 60] < 200
    # the rim's spurs are still drawn: on the same slice, more bone labelled L3 than without them
    bone.osteophyte_mm = 0.0
    assert (spine == 3).sum() > (render_slice(scene, acq, float(z), np.random.default_rng(0))[1] == 3).sum() + 20


def test_texture_grain_is_in_mm_and_fades_at_coarse_pixels():
    from bonescreen.phantom.scene import TEXTURE_GRAIN_MM, _texture

    rng = np.random.default_rng(0)
    assert _texture(rng, (300, 300), 60.0, 0.5).std() == pytest.approx(60.0, rel=0.01)
    assert _texture(rng, (300, 300), 60.0, 3.0).std() == pytest.approx(60.0 * TEXTURE_GRAIN_MM / 3.0, rel=0.01)
    # the same grain in mm at two pixel sizes: neighbours 1 mm apart correlate alike
    a, b = _texture(rng, (600, 600), 1.0, 0.25), _texture(rng, (300, 300), 1.0, 0.5)
    ca = np.corrcoef(a[:, :-4].ravel(), a[:, 4:].ravel())[0, 1]
    cb = np.corrcoef(b[:, :-2].ravel(), b[:, 2:].ravel())[0, 1]
    assert ca == pytest.approx(cb, abs=0.03)


def test_training_slices_on_the_network_grid(tmp_path):
    images, marks, info = make_scene_slices(11, 0, count=2)
    assert images.shape == marks.shape == (2, NET_SIZE, NET_SIZE) and images.dtype == np.uint8
    assert len(info) == 2 and {"z_mm", "spacing_mm", "thickness_mm", "fov_mm", "ids"} <= set(info[0])
    paths = write_slice_shards(tmp_path, scenes=2, seed=11, per_scene=1, scenes_per_shard=1)
    assert len(paths) == 2
    with np.load(paths[0]) as z:
        assert z["images"].shape == (1, NET_SIZE, NET_SIZE) and len(json.loads(str(z["info"]))) == 1
    # resumable: existing shards are kept, not rewritten
    mtime = next(iter(tmp_path.glob("slices_*.npz"))).stat().st_mtime
    write_slice_shards(tmp_path, scenes=2, seed=11, per_scene=1, scenes_per_shard=1)
    assert next(iter(tmp_path.glob("slices_*.npz"))).stat().st_mtime == mtime


def test_realistic_case_has_ground_truth_and_class():
    case = make_realistic_case(3, 1, RealisticConfig(extent="lumbar", slice_mm=4.0, pixel_mm=3.0))
    assert case.hu.dtype == np.int16 and case.hu.shape == case.spine.shape == case.levels.shape
    assert set(np.unique(case.levels)) == {0, 1, 2, 3, 4, 5}
    assert 7 in case.meta["spine_ids"]  # the sacrum is in view
    assert (case.body > 0).sum() < (case.levels > 0).sum()
    for name, hu in case.trabecular_hu.items():
        assert 20 < hu < 330, name
    with pytest.raises(BoneScreenError, match="extent"):
        RealisticConfig(extent="whole-body")


def test_context_slices_for_the_2p5d_msnet(tmp_path):
    from bonescreen.data import SliceShards
    from bonescreen.errors import BoneScreenError
    from bonescreen.phantom.slices import CONTEXT_RANGE_MM

    images, _, info, around = make_scene_slices(11, 0, count=1, context=True)
    assert around.shape == (1, 2, NET_SIZE, NET_SIZE) and around.dtype == np.uint8
    assert CONTEXT_RANGE_MM[0] <= info[0]["context_mm"] <= CONTEXT_RANGE_MM[1]
    # the neighbours are other slices of the same patient and acquisition: alike, not equal
    for side in around[0]:
        assert 0 < np.abs(side.astype(int) - images[0]).mean() < 40
    # a shard made with context gives three-channel samples; one made without it is refused by name
    write_slice_shards(tmp_path / "ctx", scenes=1, seed=11, per_scene=1, context=True)
    x, y = SliceShards([tmp_path / "ctx"], augment=True, context=True)[0]
    assert x.shape == (3, NET_SIZE, NET_SIZE) and y.shape == (1, NET_SIZE, NET_SIZE)
    write_slice_shards(tmp_path / "flat", scenes=1, seed=11, per_scene=1)
    with pytest.raises(BoneScreenError, match="--context") as err:
        SliceShards([tmp_path / "flat"], context=True)
    assert "slices_11_00000.npz" in str(err.value)


def test_uncertain_mark_holds_the_disc_and_the_slab_edges_not_the_body():
    """MS-Net is not asked what one slice cannot tell: the disc between L3 and L4 (at its middle) and, on a
    thick slice through an endplate, the body part in and part out of the slab; the middle of L3 is decided."""
    from bonescreen.phantom.scene import uncertain_mark

    scene = draw_scene(np.random.default_rng(5))
    acq = Acquisition(1.0, (160, 160), (0.0, 0.0), 1.0, 0.0, 0.0, 0.0, float("nan"))
    # through the middle of L3: its label is decided almost everywhere
    _, spine = render_slice(scene, acq, scene.levels_z[3], np.random.default_rng(0))
    unsure = uncertain_mark(scene, acq, scene.levels_z[3])
    assert (spine == 3).sum() > 300 and (unsure & (spine == 3)).sum() < 0.1 * (spine == 3).sum()
    # the disc's middle: the slice between the two bodies with the least body in it
    zs = np.linspace(scene.levels_z[4], scene.levels_z[3], 31)
    body_mm2 = [(render_slice(scene, acq, z, np.random.default_rng(0), with_body=True)[2] > 0).sum() for z in zs]
    k = int(np.argmin(body_mm2))
    _, spine = render_slice(scene, acq, zs[k], np.random.default_rng(0))
    unsure = uncertain_mark(scene, acq, zs[k])
    assert (unsure & (spine == 0)).sum() > 500  # mm2 of disc
    # a 5 mm slab centred where the upper body begins (half its section in view): the slab's edges disagree
    z_end = zs[k + int(np.argmax(np.array(body_mm2[k:]) > 0.5 * max(body_mm2)))]
    thick = Acquisition(1.0, (160, 160), (0.0, 0.0), 5.0, 0.0, 0.0, 0.0, float("nan"))
    assert uncertain_mark(scene, thick, z_end).sum() > uncertain_mark(scene, acq, z_end).sum() + 200


def test_training_marks_leave_the_uncertain_pixels_to_the_loss():
    from bonescreen.preprocess import MARK_IGNORE

    _, marks, _ = make_scene_slices(21, 3, count=6)
    assert set(np.unique(marks)) == {0, 1, MARK_IGNORE}
    assert (marks == 1).sum() > (marks == MARK_IGNORE).sum() > 0
