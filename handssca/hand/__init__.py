"""The hand model: MANO (when the user has it) or a procedural MANO-format hand; joint orders.

The network's last stage (the paper's Figure 2, "MANO") turns pose and shape parameters into a
mesh and joints. MANO's files are licensed separately and never shipped; without them the package
uses a procedural right hand built by code in MANO's format (778 vertices, 16 joints, the same
frame and pose conventions), so every chapter runs. ``load_hand_model().kind`` says which one is
in use; ``data/README.md`` says where to put MANO.

Glossary (name in the code -> symbol of the paper and of MANO):

======================  ===========================================================================
``pose``, ``theta``     theta, the pose: 16 axis-angle rotations (48 values), the global one first,
                        the 15 articulations as offsets from ``hands_mean`` (flat_hand_mean=False)
``shape``, ``betas``    beta, the 10 shape coefficients
``transl``              t, a translation added after posing
``v_template``          T-bar, the template mesh (flat hand, zero pose): (778, 3)
``shapedirs``           S, shape blend shapes: T-bar + S beta is the shaped mesh
``posedirs``            P, pose-corrective blend shapes (zero for the procedural hand)
``J_regressor``         the joint regressor: J = J_regressor (T-bar + S beta), (16, 778)
``joints16``            J, MANO's 16 joints in MANO's order (``MANO_JOINT_NAMES``)
``joints``              the 21 joints in the F (FreiHAND) order: J plus 5 fingertip vertices
``vertices``            V = M(theta, beta), the posed mesh: (B, 778, 3), metres
``faces``               the 1538 triangles of the mesh
``hands_mean``          the mean articulation (45,); ``hands_components`` its PCA axes (45, 45)
``lbs_weights``         W, the skinning weights (778, 16)
======================  ===========================================================================

Modules: :mod:`.joints` (joint orders, fingertip vertices), :mod:`.rotations` (axis-angle,
matrices, quaternions, 6D), :mod:`.model` (``load_hand_model``), :mod:`.layer` (``HandLayer`` and
pose/frame helpers), :mod:`.mano_file` (reading MANO's pickle without chumpy),
:mod:`.procedural` and :mod:`.pose_space` (the procedural hand and its pose distribution).
The light modules (joints) import eagerly; the rest load on first use.
"""
from __future__ import annotations

import importlib

from .joints import (FINGERTIP_VERTICES, FREIHAND_JOINT_NAMES, FREIHAND_PARENTS, FREIHAND_TO_HO3D,
                     HO3D_JOINT_NAMES, HO3D_TO_FREIHAND, MANO_JOINT_NAMES, MANO_PARENTS, OPENGL_TO_OPENCV,
                     mano_to_freihand)

_LAZY = {
    "load_hand_model": "model", "HandModel": "model", "resolve_mano_path": "model",
    "HandLayer": "layer", "pca_to_axis_angle": "layer", "absolute_to_offset": "layer",
    "offset_to_absolute": "layer", "root_joint": "layer", "change_frame": "layer",
    "ManoFileError": "mano_file", "load_mano_data": "mano_file",
    "procedural_mano_data": "model_data", "mirror_mano_data": "model_data",
    "named_pose": "pose_space", "sample_articulation": "pose_space", "NAMED_POSES": "pose_space",
    "axis_angle_to_matrix": "rotations", "matrix_to_axis_angle": "rotations",
    "rot6d_to_matrix": "rotations", "matrix_to_rot6d": "rotations",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(list(_LAZY) + [
    "FINGERTIP_VERTICES", "FREIHAND_JOINT_NAMES", "FREIHAND_PARENTS", "FREIHAND_TO_HO3D", "HO3D_JOINT_NAMES",
    "HO3D_TO_FREIHAND", "MANO_JOINT_NAMES", "MANO_PARENTS", "OPENGL_TO_OPENCV", "mano_to_freihand"])
