"""The procedural MANO-format hand: topology, determinism, regressor, skinning, shape and pose
spaces, size, fingertips, the thumb, posing without tearing, the frame, and the left mirror."""
import numpy as np
import pytest
import smplx
import torch
import trimesh
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from smplx.utils import Struct

from handssca.hand import joints as J
from handssca.hand import model_data, pose_space
from handssca.hand import procedural as P
from handssca.hand.meshing import boundary_loops, edges_of
from handssca.hand.model import load_hand_model
from handssca.hand.model_data import mirror_mano_data, procedural_mano_data
from handssca.hand.pose_space import NAMED_POSES, named_pose, sample_articulation

TIP = dict(zip(P.TIP_ORDER, J.FINGERTIP_VERTICES["manopth"]))


@pytest.fixture(scope="module")
def data():
    return procedural_mano_data()


@pytest.fixture(scope="module")
def absolute_model():
    """The layer with absolute articulation (flat_hand_mean=True), as the pose space is written."""
    return load_hand_model(kind="procedural", flat_hand_mean=True)


def _pose(model, articulation, betas=None):
    a = torch.as_tensor(np.atleast_2d(articulation), dtype=torch.float32)
    B = len(a)
    betas = torch.zeros(B, 10) if betas is None else torch.as_tensor(betas, dtype=torch.float32)
    return model(betas=betas, global_orient=torch.zeros(B, 3), hand_pose=a).vertices.numpy()


# ----------------------------------------------------------------------------------------------
def test_counts_and_disk_topology(data):
    v, f = data["v_template"], data["f"]
    assert v.shape == (778, 3) and f.shape == (1538, 3) and f.dtype == np.int64
    assert f.min() == 0 and f.max() == 777 and len(np.unique(f)) == 778
    und = np.unique(np.sort(edges_of(f), axis=1), axis=0)
    assert len(v) - len(und) + len(f) == 1  # Euler characteristic of a disk
    # manifold and consistently oriented: every directed edge once, every edge in <= 2 faces
    he = edges_of(f)
    assert len(np.unique(he, axis=0)) == len(he)
    _, counts = np.unique(np.sort(he, axis=1), axis=0, return_counts=True)
    assert counts.max() == 2 and (counts == 1).sum() == 16
    assert not np.any(f[:, 0] == f[:, 1]) and not np.any(f[:, 1] == f[:, 2]) and not np.any(f[:, 0] == f[:, 2])


def test_one_open_wrist_loop_and_outward_faces(data):
    v, f = data["v_template"], data["f"]
    loops = boundary_loops(f)
    assert len(loops) == 1 and len(loops[0]) == 16
    loop = v[loops[0]]
    wrist = (data["J_regressor"] @ v)[0]
    assert np.all(loop[:, 0] > wrist[0])  # proximal of the wrist joint, fingers point to -x
    assert np.ptp(loop[:, 0]) < 1e-3      # a planar cut
    # capped with a fan, the surface is closed, consistently wound and encloses positive volume
    c = len(v)
    cap = [(loops[0][i], c, loops[0][(i + 1) % 16]) for i in range(16)]
    mesh = trimesh.Trimesh(np.vstack([v, loop.mean(0)]), np.vstack([f, cap]), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0
    assert 2e-4 < mesh.volume < 6e-4  # an adult hand is about 0.3-0.5 litre


def test_generation_is_deterministic():
    # rebuild from scratch (the in-process caches cleared) and compare bytes
    def fresh():
        for fn in (P._structure, pose_space.pose_pca, pose_space.joint_axes, model_data._procedural_right):
            fn.cache_clear()
        return model_data._procedural_right()
    a, b = fresh(), fresh()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].tobytes() == b[k].tobytes(), k
        elif hasattr(a[k], "toarray"):
            assert a[k].toarray().tobytes() == b[k].toarray().tobytes(), k


def test_regressor_and_weights_are_partitions_of_unity(data):
    R = data["J_regressor"].toarray()
    W = data["weights"]
    assert R.shape == (16, 778) and W.shape == (778, 16)
    np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(W.sum(1), 1.0, atol=1e-12)
    assert R.min() >= 0 and W.min() >= 0
    np.testing.assert_allclose(data["J"], R @ data["v_template"])
    # each joint is regressed from vertices around it, not from all of them
    assert np.all((R > 0).sum(1) < 60)


