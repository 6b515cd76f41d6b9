"""The set-up the three training chapters share (FreiHAND, DexYCB, HO-3D: Chapters 5-7).

Each of those chapters resolves the same things before it trains: the profile's training
settings for its dataset, its data (a real dataset folder, or synthetic data of that style),
the prefix that marks every title on synthetic data, the sizes of the network it trains and of
the paper's, and after training the split sizes and the result file for Chapter 9.
:func:`training_chapter` does all of it once, so that the chapters hold only their story:

>>> ch = training_chapter("freihand", resolve_profile("smoke"), data_root="")  # doctest: +SKIP
>>> ch.print_setup(); display(ch.notice())                                     # doctest: +SKIP

Everything printed fits the book's column (79 characters) and names folders relative to the
repository or to the build folder, never by an absolute path of the machine that built the
book (:func:`shown_path`).
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..utils import build_dir, repo_root, shown_path
from ..viz.training import DATASET_NAMES
from .profiles import Profile, check_dataset, training_config

#: the book's column in characters: code and printed lines fit it
COLUMN = 79
#: what :func:`handssca.data.find_dataset` looks for, for the error of a wrong ``data_root``
DATASET_MARKERS = {"freihand": "training_K.json in it or in FreiHAND_pub_v2/",
                   "ho3d": "train.txt in it or in HO3D_v3/ or HO3D_v2/",
                   "dexycb": "calibration/ in it or in DexYCB/"}
#: what one row of each dataset is, in the chapters' sentences
ROW_NOUNS = {"freihand": "images", "ho3d": "frames", "dexycb": "frames"}


def shown_text(text: str) -> str:
    """A message of the engine with the repository's and the build folder's absolute paths
    shortened as :func:`shown_path` does, wrapped to the book's column."""
    for base, prefix in ((build_dir(), "<build>/"), (repo_root(), "")):
        text = text.replace(str(Path(base).resolve()) + os.sep, prefix)
    return fit(text)


def fit(text: str, indent: str = "  ") -> str:
    """``text`` wrapped to the book's column (:data:`COLUMN`), continuation lines indented."""
    return "\n".join(textwrap.fill(line, COLUMN, subsequent_indent=indent,
                                   break_long_words=False, break_on_hyphens=False)
                     for line in text.splitlines() or [""])


def network_sizes(prof: Profile, dataset: str, attention: str = "ssca") -> Dict[str, int]:
    """The parameter counts of the network a profile trains and of the paper's configuration.

    Both are counted by the package on PyTorch's ``meta`` device (shapes, no memory): the
    profile's network from its training settings (:func:`.factory.network_config`), the
    paper's with :func:`handssca.report.parameter_counts` (ResNet-50 + FPN, S = 256, C = 256,
    Section 3).

    Returns:
        {"trained": parameters of the profile's network, "paper": of the paper's
        configuration with the same attention block}.
    """
    # deferred: models and report pull in torch's model code, which a chapter's first cell
    # should not pay for twice
    from handssca.models import HandSSCAConfig
    from handssca.models.network import count_parameters
    from handssca.report import parameter_counts

    from .factory import network_config

    cfg = network_config(training_config(prof, dataset), attention)
    return {"trained": count_parameters(HandSSCAConfig(**cfg)),
            "paper": parameter_counts([attention])[attention]["total"]}


