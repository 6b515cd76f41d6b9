"""Figures of the book: what the data, the network and its attention block look like.

- :mod:`handssca.viz.model` the scan orders, channel select on an image's features, the parameter
                     table, and the hand crops the model chapters trace (chapters 2 and 4)
- :mod:`.data`       samples with their 2D skeleton and mesh, occlusion histograms (chapter 3)
- :mod:`.mesh`       a hand mesh on its own, from a few viewpoints (chapter 4)
- :mod:`.erf`        the gradient effective receptive field of the hand features H (Fig. 1,
                     chapter 10)
- :mod:`.attention`  feature maps of H and H - F, keypoint heatmaps, the occluded and
                     interaction-edge regions and their contrast (Figs. 4 and 5, chapter 11)

Modules are imported on use (``from handssca.viz.erf import ...``); matplotlib and pyrender load
only when something is drawn.
"""