def test_skinning_weights_are_smooth_and_follow_the_tree(data):
    W, f = data["weights"], data["f"]
    e = np.unique(np.sort(edges_of(f), axis=1), axis=0)
    # joints are blended over several rings, not cut: no edge takes more than 70 % of a joint's
    # turn (a one-bone-per-vertex skin has jumps of 100 %), and every joint has blended vertices
    assert np.abs(W[e[:, 0]] - W[e[:, 1]]).max() < 0.7
    for j in range(1, 16):
        assert ((W[:, j] > 0.2) & (W[:, j] < 0.8)).sum() >= 10, j
    # each fingertip moves with its last bone, the wrist loop with the root
    for digit, tip in TIP.items():
        assert W[tip, P.DIGIT_JOINTS[digit][2]] > 0.95
    assert np.all(W[boundary_loops(f)[0], 0] > 0.95)
    # a vertex is never bound to two fingers' distal bones at once
    distal = [P.DIGIT_JOINTS[d][2] for d in P.DIGIT_JOINTS]
    assert ((W[:, distal] > 0).sum(1) <= 1).all()


def test_pose_space_components_are_orthonormal_and_mean_is_curled(data):
    C, mean = data["hands_components"], data["hands_mean"]
    assert C.shape == (45, 45) and mean.shape == (45,)
    np.testing.assert_allclose(C @ C.T, np.eye(45), atol=1e-10)
    _, _, var = pose_space.pose_pca()
    assert np.all(np.diff(var) <= 1e-12) and var[0] > 10 * var[-1]
    # relaxed, slightly curled: every finger joint flexes (about +z) by 20-60 degrees on average
    flex = mean.reshape(15, 3)[:12, 2]
    assert np.all((np.radians(20) < flex) & (flex < np.radians(60)))
    # the samples stay within the documented limits: PIP flexion 0..110 degrees
    X = sample_articulation(500, 1).reshape(500, 15, 3)
    pip = np.linalg.norm(X[:, [1, 4, 7, 10]], axis=-1)
    assert pip.max() <= np.radians(110) + 1e-9


def test_posedirs_are_zero_and_shapedirs_give_plausible_hands(data, absolute_model):
    assert data["posedirs"].shape == (778, 3, 135) and not data["posedirs"].any()
    S = data["shapedirs"]
    assert S.shape == (778, 3, 10)
    assert np.linalg.matrix_rank(S.reshape(-1, 10), tol=1e-6) == 10
    betas = np.random.default_rng(0).standard_normal((64, 10))
    V = _pose(absolute_model, np.zeros((64, 45)), betas)
    Jt = np.einsum("jv,bvc->bjc", data["J_regressor"].toarray(), V)
    length = np.linalg.norm(V[:, TIP["middle"]] - Jt[:, 0], axis=1)
    assert 0.15 < length.min() and length.max() < 0.23 and length.std() > 0.005
    # beta 0 is the overall size: +1 makes a larger hand
    big = _pose(absolute_model, np.zeros((1, 45)), np.eye(10)[:1])[0]
    assert np.ptp(big[:, 0]) > 1.04 * np.ptp(data["v_template"][:, 0])


def test_size_five_fingers_and_frame(data):
    v = data["v_template"]
    Jt = data["J"]
    hand_length = np.linalg.norm(v[TIP["middle"]] - Jt[0])
    assert 0.18 <= hand_length <= 0.20
    # fingers point along -x, the middle finger is the longest, the little finger the shortest
    for d in ("index", "middle", "ring", "pinky"):
        assert v[TIP[d], 0] < Jt[P.DIGIT_JOINTS[d][0], 0] - 0.05
    reach = {d: Jt[0, 0] - v[TIP[d], 0] for d in ("index", "middle", "ring", "pinky")}
    assert max(reach, key=reach.get) == "middle" and min(reach, key=reach.get) == "pinky"
    # right hand: thumb and index on +z, little finger on -z; the thumb sits on the palm side (-y)
    assert v[TIP["thumb"], 2] > v[TIP["index"], 2] > v[TIP["middle"], 2] > v[TIP["ring"], 2] > v[TIP["pinky"], 2]
    assert Jt[14, 1] < Jt[0, 1] - 0.005
    # each tip is the vertex farthest from its last joint
    for d, tip in TIP.items():
        j3 = P.DIGIT_JOINTS[d][2]
        assert np.argmax(np.linalg.norm(v - Jt[j3], axis=1)[data["weights"][:, j3] > 0.5]) == \
            list(np.flatnonzero(data["weights"][:, j3] > 0.5)).index(tip)


