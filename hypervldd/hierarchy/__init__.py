"""Hierarchy embeddings: the WordNet benchmark of Poincaré and Lorentz embeddings.

* :mod:`.wordnet`: a reader of the WordNet noun database and transitive closures;
* :mod:`.embed`: training with the softmax-over-distances loss and Riemannian SGD;
* :mod:`.metrics`: reconstruction mean rank and mean average precision.
"""

from .embed import EmbedConfig, EmbedResult, HierarchyEmbedding, train_embedding
from .metrics import Reconstruction, adjacency, reconstruction
from .wordnet import Hierarchy, WordNetNouns, load_nouns, transitive_closure

__all__ = [
    "EmbedConfig",
    "EmbedResult",
    "HierarchyEmbedding",
    "train_embedding",
    "Reconstruction",
    "adjacency",
    "reconstruction",
    "Hierarchy",
    "WordNetNouns",
    "load_nouns",
    "transitive_closure",
]
