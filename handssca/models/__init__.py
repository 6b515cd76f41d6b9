"""The HandSSCA network (the paper's Fig. 2), its Table 6 variants and the loss of Eq. 4.

Modules: :mod:`.backbone` (ResNet-50 with torchvision's names + the reduced FPN, and the
light backbone of the CPU profiles), :mod:`.ssca` (the SSCA block and the attention variants),
:mod:`.regressor` (heatmap head, encoder, MANO head), :mod:`.network` (the whole network,
:func:`build_model`, the one constructor), :mod:`.loss` (Eq. 4), :mod:`.hands3c` (the authors'
released weights: :func:`import_hands3c`, :func:`export_hands3c`), :mod:`.info`
(``python -m handssca info``).

Glossary (paper symbol -> name in the code):

===================  ==========================================================================
I                    ``images``: the input crop, (B, 3, S, S), ImageNet-normalised
F                    ``features``: the pooled FPN map, (B, C=256, S/8, S/8), before attention
H                    ``attended``: the hand features after the SSCA block, same shape as F
HM                   ``heatmaps``: the 21 joint heatmaps, (B, 21, S/8, S/8)
J2d                  ``joints2d``: soft-argmax of HM, (B, 21, 2), normalised uv in [0, 1]
theta (θ)            ``pose``: MANO pose, 16 axis-angle rotations, (B, 48), flat_hand_mean=False;
                     ``rotmats``: the same as matrices, (B, 16, 3, 3)
beta (β)             ``shape``: MANO shape coefficients, (B, 10)
J (J3d)              ``joints``: 3D joints, (B, 21, 3), F (FreiHAND) order, metres
V                    ``vertices``: the mesh, (B, 778, 3), metres, MANO canonical frame
N                    ``HandSSCAConfig.N``: the SSM state size (16)
W                    ``HandSSCAConfig.W``: the width of F (S/8), the SSM channel axis of the
                     channel branch
alpha_*              ``LossWeights``: the weights of Eq. 4
===================  ==========================================================================

This package never imports :mod:`handssca.data`, :mod:`handssca.engine` or :mod:`handssca.viz`.
"""
from .backbone import (BACKBONE_KINDS, Backbone, LightBackbone, ReducedFPN, ResNet50,
                       build_backbone, check_backbone, load_imagenet_weights)
from .hands3c import (Hands3cFormatError, export_hands3c, import_hands3c, load_hands3c,
                      save_hands3c)
from .info import format_table, parameter_table, trace_shapes
from .loss import LossWeights, handssca_loss
from .network import (IMAGENET_MEAN, IMAGENET_STD, MAX_PARAMETERS, NETWORK_VERSION, SIZE_BOUNDS,
                      HandSSCA, HandSSCAConfig, build_model, count_parameters, normalise)
from .ssca import (ATTENTION_KINDS, CHANNEL_SELECT_MODES, SSCABlock, SelfAttention,
                   build_attention, no_weight_decay_names)

__all__ = [
    "trace_shapes", "format_table",
    "build_model", "HandSSCA", "HandSSCAConfig", "handssca_loss", "LossWeights",
    "load_imagenet_weights", "parameter_table", "normalise", "IMAGENET_MEAN", "IMAGENET_STD",
    "Backbone", "ResNet50", "ReducedFPN", "SSCABlock", "SelfAttention", "build_attention",
    "no_weight_decay_names", "ATTENTION_KINDS", "CHANNEL_SELECT_MODES",
    "LightBackbone", "build_backbone", "check_backbone", "BACKBONE_KINDS", "NETWORK_VERSION",
    "MAX_PARAMETERS", "SIZE_BOUNDS", "count_parameters",
    "import_hands3c", "load_hands3c", "export_hands3c", "save_hands3c", "Hands3cFormatError",
]