def test_fingertip_conventions_are_a_few_millimetres_apart(data):
    v = data["v_template"]
    for conv in ("freihand", "ho3d"):
        for k, (a, b) in enumerate(zip(J.FINGERTIP_VERTICES[conv], J.FINGERTIP_VERTICES["manopth"])):
            d = np.linalg.norm(v[a] - v[b])
            if a == b:
                assert d == 0
            else:
                assert 0.001 < d < 0.006, (conv, k, d)
                # on the same fingertip: the same distal bone
                assert data["weights"][a].argmax() == data["weights"][b].argmax()


def test_pose_signs_follow_mano(absolute_model):
    base = _pose(absolute_model, np.zeros(45))[0]

    def moved(joint, aa, tip):
        a = np.zeros(45)
        a[3 * (joint - 1):3 * joint] = aa
        return _pose(absolute_model, a)[0][tip] - base[tip]

    assert moved(4, [0, 0, 0.5], TIP["middle"])[1] < -0.03    # +z curls towards the palm (-y)
    assert moved(1, [0, 0.3, 0], TIP["index"])[2] > 0.01      # +y spreads towards the thumb (+z)
    flex = pose_space.joint_axes()["thumb"]["flex"]
    assert flex[0] > 0.5 and flex[2] > 0.3
    assert moved(15, 0.6 * flex, TIP["thumb"])[1] < -0.005    # thumb flexion: towards the palm
    assert moved(13, [0.5, 0, 0], TIP["thumb"])[1] < -0.02    # CMC about +x: in front of the palm


def test_thumb_opposes_in_a_pinch(absolute_model):
    V = _pose(absolute_model, np.stack([named_pose("flat"), named_pose("pinch")]))
    d = np.linalg.norm(V[:, TIP["thumb"]] - V[:, TIP["index"]], axis=1)
    assert d[0] > 0.08 and d[1] < 0.015


def _inverted_faces_and_stretch(model, articulation):
    """Faces whose normal turned against the skinning's own local transform, and edge ratios."""
    a = torch.as_tensor(articulation, dtype=torch.float32)
    B = len(a)
    V = model(betas=torch.zeros(B, 10), global_orient=torch.zeros(B, 3), hand_pose=a).vertices
    F = torch.as_tensor(model.faces)
    full = torch.cat([torch.zeros(B, 3), a + model.pose_mean[3:]], 1)
    rot = batch_rodrigues(full.reshape(-1, 3)).reshape(B, 16, 3, 3)
    joints = (model.J_regressor @ model.v_template)[None].expand(B, -1, -1)
    _, A = batch_rigid_transform(rot, joints, model.parents)
    T = torch.einsum("vj,bjxy->bvxy", model.lbs_weights, A)[..., :3, :3][:, F].mean(2)
    cof = torch.stack([torch.cross(T[..., :, 1], T[..., :, 2], dim=-1), torch.cross(T[..., :, 2], T[..., :, 0], dim=-1),
                       torch.cross(T[..., :, 0], T[..., :, 1], dim=-1)], -1)  # normals map by the cofactor

    def normals(X):
        return torch.cross(X[:, F[:, 1]] - X[:, F[:, 0]], X[:, F[:, 2]] - X[:, F[:, 0]], dim=-1)

    expected = torch.einsum("bfij,fj->bfi", cof, normals(model.v_template[None])[0])
    inverted = ((expected * normals(V)).sum(-1) <= 0).sum(1)
    E = torch.as_tensor(edges_of(model.faces))

    def lengths(X):
        return (X[:, E[:, 0]] - X[:, E[:, 1]]).norm(dim=-1)

    return inverted.numpy(), (lengths(V) / lengths(model.v_template[None])).numpy()


