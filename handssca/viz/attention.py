"""What the attention block does to the features, over the input image: the paper's Figs. 4 and 5.

Fig. 4 shows, per test image, "the attention mapping map obtained by SSCA, the heat map of
keypoints in Regressor, and the hand mesh"; Fig. 5 the "attention characterization map" of
the attention variants, with the occluded region (orange) and the hand interaction edge region
(red) marked. The paper does not say how a 256-channel map becomes one picture. Ours:

- ``H``: ||H||, the Euclidean norm over the C channels of the hand features H at each location
  (B, h, w), h = w = S/8; "how much is there" at each location.
- ``added``: ||H - F||, the norm of what the attention block adds to the FPN map F (the SSCA
  block is residual, H = F + SS2D(LN(F)); for the baseline, H = F and this is zero).
- ``keypoints``: the 21 heatmap probabilities of the regressor (spatial softmax of HM), each
  divided by its own peak, and the maximum over the joints, so that every joint shows.

Maps are upsampled bilinearly to the S x S crop (location (r, c) covers crop pixels
[8r, 8r + 8) x [8c, 8c + 8)) and, for display only, scaled to [0, 1] per panel.

Regions, on the crop (:func:`region_masks`): ``visible_hand`` (the hand's pixels in the dataset's
segmentation), ``occluded_hand`` (the silhouette of the ground-truth mesh rendered alone, minus
the visible hand: the hand behind the object), ``interaction_edge`` (pixels within ``edge_px``
of both the visible hand and the visible object), ``object`` (the visible object, outside that
edge) and ``background`` (the rest). :func:`region_contrast` turns a map into one number per
region: its mean over the region divided by its mean over the whole crop (1: no preference;
scale-free, so variants compare whatever their feature magnitudes).

Images (:func:`held_out_rows`, :func:`select_occluded`): the rows a run held out of training
(its validation sequences, never trained on), the most occluded of each sequence first. They
are used instead of the official evaluation split because only training-split rows carry the
full hand mesh, which the occluded region needs.

Glossary: I input crop (S x S); F, H (B, C, h, w); HM (B, 21, h, w); S the crop side.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as tF

from .data import camera_vertices, crop_image, draw_skeleton

Tensor = torch.Tensor

#: the regions of :func:`region_masks`, in table order
REGIONS = ("visible_hand", "occluded_hand", "interaction_edge", "object", "background")
#: the colours of Fig. 5 for the two regions it marks
REGION_COLORS = {"occluded_hand": "orange", "interaction_edge": "red"}
#: the maps of :func:`feature_maps`
MAPS = ("H", "added")


# ----------------------------------------------------------------------------------------------
# maps
# ----------------------------------------------------------------------------------------------
def _check_maps(x, where: str, channels: Optional[int] = None) -> np.ndarray:
    if isinstance(x, Tensor):
        a = x.detach().float().cpu().numpy()
    else:
        a = np.asarray(x, dtype=np.float64)
    bad_channels = channels is not None and a.ndim == 4 and a.shape[1] != channels
    if a.ndim != 4 or bad_channels or not np.all(np.isfinite(a)):
        want = "(B, C, h, w)" if channels is None else f"(B, {channels}, h, w)"
        raise ValueError(f"{where}: expected a finite {want} array, got shape {a.shape}")
    return a


def channel_norm(x) -> np.ndarray:
    """||x|| over channels at each location: (B, C, h, w) -> (B, h, w), float64."""
    a = _check_maps(x, "channel_norm")
    return np.sqrt(np.square(a.astype(np.float64)).sum(1))


@torch.no_grad()
def network_outputs(model: nn.Module, images: Tensor,
                    batch_size: int = 16) -> Dict[str, np.ndarray]:
    """Run a HandSSCA network in eval mode and keep what the figures need.

    Args:
        model: a :class:`handssca.models.HandSSCA`.
        images: I (B, 3, S, S) float, ImageNet-normalised, S = the model's input size.

    Returns:
        numpy arrays: "features" F and "attended" H (B, C, h, w), "heatmap_probs" (B, 21, h, w),
        "joints2d" (B, 21, 2) in crop pixels, "vertices" (B, 778, 3) and "joints" (B, 21, 3)
        minus the predicted wrist (metres, camera orientation).
    """
    from .erf import _EvalMode, check_images

    s = getattr(getattr(model, "config", None), "input_size", None)
    check_images(images, s, where="network_outputs")
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    keep = ("features", "attended", "heatmap_probs", "joints2d", "vertices", "joints")
    acc: Dict[str, list] = {k: [] for k in keep}
    with _EvalMode(model):
        for k in range(0, images.shape[0], int(batch_size)):
            out = model(images[k:k + int(batch_size)].to(dev))
            for key in keep:
                acc[key].append(out[key].float().cpu())
    res = {k: torch.cat(v).numpy().astype(np.float64) for k, v in acc.items()}
    S = images.shape[-1]
    res["joints2d"] = res["joints2d"] * S
    wrist = res["joints"][:, :1]
    res["vertices"] = res["vertices"] - wrist
    res["joints"] = res["joints"] - wrist
    return res


def feature_maps(outputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The two maps of the module docstring from :func:`network_outputs`: "H" = ||H|| and
    "added" = ||H - F||, each (B, h, w)."""
    for k in ("features", "attended"):
        if k not in outputs:
            raise ValueError(f"feature_maps: outputs lack {k!r} (give network_outputs(...))")
    f = _check_maps(outputs["features"], "feature_maps: features")
    h = _check_maps(outputs["attended"], "feature_maps: attended")
    if f.shape != h.shape:
        raise ValueError(f"feature_maps: F {f.shape} and H {h.shape} differ in shape")
    return {"H": channel_norm(h), "added": channel_norm(h - f)}