@dataclass
class TrainingChapter:
    """One training chapter's resolved set-up (from :func:`training_chapter`).

    Attributes:
        dataset: "freihand", "dexycb" or "ho3d".
        profile: the resolved profile.
        attention: the Table 6 variant trained ("ssca" is the paper's).
        seed: the seed of the initialisation, the split, the shuffling and synthetic data.
        root: the real dataset folder, or None for synthetic data.
        source: the data of the run (:func:`.datasets.resolve_data`).
        training: the profile's training settings for the dataset (``training_config``).
        n_show: how many predictions a figure draws (``chapters.training.n_show``).
        sizes: {"trained": n, "paper": n} parameter counts (:func:`network_sizes`).
    """
    dataset: str
    profile: Profile
    attention: str
    seed: int
    root: Optional[Path]
    source: Any
    training: Dict[str, Any]
    n_show: int
    sizes: Dict[str, int] = field(default_factory=dict)

    @property
    def syn(self) -> str:
        """The prefix of every title and count on synthetic data ("" on real data)."""
        return "SYNTHETIC data: " if self.source.kind == "synthetic" else ""

    @property
    def name(self) -> str:
        """The dataset's printed name (FreiHAND, DexYCB, HO-3D)."""
        return DATASET_NAMES[self.dataset]

    def setup_lines(self) -> List[str]:
        """The chapter's first printout: profile, attention, seed, the training settings of
        Section 4.1 as the profile sets them, and the two networks' sizes."""
        t, prof = self.training, self.profile
        trained, paper = self.sizes["trained"], self.sizes["paper"]
        return [
            f"profile {prof.name!r} ({prof.get('description')}); attention "
            f"{self.attention!r}, seed {self.seed}",
            f"training: {t['epochs']} epochs, batch {t['batch_size']}, Adam lr "
            f"{t['optimizer']['lr']:g} x {t['lr_step']['gamma']} every "
            f"{t['lr_step']['every']} epochs, crops {t['input_size']} x {t['input_size']}, "
            f"{t['backbone']['kind']} backbone",
            f"network trained here: {trained:,} parameters; the paper's configuration "
            f"(ResNet-50 + FPN, S = 256, C = 256): {paper:,}, {paper / trained:.1f}x as many "
            f"(both counted by the package)",
        ]

    def print_setup(self) -> None:
        """Print :meth:`setup_lines`, each fitted to the book's column."""
        for line in self.setup_lines():
            print(fit(line))

    def notice(self):
        """The box that says which data the page is built on
        (:func:`handssca.viz.training.data_notice`)."""
        from handssca.viz.training import data_notice  # viz imports the engine: deferred

        return data_notice(self.source.kind, self.dataset, self.source.root)

    def train(self, **kwargs):
        """:func:`.trainer.train` with the chapter's dataset, data, profile, attention and
        seed (a finished run of the same configuration is reused); checks that the run says
        which data it saw."""
        from .trainer import train

        summary = train(self.dataset, self.root, self.profile, attention=self.attention,
                        seed=self.seed, verbose=False, **kwargs)
        assert summary["data"] == self.source.kind  # the run says what data it saw
        return summary

    def split_counts(self, run) -> Dict[str, int]:
        """{"train", "val", "test"}: the rows of each split of a loaded run's data; "val" is 0
        when the profile holds no rows out (the paper profile's ``val_fraction`` 0)."""
        from handssca.viz.training import split_dataset  # viz imports the engine: deferred

        def count(split):
            if split == "val" and not self.training["val_fraction"] > 0:
                return 0
            return len(split_dataset(run, split)[0])

        return {s: count(s) for s in ("train", "val", "test")}

    def run_lines(self, summary, counts: Dict[str, int], val: str = "",
                  test: str = "test") -> List[str]:
        """Two lines on a finished run: its folder, whether it was reused, the machine and
        the epochs; then the split sizes and the trained network's parameter count.

        Args:
            summary: what :meth:`train` returned. counts: :meth:`split_counts`.
            val: words after "held out for validation" (e.g. " (whole sequences)").
            test: the name of the test split (e.g. "S0 test", "evaluation").
        """
        how = ("reused the finished run" if summary.get("reused")
               else f"trained in {summary['seconds']:.0f} s")
        noun = ROW_NOUNS[self.dataset]
        return [f"run {shown_path(summary.path)}: {how} on {summary['device']}, "
                f"{summary['epochs']} epochs",
                f"{self.syn}{counts['train'] - counts['val']} training {noun}, "
                f"{counts['val']} held out for validation{val}, {counts['test']} {test} "
                f"{noun}; network trained here: {summary['parameters']['total']:,} parameters"]

    def print_run(self, summary, counts: Dict[str, int], **kwargs) -> None:
        """Print :meth:`run_lines` (same arguments), fitted to the book's column."""
        for line in self.run_lines(summary, counts, **kwargs):
            print(fit(line))

    def write_result(self, report: Dict[str, Any], summary, hardware: str, **extra) -> Path:
        """Write ``train-<dataset>.json`` into the build's results folder for Chapter 9: the
        report's metrics (package keys: mm, fractions) and both constants', the split, the
        seed, the run, the machine, the submission file and the parameter count of the
        network trained (``params_trained``); ``extra`` adds fields.

        Returns:
            the file written.
        """
        from handssca.report import write_result
        from handssca.utils import results_dir

        return write_result(
            results_dir() / f"train-{self.dataset}.json", kind=f"train/{self.dataset}",
            data=report["data"], profile=self.profile.name, metrics=report["metrics"],
            baseline=report["baseline"]["metrics"],  # the mean-pose constant
            baseline_mean_articulation=report["baseline_mean_articulation"]["metrics"],
            split=report["split"], seeds=[self.seed], run=summary.path.name,
            attention=self.attention, hardware=hardware, dataset=self.dataset,
            n_samples=report["n_samples"],
            params_trained=summary["parameters"]["total"],  # the network trained here
            **{"submission": report["submission"], **extra})


def training_chapter(dataset: str, prof: Profile, data_root: str = "",
                     attention: str = "ssca", seed: int = 0) -> TrainingChapter:
    """Resolve a training chapter's set-up: settings, data, figure sizes, network sizes.

    Args:
        dataset: "freihand", "dexycb" or "ho3d".
        prof: the profile, resolved by :func:`~.profiles.resolve_profile` (as the CLI does).
        data_root: the chapter's ``data_root`` parameter: a dataset folder or a folder holding
            it; "" for synthetic data of the dataset's style (generated on first use).
        attention: the attention block (Table 6's variants). seed: the chapter's seed.

    Returns:
        a :class:`TrainingChapter`. The engine's messages on the data (generated or reused
        synthetic data) are printed as :func:`shown_text` shortens them.

    Raises:
        FileNotFoundError: ``data_root`` holds no folder of the dataset (names what was
            expected and data/README.md).
    """
    from handssca.data import find_dataset

    from .datasets import resolve_data

    dataset = check_dataset(dataset)
    root = None
    if data_root:
        root = find_dataset(dataset, data_root)
        if root is None:
            raise FileNotFoundError(
                f"data_root {data_root!r} holds no {DATASET_NAMES[dataset]} folder (expected "
                f"{DATASET_MARKERS[dataset]}); see data/README.md")
    source = resolve_data(dataset, root, prof.name, seed, prof,
                          log=lambda msg: print(shown_text(msg)))
    n_show = int(prof.section("chapters", "training")["n_show"])  # predictions drawn
    return TrainingChapter(dataset, prof, attention, int(seed), root, source,
                           training_config(prof, dataset), n_show,
                           network_sizes(prof, dataset, attention))


__all__ = ["TrainingChapter", "training_chapter", "network_sizes", "shown_path",
           "shown_text", "fit", "COLUMN"]