def test_natural_poses_bend_without_tearing(absolute_model):
    poses = np.concatenate([np.stack([named_pose(n) for n in ["relaxed"] + sorted(NAMED_POSES)]),
                            sample_articulation(64, 123)])
    inverted, ratio = _inverted_faces_and_stretch(absolute_model, poses)
    assert inverted.max() == 0
    assert ratio.min() > 0.2 and ratio.max() < 2.2
    # and the flat hand is the template itself
    np.testing.assert_allclose(_pose(absolute_model, np.zeros(45))[0], absolute_model.v_template.numpy(), atol=1e-7)


def test_smplx_mano_loads_the_data_as_is(data):
    m = smplx.MANO("", data_struct=Struct(**data), use_pca=True, num_pca_comps=12, flat_hand_mean=False)
    out = m(betas=torch.zeros(1, 10), global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 12))
    assert out.vertices.shape == (1, 778, 3)
    # zero PCA coefficients with flat_hand_mean=False is the mean (relaxed) hand
    rel = _pose(load_hand_model(kind="procedural", flat_hand_mean=True), named_pose("relaxed"))[0]
    np.testing.assert_allclose(out.vertices[0].detach().numpy(), rel, atol=1e-6)


def test_left_hand_is_the_exact_mirror(data):
    left = procedural_mano_data(is_rhand=False)
    np.testing.assert_array_equal(left["v_template"], data["v_template"] * [-1, 1, 1])
    np.testing.assert_array_equal(left["f"], data["f"][:, [0, 2, 1]])
    np.testing.assert_array_equal(mirror_mano_data(left)["v_template"], data["v_template"])
    r = load_hand_model(kind="procedural")
    lm = load_hand_model(kind="procedural", is_rhand=False)
    assert not lm.is_rhand and lm.kind == "procedural"
    g = torch.Generator().manual_seed(2)
    pose, beta = 0.4 * torch.randn(3, 48, generator=g), torch.randn(3, 10, generator=g)
    flip = torch.tensor([1.0, -1.0, -1.0]).repeat(16)  # a mirrored rotation: (a, b, c) -> (a, -b, -c)
    vr = r(betas=beta, global_orient=pose[:, :3], hand_pose=pose[:, 3:]).vertices
    pl = pose * flip
    vl = lm(betas=beta, global_orient=pl[:, :3], hand_pose=pl[:, 3:]).vertices
    torch.testing.assert_close(vl, vr * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-6, rtol=0)
    # the left mesh's faces still face outwards
    cap_free = trimesh.Trimesh(lm.v_template.numpy(), lm.faces, process=False)
    assert cap_free.is_winding_consistent
    n = cap_free.face_normals
    c = cap_free.triangles_center - cap_free.vertices.mean(0)
    assert (n * c).sum(1).mean() > 0


def test_mirror_carries_pose_correctives_and_pose_space(data):
    """With non-zero pose correctives (as MANO has), posing the mirror with the mirrored pose gives
    the mirror of the posed hand."""
    from handssca.hand.model import HandModel
    rich = dict(data)
    rich["posedirs"] = 1e-3 * np.random.default_rng(3).standard_normal((778, 3, 135))
    right = HandModel(rich, kind="procedural", source="test")
    left = HandModel(mirror_mano_data(rich), kind="procedural", source="test", is_rhand=False)
    g = torch.Generator().manual_seed(4)
    pose, beta = 0.5 * torch.randn(2, 48, generator=g), torch.randn(2, 10, generator=g)
    flip = torch.tensor([1.0, -1.0, -1.0]).repeat(16)
    vr = right(betas=beta, global_orient=pose[:, :3], hand_pose=pose[:, 3:]).vertices
    pl = pose * flip
    vl = left(betas=beta, global_orient=pl[:, :3], hand_pose=pl[:, 3:]).vertices
    torch.testing.assert_close(vl, vr * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-6, rtol=0)