def upsample(maps, size: int) -> np.ndarray:
    """(B, h, w) or (h, w) maps -> (B, S, S) or (S, S), bilinear, pixel-centre aligned (location
    (r, c) of an h x w map covers pixels [r S/h, (r + 1) S/h) of the crop)."""
    a = np.asarray(maps, dtype=np.float64)
    single = a.ndim == 2
    if single:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"upsample: expected (B, h, w) or (h, w) maps, got shape {a.shape}")
    t = tF.interpolate(torch.from_numpy(a)[:, None], size=(int(size), int(size)), mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    return t[0] if single else t


def keypoint_map(heatmap_probs, size: int) -> np.ndarray:
    """The regressor's heatmaps as one map per image: each joint's probability map (spatial
    softmax of HM) over its own peak, the maximum over the 21 joints, upsampled to S x S.
    (B, 21, h, w) -> (B, S, S) in [0, 1]."""
    a = _check_maps(heatmap_probs, "keypoint_map", channels=21).astype(np.float64)
    peak = a.max(axis=(2, 3), keepdims=True)
    m = (a / np.maximum(peak, 1e-30)).max(1)
    return np.clip(upsample(m, size), 0.0, 1.0)


def normalise01(m) -> np.ndarray:
    """A map scaled to [0, 1] (min to 0, max to 1; a constant map gives zeros). Display only."""
    a = np.asarray(m, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


# ----------------------------------------------------------------------------------------------
# images and regions
# ----------------------------------------------------------------------------------------------
@dataclass
class View:
    """One crop with what the figures need.

    Attributes:
        row: its row in the dataset. sample: the sample dictionary (:mod:`handssca.data`).
        transform: the :class:`~handssca.data.sample.SampleTransform` that made it.
        crop: (S, S, 3) uint8 RGB. masks: {region: (S, S) bool} (:func:`region_masks`), or None
            where the dataset has no segmentation for the image.
    """

    row: int
    sample: dict
    transform: object
    crop: np.ndarray
    masks: Optional[Dict[str, np.ndarray]] = None

    @property
    def sample_id(self) -> str:
        return str(self.sample["sample_id"])

    @property
    def occlusion(self) -> float:
        """The share of the hand hidden (NaN when the dataset does not know it)."""
        return float(self.sample["occlusion"])

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])

    @property
    def wrist(self) -> Optional[np.ndarray]:
        """The ground-truth wrist in the crop's camera frame (metres), or None without ground
        truth."""
        if not bool(self.sample["has_3d"]):
            return None
        v = camera_vertices(self.sample, self.transform)
        return v[0] - self.sample["vertices"][0].double().numpy()


