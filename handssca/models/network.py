"""HandSSCA assembled (the paper's Fig. 2) and :func:`build_model`.

I (B, 3, S, S) -> backbone (ResNet-50 + reduced FPN) -> F (B, C, S/8, S/8) -> attention
(the SSCA block, or a Table 6 variant) -> H (B, C, S/8, S/8) -> heatmap head -> HM, 2D joints
-> encoder -> 1024 vector -> MANO head -> theta (48), beta (10) -> MANO layer -> V (778 x 3),
J (21 x 3).

Input images are float RGB, (B, 3, S, S), normalised with ImageNet's mean and standard
deviation (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`; :func:`normalise` does it from [0, 1]
floats or uint8), as torchvision's ImageNet weights expect. S is 256 (HO3D, DexYCB) or 224
(FreiHAND); any multiple of 32 from 128 up builds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from .backbone import build_backbone, check_backbone
from .regressor import NUM_JOINTS, Encoder, HeatmapHead, ManoHead
from .ssca import ATTENTION_KINDS, CHANNEL_SELECT_MODES, build_attention, set_scan_backend

Tensor = torch.Tensor

#: the dtypes the network accepts as input (bf16 and fp16 for autocast pipelines)
_INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
#: ImageNet statistics (RGB), the normalisation torchvision's ResNet-50 weights were trained with
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: the version of the network's function that a checkpoint's weights were trained for. 1: the
#: encoder read the raw heatmap scores and the 6D rotation was read as a row-major (3, 2)
#: matrix; 2 (since then): the authors' conventions, the encoder reads the heatmap
#: probabilities and the 6D rotation is two columns one after the other (see the book's "paper
#: vs code" page). Weights of version 1 do not compute the same function in this network.
NETWORK_VERSION = 2

#: the allowed range (inclusive) of each size field of :class:`HandSSCAConfig`, checked before
#: anything is built: several times the paper's values (S = 256, C = 256, N = 16, expand 2,
#: dt_rank 16, d_conv 3, hourglass depth 2), so that no real configuration is refused, while a
#: tampered or mistyped checkpoint description cannot make the package allocate gigabytes.
SIZE_BOUNDS = {"input_size": (128, 1024), "C": (1, 1024), "N": (1, 256), "expand": (1, 4),
               "dt_rank": (1, 256), "d_conv": (1, 15), "hourglass_depth": (1, 4)}
#: what the bounds guarantee: no configuration within :data:`SIZE_BOUNDS` and the backbone's
#: bounds describes more learnable parameters than this, 250 million (1 GB as float32; the
#: paper's network has 31 million). The count grows with every size field, so the largest
#: configuration is the corner of the bounds (about 205 million), which the tests count.
MAX_PARAMETERS = 250_000_000


def normalise(images: Tensor) -> Tensor:
    """RGB images -> the network's input: (x - IMAGENET_MEAN) / IMAGENET_STD per channel.

    Args:
        images: (B, 3, S, S) or (3, S, S), either float in [0, 1] or uint8 in [0, 255].

    Returns:
        float32 (or the input's float dtype) tensor of the same shape.
    """
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected RGB images of shape (B, 3, S, S) or (3, S, S), "
                         f"got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    elif not images.is_floating_point():
        raise ValueError(f"expected float images in [0, 1] or uint8, got dtype {images.dtype}")
    mean = images.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (images - mean) / std


@dataclass
class HandSSCAConfig:
    """Everything that fixes the network's shapes; ``build_model(**dataclasses.asdict(cfg))``
    rebuilds it. Field names use the paper's letters where it has them.

    Attributes:
        attention: the module between F and H: "ssca" (the paper's), "ssa", "self_attention"
            or "none" (the FPN baseline); Table 6.
        input_size: S, the side of the square input crop (256; FreiHAND 224).
        channel_select: "code" (the authors' channel branch, W as the SSM channel axis) or
            "paper" (our literal reading of Section 3.3, see :class:`~.ssca.ChannelSelect`).
        scan_backend: the selective-scan backend (None: automatic), see
            :func:`handssca.ssm.selective_scan`.
        C: channels of F and H (256).
        N: the SSM state size (d_state, 16).
        expand: SS2D's expansion (d_inner = expand * C = 512).
        dt_rank: rank of the Delta projection (16 = ceil(C / 16)).
        d_conv: kernel of SS2D's depthwise conv (3).
        hourglass_depth: depth of the heatmap head's hourglass (2).
        drop_path: stochastic depth of the SSCA block's residual (0).
        fingertips: fingertip vertices of the 21 output joints ("manopth": 745, 317, 444, 556,
            673, thumb..pinky).
        backbone: {"kind": "resnet50"} (the paper's ResNet-50 + reduced FPN) or
            {"kind": "light", "widths": [5 ints], "blocks": [4 ints]} (the CPU profiles' light
            backbone, :class:`~.backbone.LightBackbone`); completed by
            :func:`~.backbone.check_backbone`.

    Every field is checked on construction, before anything is built: the allowed values, and
    each size within :data:`SIZE_BOUNDS` (ValueError naming the field), so that a configuration
    read from a file never describes more than :data:`MAX_PARAMETERS` parameters.
    """

    attention: str = "ssca"
    input_size: int = 256
    channel_select: str = "code"
    scan_backend: Optional[str] = None
    C: int = 256
    N: int = 16
    expand: int = 2
    dt_rank: int = 16
    d_conv: int = 3
    hourglass_depth: int = 2
    drop_path: float = 0.0
    fingertips: str = "manopth"
    backbone: Dict[str, Any] = field(default_factory=lambda: {"kind": "resnet50"})

    def __post_init__(self):
        self.backbone = check_backbone(self.backbone)
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.channel_select not in CHANNEL_SELECT_MODES:
            raise ValueError(f"channel_select must be one of {CHANNEL_SELECT_MODES}, "
                             f"got {self.channel_select!r}")
        lo, hi = SIZE_BOUNDS["input_size"]
        if (not _is_int(self.input_size) or not lo <= self.input_size <= hi
                or self.input_size % 32):
            raise ValueError(f"input_size must be a multiple of 32 from {lo} to {hi} (256, or "
                             f"224 for FreiHAND), got {self.input_size!r}")
        for name, (lo, hi) in SIZE_BOUNDS.items():
            value = getattr(self, name)
            if not _is_int(value) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an int from {lo} to {hi}, got {value!r}")
        if not isinstance(self.drop_path, (int, float)) or not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be a number in [0, 1), got {self.drop_path!r}")
        if self.scan_backend is not None and not isinstance(self.scan_backend, str):
            raise ValueError(f"scan_backend must be None or a backend's name, got "
                             f"{self.scan_backend!r}")

    @property
    def H(self) -> int:
        """Height of F, H and the heatmaps: S / 8."""
        return self.input_size // 8

    @property
    def W(self) -> int:
        """Width of F, H and the heatmaps (the channel branch's SSM channel count): S / 8."""
        return self.input_size // 8

    def to_dict(self) -> dict:
        """JSON-serialisable fields (``dataclasses.asdict``)."""
        return dataclasses.asdict(self)


def _is_int(value) -> bool:
    """An int that is not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def count_parameters(config: HandSSCAConfig) -> int:
    """The number of learnable parameters of the network ``config`` describes, counted on
    PyTorch's meta device: the modules are made without any memory for their weights (the first
    call loads PyTorch's meta kernels, about a second)."""
    with torch.device("meta"):
        parts = make_parts(config)
    return sum(p.numel() for part in parts.values() for p in part.parameters())


def make_parts(config: HandSSCAConfig) -> Dict[str, nn.Module]:
    """The network's learnable parts for ``config``: backbone, attention, heatmap_head, encoder,
    mano_head (the MANO layer, which has no parameters, is added by :class:`HandSSCA`)."""
    enc = Encoder(config.C, NUM_JOINTS)
    return {
        "backbone": build_backbone(config.backbone, config.C),
        "attention": build_attention(
            config.attention, config.C, config.H, config.W, config.channel_select, config.N,
            config.expand, config.dt_rank, config.d_conv, config.drop_path, config.scan_backend),
        "heatmap_head": HeatmapHead(config.C, NUM_JOINTS, config.hourglass_depth),
        "encoder": enc,
        "mano_head": ManoHead(enc.out_features),
    }


class HandSSCA(nn.Module):
    """The whole network of Fig. 2: image I -> heatmaps, 2D joints, theta, beta, V, J.

    Attributes: ``config`` (:class:`HandSSCAConfig`), ``backbone``, ``attention`` (the block
    between F and H), ``heatmap_head``, ``encoder``, ``mano_head``, ``hand_layer`` (the MANO
    layer, no parameters), ``hand_model`` (the ``smplx.MANO`` it wraps; ``.faces``).

    The MANO layer's buffers are left out of :meth:`state_dict` and ignored when loading one:
    a checkpoint holds only the learned weights (and never redistributes MANO's data).
    """

    def __init__(self, config: HandSSCAConfig, hand_model):
        super().__init__()
        from ..hand import HandLayer  # imported here: models depends on hand, not the reverse

        self.config = config
        for name, module in make_parts(config).items():
            self.add_module(name, module)
        self.hand_layer = HandLayer(hand_model, fingertips=config.fingertips)
        object.__setattr__(self, "hand_model", hand_model)  # not a submodule: no double entry
        self.register_state_dict_post_hook(_drop_hand_layer_state)
        self.register_load_state_dict_pre_hook(_ignore_hand_layer_state)
        self.register_load_state_dict_post_hook(_forgive_missing_hand_layer_state)

    @property
    def input_size(self) -> int:
        """S, the side of the square input crop."""
        return self.config.input_size

    @property
    def faces(self):
        """The mesh's triangles, (1538, 3) vertex indices (from the hand model)."""
        return self.hand_model.faces

    def check_images(self, images: Tensor) -> None:
        """Raise ValueError unless ``images`` is a (B, 3, S, S) tensor, B >= 1, S = input_size, of
        float32, bf16 or fp16 (or the parameters' dtype), without NaN or infinite values.

        The NaN check is skipped while ``torch.compile`` or tracing records the graph (a value
        test there would break the graph) and when training on a GPU (it would wait for every
        step; a NaN image there shows as a diverged loss, which the trainer reports); elsewhere it
        costs one reduction.
        """
        s = self.config.input_size
        want = (f"expected images of shape (B, 3, {s}, {s}) float32 (or bf16) with B >= 1, "
                f"normalised with ImageNet mean/std (handssca.models.normalise)")
        if not isinstance(images, Tensor):
            raise ValueError(f"{want}; got {type(images).__name__}")
        got = f"{tuple(images.shape)} {str(images.dtype).replace('torch.', '')}"
        if (images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (s, s)
                or images.shape[0] < 1):
            raise ValueError(f"{want}; got shape {got}")
        param = next(self.parameters(), None)
        # float64 would fail inside the first convolution with a message about its bias
        if images.dtype not in _INPUT_DTYPES and (param is None or images.dtype != param.dtype):
            raise ValueError(f"{want}; got dtype {got} (convert with images.float())")
        skip = (torch.compiler.is_compiling() or torch.jit.is_tracing()
                or (self.training and images.is_cuda))
        if not skip and not bool(torch.isfinite(images).all()):
            raise ValueError(f"images of shape {got} hold NaN or infinite values; the network's "
                             f"outputs would all be NaN. Check the images and their "
                             f"normalisation")

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        """Run the network.

        Args:
            images: I, (B, 3, S, S) float, ImageNet-normalised (:func:`normalise`).

        Returns:
            dict with
            "features" F (B, C, S/8, S/8), the FPN map before attention;
            "attended" H (B, C, S/8, S/8), after the attention block;
            "heatmaps" (B, 21, S/8, S/8), the heatmap scores;
            "heatmap_probs" HM (B, 21, S/8, S/8), their spatial softmax with the learnt
            per-joint temperature: the heatmaps the encoder reads;
            "joints2d" (B, 21, 2), normalised uv in [0, 1] of the crop (F order);
            "rotmats" (B, 16, 3, 3), "pose" theta (B, 48) axis-angle (flat_hand_mean=False),
            "shape" beta (B, 10);
            "vertices" V (B, 778, 3), "joints" J (B, 21, 3), F order, metres, MANO canonical frame.
        """
        self.check_images(images)
        f = self.backbone(images)
        h = self.attention(f)
        head = self.heatmap_head(h)
        # the encoder reads the heatmap probabilities (the spatial softmax), as the authors' code
        # does, not the raw scores
        mano = self.mano_head(self.encoder(head["heatmap_probs"], head["head_features"]))
        hand = self.hand_layer(mano["pose"], mano["shape"])
        return {
            "features": f,
            "attended": h,
            "heatmaps": head["heatmaps"],
            "heatmap_probs": head["heatmap_probs"],
            "joints2d": head["joints2d"],
            "rotmats": mano["rotmats"],
            "pose": mano["pose"],
            "shape": mano["shape"],
            "vertices": hand["vertices"],
            "joints": hand["joints"],
        }

    def compute_loss(self, predictions: Dict[str, Tensor], targets: Dict[str, Tensor],
                     weights=None) -> Dict[str, Tensor]:
        """The loss of Eq. 4 with this model's MANO layer; see :func:`~.loss.handssca_loss`."""
        from .loss import handssca_loss

        return handssca_loss(predictions, targets, self.hand_layer, weights)

    def set_scan_backend(self, backend: Optional[str]) -> None:
        """Select the selective-scan backend of the attention block (None: automatic)."""
        set_scan_backend(self, backend)
        self.config.scan_backend = backend


def _is_hand_layer_key(key: str, prefix: str = "") -> bool:
    return key.startswith(prefix + "hand_layer.")


def _drop_hand_layer_state(module, state_dict, prefix, local_metadata):
    for k in [k for k in state_dict if _is_hand_layer_key(k, prefix)]:
        del state_dict[k]


def _ignore_hand_layer_state(module, state_dict, prefix, local_metadata, strict, missing_keys,
                             unexpected_keys, error_msgs):
    # a state dict that does carry MANO buffers must not overwrite the hand model in use
    for k in [k for k in state_dict if _is_hand_layer_key(k, prefix)]:
        del state_dict[k]


def _forgive_missing_hand_layer_state(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if "hand_layer." not in k]


def build_model(attention: str = "ssca", input_size: int = 256, hand_model=None,
                scan_backend: Optional[str] = None, channel_select: str = "code",
                **config) -> HandSSCA:
    """Build HandSSCA (or one of Table 6's variants): the one constructor of the network.

    The engine, the importer of the authors' weights and the chapters all build through it;
    ``build_model(**cfg.to_dict())`` rebuilds any model from its :class:`HandSSCAConfig`
    (``model.config``), backbone included.

    Args:
        attention: "ssca" (default), "ssa", "self_attention" or "none".
        input_size: S; F, H and the heatmaps are S/8 x S/8 (256 -> 32, FreiHAND's 224 -> 28),
            and so is W, the channel branch's SSM channel count.
        hand_model: a ``smplx.MANO`` from :func:`handssca.hand.load_hand_model` (None: load it).
        scan_backend: selective-scan backend of the SSM (None: automatic).
        channel_select: "code" or "paper" (see :class:`HandSSCAConfig`).
        **config: the other fields of :class:`HandSSCAConfig`, e.g. ``C``,
            ``hourglass_depth`` or ``backbone={"kind": "light", "widths": [...],
            "blocks": [...]}`` (default: the paper's ResNet-50).

    Returns:
        a :class:`HandSSCA` in training mode.
    """
    cfg = HandSSCAConfig(attention=attention, input_size=input_size, scan_backend=scan_backend,
                         channel_select=channel_select, **config)
    if hand_model is None:
        from ..hand import load_hand_model

        hand_model = load_hand_model()
    return HandSSCA(cfg, hand_model)
