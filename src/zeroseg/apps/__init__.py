"""Applications over the ``Segmenter``: folder segmentation, the web page (``serve``), pictures,
COCO-style masks.
"""