def held_out_rows(run) -> Tuple[object, np.ndarray]:
    """The training-split dataset of a run and the rows it held out of training.

    Args:
        run: a loaded run (:func:`handssca.engine.load_run`).

    Returns:
        (dataset, rows): the run's training data at its input size (crops from the 2D joints;
        read them with ``dataset.get(row, augment=False)``), and its validation rows, which the
        run never trained on.

    Raises:
        ValueError: the run held out no rows.
    """
    from handssca.engine.datasets import open_dataset
    from handssca.engine.evaluation import run_rows, run_training_source

    source = run_training_source(run, log=lambda msg: None)
    ds = open_dataset(source, "train", run.input_size, hand_model=run.model.hand_model)
    _, rows = run_rows(run, ds)
    if len(rows) == 0:
        raise ValueError(f"{run.path}: the run held out no validation rows (val_fraction 0); "
                         f"there are no unseen images with ground truth to show")
    return ds, np.asarray(rows, dtype=np.int64)


def _group_key(sample_id: str) -> str:
    return sample_id.rsplit("/", 1)[0] if "/" in sample_id else sample_id


def select_occluded(dataset, rows: Sequence[int], n: int, min_gap: int = 5) -> List[int]:
    """``n`` of ``rows``, the most occluded first, spread over the sequences.

    Rows are grouped by sequence (the part of the sample id before its last "/"); the groups
    are visited in turn, each giving its most occluded row not within ``min_gap`` rows of one
    already taken from it. Without occlusion values (real data), rows are spread evenly.

    Returns:
        up to n rows, in the order taken.
    """
    rows = [int(r) for r in rows]
    if int(n) < 1:
        raise ValueError(f"select_occluded: n must be a positive integer, got {n}")
    if not rows:
        raise ValueError("select_occluded: no rows to choose from")
    occ = np.asarray(getattr(dataset, "occlusion", np.full(len(dataset), np.nan)), dtype=np.float64)
    if not np.isfinite(occ[rows]).any():
        idx = np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int))
        return [rows[i] for i in idx]
    groups: Dict[str, List[int]] = {}
    for r in rows:
        groups.setdefault(_group_key(str(dataset.sample_id(r))), []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: (-np.nan_to_num(occ[r], nan=-1.0), r))
    order = sorted(groups, key=lambda k: -np.nan_to_num(occ[groups[k][0]], nan=-1.0))
    taken: List[int] = []
    per_group: Dict[str, List[int]] = {k: [] for k in order}
    while len(taken) < min(n, len(rows)):
        progress = False
        for k in order:
            if len(taken) >= n:
                break
            for r in groups[k]:
                if r in taken or any(abs(r - t) < min_gap for t in per_group[k]):
                    continue
                taken.append(r)
                per_group[k].append(r)
                progress = True
                break
        if not progress:
            if min_gap <= 1:
                break
            min_gap = 1  # fewer well-separated rows than asked for: take neighbours too
    return taken


def _image_path(dataset, row: int) -> Optional[Path]:
    if hasattr(dataset, "paths"):
        return Path(dataset.paths(row)[0])
    try:
        return Path(dataset.raw(row).image_path)
    except Exception:  # noqa: BLE001 - an unreadable annotation: no path, no masks
        return None


def segmentation_path(image_path) -> Optional[Path]:
    """The segmentation file of an HO-3D-layout colour image (``.../rgb/<FID>.*`` ->
    ``.../seg/<FID>.png``, else ``.../segr/<FID>.png``), or None when there is none."""
    p = Path(image_path)
    if p.parent.name != "rgb":
        return None
    for folder in ("seg", "segr"):
        cand = p.parent.parent / folder / (p.stem + ".png")
        if cand.exists():
            return cand
    return None


