"""HandLayer (the network's MANO layer) and the pose and frame helpers of the datasets."""
import numpy as np
import pytest
import torch

from handssca.hand import (HandLayer, absolute_to_offset, change_frame, load_hand_model, offset_to_absolute,
                           pca_to_axis_angle, root_joint)
from handssca.hand import joints as J
from handssca.hand.model import ENV_MANO_DIR, HandModel
from handssca.hand.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module")
def model():
    return load_hand_model(kind="procedural")


@pytest.fixture(scope="module")
def layer(model):
    return HandLayer(model)


def _inputs(B=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (0.4 * torch.randn(B, 48, generator=g)).to(dtype), torch.randn(B, 10, generator=g).to(dtype), \
        (0.1 * torch.randn(B, 3, generator=g)).to(dtype)


def test_defaults_and_no_learnable_parameters(model, layer, monkeypatch, tmp_path):
    assert isinstance(model, HandModel) and model.kind == "procedural"
    assert not model.use_pca and not model.flat_hand_mean
    assert model.faces.shape == (1538, 3) and model.faces.dtype == np.int64
    assert sum(p.numel() for p in model.parameters()) == 0
    assert sum(p.numel() for p in layer.parameters()) == 0
    assert layer.state_dict() == {}  # model data never travels with a checkpoint
    assert layer.kind == "procedural" and layer.faces.shape == (1538, 3)
    # overriding smplx's options works
    pca = load_hand_model(kind="procedural", use_pca=True, num_pca_comps=6, flat_hand_mean=True)
    assert pca.use_pca and pca.flat_hand_mean and pca.hand_components.shape == (6, 45)
    # without MANO anywhere, the automatic choice is the procedural hand
    monkeypatch.delenv(ENV_MANO_DIR, raising=False)
    monkeypatch.setattr("handssca.hand.model.REPO_MANO_DIR", tmp_path)
    assert load_hand_model().kind == "procedural"


def test_output_shapes_units_and_translation(layer):
    pose, shape, transl = _inputs()
    out = layer(pose, shape)
    assert out["vertices"].shape == (4, 778, 3)
    assert out["joints"].shape == (4, 21, 3) and out["joints16"].shape == (4, 16, 3)
    assert 0.15 < (out["vertices"][0].max(0).values - out["vertices"][0].min(0).values).max() < 0.3  # metres
    moved = layer(pose, shape, transl)
    torch.testing.assert_close(moved["vertices"], out["vertices"] + transl[:, None])
    torch.testing.assert_close(moved["joints"], out["joints"] + transl[:, None])


def test_matches_smplx_mano_with_the_same_convention(model, layer):
    pose, shape, transl = _inputs(seed=1)
    ref = model(betas=shape, global_orient=pose[:, :3], hand_pose=pose[:, 3:], transl=transl)
    out = layer(pose, shape, transl)
    torch.testing.assert_close(out["vertices"], ref.vertices)
    torch.testing.assert_close(out["joints16"], ref.joints[:, :16])


def test_joint_order_is_freihand_with_the_chosen_fingertips(model, layer):
    pose, shape, _ = _inputs(seed=2)
    out = layer(pose, shape)
    V, joints, j16 = out["vertices"], out["joints"], out["joints16"]
    tips = J.FINGERTIP_VERTICES["manopth"]
    names = J.FREIHAND_JOINT_NAMES
    torch.testing.assert_close(joints[:, names.index("T4")], V[:, tips[0]])  # F-order joint 4
    torch.testing.assert_close(joints[:, names.index("I4")], V[:, tips[1]])
    torch.testing.assert_close(joints[:, names.index("P4")], V[:, tips[4]])
    torch.testing.assert_close(joints[:, 0], j16[:, 0])
    torch.testing.assert_close(joints[:, names.index("T1")], j16[:, J.MANO_JOINT_NAMES.index("thumb1")])
    torch.testing.assert_close(joints[:, names.index("R3")], j16[:, J.MANO_JOINT_NAMES.index("ring3")])
    ho3d = HandLayer(model, fingertips="ho3d")(pose, shape)["joints"]
    torch.testing.assert_close(ho3d[:, names.index("I4")], V[:, J.FINGERTIP_VERTICES["ho3d"][1]])
    d = (ho3d - joints).norm(dim=-1)
    assert d[:, [4, 8, 16, 20]].max() > 0.001 and d[:, 12].max() == 0  # middle tip 444 in both
    with pytest.raises(ValueError, match="fingertip convention"):
        HandLayer(model, fingertips="openpose")
    with pytest.raises(ValueError, match="5 vertex ids"):
        HandLayer(model, fingertips=(1, 2, 3))


def test_rotation_matrix_and_16x3_inputs_mean_the_same_pose(layer):
    pose, shape, _ = _inputs(seed=3)
    ref = layer(pose, shape)["vertices"]
    R = axis_angle_to_matrix(pose.view(4, 16, 3))
    torch.testing.assert_close(layer(R, shape)["vertices"], ref, atol=2e-6, rtol=0)
    torch.testing.assert_close(layer(pose.view(4, 16, 3), shape)["vertices"], ref)


def test_gradients_reach_pose_and_shape_in_float64(layer):
    pose, shape, transl = _inputs(B=2, seed=4, dtype=torch.float64)
    pose.requires_grad_(True)
    shape.requires_grad_(True)
    out = layer(pose, shape, transl)
    assert out["vertices"].dtype == torch.float64
    (out["joints"].square().sum() + out["vertices"].sum()).backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    assert torch.isfinite(shape.grad).all() and shape.grad.abs().sum() > 0


@pytest.mark.parametrize("pose_shape, shape_shape, transl_shape, match", [
    ((4, 45), (4, 10), None, r"\(B, 48\)"),
    ((4, 16, 3, 4), (4, 10), None, r"\(B, 16, 3, 3\)"),
    ((4, 48), (3, 10), None, r"\(B, 10\)"),
    ((4, 48), (4, 9), None, r"\(B, 10\)"),
    ((4, 48), (4, 10), (4, 2), r"\(B, 3\)"),
])
def test_bad_shapes_raise_value_errors_naming_the_expected_shapes(layer, pose_shape, shape_shape, transl_shape,
                                                                  match):
    transl = None if transl_shape is None else torch.zeros(transl_shape)
    with pytest.raises(ValueError, match=match):
        layer(torch.zeros(pose_shape), torch.zeros(shape_shape), transl)
    with pytest.raises(ValueError, match="tensor"):
        layer(np.zeros((4, 48)), torch.zeros(4, 10))


def test_mean_offsets_and_pca_conversions(model, layer):
    pose, shape, _ = _inputs(seed=5)
    absolute = offset_to_absolute(pose, model)
    torch.testing.assert_close(absolute[:, 3:], pose[:, 3:] + model.hands_mean_data)
    torch.testing.assert_close(absolute_to_offset(absolute, layer), pose)
    # an absolute pose drives flat_hand_mean=True MANO exactly as its offset drives the layer
    flat = load_hand_model(kind="procedural", flat_hand_mean=True)
    a = flat(betas=shape, global_orient=absolute[:, :3], hand_pose=absolute[:, 3:]).vertices
    torch.testing.assert_close(a, layer(pose, shape)["vertices"], atol=1e-6, rtol=0)
    # DexYCB: 3 global values + 45 PCA coefficients (flat_hand_mean=False) -> the layer's pose
    g = torch.Generator().manual_seed(6)
    coeffs = torch.randn(4, 48, generator=g)
    aa = pca_to_axis_angle(coeffs, model)
    pca_mano = load_hand_model(kind="procedural", use_pca=True, num_pca_comps=45)
    pca_mano.use_pca = True  # smplx switches PCA off for 45 components; force the projection
    pca_mano.register_buffer("hand_components", model.hands_components_data.clone())
    ref = pca_mano(betas=shape, global_orient=coeffs[:, :3], hand_pose=coeffs[:, 3:]).vertices
    torch.testing.assert_close(layer(aa, shape)["vertices"], ref, atol=1e-5, rtol=0)
    # fewer coefficients use the leading components; numpy in, numpy out
    few = pca_to_axis_angle(np.ones((2, 6)), model)
    assert isinstance(few, np.ndarray) and few.shape == (2, 45)
    np.testing.assert_allclose(few[0], model.hands_components_data[:6].sum(0).double().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="k <= 45"):
        pca_to_axis_angle(torch.zeros(2, 46), model)


def test_root_joint_is_the_shaped_wrist(model, layer):
    _, shape, _ = _inputs(seed=7)
    j0 = root_joint(shape, model)
    torch.testing.assert_close(j0, layer(torch.zeros(4, 48), shape)["joints16"][:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(root_joint(shape, layer), j0)
    assert (j0 - j0[0]).abs().max() > 1e-4  # it moves with the shape


@pytest.mark.parametrize("A", [np.diag([1.0, -1.0, -1.0]), None])
def test_change_frame_moves_the_mesh_rigidly(model, layer, A):
    """HO3D's OpenGL -> OpenCV flip, and a general rotation with a shift
    (book/datasets_and_metrics.md, section OpenGL and OpenCV frames)."""
    pose, shape, transl = _inputs(seed=8)
    if A is None:
        A = axis_angle_to_matrix(torch.tensor([0.3, -1.2, 2.0])).double().numpy()
        c = np.array([0.1, -0.2, 0.5])
    else:
        c = np.zeros(3)
    go, t = change_frame(pose[:, :3], transl, shape, model, torch.as_tensor(A, dtype=torch.float32),
                         torch.as_tensor(c, dtype=torch.float32))
    before = layer(pose, shape, transl)["vertices"]
    after = layer(torch.cat([go, pose[:, 3:]], 1), shape, t)["vertices"]
    expected = before @ torch.as_tensor(A, dtype=torch.float32).T + torch.as_tensor(c, dtype=torch.float32)
    torch.testing.assert_close(after, expected, atol=2e-6, rtol=0)
    # numpy in, numpy out
    go_np, t_np = change_frame(pose[:, :3].numpy(), transl.numpy(), shape.numpy(), model, A, c)
    np.testing.assert_allclose(t_np, t.numpy(), atol=1e-6)
    np.testing.assert_allclose(go_np, go.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="proper rotation"):
        change_frame(pose[:, :3], transl, shape, model, torch.diag(torch.tensor([-1.0, 1.0, 1.0])))


def test_real_left_mano_uses_manopths_left_middle_tip(model):
    assert model.fingertip_vertices("manopth") == J.FINGERTIP_VERTICES["manopth"]
    left = HandModel.__new__(HandModel)  # only the attributes fingertip_vertices reads
    torch.nn.Module.__init__(left)
    left.kind, left.is_rhand, left.mirrored = "mano", False, False
    assert left.fingertip_vertices("manopth")[2] == 445
    left.mirrored = True  # the mirror of MANO_RIGHT keeps the right hand's numbering
    assert left.fingertip_vertices("manopth")[2] == 444
