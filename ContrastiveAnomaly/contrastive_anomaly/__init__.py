"""ContrastiveAnomaly engine: unsupervised brain-MRI anomaly detection with a contrastive encoder and a
conditional diffusion model (Patrício et al., arXiv 2406.00772).

This package never imports Slicer, Qt, CTK or VTK; the Slicer module runs it in a child process.
"""

__version__ = "0.1.0"