def visible_masks(dataset, row: int, transform,
                  size: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The visible hand and visible object of a row on its crop, from the dataset's segmentation.

    The segmentation image (read with OpenCV: channel 0, blue, the hand; channel 1, green, the
    object; as the synthetic HO-3D-style data writes it) is mirrored like the image for a left
    hand and cropped with the sample's own transform (nearest neighbour).

    Returns:
        (hand (S, S) bool, object (S, S) bool), or None when the row has no segmentation file.
    """
    import cv2

    img_path = _image_path(dataset, row)
    seg_path = segmentation_path(img_path) if img_path is not None else None
    if seg_path is None:
        return None
    seg = cv2.imread(str(seg_path), cv2.IMREAD_COLOR)
    if seg is None:
        return None
    img = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED) if img_path is not None else None
    if img is not None and img.shape[:2] != seg.shape[:2]:  # masks stored at another resolution
        seg = cv2.resize(seg, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    if bool(getattr(transform, "mirrored", False)):
        seg = seg[:, ::-1]
    warped = cv2.warpAffine(np.ascontiguousarray(seg), np.asarray(transform.affine, np.float64),
                            (int(size), int(size)), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return warped[..., 0] > 127, warped[..., 1] > 127


def amodal_hand_mask(sample: dict, transform, faces) -> np.ndarray:
    """The silhouette (S, S) bool of the sample's ground-truth mesh drawn alone through the
    crop's camera (pyrender): the whole hand, hidden parts included."""
    from handssca.render import MeshSpec, render

    S = int(sample["image"].shape[-1])
    v = camera_vertices(sample, transform)
    r = render([MeshSpec(v, np.asarray(faces, dtype=np.int64))], sample["K"].double().numpy(), S, S)
    return r.seg > 0


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    k = 2 * int(px) + 1
    return cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0


def _open(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def region_masks(hand: np.ndarray, obj: np.ndarray, amodal: np.ndarray,
                 edge_px: int = 2) -> Dict[str, np.ndarray]:
    """The five regions of the module docstring, from the visible hand, the visible object and
    the hand's amodal silhouette, all (S, S) bool.

    ``interaction_edge``: pixels within ``edge_px`` of both the visible hand and the visible
    object; ``occluded_hand``: amodal and not visible hand (edge pixels excluded, then opened
    by a 3 x 3 square to drop one-pixel slivers along the outline);
    ``visible_hand`` and ``object``: the visible parts outside the edge band; ``background``:
    the rest. The five are disjoint and cover the crop.
    """
    hand, obj, amodal = (np.asarray(m, dtype=bool) for m in (hand, obj, amodal))
    if not (hand.shape == obj.shape == amodal.shape) or hand.ndim != 2:
        raise ValueError(f"region_masks: expected three (S, S) masks of one shape, got "
                         f"{hand.shape}, {obj.shape}, {amodal.shape}")
    if int(edge_px) < 1:
        raise ValueError(f"region_masks: edge_px must be a positive integer, got {edge_px}")
    edge = _dilate(hand, edge_px) & _dilate(obj, edge_px) & (hand | obj)
    # the rendered silhouette and the segmentation disagree by a pixel along the hand's outline
    # (anti-aliasing): a 3 x 3 opening drops those one-pixel slivers from the occluded region
    occluded = _open(amodal & ~hand & ~edge)
    visible = hand & ~edge
    objm = obj & ~edge & ~occluded
    background = ~(edge | occluded | visible | objm)
    return {"visible_hand": visible, "occluded_hand": occluded, "interaction_edge": edge,
            "object": objm, "background": background}


def load_views(dataset, rows: Sequence[int], faces=None, masks: bool = True,
               edge_px: Optional[int] = None) -> List[View]:
    """The crops of ``rows`` (no augmentation) with their region masks.

    Args:
        dataset: a :mod:`handssca.data` dataset (e.g. from :func:`held_out_rows`).
        faces: (1538, 3) the hand mesh's triangles for the amodal silhouette (default: the
            dataset's own hand layer's).
        masks: compute :func:`region_masks` (needs a segmentation file and ground truth; the
            view's ``masks`` is None where either is missing).
        edge_px: width of the interaction edge band (default max(1, round(S / 64))).
    """
    views = []
    if faces is None and masks and hasattr(dataset, "layer"):
        faces = dataset.layer.faces
    for r in rows:
        sample, tr = dataset.get(int(r), augment=False)
        crop = crop_image(sample)
        S = crop.shape[0]
        m = None
        if masks and bool(sample["has_3d"]) and faces is not None:
            vis = visible_masks(dataset, int(r), tr, S)
            if vis is not None:
                amodal = amodal_hand_mask(sample, tr, faces)
                m = region_masks(vis[0], vis[1], amodal,
                                 edge_px if edge_px is not None else max(1, round(S / 64)))
        views.append(View(row=int(r), sample=sample, transform=tr, crop=crop, masks=m))
    return views


def region_contrast(m, masks: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Mean of a non-negative (S, S) map over each region divided by its mean over the crop.

    Returns:
        {region: contrast} (NaN for an empty region or an all-zero map).
    """
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2 or np.any(a < 0) or not np.all(np.isfinite(a)):
        raise ValueError(f"region_contrast: expected a non-negative finite (S, S) map, got shape "
                         f"{a.shape}")
    mean = a.mean()
    out = {}
    for k, mask in masks.items():
        mk = np.asarray(mask, dtype=bool)
        if mk.shape != a.shape:
            raise ValueError(f"region_contrast: mask {k!r} is {mk.shape}, the map {a.shape}")
        out[k] = float(a[mk].mean() / mean) if mk.any() and mean > 0 else float("nan")
    return out


# ----------------------------------------------------------------------------------------------
# the variants side by side
# ----------------------------------------------------------------------------------------------
def compare_variants(models: Mapping[str, nn.Module], views: Sequence[View],
                     batch_size: int = 16) -> Dict[str, Dict[str, np.ndarray]]:
    """Run each network on the views' crops.

    Args:
        models: {label: HandSSCA network} (e.g. {"none": ..., "ssa": ..., "ssca": ...}).
        views: from :func:`load_views`.

    Returns:
        {label: {"H" (B, S, S) ||H||, "added" (B, S, S) ||H - F||, "keypoints" (B, S, S),
        "joints2d" (B, 21, 2) crop pixels, "vertices" (B, 778, 3), "joints" (B, 21, 3)
        root-relative metres, "faces" (1538, 3)}}; B = len(views).
    """
    if not views:
        raise ValueError("compare_variants: no views given")
    images = torch.stack([v.sample["image"] for v in views])
    S = images.shape[-1]
    out = {}
    for label, model in models.items():
        o = network_outputs(model, images, batch_size)
        maps = feature_maps(o)
        out[label] = {"H": upsample(maps["H"], S), "added": upsample(maps["added"], S),
                      "keypoints": keypoint_map(o["heatmap_probs"], S),
                      "joints2d": o["joints2d"], "vertices": o["vertices"], "joints": o["joints"],
                      "faces": np.asarray(model.faces, dtype=np.int64)}
    return out


def region_statistics(results: Mapping[str, Mapping[str, np.ndarray]], views: Sequence[View],
                      which: str = "H") -> Dict[str, Dict[str, np.ndarray]]:
    """:func:`region_contrast` of map ``which`` ("H" or "added") for every variant and view.

    Returns:
        {label: {region: (n,) contrasts over the views that have masks}}; a variant whose map
        is zero everywhere (``added`` of the baseline) gives NaNs.
    """
    if which not in MAPS:
        raise ValueError(f"region_statistics: which must be one of {MAPS}, got {which!r}")
    out = {}
    for label, res in results.items():
        per = {k: [] for k in REGIONS}
        for i, v in enumerate(views):
            if v.masks is None:
                continue
            c = region_contrast(res[which][i], v.masks)
            for k in REGIONS:
                per[k].append(c.get(k, float("nan")))
        out[label] = {k: np.asarray(vals, dtype=np.float64) for k, vals in per.items()}
    return out


def region_table(stats: Mapping[str, Mapping[str, np.ndarray]], caption: str = "",
                 labels: Optional[Mapping[str, str]] = None, notes: Sequence[str] = ()):
    """A :class:`handssca.report.Table` of :func:`region_statistics`: one row per variant,
    one column per region, "mean ± sd (n)" over the images."""
    from handssca.report import Table

    names = {"visible_hand": "visible hand", "occluded_hand": "occluded hand",
             "interaction_edge": "interaction edge", "object": "object",
             "background": "background"}
    rows = []
    for label, per in stats.items():
        cells = [(labels or {}).get(label, label)]
        for k in REGIONS:
            v = np.asarray(per.get(k, []), dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size == 0:
                cells.append("-")
            elif v.size == 1:
                cells.append(f"{v[0]:.2f} (1)")
            else:
                cells.append(f"{v.mean():.2f} ± {v.std(ddof=1):.2f} ({v.size})")
        rows.append(cells)
    return Table(header=["variant"] + [names[k] for k in REGIONS], rows=rows, caption=caption,
                 notes=list(notes))


# ----------------------------------------------------------------------------------------------
# drawing
# ----------------------------------------------------------------------------------------------
def mesh_overlay(view: View, vertices, faces, joints=None, joints2d=None,
                 color=(0.55, 0.75, 1.0)) -> np.ndarray:
    """A predicted mesh drawn over the view's crop (pyrender).

    The prediction is root-relative; it is placed at the ground-truth wrist when the view has
    one (as HO-3D's protocol places predictions), otherwise at the translation whose projection
    best fits the predicted 2D joints (:func:`handssca.engine.prediction.fit_translation`, which
    needs ``joints`` and ``joints2d``).

    Args:
        vertices: (778, 3) root-relative, metres. faces: (F, 3). joints: (21, 3) root-relative.
        joints2d: (21, 2) crop pixels.

    Returns:
        (S, S, 3) uint8.
    """
    from handssca.render import overlay_mesh

    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"mesh_overlay: vertices must be (V, 3), got {v.shape}")
    K = view.sample["K"].double().numpy()
    t = view.wrist
    if t is None:
        if joints is None or joints2d is None:
            raise ValueError("mesh_overlay: the view has no ground-truth wrist; give joints and "
                             "joints2d to fit the translation")
        from handssca.engine.prediction import fit_translation

        t = fit_translation(np.asarray(joints, np.float64), np.asarray(joints2d, np.float64), K)
    return overlay_mesh(view.crop, v + t, faces, K, color=color)


def _overlay(ax, crop, m, alpha: float = 0.55, cmap: str = "jet"):
    ax.imshow(crop)
    ax.imshow(normalise01(m), cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)


def draw_regions(ax, masks: Optional[Mapping[str, np.ndarray]], lw: float = 1.2) -> None:
    """Outline the occluded hand (orange) and the interaction edge (red) as in Fig. 5."""
    if not masks:
        return
    for k, color in REGION_COLORS.items():
        m = masks.get(k)
        if m is not None and m.any():
            ax.contour(m.astype(float), levels=[0.5], colors=color, linewidths=lw)


def _clean(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_view(view: View, results: Mapping[str, Mapping[str, np.ndarray]], index: int,
              labels: Optional[Mapping[str, str]] = None, title: Optional[str] = None,
              gt_faces=None):
    """Fig. 4 for one image, one row per variant.

    Column 0: the input crop; its occluded hand (orange) and interaction edge (red); the
    ground-truth mesh over it. Then per variant: ||H||, ||H - F||, the keypoint heatmaps with
    the predicted 2D joints, and the predicted mesh over the crop.

    Args:
        view: the image. results: :func:`compare_variants` over views including it.
        index: the view's position in those views.
        gt_faces: triangles for the ground-truth mesh (default: the first variant's).

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    names = list(results)
    n = max(len(names), 3)
    fig, axes = plt.subplots(n, 5, figsize=(11.5, 2.35 * n), squeeze=False)
    for ax in axes.ravel():
        _clean(ax)
        ax.set_frame_on(False)
    a0 = axes[:, 0]
    a0[0].imshow(view.crop)
    occ = view.occlusion
    a0[0].set_title("input" + ("" if np.isnan(occ) else f" (occlusion {occ:.2f})"), fontsize=8)
    a0[1].imshow(view.crop)
    draw_regions(a0[1], view.masks)
    a0[1].set_title("occluded (orange), edge (red)" if view.masks else "no segmentation",
                    fontsize=8)
    faces = gt_faces if gt_faces is not None else results[names[0]]["faces"]
    if bool(view.sample["has_3d"]):
        from handssca.render import overlay_mesh

        a0[2].imshow(overlay_mesh(view.crop, camera_vertices(view.sample, view.transform), faces,
                                  view.sample["K"].double().numpy(), color=(0.6, 0.9, 0.6)))
        a0[2].set_title("ground-truth mesh", fontsize=8)
    for i, name in enumerate(names):
        res = results[name]
        row = axes[i]
        for ax in row[1:]:
            ax.set_frame_on(True)
        _overlay(row[1], view.crop, res["H"][index])
        draw_regions(row[1], view.masks, lw=0.8)
        if float(res["added"][index].max()) > 0:
            _overlay(row[2], view.crop, res["added"][index])
        else:
            row[2].imshow(view.crop, alpha=0.4)
            row[2].text(0.5, 0.5, "H = F\n(no block)", ha="center", va="center", fontsize=8,
                        transform=row[2].transAxes)
        _overlay(row[3], view.crop, res["keypoints"][index], alpha=0.6, cmap="viridis")
        draw_skeleton(row[3], res["joints2d"][index], lw=1.0, ms=2.0)
        row[4].imshow(mesh_overlay(view, res["vertices"][index], res["faces"],
                                   res["joints"][index], res["joints2d"][index]))
        row[1].set_ylabel((labels or {}).get(name, name), fontsize=9)
        if i == 0:
            for ax, t in zip(row[1:], ("||H|| (hand features)", "||H - F|| (added by block)",
                                       "keypoint heatmaps", "predicted mesh")):
                ax.set_title(t, fontsize=8)
    fig.suptitle(title or view.sample_id, fontsize=10)
    fig.tight_layout()
    return fig


def plot_region_maps(views: Sequence[View], results: Mapping[str, Mapping[str, np.ndarray]],
                     which: str = "H", labels: Optional[Mapping[str, str]] = None,
                     title: Optional[str] = None, cell: float = 2.1):
    """Fig. 5: one column per image; the input with its regions, then one row per variant with
    its map ``which`` ("H" or "added") over the crop and the regions outlined.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if which not in MAPS:
        raise ValueError(f"plot_region_maps: which must be one of {MAPS}, got {which!r}")
    names = list(results)
    nrow, ncol = len(names) + 1, len(views)
    fig, axes = plt.subplots(nrow, ncol, figsize=(cell * ncol + 0.6, cell * nrow), squeeze=False)
    for j, v in enumerate(views):
        axes[0, j].imshow(v.crop)
        draw_regions(axes[0, j], v.masks)
        occ = v.occlusion
        axes[0, j].set_title(("" if np.isnan(occ) else f"occlusion {occ:.2f}"), fontsize=8)
        for i, name in enumerate(names, start=1):
            m = results[name][which][j]
            if float(m.max()) > 0:
                _overlay(axes[i, j], v.crop, m)
            else:
                axes[i, j].imshow(v.crop, alpha=0.4)
                axes[i, j].text(0.5, 0.5, "zero\n(H = F)", ha="center", va="center", fontsize=8,
                                transform=axes[i, j].transAxes)
            draw_regions(axes[i, j], v.masks, lw=0.8)
    for ax in axes.ravel():
        _clean(ax)
    axes[0, 0].set_ylabel("input", fontsize=9)
    for i, name in enumerate(names, start=1):
        axes[i, 0].set_ylabel((labels or {}).get(name, name), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["REGIONS", "REGION_COLORS", "MAPS", "View", "channel_norm", "network_outputs",
           "feature_maps", "upsample", "keypoint_map", "normalise01", "held_out_rows",
           "select_occluded", "segmentation_path", "visible_masks", "amodal_hand_mask",
           "region_masks", "load_views", "region_contrast", "compare_variants",
           "region_statistics", "region_table", "mesh_overlay", "draw_regions", "plot_view",
           "plot_region_maps"]
